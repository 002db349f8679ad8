"""The shapes example set: deterministic, an ordinary image folder, and readable by the fetch stage."""

from __future__ import annotations

import csv

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from doughflow.data.sources.fetch import FetchOptions, fetch_source
from doughflow.data.synthetic.shapes import CLASSES, OTHER, draw_shape, generate_shapes, main


@settings(max_examples=20, deadline=None)
@given(st.sampled_from(CLASSES + (OTHER,)), st.integers(0, 2**31 - 1), st.integers(0, 10**6))
def test_same_seed_and_index_give_the_same_pixels(name, seed, index):
    image = draw_shape(name, seed, index, 32)
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    assert np.array_equal(image, draw_shape(name, seed, index, 32))


def test_classes_differ_only_in_the_shape():
    """Same (seed, index): same colours and place, so only the outline tells the class."""
    images = [draw_shape(name, 3, 5, 48, noise_sd=0.0).astype(int) for name in CLASSES]
    assert all(np.abs(a - b).sum() > 0 for i, a in enumerate(images) for b in images[i + 1 :])
    backgrounds = {tuple(image[0, 0]) for image in images}
    assert len(backgrounds) == 1


def test_generated_folder_is_deterministic_and_labelled(tmp_path):
    first = generate_shapes(tmp_path / "a", 12, seed=4, size=32, other=2)
    second = generate_shapes(tmp_path / "b", 12, seed=4, size=32, other=2)
    files = sorted(p.relative_to(first) for p in first.rglob("*.png"))
    assert len(files) == 14 and files == sorted(p.relative_to(second) for p in second.rglob("*.png"))
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)
    with open(first / "labels.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["label"] for r in rows[:4]] == list(CLASSES) and [r["label"] for r in rows[-2:]] == [OTHER, OTHER]
    assert all(r["path"].split("/")[0] == r["label"] and r["artist"].startswith("artist-") for r in rows)
    third = generate_shapes(tmp_path / "c", 12, seed=5, size=32)
    assert (third / files[0]).read_bytes() != (first / files[0]).read_bytes()


def test_fetch_reads_the_folder_with_its_labels(tmp_path):
    source = generate_shapes(tmp_path / "shapes", 8, size=32)
    manifest = fetch_source(str(source), tmp_path / "raw", options=FetchOptions(format="images"))
    assert manifest.rows == 8
    assert {"sample_id", "image", "folder", "label", "artist"} <= set(manifest.columns)


def test_cli_writes_the_dataset(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "s"), "--n", "4", "--other", "1", "--size", "32"]) == 0
    assert "wrote 5 images" in capsys.readouterr().out
    assert len(list((tmp_path / "s").rglob("*.png"))) == 5
