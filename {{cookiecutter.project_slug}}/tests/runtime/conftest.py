"""Fixtures of the machinery's tests."""

import pytest


@pytest.fixture(autouse=True)
def prediction_log_url():
    """No per-test prediction log here: a warm-kernel server is keyed by its environment, so a
    variable that differs from test to test would start a new server for each (the machinery
    logs no decision)."""
    yield None
