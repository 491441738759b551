"""End to end: the gates of steps 08-10 do what they promise (issues 4 and 5).

Monitoring recommends retraining only when something drifted; retraining promotes a
challenger only when it passes every gate, keeps the previous champion, and rolls back with
one command; a deliberately unfair dataset trips the fairness gate and mitigation narrows it.
The default-data tests share the session's reproduced project and change params in copies,
so only the stages downstream of the change rerun.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import bake, dvc, package_of, run

pytestmark = pytest.mark.e2e
CHAMPION = "models/registry/champion.skops"


def status_of(project: Path) -> dict:
    return json.loads((project / "reports/09_monitoring/monitoring_status.json").read_text())


def decision_of(project: Path) -> dict:
    return json.loads((project / "reports/10_retraining/retraining_decision.json").read_text())


def registry_of(project: Path) -> dict:
    return json.loads((project / "models/registry/registry.json").read_text())


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def set_params(project: Path, **sections: dict) -> None:
    """Update params.yaml the way a user would: section by section, key by key."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    for section, values in sections.items():
        params[section].update(values)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True))


def copy_of(project: Path, tmp_path: Path) -> Path:
    copy = tmp_path / project.name
    shutil.copytree(project, copy, symlinks=True)
    return copy


def repro_after_params_change(project: Path, *expected_stages: str) -> str:
    """`dvc repro` after a params edit: only the stages that depend on the change rerun."""
    out = dvc(project, "repro").stdout
    ran = [s for s in ("modeling", "deployment", "fairness_assessment", "monitoring", "retraining") if f"Running stage '{s}'" in out]
    assert ran == list(expected_stages), out
    return out


# --- issue 5: monitoring and retraining on the default data --------------------------------------


def test_injected_drift_is_caught_and_retraining_records_its_decision(reproduced_project):
    status = status_of(reproduced_project)
    assert status["retrain_recommended"] is True and status["reasons"]
    shifted = next(b for b in status["batches"] if b["injected"].startswith("hours_per_week"))
    assert "hours_per_week" in shifted["drifted"].split(", ")
    assert shifted["max_psi"] >= 0.25 and shifted["most_drifted"] == "hours_per_week"
    assert any(r.startswith(f"{shifted['batch']}: feature_drift") for r in status["reasons"]), status["reasons"]
    drift = pd.read_csv(reproduced_project / "reports/plots/drift.csv").set_index("batch")
    assert drift.loc[shifted["batch"], "max_psi"] == pytest.approx(shifted["max_psi"], abs=1e-4)
    print(f"shifted batch {shifted['batch']}: PSI {shifted['max_psi']:.3f} on {shifted['most_drifted']}; reasons {status['reasons']}")

    decision = decision_of(reproduced_project)
    assert decision["triggered"] is True and decision["triggers"]["monitoring"] is True
    assert decision["monitoring_reasons"] == status["reasons"]
    for who in ("champion", "challenger"):
        assert {"roc_auc", "expected_cost", "cost_reduction_vs_baseline"} <= set(decision[who]), who
        assert any(k.startswith("demographic_parity_difference[") for k in decision[who]), who  # reported, not gated
        estimate = decision["estimates"][who]["equalized_odds_difference[sex & race]"]
        assert estimate["low"] <= estimate["value"] <= estimate["high"], who
    # the challenger: the leakage alarm, fairness, and non-inferiority to the champion on paired differences
    gates = {g["gate"]: g for g in decision["gates"]}
    assert {"leakage_alarm", "equalized_odds[sex & race]", "no_regression", "no_cost_increase"} <= set(gates)
    assert all(g["verdict"] in {"pass", "fail", "inconclusive", "not measured", "not assessed"} for g in gates.values())
    # both models judged on the same pooled rows, at least min_labelled_rows of them
    assert decision["judged_on"]["rows"] == decision["judged_rows"] >= 10000
    # the champion: the same gates, and also quality and cost against the reference baseline, as step 09 alarms
    champion_gates = {g["gate"] for g in decision["champion_gates"]}
    assert {"model_quality", "cost_vs_baseline", "equalized_odds[sex & race]"} <= champion_gates
    assert not champion_gates & {"no_regression", "no_cost_increase"}
    assert isinstance(decision["promoted"], bool) and decision["reasons"]
    assert decision["promoted"] is False  # a person signs: a challenger that passes is staged, not installed
    if decision["passed_gates"]:
        assert decision["awaiting_approval"].split()[1:3] == ["approve", decision["challenger_version"]]
    else:
        assert all(any(r.startswith(g["gate"]) or g["gate"] in r for r in decision["reasons"]) for g in gates.values() if not g["passed"])
    print(f"retraining: passed={decision['passed_gates']} evidence={decision['evidence']} reasons={decision['reasons']} "
          f"champion AUC {decision['champion']['roc_auc']:.4f} challenger AUC {decision['challenger']['roc_auc']:.4f}")


