"""Figures for the report: a person reads a loss curve and a grid of mistakes faster than numbers."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def loss_curve(history: dict, path: Path, loss_name: str = "MSE") -> Path:
    steps = np.asarray(history.get("step_loss", []), dtype=float)
    epochs = history.get("epoch", [])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    if len(steps):
        axes[0].plot(np.arange(1, len(steps) + 1), steps, alpha=0.35, label="step")
        window = max(1, len(steps) // 30)
        smooth = np.convolve(steps, np.ones(window) / window, mode="valid")
        axes[0].plot(np.arange(window, len(steps) + 1), smooth, label=f"mean of {window}")
        axes[0].set_yscale("log")
    axes[0].set(title=f"training loss ({loss_name})", xlabel="step")
    axes[0].legend()
    if epochs:
        x = [e["epoch"] for e in epochs]
        axes[1].plot(x, [e["train_loss"] for e in epochs], marker="o", label="train loss")
        if "val_mae" in epochs[0]:
            axes[1].plot(x, [e["val_mae"] for e in epochs], marker="o", label="val MAE")
            axes[1].plot(x, [e["val_exact_count_accuracy"] for e in epochs], marker="o", label="val exact-count acc")
        if "val_accuracy" in epochs[0]:
            axes[1].plot(x, [e["val_loss"] for e in epochs], marker="o", label="val loss")
            axes[1].plot(x, [e["val_accuracy"] for e in epochs], marker="o", label="val accuracy")
        axes[1].set(title="per epoch", xlabel="epoch")
        axes[1].legend()
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
