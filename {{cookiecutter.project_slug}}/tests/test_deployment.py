"""The canary that step 10 runs before a promotion: real services on loopback, side by side."""

import json

import numpy as np

from {{ cookiecutter.package_name }} import artifacts, deployment, scoring


def test_canary_passes_a_faithful_challenger_and_catches_training_serving_skew(bundle_path, records):
    rows = json.loads(records.to_json(orient="records"))
    offline = scoring.score(scoring.load_bundle(bundle_path), records)["score"].to_numpy()
    faithful = deployment.canary(bundle_path, bundle_path, rows, offline, batch_size=5, max_latency_ms=10_000)
    assert faithful["passed"], faithful["summary"]
    assert faithful["served_records"] == faithful["served_by_both"] == len(rows) and faithful["requests"] == 4
    assert faithful["rejected_requests"] == {"champion": 0, "challenger": 0}
    assert faithful["decision_agreement"] == 1.0 and faithful["mean_score_difference_vs_champion"] == 0.0
    assert faithful["latency"]["champion_p99_latency_ms"] > 0 and faithful["latency"]["p99_latency_ms"] > 0
    assert "ms (champion" not in faithful["summary"]  # figures that change every run stay out of the record
    skewed = deployment.canary(bundle_path, bundle_path, rows, offline + 0.01, batch_size=5, max_latency_ms=10_000)
    assert not skewed["passed"] and skewed["failed_checks"] == ["served scores equal offline scores"]


def test_a_canary_that_served_nothing_fails_even_when_the_champion_rejected_everything(bundle_path, records):
    rows = [{**row, "age": "not a number"} for row in json.loads(records.to_json(orient="records"))]
    result = deployment.canary(bundle_path, bundle_path, rows, np.zeros(len(rows)), batch_size=5, max_latency_ms=10_000)
    assert result["rejected_requests"] == {"champion": 4, "challenger": 4} and result["served_records"] == 0
    assert not result["passed"]
    assert "the challenger served records" in result["failed_checks"]
    assert any(check.startswith("decisions agree") for check in result["failed_checks"])  # nothing to compare


def test_the_canary_compares_the_two_models_decisions_record_by_record(tmp_path, pipeline, metadata, records):
    # The same scores, another threshold: the challenger acts on everybody. Alone, it serves
    # faithfully (scores equal offline, no rejection); beside the champion, its decisions differ.
    eager = artifacts.save(scoring.make_bundle(pipeline, 0.0, metadata), tmp_path / "eager.skops")
    champion = artifacts.save(scoring.make_bundle(pipeline, 0.5, metadata), tmp_path / "champion.skops")
    rows = json.loads(records.to_json(orient="records"))
    offline = scoring.score(scoring.load_bundle(eager), records)
    result = deployment.canary(champion, eager, rows, offline["score"].to_numpy(), batch_size=5, max_latency_ms=10_000)
    expected = float(np.mean(scoring.score(scoring.load_bundle(champion), records)["decision"] == 1))
    assert result["decision_agreement"] == expected < 0.8
    assert result["mean_score_difference_vs_champion"] == 0.0 and result["served_by_both"] == len(rows)
    assert not result["passed"] and result["failed_checks"] == ["decisions agree with the champion's on at least 80%"]
    assert deployment.canary(champion, eager, rows, offline["score"].to_numpy(), 5, 10_000, min_agreement=0.0)["passed"]


def test_requests_go_to_both_services_in_turns(monkeypatch):
    calls = []

    def answer(url, payload, timeout=30.0):
        chunk, service = json.loads(payload), url.split("/")[0]
        calls.append(service)
        if service == "b" and chunk[0]["x"] == 2:
            return 422, {"detail": "no"}, 1.0
        return 200, {"predictions": [{"score": r["x"] / 10, "decision": int(service == "a")} for r in chunk]}, 2.0

    monkeypatch.setattr(deployment, "request", answer)
    answers = deployment.serve_side_by_side({"a": "a", "b": "b"}, [{"x": 0}, {"x": 1}, {"x": 2}], batch_size=2)
    assert calls == ["a", "b", "b", "a"]  # who answers first alternates
    np.testing.assert_allclose(answers["a"]["scores"], [0.0, 0.1, 0.2])
    assert np.isnan(answers["b"]["scores"][2]) and answers["b"]["decisions"].tolist() == [0, 0, -1]
    assert answers["b"]["rejected"] == [1] and answers["a"]["rejected"] == [] and len(answers["a"]["timings"]) == 2
