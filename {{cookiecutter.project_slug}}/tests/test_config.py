"""Each stage's parameters are one checked object whose fields are exactly what its notebook declares."""

import json
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }} import config, project
from {{ cookiecutter.package_name }}.runtime import run_step

ROOT = Path(__file__).resolve().parents[1]
PARAMS = project.load_params(ROOT)


def given(stage: str) -> dict:
    """What run_step injects into the stage's notebook, from params.yaml and dvc.yaml."""
    return run_step.stage_parameters(run_step.load_stage(ROOT, stage), PARAMS)


@pytest.mark.parametrize("stage", project.STEPS)
def test_a_config_per_stage_with_the_fields_its_notebook_declares(stage):
    cls = config.STAGE_CONFIGS[stage]
    notebook = json.loads((ROOT / "notebooks" / f"{project.step_name(stage)}.ipynb").read_text(encoding="utf-8"))
    assert set(cls.model_fields) == set(run_step.declared_parameters(notebook)) == set(given(stage))
    built = cls.from_cell(given(stage))
    for name in cls.model_fields:  # each field says where in params.yaml it is set
        section, _, key = cls.key(name).partition(".")
        assert key in PARAMS[section], cls.key(name)
        assert PARAMS[section][key] == given(stage)[name]
    assert built.model_dump().keys() == cls.model_fields.keys()


@pytest.mark.parametrize(
    ("stage", "change", "words"),
    [
        ("modeling", {"cv_folds": 1}, ["modeling.cv_folds", "greater than or equal to 2", "(got 1)"]),
        ("modeling", {"search_space": ["logistic_regression"]}, ["modeling.search_space", "dictionary"]),
        ("retraining", {"search_iterations": 0}, ["modeling.search_iterations", "(got 0)"]),
        ("retraining", {"mitigation_max_rows": "many"}, ["fairness_assessment.mitigation_max_rows", "'many'"]),
        ("retraining", {"challenger_models": []}, ["retraining.challenger_models", "at least 1"]),
        ("fairness_assessment", {"mitigation": "magic"}, ["fairness_assessment.mitigation", "'magic'"]),
        ("data_bias_plan", {"remediation": "reweight"}, ["data_bias_plan.remediation", "'reweight'"]),
        ("business_case", {"cost_false_negative": 0}, ["business_case.cost_false_negative", "greater than 0"]),
        ("business_case", {"baseline_true_positive_rate": 1.5}, ["business_case.baseline_true_positive_rate"]),
        ("success_criteria", {"primary_metric": "auc"}, ["success_criteria.primary_metric", "'auc'"]),
        ("data_pipeline", {"test_fraction": 0.5, "validation_fraction": 0.45}, ["data_pipeline:", "10%"]),
        ("monitoring", {"batch_size": 10}, ["monitoring.batch_size", "(got 10)"]),
        ("monitoring", {"production_dir": ["a", "b"]}, ["data.production_dir"]),
    ],
)
def test_a_bad_value_stops_with_the_key_named(stage, change, words):
    with pytest.raises(config.ConfigError) as raised:
        config.STAGE_CONFIGS[stage].from_cell({**given(stage), **change})
    for word in words:
        assert word in str(raised.value), (word, str(raised.value))


def test_a_parameter_the_cell_does_not_define_is_named():
    values = given("deployment")
    del values["batch_size"]
    with pytest.raises(config.ConfigError, match=r"deployment\.batch_size: not set"):
        config.Deployment.from_cell(values)


def test_names_may_be_one_name_or_a_list():
    values = given("business_case")
    assert config.BusinessCase.from_cell({**values, "sensitive_features": "sex"}).sensitive_features == ["sex"]
    assert config.BusinessCase.from_cell({**values, "sensitive_features": None}).sensitive_features == []


def test_the_challenger_searches_the_modeling_space_with_its_overrides():
    values = given("retraining")
    plain = config.Retraining.from_cell(values).challenger_search
    assert plain.search_space == PARAMS["modeling"]["search_space"] and plain.cv_folds == PARAMS["modeling"]["cv_folds"]
    override = {"logistic_regression": {"C": [5.0]}}
    search = config.Retraining.from_cell({**values, "challenger_overrides": override}).challenger_search
    assert search.search_space["logistic_regression"] == {"C": [5.0]}
    assert search.search_space.keys() == PARAMS["modeling"]["search_space"].keys()
    assert search.seed == PARAMS["retraining"]["seed"]
