"""Partitioned data (a directory of Parquet files) answer steps 03-05's questions as a frame in memory does."""

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }} import bias, config, data, features, schema, tables

CONTRACT = {"target": "income", "positive_label": ">50K", "sensitive_features": ["sex"]}
SPLIT = config.DataPipeline(validation_fraction=0.15, test_fraction=0.15, max_rows=1000, seed=7)


@pytest.fixture
def raw(make_frame):
    frame = make_frame(n=1200, seed=5)
    frame.loc[::97, "income"] = None  # unlabelled rows
    return pd.concat([frame, frame.iloc[:40], frame.iloc[500:530]], ignore_index=True)  # duplicated rows


def parts(frame: pd.DataFrame, directory, n: int = 5):
    directory.mkdir()
    edges = np.linspace(0, len(frame), n + 1).astype(int)
    for i in range(n):  # the duplicates sit in other partitions than their originals
        frame.iloc[edges[i] : edges[i + 1]].to_parquet(directory / f"part-{i:03d}.parquet", index=False)
    return tables.read(directory)


@pytest.fixture
def both(raw, tmp_path):
    memory = tables.MemoryTable(raw)
    return memory, parts(raw, tmp_path / "raw")


def labelled_both(both):
    return [table.labelled("income", ">50K") for table in both]


def test_a_directory_is_partitioned_and_a_file_is_not(raw, tmp_path):
    raw.to_parquet(tmp_path / "one.parquet", index=False)
    assert not tables.read(tmp_path / "one.parquet").partitioned
    assert parts(raw, tmp_path / "many").partitioned


def test_the_survey_counts_every_row_the_same(both):
    memory, partitioned = both
    assert partitioned.survey(CONTRACT) == memory.survey(CONTRACT)
    survey = partitioned.survey(CONTRACT)
    assert survey.rows == 1270 and survey.unlabelled == 14 and survey.duplicate_rows >= 70
    assert partitioned.survey(CONTRACT, duplicates=False).duplicate_rows is None


def test_column_stats_schema_and_cells_are_those_of_every_row(both, make_spec):
    memory, partitioned = labelled_both(both)
    columns = ["age", "hours", "job", "sex"]
    pd.testing.assert_frame_equal(partitioned.column_stats(columns), memory.column_stats(columns))
    kinds = {"age": "numeric", "hours": "numeric", "job": "categorical", "sex": "categorical"}
    assert partitioned.column_schema(kinds, 50) == memory.column_schema(kinds, 50)
    assert partitioned.column_schema(kinds, 2)["job"]["categories"] is None  # above max_categories
    spec = make_spec()
    pd.testing.assert_frame_equal(partitioned.cells(spec), memory.cells(spec))
    assert memory.cells(spec)["rows"].sum() == len(memory)


def test_violations_add_up_over_partitions(both, make_spec):
    memory, partitioned = labelled_both(both)
    spec = make_spec()
    spec["columns"]["age"]["max"] = 60.0  # older people now fail the range check
    spec["columns"]["job"]["categories"] = ["clerk", "engineer"]
    checks = schema.build_schema(spec)
    found, expected = partitioned.violations(checks), memory.violations(checks)
    assert set(found["column"]) == {"age", "job"}
    pd.testing.assert_frame_equal(found[["column", "check", "rows"]], expected[["column", "check", "rows"]])
    assert partitioned.violations(schema.build_schema(make_spec())).empty


