"""The canary that step 10 runs before a promotion: real services on loopback, side by side."""

import json

from {{ cookiecutter.package_name }} import deployment, scoring


def test_canary_passes_a_faithful_challenger_and_catches_training_serving_skew(bundle_path, records):
    rows = json.loads(records.to_json(orient="records"))
    offline = scoring.score(scoring.load_bundle(bundle_path), records)["score"].to_numpy()
    faithful = deployment.canary(bundle_path, bundle_path, rows, offline, batch_size=5, max_latency_ms=10_000)
    assert faithful["passed"], faithful["summary"]
    assert faithful["served_records"] == len(rows) and faithful["requests"] == 4
    assert faithful["rejected_requests"] == {"champion": 0, "challenger": 0}
    skewed = deployment.canary(bundle_path, bundle_path, rows, offline + 0.01, batch_size=5, max_latency_ms=10_000)
    assert not skewed["passed"] and skewed["failed_checks"] == ["served scores equal offline scores"]
