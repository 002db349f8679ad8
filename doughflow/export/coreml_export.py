"""CoreML export (.mlpackage ML program, fp32 or fp16, flexible batch) and its spec check.

CoreML predicts only on macOS, so on Linux we prove what we can: the saved package reloads, and its
inputs, outputs, shapes, types and metadata (class labels, preprocessing) are what a consumer expects.
coremltools takes seconds to import and prints version warnings, so it is imported only here, lazily.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16")


def _coremltools() -> ModuleType:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("coremltools").setLevel(logging.ERROR)
        import coremltools as ct
    return ct


def export_coreml(
    model: torch.nn.Module,
    path: Path,
    *,
    image_size: int,
    labels: Sequence[str | int],
    preprocessing: dict,
    precision: str = "fp32",
    max_batch: int = 256,
    deployment_target: str = "iOS16",
) -> Path:
    """Trace the model and convert it to an ML program taking ``images[batch, 3, H, W]`` (normalised as
    ``preprocessing`` says) and returning ``counts[batch, len(labels)]``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    ct = _coremltools()
    output_name = preprocessing.get("output_name", "counts")
    model = model.eval().cpu()
    example = torch.zeros(1, 3, image_size, image_size)
    with torch.no_grad():
        traced = torch.jit.trace(model, example)
    shape = ct.Shape(shape=(ct.RangeDim(lower_bound=1, upper_bound=max_batch, default=1), 3, image_size, image_size))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converted = ct.convert(
            traced,
            inputs=[ct.TensorType(name="images", shape=shape, dtype=np.float32)],
            outputs=[ct.TensorType(name=output_name, dtype=np.float32)],
            convert_to="mlprogram",
            compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
            minimum_deployment_target=getattr(ct.target, deployment_target),
        )
    if output_name == "counts":
        converted.short_description = (
            f"Counts of {', '.join(map(str, labels))} on a {image_size}x{image_size} pizza photo ({precision})."
        )
        meaning = "expected count per label, in labels order"
    else:
        converted.short_description = (
            f"Classifies a {image_size}x{image_size} image as one of {', '.join(map(str, labels))} ({precision})."
        )
        meaning = "one logit per label, in labels order (softmax: probabilities, argmax: the class)"
    converted.input_description["images"] = (
        f"float32 [batch, 3, {image_size}, {image_size}] RGB, {preprocessing.get('formula', 'normalised')}"
    )
    converted.output_description[output_name] = f"float32 [batch, {len(labels)}]: {meaning}"
    converted.user_defined_metadata["labels"] = json.dumps(labels)
    converted.user_defined_metadata["preprocessing"] = json.dumps(preprocessing, sort_keys=True)
    converted.user_defined_metadata["precision"] = precision
    path.parent.mkdir(parents=True, exist_ok=True)
    converted.save(str(path))
    return path


def inspect_coreml(
    path: Path, *, image_size: int, labels: Sequence[str | int], precision: str, output_name: str = "counts"
) -> list[str]:
    """Reload the package's spec and list every way it differs from the contract; empty means valid."""
    ct = _coremltools()
    path = Path(path)
    if not (path / "Manifest.json").exists():
        return [f"{path}: not an .mlpackage (no Manifest.json)"]
    try:
        spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    except Exception as error:  # noqa: BLE001 - any load failure is a finding, reported with its text
        return [f"{path}: cannot be loaded ({type(error).__name__}: {error})"]
    problems = []
    description = spec.description
    inputs = {item.name: item for item in description.input}
    outputs = {item.name: item for item in description.output}
    if list(inputs) != ["images"]:
        problems.append(f"inputs are {list(inputs)}, expected ['images']")
    if list(outputs) != [output_name]:
        problems.append(f"outputs are {list(outputs)}, expected [{output_name!r}]")
    float32 = ct.proto.FeatureTypes_pb2.ArrayFeatureType.FLOAT32
    if "images" in inputs:
        array = inputs["images"].type.multiArrayType
        if array.dataType != float32:
            problems.append(f"input images has data type {array.dataType}, expected FLOAT32")
        if list(array.shape)[1:] != [3, image_size, image_size]:
            problems.append(
                f"input images has shape {list(array.shape)}, expected [batch, 3, {image_size}, {image_size}]"
            )
        ranges = [(r.lowerBound, r.upperBound) for r in array.shapeRange.sizeRanges]
        if not ranges or ranges[0][0] != 1 or not (ranges[0][1] == -1 or ranges[0][1] > 1):
            problems.append(f"input images batch is not flexible: ranges {ranges}")
    if output_name in outputs and outputs[output_name].type.multiArrayType.dataType != float32:
        problems.append(f"output {output_name} is not FLOAT32")
    metadata = dict(description.metadata.userDefined)
    try:
        if json.loads(metadata.get("labels", "null")) != list(labels):
            problems.append(f"metadata labels {metadata.get('labels')} != {labels}")
    except json.JSONDecodeError:
        problems.append(f"metadata labels is not JSON: {metadata.get('labels')!r}")
    try:
        pre = json.loads(metadata.get("preprocessing", "null"))
        if not isinstance(pre, dict) or pre.get("image_size") != [image_size, image_size]:
            problems.append(f"metadata preprocessing missing or for another image size: {pre}")
    except json.JSONDecodeError:
        problems.append("metadata preprocessing is not JSON")
    if metadata.get("precision") != precision:
        problems.append(f"metadata precision {metadata.get('precision')!r} != {precision!r}")
    if not spec.WhichOneof("Type") == "mlProgram":
        problems.append(f"model type is {spec.WhichOneof('Type')}, expected mlProgram")
    return problems
