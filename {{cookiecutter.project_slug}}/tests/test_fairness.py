import numpy as np
import pandas as pd
import pytest
from conftest import synthetic_criteria
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

from {{ cookiecutter.package_name }} import fairness, gates


def decisions(seed: int, n: int = 3000, groups=("a", "b", "c"), shares=(0.5, 0.3, 0.2), hit_step=0.1, alarm_step=0.08):
    """Labels and decisions whose rates differ by group; every group is large.

    ``hit_step`` and ``alarm_step`` set how much the true and false positive rates
    rise from one group to the next."""
    rng = np.random.default_rng(seed)
    g = pd.Series(rng.choice(list(groups), n, p=list(shares)), name="group")
    base = g.map({k: 0.3 + 0.1 * i for i, k in enumerate(groups)}).to_numpy()
    y = (rng.random(n) < base).astype(int)
    hit = g.map({k: 0.6 + hit_step * i for i, k in enumerate(groups)}).to_numpy()
    false_alarm = g.map({k: 0.1 + alarm_step * i for i, k in enumerate(groups)}).to_numpy()
    p = (rng.random(n) < np.where(y == 1, hit, false_alarm)).astype(int)
    return y, p, g


RULE = fairness.FairnessRule({"demographic_parity": 0.15, "equalized_odds": 0.15})
ONE = {"sensitive_features": ["group"], "sensitive_bins": {}}


def assessed(y, p, g, rule=RULE):
    return fairness.assess(y, p, pd.DataFrame({"group": g}), ONE, rule)


@pytest.mark.parametrize(
    "seed, hit_step, alarm_step",
    [
        (0, 0.1, 0.08),  # the true positive rates differ most
        (1, 0.02, 0.15),  # the false positive rates differ most
        (2, 0.15, 0.0),
    ],
)
def test_gaps_equal_fairlearn_when_every_group_is_large(seed, hit_step, alarm_step):
    y, p, g = decisions(seed, n=8000, hit_step=hit_step, alarm_step=alarm_step)
    found = assessed(y, p, g)
    assert found.groups["gated_demographic_parity"].all() and found.groups["gated_equalized_odds"].all()
    dp, eo = (
        found.estimates["demographic_parity_difference[group]"],
        found.estimates["equalized_odds_difference[group]"],
    )
    assert dp.value == pytest.approx(demographic_parity_difference(y, p, sensitive_features=g), abs=1e-12)
    assert eo.value == pytest.approx(equalized_odds_difference(y, p, sensitive_features=g), abs=1e-12)
    for e in (dp, eo):
        assert e.low <= e.value <= e.high  # the point estimate is inside its own interval
    assert dp.value > 0.05


def test_groups_too_small_to_see_a_gap_of_the_gates_size_are_reported_not_gated():
    y, p, g = decisions(0)
    tiny = pd.Series(["tiny"] * 20, name="group")
    y_all = np.concatenate([y, [1] * 10 + [0] * 10])
    p_all = np.concatenate([p, [1] * 20])  # selection rate 1: would dominate every gap
    found = assessed(y_all, p_all, pd.concat([g, tiny], ignore_index=True))
    table = found.groups.loc["group"]
    assert not table.loc["tiny", "gated_demographic_parity"] and table.loc["tiny", "rows_needed_demographic_parity"] > 0
    assert table.drop(index="tiny")["gated_demographic_parity"].all()
    assert found.estimates["demographic_parity_difference[group]"].value == pytest.approx(
        assessed(y, p, g).estimates["demographic_parity_difference[group]"].value
    )
    # a stricter gate needs larger groups: fewer are gated
    strict = fairness.FairnessRule({"demographic_parity": 0.02, "equalized_odds": 0.02})
    assert assessed(y, p, g, strict).groups["gated_equalized_odds"].sum() < 3


def test_equalized_odds_needs_enough_positives_and_negatives():
    y, p, g = decisions(1)
    # group "d" is large but has only 5 positives: fine for parity, noise for error rates
    y_all = np.concatenate([y, [1] * 5 + [0] * 395])
    p_all = np.concatenate([p, [0] * 5 + [1] * 395])
    table = assessed(y_all, p_all, pd.concat([g, pd.Series(["d"] * 400)], ignore_index=True)).groups.loc["group"]
    assert table.loc["d", "gated_demographic_parity"] and not table.loc["d", "gated_equalized_odds"]
    assert table.loc["d", "rows_needed_equalized_odds"] > 400


def test_a_gap_with_fewer_than_two_gated_groups_is_not_measured_and_says_what_is_missing():
    y, p, _ = decisions(0, n=500)
    g = pd.Series(["a"] * 480 + ["b"] * 20)
    found = assessed(y, p, g)
    assert not found.estimates["demographic_parity_difference[group]"].measured
    assert "`b` ~" in found.unmeasured("group", "demographic_parity")


