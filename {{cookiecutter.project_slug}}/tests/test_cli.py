import json
import os
import subprocess

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }} import artifacts, cli, scoring


@pytest.fixture
def input_csv(tmp_path, records):
    path = tmp_path / "in.csv"
    records.to_csv(path, index=False)
    return path


def expected_scores(bundle_path, frame):
    return scoring.score(scoring.load_bundle(bundle_path), frame)


def test_predict_writes_csv(tmp_path, input_csv, bundle_path, capsys):
    output = tmp_path / "out" / "scores.csv"
    assert cli.main(["predict", str(input_csv), str(output), "--model", str(bundle_path)]) == 0
    written = pd.read_csv(output)
    assert list(written.columns) == ["score", "decision", "label"]
    expected = expected_scores(bundle_path, pd.read_csv(input_csv))
    assert len(written) == len(expected)
    np.testing.assert_allclose(written["score"], expected["score"], rtol=1e-12)
    assert written["decision"].tolist() == expected["decision"].tolist()
    assert written["label"].tolist() == expected["label"].tolist()
    assert f"scored {len(expected)} records" in capsys.readouterr().out


def test_predict_reads_and_writes_parquet(tmp_path, records, bundle_path):
    source = tmp_path / "in.parquet"
    records.to_parquet(source, index=False)
    output = tmp_path / "out.parquet"
    assert cli.main(["predict", str(source), str(output), "--model", str(bundle_path), "--keep-columns"]) == 0
    written = pd.read_parquet(output)
    assert list(written.columns) == list(records.columns) + ["score", "decision", "label"]
    np.testing.assert_allclose(written["score"], expected_scores(bundle_path, records)["score"])
    assert written["job"].tolist() == records["job"].tolist()


