"""One calling convention for every format: a predictor maps normalised NCHW float32 images to counts.

Gates, behavioural tests and bundle verification all compare formats, so they must call them the same
way; a predictor also holds its runtime session, so running many small batches does not reload it.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    import onnxruntime as ort

Predictor = Callable[[np.ndarray], np.ndarray]


class RuntimeUnavailable(RuntimeError):
    """This machine cannot run the format (e.g. CoreML prediction off macOS); the message says why."""


def _batched(run: Callable[[np.ndarray], np.ndarray], batch_size: int) -> Predictor:
    def predict(inputs: np.ndarray) -> np.ndarray:
        inputs = np.ascontiguousarray(inputs, dtype=np.float32)
        outputs = [run(inputs[i : i + batch_size]) for i in range(0, len(inputs), batch_size)]
        return np.concatenate(outputs).astype(np.float32) if outputs else np.zeros((0, 0), np.float32)

    return predict


def torch_predictor(model: torch.nn.Module, batch_size: int = 256) -> Predictor:
    """The reference every format is compared with."""
    module = model.eval().cpu()

    @torch.no_grad()
    def run(batch: np.ndarray) -> np.ndarray:
        return module(torch.from_numpy(batch)).float().numpy()

    return _batched(run, batch_size)


def _round_fp16(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.half().float()


def fp16_emulated_predictor(model: torch.nn.Module, batch_size: int = 256) -> Predictor:
    """Our estimate, where CoreML cannot run, of what its fp16 compute does to the counts: weights,
    input and every layer's output rounded through float16, arithmetic in fp32. That misses fp16
    accumulation inside a layer but keeps the storage error, and runs at fp32 speed (CPU torch in
    real half precision was ~10x slower here)."""
    import copy

    module = copy.deepcopy(model).eval().cpu()
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            if tensor.is_floating_point():
                tensor.copy_(_round_fp16(tensor))
    for layer in module.modules():
        if not list(layer.children()):
            layer.register_forward_hook(lambda _layer, _inputs, output: _round_fp16(output))

    @torch.no_grad()
    def run(batch: np.ndarray) -> np.ndarray:
        return _round_fp16(module(_round_fp16(torch.from_numpy(batch)))).numpy()

    return _batched(run, batch_size)


def onnx_session(path: str | Path) -> ort.InferenceSession:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_predictor(path: str | Path, batch_size: int = 256) -> Predictor:
    session = onnx_session(path)
    input_name = session.get_inputs()[0].name
    output_name = session.get_outputs()[0].name
    return _batched(lambda batch: session.run([output_name], {input_name: batch})[0], batch_size)


def coreml_can_predict() -> tuple[bool, str]:
    """CoreML runs models only on macOS (coremltools#2658); elsewhere conversion and spec checks work."""
    if platform.system() != "Darwin":
        return False, f"CoreML prediction is only supported on macOS (this is {platform.system()})"
    return True, ""


def coreml_predictor(path: str | Path, batch_size: int = 64) -> Predictor:
    can, reason = coreml_can_predict()
    if not can:
        raise RuntimeUnavailable(reason)
    import coremltools as ct

    model = ct.models.MLModel(str(path))
    output_name = model.get_spec().description.output[0].name  # counts, or logits for classification
    return _batched(lambda batch: np.asarray(model.predict({"images": batch})[output_name]), batch_size)