def by_content(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows as a multiset: sorted by every column, index dropped."""
    return frame.sort_values(list(frame.columns), kind="stable").reset_index(drop=True)


def test_the_partitioned_split_is_stratified_seeded_and_keeps_identical_rows_together(both, make_spec):
    memory, partitioned = labelled_both(both)
    spec = make_spec()
    splits = partitioned.split(spec, SPLIT)
    frames = {name: part.sample(10_000, 0) for name, part in splits.items()}
    whole = pd.concat(frames.values(), ignore_index=True)
    assert len(whole) == len(memory.frame)  # no row dropped (70 of them repeat another)
    counted = features.identical_rows({name: part.row_hashes() for name, part in splits.items()})
    assert counted["repeats"] == memory.frame.duplicated().sum() >= 70 and counted["in_two_splits"] == 0
    for name, share in (("train", 0.7), ("validation", 0.15), ("test", 0.15)):
        assert abs(len(frames[name]) / len(whole) - share) < 0.02, name
        assert abs(frames[name]["income"].mean() - whole["income"].mean()) < 0.03, name
        women = (frames[name]["sex"] == "Female").mean()
        assert abs(women - (whole["sex"] == "Female").mean()) < 0.03, name
    again = partitioned.split(spec, SPLIT)["test"].sample(10_000, 0)
    pd.testing.assert_frame_equal(again, frames["test"])
    other = partitioned.split(spec, SPLIT.model_copy(update={"seed": 8}))["test"].sample(10_000, 0)
    assert not other.equals(frames["test"])


def test_the_split_is_the_same_in_memory_in_4_or_8_files_and_in_any_order(both, make_spec, tmp_path):
    """The split is a function of the rows: not of the files that hold them, nor of their order."""
    memory, _ = labelled_both(both)
    spec = make_spec()
    expected = {name: by_content(part.frame) for name, part in memory.split(spec, SPLIT).items()}
    shuffled = memory.frame.sample(frac=1, random_state=3)
    layouts = {
        "4 files": parts(memory.frame, tmp_path / "four", 4),
        "8 shuffled": parts(shuffled, tmp_path / "eight", 8),
    }
    for layout, table in layouts.items():
        for name, part in table.split(spec, SPLIT).items():
            pd.testing.assert_frame_equal(by_content(part.sample(10_000, 0)), expected[name], obj=f"{layout}: {name}")


def test_splits_written_and_read_back(both, make_spec, tmp_path):
    memory, partitioned = labelled_both(both)
    spec = make_spec()
    lazy = partitioned.split(spec, SPLIT)
    written = partitioned.split(spec, SPLIT, tmp_path / "processed")
    for name, part in written.items():
        path = tmp_path / "processed" / f"{name}.parquet"
        assert path.is_dir() and len(list(path.glob("part-*.parquet"))) == 5
        pd.testing.assert_frame_equal(pd.read_parquet(path), lazy[name].sample(10_000, 0))
        pd.testing.assert_frame_equal(part.sample(10_000, 0), lazy[name].sample(10_000, 0))
    memory.split(spec, SPLIT, tmp_path / "processed")  # a file replaces the directory
    assert (tmp_path / "processed" / "train.parquet").is_file()


def test_a_sample_is_seeded_and_bounded(both):
    _, partitioned = labelled_both(both)
    first, again, other = (partitioned.sample(300, s) for s in (1, 1, 2))
    pd.testing.assert_frame_equal(first, again)
    assert 200 < len(first) < 400 and not first.equals(other)
    assert len(partitioned.sample(10_000, 1)) == len(partitioned)


def test_transform_means_cover_every_row(both, make_spec, make_pipeline):
    memory, partitioned = labelled_both(both)
    spec = make_spec()
    columns = spec["numeric_features"] + spec["categorical_features"]
    pipeline = features.build_preprocessor(spec).fit(memory.frame[columns])
    pd.testing.assert_series_equal(
        partitioned.transform_means(pipeline, columns), memory.transform_means(pipeline, columns), rtol=1e-12
    )


def test_counted_cells_give_the_representation_and_weights_of_the_rows(both, make_spec):
    memory, _ = labelled_both(both)
    spec, frame = make_spec(), memory.frame
    cells = memory.cells(spec)
    groups = data.sensitive_groups(frame, spec)
    pd.testing.assert_frame_equal(
        bias.representation_of_cells(cells, ["sex"], "income", 30),
        bias.representation(groups["sex"], frame["income"], 30),
    )
    pd.testing.assert_frame_equal(
        bias.reweighing_of_cells(cells, spec),
        bias.reweighing_table(data.intersection_labels(groups), frame["income"]),
    )
    assert bias.overall_rate(cells, "income") == frame["income"].mean()


def test_bad_partitioned_data_name_the_key(raw, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DataContractError, match="data.path: directory .* holds no Parquet file"):
        tables.read(tmp_path / "empty")
    partitioned = parts(raw, tmp_path / "raw")
    with pytest.raises(data.DataContractError, match="data.target: column 'salary' is not in the data"):
        partitioned.survey({**CONTRACT, "target": "salary"})
    with pytest.raises(data.DataContractError, match="data.positive_label: 'rich' is not one of the values"):
        partitioned.survey({**CONTRACT, "positive_label": "rich"})
    with pytest.raises(data.DataContractError, match="column 'sex' is entirely empty"):
        parts(raw.assign(sex=None), tmp_path / "no_sex").survey(CONTRACT)
    tiny = parts(raw.iloc[:30].assign(income=">50K"), tmp_path / "tiny", n=2)
    with pytest.raises(data.DataContractError, match="one class only"):
        tiny.survey(CONTRACT)


def test_a_cluster_whose_workers_cannot_see_the_parts_is_named(tmp_path):
    from contextlib import ExitStack

    class Workers:  # distributed.Client.run: the function's result per worker
        def __init__(self, sees: dict[str, bool]):
            self.sees = sees

        def run(self, func, path):
            assert func(path)  # here, the directory exists
            return self.sees

    session = tables._Session(config.Compute(scheduler="tcp://10.0.0.1:8786"), tmp_path, tmp_path, "data.path")
    session._stack = ExitStack()
    session._check_workers_see(Workers({"tcp://10.0.0.2:1": True, "tcp://10.0.0.3:1": True}))
    with pytest.raises(
        config.ConfigError, match=r"compute.scheduler: 1 of the cluster's 2 workers cannot see data.path"
    ):
        session._check_workers_see(Workers({"tcp://10.0.0.2:1": True, "tcp://10.0.0.3:1": False}))
    assert session._stack is None  # the connection is closed
