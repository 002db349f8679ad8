"""A small non-pizza image-classification set, drawn offline: circles, squares, triangles and stars.

It is the worked example of "bring your own data" (README): an ordinary image folder with one folder per
class and a ``labels.csv`` (path, label, artist), the layout many real datasets ship in, that the fetch
stage reads without any code of ours. Each image depends on ``(seed, index)`` alone, so every machine
writes the same bytes. Shapes vary in colour, size, position and rotation over a noisy background of
a darker colour, so neither colour nor position gives the class away. ``other`` extra images of a class
outside the label map (ellipses) show validate quarantining rows whose class the config does not know.

``python -m doughflow.data.synthetic.shapes --out data/shapes --n 1500``
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from doughflow.data.imagecodec import encode_png

CLASSES = ("circle", "square", "triangle", "star")
OTHER = "ellipse"  # drawn only for the ``other`` rows: a class the shapes config does not list
SUPERSAMPLE = 2


def _polygon(
    points: list[tuple[float, float]], cx: float, cy: float, r: float, angle: float
) -> list[tuple[float, float]]:
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    return [(cx + r * (x * cos_a - y * sin_a), cy + r * (x * sin_a + y * cos_a)) for x, y in points]


def _outline(name: str) -> list[tuple[float, float]] | None:
    """Unit-radius polygon of a shape (None: an ellipse or circle, drawn as such)."""
    if name == "square":
        return [(-0.75, -0.75), (0.75, -0.75), (0.75, 0.75), (-0.75, 0.75)]
    if name == "triangle":
        return [(math.cos(a), math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    if name == "star":
        return [
            (
                (1.0 if k % 2 == 0 else 0.42) * math.cos(-math.pi / 2 + k * math.pi / 5),
                (1.0 if k % 2 == 0 else 0.42) * math.sin(-math.pi / 2 + k * math.pi / 5),
            )
            for k in range(10)
        ]
    return None


def draw_shape(name: str, seed: int, index: int, size: int = 64, noise_sd: float = 10.0) -> np.ndarray:
    """HxWx3 uint8 image of one ``name`` shape; the same (seed, index) always gives the same pixels."""
    rng = np.random.default_rng([seed, index])
    big = size * SUPERSAMPLE
    # Any hue, but a light shape on a darker ground (like chalk on a board): colour never tells the class,
    # and the contrast is always there to see.
    background = rng.integers(0, 110, size=3)
    colour = rng.integers(140, 256, size=3)
    image = Image.new("RGB", (big, big), tuple(int(c) for c in background))
    draw = ImageDraw.Draw(image)
    r = rng.uniform(0.16, 0.3) * big
    cx, cy = rng.uniform(r, big - r, size=2)
    angle = rng.uniform(0, 2 * math.pi)
    fill = tuple(int(c) for c in colour)
    outline = _outline(name)
    if outline is not None:
        draw.polygon(_polygon(outline, cx, cy, r, angle), fill=fill)
    elif name == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    else:  # ellipse: flattened, rotated
        points = [(math.cos(t), 0.5 * math.sin(t)) for t in np.linspace(0, 2 * math.pi, 48, endpoint=False)]
        draw.polygon(_polygon(points, cx, cy, r, angle), fill=fill)
    pixels = np.asarray(image.resize((size, size), Image.Resampling.LANCZOS), dtype=np.int16)
    noise = rng.normal(0, noise_sd, size=pixels.shape)
    return np.clip(pixels + noise, 0, 255).astype(np.uint8)


def generate_shapes(
    out_dir: Path,
    n: int,
    *,
    seed: int = 3,
    size: int = 64,
    classes: tuple[str, ...] = CLASSES,
    other: int = 0,
    artists: int = 40,
    noise_sd: float = 10.0,
) -> Path:
    """Write ``n`` images (classes in turn) plus ``other`` ellipses to ``out_dir/<class>/`` and
    ``out_dir/labels.csv`` (path, label, artist). The artist is the group id splits keep together."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    names = [classes[i % len(classes)] for i in range(n)] + [OTHER] * other
    for index, name in enumerate(names):
        path = f"{name}/{name}-{index:05d}.png"
        (out_dir / name).mkdir(exist_ok=True)
        (out_dir / path).write_bytes(encode_png(draw_shape(name, seed, index, size, noise_sd)))
        rows.append((path, name, f"artist-{int(np.random.default_rng([seed, index, 1]).integers(artists)):03d}"))
    with open(out_dir / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "artist"])
        writer.writerows(rows)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/shapes"), help="folder to write (created)")
    parser.add_argument("--n", type=int, default=1500, help="images of the listed classes")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument(
        "--other",
        type=int,
        default=10,
        help=f"extra images of a class outside the label map ({OTHER}); validate quarantines them",
    )
    args = parser.parse_args(argv)
    generate_shapes(args.out, args.n, seed=args.seed, size=args.size, other=args.other)
    print(f"wrote {args.n + args.other} images and labels.csv to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
