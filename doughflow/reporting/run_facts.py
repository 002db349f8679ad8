"""Facts about a run that its metrics do not carry: the machine it trained on, the model it trained, the
learning rate it followed, and how it compares with the experiment's previous run.

A reader comparing two reports asked first "was this on the same hardware?" and "is this the same
network?"; a throughput or a loss means little without them. The previous run comes from the run
registry (the SQLite file every run is recorded in), so the comparison needs no server.
"""

from __future__ import annotations

import os
import platform
from collections import Counter
from pathlib import Path
from typing import Any

from doughflow.config import ExperimentConfig, TrainConfig
from doughflow.registry import RunRecord, previous_run
from doughflow.reporting.numbers import human, human_bytes, human_seconds, percent
from doughflow.reporting.report import table
from doughflow.training.schedule import lr_factor


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what the platform module says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def gpu_names() -> list[str]:
    """Names of the CUDA devices torch sees (empty without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())]


def hardware_line(train: TrainConfig) -> str:
    """Where and how the run trained: this machine (the flow's; multi-node runs name the node count),
    its CPU, cores, memory and GPUs, the processes, device and precision."""
    gpus = gpu_names() if train.device != "cpu" else []
    gpu_text = ", ".join(f"{count} x {name}" for name, count in Counter(gpus).items()) if gpus else "no GPU"
    launcher = train.launcher
    processes = launcher.num_processes * launcher.num_nodes
    nodes = f" on {launcher.num_nodes} nodes" if launcher.num_nodes > 1 else ""
    device = train.device if train.device != "auto" else ("cuda" if gpus else "cpu")
    return (
        f"{cpu_model()}, {os.cpu_count()} logical cores, {human_bytes(memory_bytes())} memory, {gpu_text} "
        f"({platform.system()} {platform.machine()}, Python {platform.python_version()}); "
        f"{processes} training process{'es' if processes > 1 else ''}{nodes} on {device}, {train.precision}"
    )


def model_facts(config: ExperimentConfig, problem: str) -> tuple[str, int]:
    """A one-line description of the trained architecture and its parameter count (built fresh from
    the config: the same factory the trainer called)."""
    from doughflow.training.inference import make_model

    model = make_model(config.train, len(config.labels), problem)
    parameters = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    layers = Counter(type(m).__name__ for m in model.modules() if not list(m.children()))
    layer_text = ", ".join(f"{count} {name}" for name, count in layers.most_common(6))
    spec = config.train.model
    options = ", ".join(f"{k}={v}" for k, v in spec.options.items())
    text = (
        f"`{spec.name}` ({type(model).__name__}), width {spec.width}{', ' + options if options else ''}: "
        f"{human(parameters)} parameters ({human(trainable)} trainable); layers: {layer_text}; input "
        f"{config.data.image_size}x{config.data.image_size} RGB, {len(config.labels)} outputs."
    )
    return text, parameters


def learning_rate_curve(train: TrainConfig, history: dict) -> tuple[list[int], list[float]]:
    """The learning rate at every optimizer update the run made, from the schedule it followed.
    Calibrated on the rate the trainer recorded at the end of each epoch, so a base rate scaled at run
    time (e.g. by the global batch) is drawn as it was used."""
    epochs = history.get("epoch", [])
    if not epochs or not epochs[0].get("global_step"):
        return [], []
    planned = int(epochs[0]["global_step"]) * train.epochs  # every epoch trains the same number of updates
    done = int(epochs[-1]["global_step"])
    factor = lr_factor(train, planned)
    first = epochs[0]
    base = train.learning_rate
    if first.get("lr") and factor(int(first["global_step"])) > 0:
        base = float(first["lr"]) / factor(int(first["global_step"]))
    steps = list(range(done))
    return [step + 1 for step in steps], [base * factor(step) for step in steps]


HEADLINES = {
    "count": [
        ("test_exact_count_accuracy", "test exact-count accuracy", "share"),
        ("test_image_exact_accuracy", "test image exact accuracy", "share"),
        ("test_mae", "test MAE (counts)", "number"),
        ("train_seconds", "training time", "seconds"),
    ],
    "classification": [
        ("test_accuracy", "test accuracy", "share"),
        ("test_macro_f1", "test macro-F1", "number"),
        ("train_seconds", "training time", "seconds"),
    ],
}


def _shown(value: Any, kind: str) -> str:
    return percent(value) if kind == "share" else human_seconds(value) if kind == "seconds" else human(value)


def _delta(now: Any, before: Any, kind: str) -> str:
    if not isinstance(now, (int, float)) or not isinstance(before, (int, float)):
        return "-"
    change = float(now) - float(before)
    sign = "+" if change > 0 else "-" if change < 0 else "±"
    if kind == "share":
        return f"{sign}{human(abs(change) * 100)} points"
    if kind == "seconds":
        return f"{sign}{human_seconds(abs(change))}"
    return f"{sign}{human(abs(change))}"


def previous_run_section(
    registry: str | Path, experiment: str, run_id: str, current: dict[str, Any], problem: str
) -> str:
    """The headline metrics of this run beside the experiment's newest earlier run in the registry, with
    the change; a first run says so."""
    before: RunRecord | None = previous_run(registry, experiment, run_id)
    if before is None:
        return f"No earlier run of experiment **{experiment}** in the run registry (`{registry}`): this is the first."
    rows = [
        [
            title,
            _shown(current.get(key), kind),
            _shown(before.metrics.get(key), kind),
            _delta(current.get(key), before.metrics.get(key), kind),
        ]
        for key, title, kind in HEADLINES["classification" if problem == "classification" else "count"]
    ]
    data = "same data" if before.data_fingerprint == current.get("data_fingerprint") else "other data"
    config = "same config" if before.config_hash == current.get("config_hash") else "config changed"
    return (
        f"Against `{before.run_id}` ({before.created_at}, {before.status}; {data}, {config}):\n\n"
        + table(["metric", "this run", "previous run", "change"], rows)
        + f"\n\n`python -m flows.compare {before.run_id} {run_id}` lists every config difference."
    )
