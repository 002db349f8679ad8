"""The example grid: every thumbnail lands whole, in its cell, in whole-pixel squares."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from doughflow.reporting.plots import GRID_CELL, _as_rgb, _fit, example_grid


@given(
    rows=st.integers(1, 400),
    cols=st.integers(1, 400),
    height=st.integers(8, 300),
    width=st.integers(8, 300),
)
@settings(max_examples=200, deadline=None)
def test_fit_scales_by_the_largest_whole_factor_that_fits(rows, cols, height, width):
    image = np.arange(rows * cols * 3, dtype=np.uint32).reshape(rows, cols, 3).astype(np.uint8)
    fitted = _fit(image, height, width)
    assert fitted.shape[0] <= height and fitted.shape[1] <= width and fitted.shape[2] == 3
    if rows <= height and cols <= width:  # up: each source pixel becomes a k x k square, nothing dropped
        k = fitted.shape[0] // rows
        assert np.array_equal(fitted, np.repeat(np.repeat(image, k, axis=0), k, axis=1))
        assert (k + 1) * rows > height or (k + 1) * cols > width  # and k + 1 would not fit
    else:  # down: every step-th pixel, the smallest step that fits
        step = next(s for s in range(1, 401) if -(-rows // s) <= height and -(-cols // s) <= width)
        assert np.array_equal(fitted, image[::step, ::step])


def test_grey_alpha_and_float_images_become_rgb():
    grey = np.array([[0, 255]], np.uint8)
    assert _as_rgb(grey).tolist() == [[[0, 0, 0], [255, 255, 255]]]
    rgba = np.zeros((1, 1, 4), np.uint8)
    rgba[..., 1] = 7
    assert _as_rgb(rgba).tolist() == [[[0, 7, 0]]]
    floats = np.array([[[0.0, 0.5, 1.0]]])
    assert _as_rgb(floats).tolist() == [[[0, 127, 255]]]
    assert _as_rgb(np.array([[[np.nan, -1.0, 2.0]]])).tolist() == [[[0, 0, 255]]]


def test_each_thumbnail_is_drawn_in_its_cell(tmp_path):
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (10, 120, 140), (250, 200, 0)]
    images = [np.full((64, 64, 3), colour, np.uint8) for colour in colours]
    path = example_grid(images, [f"id-{i}\npred 1\ntrue 1" for i in range(5)], tmp_path / "grid.png", columns=3)
    drawn = np.asarray(Image.open(path).convert("RGB"))
    cell_w, cell_h = GRID_CELL
    assert drawn.shape == (2 * cell_h, 3 * cell_w, 3)
    for index, colour in enumerate(colours):
        row, column = divmod(index, 3)
        cell = drawn[row * cell_h : (row + 1) * cell_h, column * cell_w : (column + 1) * cell_w]
        # the thumbnail: a solid square of its colour, 64 px scaled by a whole factor (3 here)
        assert (np.all(cell == colour, axis=2)).sum() == 192 * 192
    empty = drawn[cell_h:, 2 * cell_w :]
    assert np.all(empty == 255)  # the sixth cell has no image and no caption