def test_no_drift_does_not_recommend_retraining_and_changes_nothing(reproduced_project, tmp_path):
    project = copy_of(reproduced_project, tmp_path)
    champion_before, registry_before = md5(project / CHAMPION), registry_of(project)
    set_params(project, monitoring={"drift_shift_batch": 0, "group_mix_batch": 0, "label_shift_batch": 0})
    repro_after_params_change(project, "monitoring", "retraining")
    status = status_of(project)
    assert status["retrain_recommended"] is False and status["reasons"] == []
    assert all(b["injected"] == "none" and b["drifted_features"] == 0 for b in status["batches"])
    decision = decision_of(project)
    assert decision["triggered"] is False and not any(decision["triggers"].values())
    assert decision["promoted"] is False and "no trigger fired" in decision["reasons"][0]
    assert md5(project / CHAMPION) == champion_before
    assert registry_of(project) == registry_before


def test_a_worse_challenger_is_not_promoted(reproduced_project, tmp_path):
    project = copy_of(reproduced_project, tmp_path)
    champion_before, events_before = md5(project / CHAMPION), registry_of(project)["events"]
    set_params(project, retraining={
        "challenger_models": ["hist_gradient_boosting"],
        "challenger_overrides": {"hist_gradient_boosting": {"learning_rate": [0.0001], "max_leaf_nodes": [2]}},
    })
    repro_after_params_change(project, "retraining")
    decision = decision_of(project)
    assert decision["triggered"] is True and decision["challenger_model"] == "hist_gradient_boosting"
    assert decision["challenger_params"]["learning_rate"] == 0.0001
    # really worse: below the champion on the same recent batch, by more than the allowed margin
    assert decision["challenger"]["roc_auc"] < decision["champion"]["roc_auc"] - 0.01
    gates = {g["gate"]: g for g in decision["gates"]}
    assert gates["no_regression"]["verdict"] == "fail"  # worse on evidence: the whole interval below the margin
    assert decision["promoted"] is False and decision["awaiting_approval"] is None
    assert any(r.startswith("no_regression") for r in decision["reasons"]), decision["reasons"]
    assert md5(project / CHAMPION) == champion_before
    assert registry_of(project)["events"] == events_before


