"""Figures for the report: a person reads a loss curve and a grid of mistakes faster than numbers."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np


def pyplot() -> ModuleType:
    """matplotlib's pyplot on its file-only Agg backend, imported when a figure is first drawn: a rerun
    whose stages are all cached draws nothing, and the import took 0.27 s of its 11 s
    (``python -X importtime -c "import flows.train"``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_curve(
    history: dict, path: Path, loss_name: str = "MSE", learning_rates: tuple[list[int], list[float]] | None = None
) -> Path:
    """Training loss, validation loss (or MAE), validation accuracy and learning rate, each on its own
    axes: one shared axis put a loss of 12 beside an accuracy of 0.16 and flattened both. Steps are
    optimizer updates; ``learning_rates`` is (steps, rates) of the schedule the run followed."""
    steps = np.asarray(history.get("step_loss", []), dtype=float)
    epochs = history.get("epoch", [])
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.4))
    train_ax, val_ax, acc_ax, lr_ax = axes.flat
    if len(steps):
        train_ax.plot(np.arange(1, len(steps) + 1), steps, alpha=0.35, label="per step")
        window = max(1, len(steps) // 30)
        if window > 1:
            smooth = np.convolve(steps, np.ones(window) / window, mode="valid")
            train_ax.plot(np.arange(window, len(steps) + 1), smooth, label=f"mean of {window} steps")
        if np.all(steps > 0):
            train_ax.set_yscale("log")
        train_ax.legend()
    train_ax.set(title=f"training loss ({loss_name})", xlabel="step", ylabel=loss_name)
    x = [e["epoch"] for e in epochs]
    validation = [("val_loss", f"validation loss ({loss_name})"), ("val_mae", "validation MAE (counts)")]
    accuracy = [
        ("val_accuracy", "validation accuracy"),
        ("val_exact_count_accuracy", "validation exact-count accuracy"),
    ]
    for ax, choices in ((val_ax, validation), (acc_ax, accuracy)):
        key, title = next(((k, t) for k, t in choices if epochs and k in epochs[0]), (None, choices[0][1]))
        if key is not None:
            ax.plot(x, [e.get(key, float("nan")) for e in epochs], marker="o", label="validation")
            if key == "val_loss":
                ax.plot(x, [e["train_loss"] for e in epochs], marker="o", alpha=0.6, label="training (epoch mean)")
                ax.legend()
        else:
            ax.text(0.5, 0.5, "no validation split", ha="center", va="center", transform=ax.transAxes)
        ax.set(title=title, xlabel="epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
    if learning_rates and learning_rates[0]:
        lr_ax.plot(learning_rates[0], learning_rates[1])
    lr_ax.set(title="learning rate", xlabel="step", ylabel="learning rate")
    lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# Caption lines are cut to this many characters: an id can be any length, and matplotlib lays out (and a
# person can read) only a few dozen characters under a 64-pixel thumbnail.
CAPTION_CHARS = 40


def caption_text(caption: str) -> str:
    """A caption as drawn: each line cut to CAPTION_CHARS, control characters shown as U+FFFD."""
    lines = ["".join(c if c.isprintable() else "\ufffd" for c in line) for line in caption.split("\n")]
    return "\n".join(line if len(line) <= CAPTION_CHARS else line[: CAPTION_CHARS - 1] + "\u2026" for line in lines)


def example_grid(images: list[np.ndarray], captions: list[str], path: Path, columns: int = 6) -> Path:
    """Images with a caption each (predicted vs true counts). Captions hold ids from the data, so they are
    drawn as plain text (``parse_math=False``: a "$" in an id is not mathtext, which a malformed
    expression turns into an exception at save time) and cut to length."""
    rows = max(1, -(-len(images) // columns))
    plt = pyplot()
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 2.3, rows * 2.9), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, caption in zip(axes.flat, images, captions):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(caption_text(caption), fontsize=6.5, family="monospace", loc="left", parse_math=False)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
