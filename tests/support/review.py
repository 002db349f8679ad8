"""A small review packet drawn from real pizza images, and filling its page in the browser."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow as pa

from doughflow.config import ReviewConfig
from doughflow.data.synthetic.pizza import render_pizza
from doughflow.review.packet import write_packet
from doughflow.review.sampling import select_for_review

LABELS = ["pepperoni", "mushroom", "olive"]


def synthetic_packet(review_dir: Path, n: int = 30, seed: int = 0, ids: list[str] | None = None,
                     groups: list[str] | None = None, **review) -> dict:
    """A packet over ``n`` rendered pizzas with a noisy 'prediction'; returns what the test needs.
    ``ids`` and ``groups`` replace the sample and customer ids (cycled), e.g. with hostile strings."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 4, size=(n, len(LABELS))).astype(np.float32)
    pred = np.clip(true + rng.normal(0, 0.3, size=true.shape), 0, None).astype(np.float32)
    images = np.stack([render_pizza(dict(zip(LABELS, map(int, row))), rng, 64) for row in true])
    ids = [ids[i % len(ids)] + ("" if i < len(ids) else f"#{i}") for i in range(n)] if ids else [f"pz-{i:07d}" for i in range(n)]
    from PIL import Image
    import io

    def png(pixels):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        return buffer.getvalue()

    config = ReviewConfig(**review)
    selected = select_for_review(true, pred, LABELS, config, {"onnx_int8_static": pred + rng.normal(0, 0.05, pred.shape)})
    chosen = [s.index for s in selected]
    originals = pa.table({"sample_id": [ids[i] for i in chosen], "image": [png(images[i]) for i in chosen],
                          "customer_id": [groups[i % len(groups)] if groups else f"cust-{i % 5:05d}" for i in chosen],
                          **{f"count_{label}": pa.array(true[chosen, k].astype(np.int16)) for k, label in enumerate(LABELS)}})
    result = write_packet(review_dir, run_id="pizza-test-run", labels=LABELS, ids=ids, images=images, pred=pred,
                          true=true, selected=selected, originals=originals, scale=2, max_count=20,
                          strategy=config.model_dump(exclude={"gate"}))
    return {"result": result, "ids": ids, "true": true, "pred": pred, "selected": selected}


def fill_in_page(page, decisions: dict[str, tuple[str, dict[str, int], str]], reviewer: str) -> None:
    """Click and type like a reviewer: verdict radio, corrected counts, comment, name."""
    page.fill("#reviewer", reviewer)
    for sample_id, (verdict, corrected, comment) in decisions.items():
        row = page.locator(f'tr.sample[data-id="{sample_id}"]')
        row.locator(f'input[type=radio][value="{verdict}"]').check()
        for label, count in corrected.items():
            row.locator(f'input.corrected[data-label="{label}"]').fill(str(count))
        if comment:
            row.locator("textarea.comment").fill(comment)


def export_from_page(page, target: Path) -> Path:
    with page.expect_download() as download_info:
        page.click("#export")
    download = download_info.value
    download.save_as(target)
    return target


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))