def test_promotion_waits_for_a_person_keeps_the_previous_champion_and_rollback_restores_it(reproduced_project, tmp_path):
    project = copy_of(reproduced_project, tmp_path)
    state_before = registry_of(project)
    champion_before = md5(project / CHAMPION)
    history_before = len(state_before["history"])
    # A team drops three labelled production batches (the held-out census records) into
    # data/production/ and forces retraining: both models are judged on the newest two (11,281 rows,
    # over min_labelled_rows) and the challenger learns from the first. The gates are unchanged.
    held_out = pd.read_csv(project / "data/external/adult_test.csv.gz")
    for number, rows in enumerate((slice(0, 5000), slice(5000, 10000), slice(10000, None)), start=1):
        held_out.iloc[rows].to_csv(project / f"data/production/2026-0{number}.csv", index=False)
    set_params(project, retraining={"force": True})
    repro_after_params_change(project, "monitoring", "retraining")
    decision = decision_of(project)
    assert decision["triggered"] is True and decision["triggers"]["forced"] is True
    assert decision["judged_on"]["windows"] == 2 and decision["judged_rows"] == 11281
    assert decision["passed_gates"] is True, decision["reasons"]
    # every gate passes on evidence; race is not assessed (its smaller groups lack the rows, and say how many)
    verdicts = {g["gate"]: g["verdict"] for g in decision["gates"]}
    assert verdicts.pop("equalized_odds[race]") in {"pass", "not assessed"} and set(verdicts.values()) == {"pass"}, verdicts
    # staged, not installed: the champion in service is unchanged until a person approves
    assert decision["promoted"] is False and md5(project / CHAMPION) == champion_before
    staged = registry_of(project)["staged"]
    assert staged["version"] == decision["challenger_version"]
    command = decision["awaiting_approval"].split()
    assert command[1:3] == ["approve", decision["challenger_version"]]

    package = package_of(reproduced_project)
    approved = run([sys.executable, "-m", f"{package}.cli", "approve", decision["challenger_version"], "--by", "Ada Lovelace",
                    "--note", "read retraining_decision.json"], project)  # fmt: skip
    assert decision["challenger_version"] in approved.stdout
    state = registry_of(project)
    promoted = md5(project / CHAMPION)
    assert promoted != champion_before
    assert state["champion"]["version"] == decision["challenger_version"]
    assert state["champion"]["approved_by"] == "Ada Lovelace" and state["champion"]["installed_at"]
    assert len(state["history"]) == history_before + 1
    kept = project / "models/registry" / state["history"][-1]["file"]
    assert md5(kept) == champion_before
    assert state["events"][-1]["event"] == "install" and state["events"][-1]["version"] == decision["challenger_version"]
    log = run(["git", "log", "-1", "--format=%s"], project).stdout
    assert decision["challenger_version"] in log and "Ada Lovelace" in log

    result = run([sys.executable, "-m", f"{package}.cli", "rollback"], project)
    assert "champion is now version" in result.stdout
    assert md5(project / CHAMPION) == champion_before
    state = registry_of(project)
    rolled_back = {k: state["events"][-1].get(k) for k in ("event", "from", "to")}  # and when ("at")
    assert rolled_back == {"event": "rollback", "from": decision["challenger_version"],
                           "to": state_before["champion"]["version"]}
    assert [e["event"] for e in state["events"][-2:]] == ["install", "rollback"]
    assert len(state["history"]) == history_before
    assert any(md5(p) == promoted for p in (project / "models/registry").glob("rolled_back_*.skops"))


# --- issue 4: a deliberately unfair dataset ------------------------------------------------------


def hiring(rows: int = 15000, seed: int = 7) -> pd.DataFrame:
    """Hiring with a strong base-rate gap by `group` (about 67% against 14%) and a close proxy of it.

    15,000 rows: the validation split's half then holds enough positives of group `b` (about 100)
    for its error rates to be gated with the power step 02 asks for, not only reported.

    `group` is a sensitive feature, so it is kept out of the model's inputs; `neighbourhood_index`
    encodes it almost perfectly, so the model reproduces the gap anyway.
    """
    rng = np.random.default_rng(seed)
    group = rng.choice(["a", "b"], rows, p=[0.5, 0.5])
    is_a = (group == "a").astype(float)
    neighbourhood = (2.0 * is_a + rng.normal(0, 0.6, rows)).round(3)
    experience = rng.integers(0, 30, rows)
    test_score = rng.normal(50, 10, rows).round(1)
    sector = rng.choice(["retail", "tech", "care", "trade"], rows)
    logit = -2.0 + 2.8 * is_a + 0.05 * (experience - 15) + 0.06 * (test_score - 50)
    hired = rng.random(rows) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame({"group": group, "neighbourhood_index": neighbourhood, "experience_years": experience,
                         "test_score": test_score, "sector": sector, "hired": np.where(hired, "yes", "no")})


