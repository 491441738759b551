"""Each step's parameters as one checked object. Adapt freely: add a field when you add a parameter.

A stage's parameters are what dvc.yaml declares for it under ``params:`` (its own
``params.yaml`` section, plus the keys it borrows, such as step 10's ``modeling.cv_folds``).
``run_step`` injects them into the notebook's ``parameters`` cell; the notebook then builds
the stage's object from that cell, once::

    cfg = config.Modeling.from_cell(globals())

and passes it whole to the package's functions. A value of the wrong kind stops the step with
one line naming the key: ``ConfigError: modeling.cv_folds: Input should be greater than or equal
to 2 (got 1)``. The data contract's *meaning* (is the target a column, is the label one of its
values) is checked against the data by :mod:`.data`; here only the kinds of the values are.

The classes are ``STAGE_CONFIGS[stage]``; a test checks that each one's fields are exactly the
parameters its notebook declares.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from .data import as_list


class ConfigError(ValueError):
    """A parameter of params.yaml has a value the step cannot use; the message names the key."""


Names = Annotated[list[str], BeforeValidator(as_list)]  # one name, a list of names, or empty
Text = Annotated[str, BeforeValidator(lambda value: "" if value is None else str(value))]  # a column name or a path
Fraction = Annotated[float, Field(ge=0, le=1)]
Positive = Annotated[float, Field(gt=0)]
Count = Annotated[int, Field(ge=1)]
Seed = Annotated[int, Field(ge=0)]


class StageConfig(BaseModel):
    """The parameters of one stage; ``SECTIONS`` maps each field to the params.yaml section it comes from."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    SECTION: ClassVar[str]
    BORROWED: ClassVar[dict[str, str]] = {}  # field -> the other section that gives it

    @classmethod
    def key(cls, field: str) -> str:
        """``section.field``: where a parameter is set in params.yaml."""
        return f"{cls.BORROWED.get(field, cls.SECTION)}.{field}"

    @classmethod
    def from_cell(cls, namespace: Mapping[str, Any]) -> StageConfig:
        """The object from a notebook's parameters (its ``globals()``); raises ConfigError naming the key."""
        missing = [name for name in cls.model_fields if name not in namespace]
        if missing:
            raise ConfigError(f"{cls.key(missing[0])}: not set (the notebook's parameters cell must define it)")
        return cls.checked({name: namespace[name] for name in cls.model_fields})

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> StageConfig:
        """The object from a loaded params.yaml: its section (defaults where it has none), with the
        fields it borrows from other sections; raises ConfigError naming the key."""
        values = dict(params.get(cls.SECTION) or {})
        for field, section in cls.BORROWED.items():
            if field in (params.get(section) or {}):
                values[field] = params[section][field]
        return cls.checked(values)

    @classmethod
    def checked(cls, values: Mapping[str, Any]) -> StageConfig:
        try:
            return cls(**values)
        except ValidationError as exc:
            first = exc.errors()[0]
            name = str(first["loc"][0]) if first["loc"] else ""
            known = name in cls.model_fields
            where = cls.key(name) if known else f"{cls.SECTION}.{name}" if name else cls.SECTION
            got = f" (got {first['input']!r})" if known else ""
            raise ConfigError(f"{where}: {first['msg']}{got}") from None


# ------------------------------------------------------------------ pieces several stages share


class DataContract(StageConfig):
    """The four keys every user sets to bring their own data (``data:`` in params.yaml)."""

    BORROWED: ClassVar[dict[str, str]] = dict.fromkeys(
        ("path", "target", "positive_label", "sensitive_features"), "data"
    )
    path: Text
    target: Text
    positive_label: str | int | float | bool
    sensitive_features: Names


class Search(StageConfig):
    """How models are tuned (``modeling:``); step 10's challenger is tuned the same way."""

    SECTION: ClassVar[str] = "modeling"

    search_space: dict[str, dict[str, list[Any]]]
    cv_folds: Annotated[int, Field(ge=2)]
    search_iterations: Count
    search_max_rows: Annotated[int, Field(ge=2)] | None = None
    fit_max_rows: Annotated[int, Field(ge=100)] | None = None
    seed: Seed


class Mitigation(StageConfig):
    """How fairness mitigations are fitted (step 08, and step 10 for its challenger)."""

    SECTION: ClassVar[str] = "fairness_assessment"

    mitigation_max_rows: Annotated[int, Field(ge=100)] | None = None
    min_group_size: Count
    seed: Seed


# ------------------------------------------------------------------ the ten stages


class BusinessCase(DataContract):
    SECTION: ClassVar[str] = "business_case"
    problem: str
    decision: str
    decision_maker: str
    stakeholders: Names
    positive_outcome: str
    cost_false_positive: Positive
    cost_false_negative: Positive
    baseline_process: str
    baseline_true_positive_rate: Fraction
    baseline_false_positive_rate: Fraction


