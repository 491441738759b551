"""The test suite's own scheduling declarations name tests that exist (a renamed test would silently
lose its shared worker or its early start)."""

from __future__ import annotations

import importlib

from conftest import LONG_UNITS_FIRST, SAME_WORKER, work_unit


def names_in(module: str) -> set[str]:
    return {name for name in dir(importlib.import_module(module)) if name.startswith("test_")}


def test_every_scheduling_entry_names_an_existing_test():
    for entry in [*SAME_WORKER, *(f"tests/{u}" for u in LONG_UNITS_FIRST)]:
        path, _, prefix = entry.partition("::")
        module = path.removeprefix("tests/").removesuffix(".py")
        assert any(name.startswith(prefix) for name in names_in(module)), f"{entry} names no test"


def test_work_units():
    assert work_unit("tests/test_own_data.py::test_two_percent_positives") == "own-data projects"
    assert work_unit("tests/test_own_data.py::test_bad_input_stops_with_one_clear_message_and_nothing_lost[x]") == (
        "own-data contract project"
    )
    assert work_unit("tests/test_pipeline.py::test_readiness_is_scored_from_evidence_and_a_broken_check_loses_its_points") == (
        work_unit("tests/test_pipeline.py::test_generated_project_own_tests_pass")
    )
    assert work_unit("tests/test_pipeline.py::test_http_service") == "tests/test_pipeline.py::test_http_service"
