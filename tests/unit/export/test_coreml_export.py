"""CoreML conversion: fp32/fp16 packages reload with the contract; a wrong package is caught."""

from __future__ import annotations

import json

import pytest

from doughflow.export.coreml_export import export_coreml, inspect_coreml
from doughflow.preprocessing import Preprocessing
from tests.support.release import LABELS, fixed_model


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    out = tmp_path_factory.mktemp("coreml")
    model = fixed_model()
    pre = Preprocessing(64).to_json()
    return {
        p: export_coreml(
            model, out / f"m_{p}.mlpackage", image_size=64, labels=LABELS, preprocessing=pre, precision=p, max_batch=32
        )
        for p in ("fp32", "fp16")
    }


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_package_reloads_with_names_shapes_types_and_metadata(packages, precision):
    assert inspect_coreml(packages[precision], image_size=64, labels=LABELS, precision=precision) == []


def test_flexible_batch_and_metadata_content(packages):
    import coremltools as ct

    spec = ct.models.MLModel(str(packages["fp32"]), skip_model_load=True).get_spec()
    images = spec.description.input[0].type.multiArrayType
    assert (images.shapeRange.sizeRanges[0].lowerBound, images.shapeRange.sizeRanges[0].upperBound) == (1, 32)
    metadata = dict(spec.description.metadata.userDefined)
    assert json.loads(metadata["labels"]) == LABELS
    assert json.loads(metadata["preprocessing"])["mean"] == [0.5, 0.5, 0.5]


def test_mismatches_are_reported(packages, tmp_path):
    problems = inspect_coreml(packages["fp16"], image_size=32, labels=LABELS[::-1], precision="fp32")
    text = " ".join(problems)
    assert "shape" in text and "labels" in text and "precision" in text
    assert "not an .mlpackage" in inspect_coreml(tmp_path, image_size=64, labels=LABELS, precision="fp32")[0]


def test_unknown_precision_is_refused(tmp_path):
    with pytest.raises(ValueError, match="precision"):
        export_coreml(
            fixed_model(), tmp_path / "x.mlpackage", image_size=64, labels=LABELS, preprocessing={}, precision="int4"
        )
