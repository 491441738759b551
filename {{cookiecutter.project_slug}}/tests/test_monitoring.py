import math

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }} import monitoring

KINDS = {"x": "numeric", "k": "numeric", "c": "categorical"}


def sample(seed: int, n: int = 4000, shift: float = 0.0, mix=(1 / 3, 1 / 3, 1 / 3)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(shift, 1, n),
            "k": rng.integers(0, 5, n),
            "c": rng.choice(list("abc"), n, p=list(mix)),
        }
    )


def test_psi_known_values():
    assert monitoring.psi(np.array([50.0, 50.0]), np.array([50.0, 50.0])) == 0.0
    assert monitoring.psi(np.array([80.0, 20.0]), np.array([20.0, 80.0])) == pytest.approx(2 * 0.6 * math.log(4))
    # scale-free: counts, not sizes, matter
    assert monitoring.psi(np.array([8.0, 2.0]), np.array([200.0, 800.0])) == pytest.approx(2 * 0.6 * math.log(4))
    # an empty bin does not make it infinite
    assert math.isfinite(monitoring.psi(np.array([10.0, 0.0]), np.array([5.0, 5.0])))


def test_psi_is_near_zero_for_the_same_distribution_and_large_for_a_shift():
    reference = sample(0)
    same = monitoring.feature_drift(reference["x"], sample(1)["x"], "numeric")
    shifted = monitoring.feature_drift(reference["x"], sample(1, shift=1.0)["x"], "numeric")
    assert same["psi"] < 0.02
    assert shifted["psi"] > 0.25
    assert same["test"] == "KS" and same["p_value"] > 0.01 and shifted["p_value"] < 1e-6
    categories = monitoring.feature_drift(reference["c"], sample(1, mix=(0.7, 0.2, 0.1))["c"], "categorical")
    assert categories["psi"] > 0.25 and categories["p_value"] < 1e-6
    assert monitoring.feature_drift(reference["c"], sample(2)["c"], "categorical")["psi"] < 0.02


def test_drift_table_flags_the_shifted_column_only():
    reference = sample(0)
    current = sample(1).assign(x=lambda f: f["x"] * 1.5 + 1.0)
    table = monitoring.drift_table(reference, current, KINDS, psi_warning=0.1, psi_alert=0.25).set_index("feature")
    assert table.loc["x", "status"] == "alert"
    assert table.loc[["k", "c"], "status"].tolist() == ["ok", "ok"]
    assert table.loc["x", "psi"] > 0.25
    # a column the batch does not carry is skipped, not an error
    assert "c" not in monitoring.drift_table(reference, current.drop(columns="c"), KINDS, 0.1, 0.25)["feature"].tolist()


def test_new_categories_and_missing_values_count_as_drift():
    reference = pd.Series(["a", "b"] * 500)
    assert monitoring.feature_drift(reference, pd.Series(["a", "b"] * 250 + ["zzz"] * 500), "categorical")["psi"] > 1
    assert monitoring.feature_drift(reference, pd.Series(["a", "b"] * 250 + [None] * 500), "categorical")["psi"] > 1
    numbers = pd.Series(np.arange(1000.0))
    holes = pd.Series(np.where(np.arange(1000) % 2 == 0, np.nan, np.arange(1000.0)))
    assert monitoring.feature_drift(numbers, holes, "numeric")["psi"] > 1


def test_missing_spikes():
    reference = pd.DataFrame({"a": [1.0] * 100, "b": [1.0] * 100})
    current = pd.DataFrame({"a": [np.nan] * 20 + [1.0] * 80, "b": [np.nan] * 2 + [1.0] * 98})
    spikes = monitoring.missing_spikes(reference, current, ["a", "b"])
    assert spikes["column"].tolist() == ["a"]
    assert spikes["increase"].iloc[0] == pytest.approx(0.2)


def test_list_batches(tmp_path):
    for name in ("2024-02.parquet", "2024-01.csv", "2024-03.csv.gz", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.csv").mkdir()
    assert [p.name for p in monitoring.list_batches(tmp_path)] == ["2024-01.csv", "2024-02.parquet", "2024-03.csv.gz"]
    assert monitoring.list_batches(tmp_path / "absent") == []


def test_prepare_batch_encodes_the_label(spec, frame):
    batch = monitoring.prepare_batch(frame, spec, "b1")
    assert batch["income"].tolist() == (frame["income"] == ">50K").astype(float).tolist()
    assert frame["income"].iloc[0] in (">50K", "<=50K")  # the input is not modified
    encoded = frame.assign(income=(frame["income"] == ">50K").astype(int))
    assert monitoring.prepare_batch(encoded, spec, "b2")["income"].tolist() == encoded["income"].tolist()


@pytest.fixture
def source(make_frame):
    frame = make_frame(n=1000, seed=11)
    frame["income"] = (frame["income"] == ">50K").astype(int)
    return frame


def test_simulate_batches_cuts_the_source_without_injections(spec, source):
    batches = monitoring.simulate_batches(source, spec, batch_size=200, seed=0)
    assert [name for name, _, _ in batches] == [f"simulated_{i:03d}" for i in range(1, 6)]
    assert all(len(b) == 200 and injected == "none" for _, b, injected in batches)
    joined = pd.concat([b for _, b, _ in batches])
    assert sorted(joined["age"].tolist()) == sorted(source["age"].tolist())
    again = monitoring.simulate_batches(source, spec, batch_size=200, seed=0)
    for (_, first, _), (_, second, _) in zip(batches, again, strict=True):
        pd.testing.assert_frame_equal(first, second)


def test_simulate_batches_injects_the_requested_drifts(spec, source):
    plain = monitoring.simulate_batches(source, spec, batch_size=200, seed=0)
    drifted = monitoring.simulate_batches(
        source,
        spec,
        batch_size=200,
        seed=0,
        shift_batch=2,
        shift_feature="hours",
        shift_scale=1.5,
        group_mix_batch=3,
        label_shift_batch=4,
    )
    injected = [what for _, _, what in drifted]
    assert injected[0] == "none" and injected[4] == "none"
    assert injected[1] == "hours × 1.5"
    assert "sex" in injected[2] and "Female" in injected[2]  # the minority is over-represented
    assert injected[3] == "positive label rate raised"
    # untouched batches are the same rows as without injections
    for number in (0, 4):
        pd.testing.assert_frame_equal(plain[number][1], drifted[number][1])
    # batch 2: the feature scaled, nothing else changed
    before, after = plain[1][1], drifted[1][1]
    np.testing.assert_allclose(after["hours"].to_numpy(), before["hours"].to_numpy() * 1.5)
    pd.testing.assert_frame_equal(after.drop(columns="hours"), before.drop(columns="hours"))
    # batch 3: the minority group's share rises well above its share without injection
    share = lambda b: (b["sex"] == "Female").mean()  # noqa: E731
    assert share(drifted[2][1]) > share(plain[2][1]) + 0.2
    # batch 4: the positive rate rises
    assert drifted[3][1]["income"].mean() > plain[3][1]["income"].mean() + 0.1
    # and the drift is visible to the monitoring itself
    kinds = {"hours": "numeric", "age": "numeric", "job": "categorical"}
    table = monitoring.drift_table(source, drifted[1][1], kinds, 0.1, 0.25).set_index("feature")
    assert table.loc["hours", "status"] == "alert" and table.loc["age", "status"] != "alert"


def test_simulate_batches_refuses_an_unknown_shift_feature(spec, source):
    with pytest.raises(ValueError, match="drift_shift_feature: column 'salary'"):
        monitoring.simulate_batches(source, spec, 200, 0, shift_batch=1, shift_feature="salary")