def test_the_intersection_is_gated_when_measurable():
    rng = np.random.default_rng(8)
    n = 6000
    frame = pd.DataFrame({"sex": rng.choice(["F", "M"], n), "race": rng.choice(["x", "y"], n, p=[0.7, 0.3])})
    y = (rng.random(n) < 0.3).astype(int)
    both = (frame["sex"] == "F") & (frame["race"] == "y")  # only the intersection is treated differently
    p = (rng.random(n) < np.where(both, 0.15, np.where(y == 1, 0.8, 0.3))).astype(int)
    spec = {"sensitive_features": ["sex", "race"], "sensitive_bins": {}}
    found = fairness.assess(y, p, frame, spec, RULE)
    assert set(found.estimates) == {
        f"{gap}_difference[{g}]"
        for gap in ("demographic_parity", "equalized_odds")
        for g in ("sex", "race", "sex & race")
    }
    joint = found.estimates["demographic_parity_difference[sex & race]"]
    assert joint.low > 0.15  # a real gap on the intersection, seen on evidence
    assert found.estimates["demographic_parity_difference[sex]"].value < joint.value


def test_gate_table_judges_the_gates_of_step_02_on_their_intervals():
    y, p, g = decisions(6, n=2000, groups=("F", "M"), shares=(0.4, 0.6))
    criteria = synthetic_criteria()
    table, found = fairness.gate_table(y, p, pd.DataFrame({"sex": g}), {**ONE, "sensitive_features": ["sex"]}, criteria)
    assert table["gate"].tolist() == ["demographic_parity[sex]", "equalized_odds[sex]"]
    assert set(table["verdict"]) <= {"pass", "fail", "inconclusive"}
    row = table.iloc[0]
    expected = found.estimates["demographic_parity_difference[sex]"]
    assert (row["value"], row["low"], row["high"]) == pytest.approx((expected.value, expected.low, expected.high))


def test_a_release_verdict_does_not_flip_with_the_sample():
    """The same decisions judged on 200 independent test samples of the issue's sizes: the verdict is stable
    (a fair decision passes, an unfair one fails) or says it cannot tell; it never passes an unfair one."""
    rng = np.random.default_rng(11)
    sizes, verdicts = {"a": 3700, "b": 450, "c": 150, "d": 45}, {"fair": [], "unfair": []}
    for kind, rates in (("fair", [0.3, 0.3, 0.3, 0.3]), ("unfair", [0.3, 0.1, 0.3, 0.3])):
        for _ in range(200):
            g = np.concatenate([[k] * n for k, n in sizes.items()])
            sel = np.concatenate([rng.random(n) < r for n, r in zip(sizes.values(), rates, strict=True)]).astype(int)
            e = assessed(rng.integers(0, 2, len(g)), sel, pd.Series(g)).estimates[
                "demographic_parity_difference[group]"
            ]
            verdicts[kind].append("pass" if e.high <= 0.15 else "fail" if e.low > 0.15 else "inconclusive")
    assert verdicts["fair"].count("pass") >= 180
    assert (
        verdicts["unfair"].count("pass") == 0 and verdicts["unfair"].count("fail") >= 140
    )  # a gap of 0.2 against 0.15


def test_group_metrics_table(spec):
    y, p, g = decisions(7, n=600, groups=("Female", "Male"), shares=(0.4, 0.6))
    table = fairness.group_metrics_table(y, p, pd.DataFrame({"sex": g}), spec)
    assert table.index.names == ["feature", "group"]
    assert table.loc[("sex", "Female"), "count"] == (g == "Female").sum()
    assert table["count"].sum() == 600
    female = (g == "Female").to_numpy()
    assert table.loc[("sex", "Female"), "selection_rate"] == pytest.approx(p[female].mean())


def test_a_gate_whose_groups_are_all_too_small_is_not_assessed_unless_the_team_blocks_on_it():
    y, p, _ = decisions(0, n=500)
    frame = pd.DataFrame({"sex": ["F"] * 480 + ["M"] * 20})
    spec = {"sensitive_features": ["sex"], "sensitive_bins": {}}
    criteria = {
        "criteria": {
            "max_equalized_odds_difference": 0.15,
            "confidence": 0.95,
            "fairness_power": 0.8,
            "decide_on": "interval",
        },
        "gates": [
            gates.gate("equalized_odds[sex]", "equalized_odds_difference[sex]", "<=", 0.15, ["fairness_assessment"], "")
        ],
    }
    table, _ = fairness.gate_table(y, p, frame, spec, criteria)
    row = table.iloc[0]
    assert row["verdict"] == "not assessed" and not row["passed"] and "`M` ~" in row["note"]
    assert gates.failures(table) == [] and gates.overall(table) == "pass"  # reported, no reason of its own
    criteria["criteria"]["block_unassessed"] = True
    blocked, _ = fairness.gate_table(y, p, frame, spec, criteria)
    assert blocked.iloc[0]["verdict"] == "not measured" and gates.failures(blocked)


def test_the_gated_groups_depend_on_the_rows_not_on_the_decisions():
    """Two models judged on the same rows are judged on the same groups (so their gaps compare)."""
    y, p, g = decisions(3, n=3000, shares=(0.8, 0.15, 0.05))
    lenient = np.ones_like(p)  # everyone selected: no variance in the selection rate at all
    first, second = assessed(y, p, g).groups, assessed(y, lenient, g).groups
    assert first["gated_equalized_odds"].equals(second["gated_equalized_odds"])
    assert first["gated_demographic_parity"].equals(second["gated_demographic_parity"])
