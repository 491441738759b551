"""Shared fixtures of the unit tests: small synthetic data and a small fitted model.

Everything here is made in memory from fixed seeds (no network, no pipeline
outputs), so the unit suite runs in seconds and gives the same result every time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from {{ cookiecutter.package_name }} import artifacts, features, gates, scoring
from {{ cookiecutter.package_name }}.runtime import readiness

TARGET = "income"
POSITIVE, NEGATIVE = ">50K", "<=50K"
JOBS = ["clerk", "engineer", "farmer", "nurse"]


def synthetic_frame(n: int = 600, seed: int = 0, sex_effect: float = 1.0, proxy_gap: float = 0.0) -> pd.DataFrame:
    """Adult-like toy data: two numeric features (one with gaps), a categorical one
    (with gaps), a sensitive feature that shifts the base rate, and a string target.

    ``proxy_gap`` adds that many hours for men: hours then stands in for sex, so a
    model that never sees sex still selects the groups at different rates."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["Female", "Male"], n, p=[0.4, 0.6])
    job = rng.choice(JOBS, n).astype(object)
    age = rng.integers(18, 70, n)
    hours = rng.normal(40, 8, n).round(1) + proxy_gap * (sex == "Male")
    logit = -3.0 + 0.06 * (age - 18) + 1.2 * (job == "engineer") + sex_effect * (sex == "Male")
    y = rng.random(n) < 1 / (1 + np.exp(-logit))
    hours[rng.random(n) < 0.05] = np.nan
    job[rng.random(n) < 0.05] = None
    return pd.DataFrame({"age": age, "hours": hours, "job": job, "sex": sex, TARGET: np.where(y, POSITIVE, NEGATIVE)})


def synthetic_spec() -> dict:
    """The dataset_spec step 03 would write for :func:`synthetic_frame`."""
    return {
        "target": TARGET,
        "positive_label": POSITIVE,
        "negative_label": NEGATIVE,
        "sensitive_features": ["sex"],
        "sensitive_bins": {},
        "numeric_features": ["age", "hours"],
        "categorical_features": ["job"],
        "excluded_columns": {},
        "columns": {
            "age": {"kind": "numeric", "nullable": False, "min": 18.0, "max": 69.0, "integer": True},
            "hours": {"kind": "numeric", "nullable": True, "min": 10.0, "max": 70.0, "integer": False},
            "job": {"kind": "categorical", "nullable": True, "categories": sorted(JOBS)},
            "sex": {"kind": "categorical", "nullable": False, "categories": ["Female", "Male"]},
        },
    }


# step 02's criteria as its params give them (the unit tests change what they need)
CRITERIA = {
    "primary_metric": "roc_auc",
    "max_quality_loss_vs_baseline": 0.01,
    "min_cost_reduction_vs_baseline": 0.1,
    "max_demographic_parity_difference": 0.15,
    "max_equalized_odds_difference": 0.15,
    "max_batch_latency_ms": 500,
    "psi_alert": 0.25,
    "max_drifted_features": 0,
    "max_staleness_days": 180,
    "confidence": 0.95,
    "decide_on": "interval",
    "fairness_power": 0.8,
}


def synthetic_criteria(sensitive_features: tuple[str, ...] = ("sex",), **changes) -> dict:
    """A ``success_criteria.json`` record: the criteria with ``changes``, and the gates step 02 builds from them."""
    values = {**CRITERIA, **changes}
    return {"criteria": values, "gates": gates.build_gates(values, list(sensitive_features))}


def synthetic_metadata(spec: dict, **overrides) -> dict:
    meta = {
        "model_name": "logistic_regression",
        "version": "1.0.0",
        "schema": spec["columns"],
        "feature_columns": spec["numeric_features"] + spec["categorical_features"],
        "sensitive_features": spec["sensitive_features"],
        "positive_label": spec["positive_label"],
        "negative_label": spec["negative_label"],
        "releasable": True,
        "reasons": [],
    }
    meta.update(overrides)
    return meta