class SuccessCriteria(StageConfig):
    SECTION: ClassVar[str] = "success_criteria"
    BORROWED: ClassVar[dict[str, str]] = {"sensitive_features": "data"}
    sensitive_features: Names
    primary_metric: Literal["roc_auc", "average_precision", "accuracy", "f1", "precision", "recall"]
    max_quality_loss_vs_baseline: Fraction
    min_cost_reduction_vs_baseline: Annotated[float, Field(le=1)]
    min_primary_metric: Fraction | None = None
    min_cost_reduction_vs_process: Annotated[float, Field(le=1)] | None = None
    max_plausible_roc_auc: Annotated[float, Field(gt=0.5, le=1)] | None = None
    max_demographic_parity_difference: Fraction | None = None
    max_equalized_odds_difference: Fraction | None = None
    max_batch_latency_ms: Positive
    psi_alert: Positive
    max_drifted_features: Annotated[int, Field(ge=0)]
    max_staleness_days: Positive
    confidence: Annotated[float, Field(ge=0.5, lt=1)] = 0.95
    decide_on: Literal["interval", "point"] = "interval"
    fairness_power: Annotated[float, Field(ge=0.5, lt=1)] = 0.8
    block_unassessed: bool = False


class DataSelection(DataContract):
    SECTION: ClassVar[str] = "data_selection"
    BORROWED: ClassVar[dict[str, str]] = dict.fromkeys(
        (*DataContract.BORROWED, "id_columns", "drop_columns", "categorical_columns", "keep_columns", "production_dir"),
        "data",
    )
    id_columns: Names = []
    drop_columns: Names = []
    categorical_columns: Names = []
    keep_columns: Names = []
    production_dir: str = "data/production"
    dataset_source: str
    dataset_license: str
    leakage_auc: Annotated[float, Field(gt=0.5, le=1)]
    leakage_error_share: Annotated[float, Field(ge=0, le=1)] = 0.33
    missing_odds_ratio: Annotated[float, Field(gt=1)] = 10.0
    rare_level_share: Annotated[float, Field(gt=0, le=1)] = 0.25
    max_plausible_auc: Annotated[float, Field(gt=0.5, le=1)] = 0.97
    screen_rows: Annotated[int, Field(ge=100)] = 10_000
    identifier_unique_ratio: Annotated[float, Field(gt=0, le=1)]
    max_categories: Annotated[int, Field(ge=2)]
    max_rows: Annotated[int, Field(ge=100)] = 1_000_000
    seed: Seed

    @property
    def contract(self) -> dict[str, Any]:
        """The ``data:`` section's column roles, as :func:`.data.check_contract` and the data spec take them."""
        return self.model_dump(include=set(self.BORROWED) - {"production_dir"})


class DataBiasPlan(StageConfig):
    SECTION: ClassVar[str] = "data_bias_plan"
    min_group_size: Count
    remediation: Literal["auto", "none", "reweighing", "resampling"]
    max_cost_increase: Annotated[float, Field(ge=0)] = 0.1
    proxy_auc_alert: Annotated[float, Field(gt=0.5, le=1)]
    max_rows: Annotated[int, Field(ge=100)]
    seed: Seed


class DataPipeline(StageConfig):
    SECTION: ClassVar[str] = "data_pipeline"
    validation_fraction: Annotated[float, Field(gt=0, lt=1)]
    test_fraction: Annotated[float, Field(gt=0, lt=1)]
    max_rows: Annotated[int, Field(ge=100)] = 1_000_000
    seed: Seed

    @model_validator(mode="after")
    def _room_for_training(self) -> DataPipeline:
        if self.validation_fraction + self.test_fraction >= 0.9:
            raise ValueError("validation_fraction + test_fraction must leave at least 10% of the rows for training")
        return self


class Modeling(Search):
    SECTION: ClassVar[str] = "modeling"


class Deployment(StageConfig):
    SECTION: ClassVar[str] = "deployment"
    latency_requests: Count
    batch_size: Count
    seed: Seed


class FairnessAssessment(Mitigation):
    SECTION: ClassVar[str] = "fairness_assessment"
    mitigation: Literal["auto", "none", "threshold_optimizer", "exponentiated_gradient"]


class Monitoring(StageConfig):
    SECTION: ClassVar[str] = "monitoring"
    BORROWED: ClassVar[dict[str, str]] = {"production_dir": "data"}
    production_dir: str
    simulation_source: str
    batch_size: Annotated[int, Field(ge=100)]
    drift_shift_batch: Annotated[int, Field(ge=0)]
    drift_shift_feature: str
    drift_shift_scale: Positive
    group_mix_batch: Annotated[int, Field(ge=0)]
    label_shift_batch: Annotated[int, Field(ge=0)]
    psi_warning: Positive
    # drift alerts: at most this share of them expected false (Benjamini-Hochberg over features and windows)
    drift_fdr: Annotated[float, Field(gt=0, lt=1)] = 0.05
    # quality and fairness are judged on a window when this share of each decision's rows has its outcome
    min_label_completeness: Annotated[float, Field(gt=0, le=1)] = 0.8
    window: Literal["day", "week"] | Annotated[int, Field(ge=100)] = "day"  # a window of the prediction log
    windows: Count = 8  # the latest windows of the log that are monitored
    sustained_breaches: Count = 2  # retraining is recommended when this many of ...
    breach_windows: Count = 3  # ... the latest windows (the last one among them) breach a gate
    # the inputs' reference: a sample of the training split
    reference_max_rows: Annotated[int, Field(ge=100)] = 1_000_000
    seed: Seed

    @model_validator(mode="after")
    def _breaches_fit_the_windows(self) -> Monitoring:
        if self.sustained_breaches > self.breach_windows:
            raise ValueError(
                f"monitoring.sustained_breaches ({self.sustained_breaches}) cannot exceed "
                f"monitoring.breach_windows ({self.breach_windows}): k breaches of the last n windows need k <= n"
            )
        return self