def test_predict_bad_input_exits_1_with_an_error_message(tmp_path, records, bundle_path, capsys):
    source = tmp_path / "in.csv"
    records.drop(columns="hours").to_csv(source, index=False)
    output = tmp_path / "out.csv"
    assert cli.main(["predict", str(source), str(output), "--model", str(bundle_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "'hours'" in err
    assert not output.exists()


def test_predict_unseen_category_and_extra_column_flags(tmp_path, records, bundle_path, capsys):
    source = tmp_path / "in.csv"
    records.assign(job="astronaut", zodiac="leo").to_csv(source, index=False)
    output = tmp_path / "out.csv"
    assert cli.main(["predict", str(source), str(output), "--model", str(bundle_path)]) == 1
    assert "error: unexpected column 'zodiac'" in capsys.readouterr().err
    assert cli.main(["predict", str(source), str(output), "--model", str(bundle_path), "--allow-extra"]) == 1
    assert "error: column 'job': unseen category 'astronaut'" in capsys.readouterr().err
    assert (
        cli.main(["predict", str(source), str(output), "--model", str(bundle_path), "--allow-extra", "--allow-unseen"])
        == 0
    )
    assert len(pd.read_csv(output)) == len(records)


@pytest.mark.parametrize(
    "name, payload, message",
    [
        ("absent.csv", None, "INPUT: file"),
        ("empty.csv", b"", "is empty"),
        ("bad.parquet", b"nope", "cannot read"),
        ("records.json", b"[]", "neither CSV"),
    ],
)
def test_predict_unreadable_input_exits_1(tmp_path, bundle_path, capsys, name, payload, message):
    source = tmp_path / name
    if payload is not None:
        source.write_bytes(payload)
    assert cli.main(["predict", str(source), str(tmp_path / "out.csv"), "--model", str(bundle_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_predict_bad_model_exits_1(tmp_path, input_csv, pipeline, capsys):
    out = str(tmp_path / "out.csv")
    assert cli.main(["predict", str(input_csv), out, "--model", str(tmp_path / "absent.skops")]) == 1
    assert capsys.readouterr().err.startswith("error: model file")
    garbage = tmp_path / "garbage.skops"
    garbage.write_bytes(b"not a model")
    assert cli.main(["predict", str(input_csv), out, "--model", str(garbage)]) == 1
    assert "error: " in capsys.readouterr().err
    bare = artifacts.save(pipeline, tmp_path / "bare.skops")
    assert cli.main(["predict", str(input_csv), out, "--model", str(bare)]) == 1
    assert "not a deployable artifact" in capsys.readouterr().err


def test_predict_refuses_an_unknown_output_format(tmp_path, input_csv, bundle_path, capsys):
    assert cli.main(["predict", str(input_csv), str(tmp_path / "out.xlsx"), "--model", str(bundle_path)]) == 2
    assert "error: OUTPUT" in capsys.readouterr().err


def test_predict_outside_a_project_without_model(outside_project, input_csv, monkeypatch):
    monkeypatch.chdir(outside_project)
    with pytest.raises(SystemExit, match="error: not inside the project"):
        cli.main(["predict", str(input_csv), str(outside_project / "out.csv")])


def test_serve_defaults_bind_to_loopback():
    args = cli.build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.max_records) == ("127.0.0.1", 8000, 10_000)


def test_rollback_outside_a_project_exits_1(outside_project, monkeypatch, capsys):
    monkeypatch.chdir(outside_project)
    assert cli.main(["rollback"]) == 1
    assert capsys.readouterr().err.startswith("error: ")


def test_a_command_is_required(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([])
    assert exit_.value.code == 2


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project directory whose step 03 declared an id column, a dropped column and the target."""
    (tmp_path / "params.yaml").write_text("data: {}\n")
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    spec = tmp_path / "reports" / "03_data_selection" / "dataset_spec.json"
    spec.parent.mkdir(parents=True)
    spec.write_text(
        json.dumps(
            {"target": "income", "excluded_columns": {"person_id": "data.id_columns", "weight": "data.drop_columns"}}
        )
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_predict_takes_a_file_shaped_like_the_training_data(project, frame, bundle_path, capsys):
    """Target, id and dropped columns are the contract's: accepted without --allow-extra, and the
    ids lead the output so scores join back; a column no one declared is still refused."""
    training = frame.head(20).assign(person_id=range(100, 120), weight=1.0)
    training.to_csv(project / "train_like.csv", index=False)
    output = project / "scores.csv"
    assert cli.main(["predict", "train_like.csv", str(output), "--model", str(bundle_path)]) == 0, (
        capsys.readouterr().err
    )
    written = pd.read_csv(output)
    assert list(written.columns) == ["person_id", "score", "decision", "label"]
    assert written["person_id"].tolist() == list(range(100, 120))
    np.testing.assert_allclose(
        written["score"],
        expected_scores(bundle_path, training.drop(columns=["income", "person_id", "weight"]))["score"],
    )
    training.assign(zodiac="leo").to_csv(project / "odd.csv", index=False)
    assert cli.main(["predict", "odd.csv", str(output), "--model", str(bundle_path)]) == 1
    assert "error: unexpected column 'zodiac'" in capsys.readouterr().err


def test_predict_explain_adds_each_features_contribution(tmp_path, input_csv, frame, bundle_path):
    reference = tmp_path / "train.parquet"
    frame.to_parquet(reference, index=False)
    output = tmp_path / "explained.csv"
    argv = [
        "predict",
        str(input_csv),
        str(output),
        "--model",
        str(bundle_path),
        "--explain",
        "--reference",
        str(reference),
    ]
    assert cli.main(argv) == 0
    written = pd.read_csv(output)
    parts = ["contribution_age", "contribution_hours", "contribution_job"]
    assert list(written.columns) == ["score", "decision", "label", *parts, "base_score"]
    np.testing.assert_allclose(written["base_score"] + written[parts].sum(axis=1), written["score"], atol=1e-9)


def test_predict_explain_outside_a_project_needs_reference_data(
    outside_project, input_csv, bundle_path, capsys, monkeypatch
):
    monkeypatch.chdir(outside_project)
    argv = ["predict", str(input_csv), str(outside_project / "o.csv"), "--model", str(bundle_path), "--explain"]
    assert cli.main(argv) == 1
    assert "--reference" in capsys.readouterr().err


def test_serve_beyond_loopback_without_a_token_refuses_to_start(bundle_path, capsys, monkeypatch):
    from {{ cookiecutter.package_name }}.service import TOKEN_ENV

    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert cli.main(["serve", "--host", "0.0.0.0", "--model", str(bundle_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: refusing to serve on '0.0.0.0' without a token") and TOKEN_ENV in err


def test_serve_runs_a_worker_per_core_by_default():
    args = cli.build_parser().parse_args(["serve"])
    assert args.workers == (os.cpu_count() or 1)
    assert (args.max_bytes, args.timeout) == (10 * 1024 * 1024, 30.0)


def test_serve_refuses_before_it_imports_the_heavy_libraries(monkeypatch):
    """The refusal beyond loopback is immediate: nothing as slow as pandas is imported first."""
    import subprocess
    import sys

    from {{ cookiecutter.package_name }}.access import TOKEN_ENV

    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    code = (
        "import sys; from {{ cookiecutter.package_name }} import cli; "
        "code = cli.main(['serve', '--host', '0.0.0.0']); "
        "print(code, sorted(m for m in ('pandas', 'sklearn', 'fastapi') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.split() == ["2", "[]"]
    assert "without a token" in result.stderr


def test_predict_scores_a_parquet_dataset_in_parts(tmp_path, records, bundle_path, capsys):
    """A directory (or glob) of Parquet files: one part per partition, the scores of the files scored alone."""
    source = tmp_path / "batches"
    source.mkdir()
    half = len(records) // 2
    records.iloc[:half].to_parquet(source / "a.parquet", index=False)
    records.iloc[half:].to_parquet(source / "b.parquet", index=False)
    output = tmp_path / "scored"
    assert cli.main(["predict", str(source / "*.parquet"), str(output), "--model", str(bundle_path), "--no-log"]) == 0
    assert sorted(p.name for p in output.iterdir()) == ["part-00000.parquet", "part-00001.parquet"]
    written = pd.read_parquet(output)
    expected = expected_scores(bundle_path, records.reset_index(drop=True))
    np.testing.assert_array_equal(written["score"], expected["score"])
    assert written["decision"].tolist() == expected["decision"].tolist()
    assert f"scored {len(records):,} records in 2 partitions" in capsys.readouterr().out
    # a dataset is scored into a new directory, never into a file or over earlier parts
    assert cli.main(["predict", str(source), str(output), "--model", str(bundle_path), "--no-log"]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert cli.main(["predict", str(source), str(tmp_path / "x.csv"), "--model", str(bundle_path), "--no-log"]) == 2
    assert "must be a directory" in capsys.readouterr().err


def test_predict_a_dataset_names_the_partition_of_a_bad_record(tmp_path, records, bundle_path, capsys):
    source = tmp_path / "batches"
    source.mkdir()
    records.to_parquet(source / "a.parquet", index=False)
    records.assign(job="astronaut").to_parquet(source / "b.parquet", index=False)
    assert cli.main(["predict", str(source), str(tmp_path / "out"), "--model", str(bundle_path), "--no-log"]) == 1
    assert "error: partition 1: column 'job': unseen category 'astronaut'" in capsys.readouterr().err
    records.drop(columns="hours").to_parquet(source / "b.parquet", index=False)  # a file unlike the first
    assert cli.main(["predict", str(source), str(tmp_path / "out2"), "--model", str(bundle_path), "--no-log"]) == 1
    assert "error: INPUT: cannot score" in capsys.readouterr().err


STAGED = "1.0.0+retrained.0123abcd"


@pytest.fixture
def staged_project(project):
    """The project fixture with a champion (1.0.0, step 08's release) and a challenger staged by step 10."""
    from {{ cookiecutter.package_name }}.registry import Registry

    if not subprocess.run(["git", "rev-parse"], cwd=project, capture_output=True).returncode:
        pytest.skip(f"the temporary directory {project} is inside a git repository")
    registry = Registry(project)
    for name in ("v1", "v2"):
        (project / f"{name}.skops").write_bytes(f"model {name}".encode())
    registry.sync_release(project / "v1.skops", "1.0.0")
    registry.stage(project / "v2.skops", STAGED, "retrained", report="reports/10_retraining/retraining_decision.json")
    return registry


def test_approve_installs_the_staged_version_and_says_what_it_did(staged_project, capsys):
    assert cli.main(["approve", STAGED, "--by", "Ada Lovelace", "--note", "gates and canary pass"]) == 0
    out, err = capsys.readouterr()
    assert "approved by Ada Lovelace at " in out and f"version {STAGED} is now in service" in out
    assert "report read: reports/10_retraining/retraining_decision.json" in out
    assert "previous champion 1.0.0 kept in models/registry/history/" in out
    assert err.startswith("warning: not committed: ") and "not in a git repository" in err
    champion = staged_project.state()["champion"]
    assert champion["version"] == STAGED and champion["approval"]["note"] == "gates and canary pass"
    assert staged_project.champion.read_bytes() == b"model v2"
    assert cli.main(["rollback", "--by", "Grace", "--note", "complaints"]) == 0
    assert "champion is now version 1.0.0" in capsys.readouterr().out
    assert staged_project.state()["events"][-1]["by"] == "Grace"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["approve", "2.0.0", "--by", "Ada"], f"error: version '2.0.0' is not the staged one: '{STAGED}' is staged"),
        (["approve", STAGED, "--by", " "], "error: an approval needs the approver's name: --by NAME"),
    ],
)
def test_approve_refuses_with_exit_1_and_changes_nothing(staged_project, capsys, argv, message):
    before = staged_project.log.read_bytes()
    assert cli.main(argv) == 1
    assert capsys.readouterr().err.startswith(message)
    assert staged_project.log.read_bytes() == before and staged_project.champion.read_bytes() == b"model v1"
    assert not staged_project.ledger.exists()


def test_approve_needs_a_staged_version_and_a_name(project, capsys):
    assert cli.main(["approve", STAGED, "--by", "Ada"]) == 1
    assert capsys.readouterr().err.startswith("error: nothing is staged for approval")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["approve", STAGED])  # --by is required
    assert exit_.value.code == 2 and "--by" in capsys.readouterr().err


def test_approve_outside_a_project_exits_1(outside_project, monkeypatch, capsys):
    monkeypatch.chdir(outside_project)
    assert cli.main(["approve", STAGED, "--by", "Ada"]) == 1
    assert capsys.readouterr().err.startswith("error: no project root")


def test_approve_help_names_the_report_to_read(capsys):
    with pytest.raises(SystemExit):
        cli.main(["approve", "--help"])
    text = capsys.readouterr().out
    assert "retraining_decision.json" in text and "--by" in text and "--note" in text
