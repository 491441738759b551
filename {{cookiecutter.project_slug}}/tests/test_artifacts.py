import zipfile

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from {{ cookiecutter.package_name }} import artifacts, features
from {{ cookiecutter.package_name }}.artifacts import UntrustedArtifactError


def not_on_the_trusted_list(x):
    """Any function outside skops' defaults and TRUSTED_TYPES: code that would run on load."""
    return x


class Gadget:
    def __init__(self):
        self.payload = [1, 2, 3]


def test_save_is_byte_identical_across_saves(tmp_path, pipeline):
    first = artifacts.save(pipeline, tmp_path / "a.skops").read_bytes()
    second = artifacts.save(pipeline, tmp_path / "b.skops").read_bytes()
    assert first == second
    assert first[:2] == b"PK"


def test_two_fits_of_the_same_model_save_to_the_same_bytes(tmp_path, make_frame, make_pipeline, spec):
    frame = make_frame(n=300, seed=2)
    a = artifacts.save(make_pipeline(frame, spec), tmp_path / "a.skops")
    b = artifacts.save(make_pipeline(frame, spec), tmp_path / "b.skops")
    assert a.read_bytes() == b.read_bytes()


def test_round_trip_gives_the_same_predictions(tmp_path, pipeline, frame, spec):
    x = frame[spec["numeric_features"] + spec["categorical_features"]]
    loaded = artifacts.load(artifacts.save(pipeline, tmp_path / "m.skops"))
    assert loaded is not pipeline
    np.testing.assert_array_equal(loaded.predict_proba(x), pipeline.predict_proba(x))


def test_round_trip_of_a_tree_ensemble_with_categorical_features(tmp_path, frame, spec):
    pre = features.build_preprocessor(spec, encoding="ordinal")
    model = Pipeline(
        [
            ("preprocess", pre),
            (
                "model",
                HistGradientBoostingClassifier(
                    categorical_features=features.categorical_mask(spec), max_iter=10, random_state=0
                ),
            ),
        ]
    )
    x = frame[spec["numeric_features"] + spec["categorical_features"]]
    model.fit(x, frame["income"] == ">50K")
    path = artifacts.save(model, tmp_path / "hgb.skops")
    np.testing.assert_array_equal(artifacts.load(path).predict_proba(x), model.predict_proba(x))
    assert artifacts.save(model, tmp_path / "again.skops").read_bytes() == path.read_bytes()


@pytest.mark.parametrize(
    "obj, expected",
    [
        (FunctionTransformer(not_on_the_trusted_list), "not_on_the_trusted_list"),
        ({"model": Gadget()}, "Gadget"),
    ],
)
def test_load_refuses_untrusted_types(tmp_path, obj, expected):
    path = artifacts.save(obj, tmp_path / "evil.skops")
    assert any(expected in t for t in artifacts.untrusted_types(path))
    with pytest.raises(UntrustedArtifactError, match=f"not trusted: .*{expected}"):
        artifacts.load(path)


def test_trusted_types_are_reported(tmp_path, pipeline):
    path = artifacts.save(pipeline, tmp_path / "m.skops")
    assert artifacts.untrusted_types(path) == []
    assert "{{ cookiecutter.package_name }}.features.as_text" in artifacts.trusted_types_in(path)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        artifacts.load(tmp_path / "absent.skops")
    garbage = tmp_path / "garbage.skops"
    garbage.write_bytes(b"this is not a zip archive")
    with pytest.raises(ValueError, match="not a skops model file"):
        artifacts.load(garbage)


def test_describe(tmp_path, pipeline):
    path = artifacts.save(pipeline, tmp_path / "m.skops")
    info = artifacts.describe(path)
    assert info["bytes"] == path.stat().st_size
    assert info["members"] == len(zipfile.ZipFile(path).namelist()) and info["members"] >= 2
    assert info["protocol"] is not None


def test_archive_members_are_canonical(tmp_path, pipeline):
    path = artifacts.save(pipeline, tmp_path / "m.skops")
    archive = zipfile.ZipFile(path)
    names = archive.namelist()
    assert names == sorted(names) and "schema.json" in names
    assert all(info.date_time == (1980, 1, 1, 0, 0, 0) for info in archive.infolist())
    arrays = [n for n in names if n.endswith(".npy")]
    assert arrays == [f"{i:06d}.npy" for i in range(len(arrays))]