class Retraining(Search, Mitigation):
    SECTION: ClassVar[str] = "retraining"
    BORROWED: ClassVar[dict[str, str]] = {
        **dict.fromkeys(
            ("search_space", "cv_folds", "search_iterations", "search_max_rows", "fit_max_rows"), "modeling"
        ),
        "mitigation_max_rows": "fairness_assessment",
    }
    trigger_on_monitoring: bool
    trigger_on_schedule: bool
    force: bool
    min_labelled_rows: Annotated[int, Field(ge=100)] = 10000
    max_regression: Annotated[float, Field(ge=0, le=1)]
    max_cost_increase: Annotated[float, Field(ge=0)] = 0.02
    min_gain: Annotated[float, Field(ge=0, le=1)] = 0.0
    # a challenger that passes the gates is staged, and goes into service on `<package> approve` (registry.py)
    require_approval: bool = True
    challenger_models: Annotated[Names, Field(min_length=1)]
    challenger_overrides: dict[str, dict[str, list[Any]]] = {}

    @property
    def challenger_search(self) -> Search:
        """The search step 06 ran, with the challenger's overrides of its space."""
        space = {**self.search_space, **self.challenger_overrides}
        return Search(**self.model_dump(include=set(Search.model_fields)) | {"search_space": space})


class Serving(StageConfig):
    """The ``serving:`` section: the prediction log of ``serve`` and ``predict`` (not a stage's parameters).

    ``prediction_log``: a SQLite file under the project, or any SQLAlchemy URL; the environment
    variable ``<PACKAGE>_PREDICTION_LOG_URL`` overrides it (credentials belong there, not here).
    ``log_hash_columns`` / ``log_drop_columns``: columns kept out of the logged records.
    """

    SECTION: ClassVar[str] = "serving"
    prediction_log: Text = "sqlite:///data/log/predictions.sqlite"
    log_hash_columns: Names = []
    log_drop_columns: Names = []


MEMORY = re.compile(r"^\s*(auto|0|\d+(\.\d+)?\s*([kmgt]i?)?b?)\s*$", re.IGNORECASE)


class Compute(StageConfig):
    """The ``compute:`` section: where the heavy fits and batch scoring run (not a stage's parameters).

    ``scheduler``: none (in the step's own process, the default), ``local`` (a
    ``distributed.LocalCluster`` of ``workers`` processes that the step starts and stops), a
    scheduler address (``tcp://host:8786``) or a scheduler file (JSON, e.g. dask-jobqueue's or
    ``dask scheduler --scheduler-file``; relative to the project). ``workers``,
    ``threads_per_worker`` and ``memory_limit`` (per worker: ``auto``, ``0`` for none, or a size
    such as ``2GiB``) shape the local cluster only. No stage lists this section in dvc.yaml:
    results do not depend on where they were computed, so a change of scheduler reruns nothing.
    """

    SECTION: ClassVar[str] = "compute"
    scheduler: str | None = None
    workers: Count = 2
    threads_per_worker: Count = 1
    memory_limit: str | int = "auto"

    @field_validator("scheduler", mode="before")
    @classmethod
    def _known_scheduler(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
            return None
        if not isinstance(value, str):
            raise ValueError(
                "must be empty (in process), 'local', an address such as tcp://host:8786, or a scheduler file"
            )
        value = value.strip()
        if value == "local" or "://" in value or value.endswith(".json") or re.fullmatch(r"[\w.-]+:\d+", value):
            return value
        raise ValueError(
            "must be empty (in process), 'local', an address such as tcp://host:8786, or a scheduler file (.json)"
        )

    @field_validator("memory_limit", mode="before")
    @classmethod
    def _a_size(cls, value: Any) -> Any:
        if isinstance(value, bool) or not MEMORY.match(str(value)):
            raise ValueError("must be 'auto', 0 (no limit) or a size such as 400MB or 2GiB")
        return value


STAGE_CONFIGS: dict[str, type[StageConfig]] = {
    cls.SECTION: cls
    for cls in (
        BusinessCase,
        SuccessCriteria,
        DataSelection,
        DataBiasPlan,
        DataPipeline,
        Modeling,
        Deployment,
        FairnessAssessment,
        Monitoring,
        Retraining,
    )
}
