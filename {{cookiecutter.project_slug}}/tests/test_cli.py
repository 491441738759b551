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
