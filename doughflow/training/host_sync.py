"""Find the calls that make the host wait for an accelerator, on any machine, the CPU included.

A GPU trains at full speed only while the host queues kernels ahead of the device. Three kinds of
call drain that queue: reading a value back (``item``, ``bool``, ``float``, ``tolist``, ``.cpu()``),
building a device tensor from Python data (``torch.tensor(..., device=d)`` is a blocking copy, that is
a stream synchronize), and an explicit device synchronize. On a CPU they cost nothing, so a slowdown
that only shows on a GPU can still be caught here, by recording the calls instead of timing them.

Host-to-device copies of existing CPU tensors (``.to(device)``) are not judged: on a CPU machine the
source and the target are the same device, so nothing tells a pinned, non-blocking copy from a
blocking one.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from doughflow.training.deepspeed_import import import_deepspeed

_READS = {"item", "__bool__", "__float__", "__int__", "__index__", "tolist", "numpy", "cpu"}
_UPLOADS = {"tensor", "as_tensor"}
_OWN_FILE = Path(__file__).resolve()
_TORCH_DIR = Path(torch.__file__).resolve().parent


@dataclass(frozen=True)
class HostSync:
    kind: str  # the call: item, __bool__, tensor(device=...), synchronize, ...
    where: str  # the innermost frame outside torch and this module: "deepspeed/runtime/utils.py:422"

    def __str__(self) -> str:
        return f"{self.kind} at {self.where}"


def _caller() -> str:
    for frame in reversed(traceback.extract_stack()[:-2]):
        path = Path(frame.filename).resolve()
        if path == _OWN_FILE or _TORCH_DIR in path.parents:
            continue
        parts = path.parts
        short = "/".join(parts[-3:]) if len(parts) >= 3 else str(path)
        return f"{short}:{frame.lineno}"
    return "?"


def optimizer_step_counters(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """torch optimizers keep their step counts on the host unless capturable/fused: reading them is free."""
    return [
        state["step"]
        for state in optimizer.state.values()
        if isinstance(state.get("step"), torch.Tensor) and state["step"].device.type == "cpu"
    ]


class HostSyncRecorder(TorchFunctionMode):
    """Records every call that would stall a GPU's queue while the context is open.

    ``device`` is the training device: uploads are judged by whether they target it. Reads of the
    tensors in ``host_tensors`` (say, optimizer step counters, which stay on the host) are ignored.
    The accelerator's ``synchronize`` (DeepSpeed's and torch's) is wrapped for the duration.
    """

    def __init__(self, device: torch.device | str, host_tensors: Iterable[torch.Tensor] = ()) -> None:
        super().__init__()
        self.device = torch.device(device)
        self.host_ids = {id(t) for t in host_tensors}
        self.syncs: list[HostSync] = []
        self._restore: list[tuple[object, object, bool]] = []
        self._in_synchronize = False

    def _targets_device(self, device: torch.device | str | int | None) -> bool:
        if device is None:
            return False
        device = torch.device(device) if not isinstance(device, torch.device) else device
        return device.type == self.device.type

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: tuple[type, ...],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in _READS:
            target = args[0] if args else None
            if not (isinstance(target, torch.Tensor) and id(target) in self.host_ids):
                self.syncs.append(HostSync(name, _caller()))
        elif name in _UPLOADS and self._targets_device(kwargs.get("device")):
            self.syncs.append(HostSync(f"{name}(device={kwargs['device']})", _caller()))
        return func(*args, **kwargs)

    def _wrap_synchronize(self, owner: object) -> None:
        original = getattr(owner, "synchronize", None)
        if original is None:
            return

        def synchronize(*args: object, **kwargs: object) -> object:
            if self._in_synchronize:  # DeepSpeed's CUDA accelerator calls torch.cuda.synchronize: one wait
                return original(*args, **kwargs)
            self.syncs.append(HostSync("synchronize", _caller()))
            self._in_synchronize = True
            try:
                return original(*args, **kwargs)
            finally:
                self._in_synchronize = False

        self._restore.append((owner, original, "synchronize" in vars(owner)))
        setattr(owner, "synchronize", synchronize)  # noqa: B010 - owner is any accelerator object, typed object

    def __enter__(self) -> HostSyncRecorder:
        import_deepspeed()
        from deepspeed.accelerator import get_accelerator

        self._wrap_synchronize(get_accelerator())
        if torch.cuda.is_available():
            self._wrap_synchronize(torch.cuda)
        return super().__enter__()

    def __exit__(self, *exc: object) -> None:
        try:
            return super().__exit__(*exc)
        finally:
            for owner, original, own_attribute in reversed(self._restore):
                if own_attribute:
                    setattr(owner, "synchronize", original)  # noqa: B010 - owner is typed object (any accelerator)
                else:  # the method came from the class: drop the shadowing instance attribute
                    delattr(owner, "synchronize")
            self._restore.clear()