def test_an_unfair_dataset_trips_the_fairness_gate_and_mitigation_narrows_the_gap(tmp_path):
    project = bake(tmp_path)
    hiring().to_csv(project / "data/raw/hiring.csv", index=False)
    set_params(
        project,
        data={"path": "data/raw/hiring.csv", "target": "hired", "positive_label": "yes", "sensitive_features": ["group"],
              "drop_columns": []},
        monitoring={"simulation_source": "data/processed/test.parquet", "drift_shift_feature": "test_score"},
    )
    dvc(project, "repro", "fairness_assessment")
    release = json.loads((project / "reports/08_fairness_assessment/release_decision.json").read_text())
    assert release["mitigation"] in {"threshold_optimizer", "exponentiated_gradient"}
    assert release["constraint"] in {"demographic_parity", "equalized_odds"}
    gated = {g["metric"] for g in release["gates"] if g["metric"].endswith("[group]")}
    assert gated == {"equalized_odds_difference[group]"}  # step 02's default gates equalized odds
    eo = "equalized_odds_difference[group]"
    before, after = release["gaps_before"][eo], release["gaps_after"][eo]
    assert before["low"] > 0.15, before  # the deployed model fails on evidence, not only on its point estimate
    assert after["value"] < before["value"] and after["high"] < before["low"], (before, after)
    # demographic parity is still measured and reported with its interval
    dp = release["gaps_before"]["demographic_parity_difference[group]"]
    assert dp["low"] <= dp["value"] <= dp["high"]
    # chosen on validation rows held out from the mitigation's fit; the test split only gives the verdict
    validation = pd.read_parquet(project / "data/processed/validation.parquet")
    chosen_on = release["chosen_on"]
    assert chosen_on["split"] == "validation" and chosen_on["fit_rows"] + chosen_on["held_out_rows"] == len(validation)
    tradeoff = {row["mitigation"]: row for row in release["tradeoff"]}
    assert tradeoff["none"]["passes_fairness_gates"] is False
    assert tradeoff[release["mitigation"]]["max_eo_upper"] < tradeoff["none"]["max_eo_upper"]
    print(f"unfair data: equalized odds gap {before} -> {after} with {release['mitigation']}; "
          f"released={release['released']} ({release['evidence']})")

    # the mitigated artifact loads in fresh processes with equal decisions (it needs the sensitive feature)
    code = (
        "import json, pandas as pd\n"
        f"from {package_of(project)}.scoring import load_bundle, score\n"
        "b = load_bundle('models/release.skops', allow_unreleased=True)\n"
        "t = pd.read_parquet('data/processed/test.parquet')\n"
        "print(json.dumps([b['metadata'].get('mitigation'), score(b, t, allow_extra=True, allow_unseen=True)['decision'].tolist()]))\n"
    )
    first, second = (json.loads(run([sys.executable, "-c", code], project).stdout) for _ in range(2))
    assert first == second and first[0] == release["mitigation"]
    test = pd.read_parquet(project / "data/processed/test.parquet")
    decisions = pd.Series(first[1], index=test.index, dtype=float)
    positives = test["hired"].astype(bool) if test["hired"].dtype == bool else test["hired"] == 1
    tpr = decisions[positives].groupby(test.loc[positives, "group"]).mean()
    fpr = decisions[~positives].groupby(test.loc[~positives, "group"]).mean()
    assert max(abs(tpr["a"] - tpr["b"]), abs(fpr["a"] - fpr["b"])) == pytest.approx(after["value"], abs=1e-6)