def fit_pipeline(frame: pd.DataFrame, spec: dict) -> Pipeline:
    pipeline = Pipeline(
        [("preprocess", features.build_preprocessor(spec)), ("model", LogisticRegression(max_iter=1000))]
    )
    x = frame[spec["numeric_features"] + spec["categorical_features"]]
    return pipeline.fit(x, (frame[spec["target"]] == spec["positive_label"]).astype(int))


def pytest_sessionstart(session):
    """Stamp the JUnit XML (--junitxml) with the source it tests: `make readiness` refuses results of other code.

    pytest's own LogXML, as ``record_testsuite_property`` uses it; it lives in the main process only, so this also
    works under pytest-xdist, where the fixture would be a no-op in the workers.
    """
    from _pytest.junitxml import xml_key

    xml = session.config.stash.get(xml_key, None)
    if xml is not None:
        for name, value in readiness.test_run_properties(Path(__file__).resolve().parents[1]).items():
            xml.add_global_property(name, value)


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tiny data: native thread pools (OpenMP, BLAS) cost more than they give, above all on a busy machine."""
    with threadpool_limits(limits=1):
        yield


MACHINERY_TESTS = Path(__file__).parent / "runtime"


@pytest.fixture(autouse=True)
def prediction_log_url(request, tmp_path, monkeypatch) -> str | None:
    """Every test's own prediction log: `predict` and `serve` in a test never write to the project's.

    Not for the machinery's tests (tests/runtime, which log nothing): a warm-kernel server is
    keyed by its environment, so a variable that differs from test to test would start a new
    server for each and no step would ever be forked from a running one.
    """
    from {{ cookiecutter.package_name }} import prediction_log

    if MACHINERY_TESTS in request.path.parents:
        yield None
        return
    url = f"sqlite:///{tmp_path / 'predictions.sqlite'}"
    monkeypatch.setenv(prediction_log.URL_ENV, url)
    yield url
    prediction_log.close_engines()


@pytest.fixture(scope="session")
def make_frame():
    """:func:`synthetic_frame` itself, for tests that need other sizes, seeds or effects."""
    return synthetic_frame


@pytest.fixture(scope="session")
def make_metadata():
    """:func:`synthetic_metadata` itself, for tests that need other metadata."""
    return synthetic_metadata


@pytest.fixture(scope="session")
def make_pipeline():
    """:func:`fit_pipeline` itself: a freshly fitted model on given data."""
    return fit_pipeline


@pytest.fixture(scope="session")
def make_spec():
    """:func:`synthetic_spec` itself (a new dict per call)."""
    return synthetic_spec


@pytest.fixture
def outside_project(tmp_path) -> Path:
    """A directory that is in no project (skips if pytest's temporary directory is inside one)."""
    if any((d / "params.yaml").is_file() and (d / "dvc.yaml").is_file() for d in tmp_path.parents):
        pytest.skip(f"the temporary directory {tmp_path} is inside a project")
    return tmp_path


@pytest.fixture
def frame() -> pd.DataFrame:
    """A fresh copy per test: tests may modify it."""
    return synthetic_frame()


@pytest.fixture
def spec() -> dict:
    return synthetic_spec()


@pytest.fixture
def metadata(spec) -> dict:
    return synthetic_metadata(spec)


@pytest.fixture(scope="session")
def pipeline() -> Pipeline:
    """A fitted logistic regression with the project's preprocessor (do not refit it)."""
    return fit_pipeline(synthetic_frame(), synthetic_spec())


@pytest.fixture(scope="session")
def bundle_path(tmp_path_factory, pipeline) -> Path:
    """A releasable deployable artifact (skops file) around :func:`pipeline`."""
    spec = synthetic_spec()
    bundle = scoring.make_bundle(pipeline, 0.5, synthetic_metadata(spec))
    return artifacts.save(bundle, tmp_path_factory.mktemp("models") / "model.skops")


@pytest.fixture
def records(frame) -> pd.DataFrame:
    """Scoring input: the features and sensitive features, no target."""
    return frame.drop(columns=TARGET).head(20)
