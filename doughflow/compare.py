"""Compare runs: which config fields differ, the hardware each ran on and the recipe that followed
from it (world size, device, global batch, effective learning rate), and the metrics side by side."""

from __future__ import annotations

from pathlib import Path

from doughflow.registry import RunRecord
from doughflow.reporting.report import table


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def config_differences(runs: list[RunRecord]) -> dict[str, list]:
    """Dotted config paths whose values are not the same in every run."""
    flats = [flatten(run.config) for run in runs]
    keys = sorted(set().union(*flats)) if flats else []
    return {
        key: [flat.get(key, "—") for flat in flats]
        for key in keys
        if len({repr(flat.get(key, "—")) for flat in flats}) > 1
    }


def metric_rows(runs: list[RunRecord]) -> dict[str, list]:
    flats = [{k: v for k, v in flatten(run.metrics).items() if isinstance(v, (int, float))} for run in runs]
    keys = sorted(set().union(*flats)) if flats else []
    return {key: [flat.get(key, float("nan")) for flat in flats] for key in keys}


def hardware(run: RunRecord) -> dict:
    """The run's recipe headline; a run recorded before recipes were, from its config (device unknown)."""
    if run.recipe:
        return run.recipe
    train = run.config.get("train", {})
    launcher = train.get("launcher", {})
    world = launcher.get("num_processes", 1) * launcher.get("num_nodes", 1)
    micro, accumulation = train.get("micro_batch_size"), train.get("gradient_accumulation_steps", 1)
    return {
        "world_size": world,
        "device": "—",
        "micro_batch_size": micro,
        "gradient_accumulation_steps": accumulation,
        "global_batch_size": micro * accumulation * world if isinstance(micro, int) else "—",
        "effective_learning_rate": train.get("learning_rate", "—"),
    }


def hardware_rows(runs: list[RunRecord]) -> list[list]:
    """World size, device, global batch (and how it is made up) and effective learning rate per run."""
    recipes = [hardware(run) for run in runs]

    def make_up(recipe: dict) -> str:
        text = f"{recipe.get('micro_batch_size', '—')} x {recipe.get('gradient_accumulation_steps', '—')}"
        method = recipe.get("micro_batch_method", "configured")
        return text if method == "configured" else f"{text} ({method})"

    return [
        ["world size", *[r.get("world_size", "—") for r in recipes]],
        ["device", *[r.get("device", "—") for r in recipes]],
        ["global batch", *[r.get("global_batch_size", "—") for r in recipes]],
        ["micro batch x accumulation", *[make_up(r) for r in recipes]],
        ["effective learning rate", *[r.get("effective_learning_rate", "—") for r in recipes]],
    ]


def comparison_markdown(runs: list[RunRecord]) -> str:
    headers = ["", *[run.run_id for run in runs]]
    meta: list[list[object]] = [
        ["experiment", *[r.experiment for r in runs]],
        ["status", *[r.status for r in runs]],
        ["data fingerprint", *[r.data_fingerprint[:12] for r in runs]],
        ["commit", *[r.git_commit[:10] for r in runs]],
        ["seconds", *[r.total_seconds or float("nan") for r in runs]],
        *hardware_rows(runs),
    ]
    differences = config_differences(runs)
    parts = ["## Runs", table(headers, meta), "## Config differences"]
    parts.append(
        table(headers, [[key, *values] for key, values in differences.items()])
        if differences
        else "All configs are identical."
    )
    parts += ["## Metrics", table(headers, [[key, *values] for key, values in metric_rows(runs).items()])]
    return "\n\n".join(parts) + "\n"


def comparison_plot(runs: list[RunRecord], path: Path, metrics: list[str]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = metric_rows(runs)
    metrics = [m for m in metrics if m in rows] or list(rows)[:4]
    fig, axes = plt.subplots(1, max(1, len(metrics)), figsize=(4 * max(1, len(metrics)), 3.6), squeeze=False)
    labels = [run.run_id[-13:] for run in runs]
    for ax, metric in zip(axes[0], metrics):
        ax.bar(np.arange(len(runs)), rows[metric], color="#c0392b")
        ax.set_xticks(np.arange(len(runs)), labels, rotation=30, ha="right", fontsize=7)
        ax.set_title(metric, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
