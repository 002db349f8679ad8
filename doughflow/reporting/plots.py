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


# Grid cells in pixels (at GRID_DPI): the thumbnail is scaled by a whole factor to fill the cell under
# its caption, nearest-neighbour, so each source pixel stays a visible square.
GRID_CELL = (230, 290)
GRID_DPI = 100
CAPTION_POINTS = 6.5


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """An image as H x W x 3 uint8: grey is repeated, alpha is dropped, floats are read as 0..1."""
    array = np.asarray(image)
    if array.dtype.kind == "f":
        array = np.clip(np.nan_to_num(array) * 255, 0, 255).astype(np.uint8)
    elif array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return array[:, :, :3]


def _fit(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` scaled by a whole factor (up or down, nearest-neighbour) to fit height x width."""
    rows, cols = image.shape[:2]
    up = min(height // rows, width // cols)
    if up >= 1:
        return np.repeat(np.repeat(image, up, axis=0), up, axis=1)
    step = max(-(-rows // height), -(-cols // width))
    return image[::step, ::step]


def example_grid(images: list[np.ndarray], captions: list[str], path: Path, columns: int = 6) -> Path:
    """Images with a caption each (predicted vs true counts). Captions hold ids from the data, so they are
    drawn as plain text (``parse_math=False``: a "$" in an id is not mathtext, which a malformed
    expression turns into an exception at save time) and cut to length.

    The thumbnails are pasted into one pixel canvas and drawn with a single ``figimage``, the captions
    placed at fixed offsets. An Axes per image with ``tight_layout`` spent most of its time laying out
    every Axes' ticks and titles: a grid of 24 pizzas took 1.0-1.2 s that way and 0.33-0.6 s this way
    (four of each, interleaved in one process, on the 2-core dev machine), and a run's report draws four
    such grids. What remains is drawing the caption glyphs and encoding the PNG."""
    rows = max(1, -(-len(images) // columns))
    cell_w, cell_h = GRID_CELL
    shown = [caption_text(caption) for caption in captions]
    line_px = CAPTION_POINTS * 1.25 * GRID_DPI / 72
    caption_px = int(max((text.count("\n") + 1 for text in shown), default=1) * line_px) + 8
    pad = 6
    canvas = np.full((rows * cell_h, columns * cell_w, 3), 255, np.uint8)
    plt = pyplot()
    fig = plt.figure(figsize=(columns * cell_w / GRID_DPI, rows * cell_h / GRID_DPI), dpi=GRID_DPI)
    for index, (image, caption) in enumerate(zip(images, shown)):
        row, column = divmod(index, columns)
        thumb = _fit(_as_rgb(image), cell_h - caption_px - 2 * pad, cell_w - 2 * pad)
        top = row * cell_h + caption_px + pad
        left = column * cell_w + (cell_w - thumb.shape[1]) // 2
        canvas[top : top + thumb.shape[0], left : left + thumb.shape[1]] = thumb
        fig.text(
            left / canvas.shape[1],
            1 - (top - 3) / canvas.shape[0],
            caption,
            fontsize=CAPTION_POINTS,
            family="monospace",
            ha="left",
            va="bottom",
            parse_math=False,
        )
    fig.figimage(canvas, 0, 0, origin="upper")
    fig.savefig(path, dpi=GRID_DPI)
    plt.close(fig)
    return path
