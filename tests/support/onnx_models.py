"""A one-node ONNX model (ReLU over 3 counts) for tests that need a real model file, not a trained one."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper


def tiny_onnx(path: Path) -> str:
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [None, 3])
    y = helper.make_tensor_value_info("counts", TensorProto.FLOAT, [None, 3])
    graph = helper.make_graph([helper.make_node("Relu", ["images"], ["counts"])], "counter", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    return str(path)
