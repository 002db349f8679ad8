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


def synthetic_packet(
    review_dir: Path,
    n: int = 30,
    seed: int = 0,
    ids: list[str] | None = None,
    groups: list[str] | None = None,
    **review,
) -> dict:
    """A packet over ``n`` rendered pizzas with a noisy 'prediction'; returns what the test needs.
    ``ids`` and ``groups`` replace the sample and customer ids (cycled), e.g. with hostile strings."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 4, size=(n, len(LABELS))).astype(np.float32)
    pred = np.clip(true + rng.normal(0, 0.3, size=true.shape), 0, None).astype(np.float32)
    images = np.stack([render_pizza(dict(zip(LABELS, map(int, row))), rng, 64) for row in true])
    ids = (
        [ids[i % len(ids)] + ("" if i < len(ids) else f"#{i}") for i in range(n)]
        if ids
        else [f"pz-{i:07d}" for i in range(n)]
    )
    import io

    from PIL import Image

    def png(pixels):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        return buffer.getvalue()

    config = ReviewConfig(**review)
    selected = select_for_review(
        true, pred, LABELS, config, {"onnx_int8_static": pred + rng.normal(0, 0.05, pred.shape)}
    )
    chosen = [s.index for s in selected]
    originals = pa.table(
        {
            "sample_id": [ids[i] for i in chosen],
            "image": [png(images[i]) for i in chosen],
            "customer_id": [groups[i % len(groups)] if groups else f"cust-{i % 5:05d}" for i in chosen],
            **{f"count_{label}": pa.array(true[chosen, k].astype(np.int16)) for k, label in enumerate(LABELS)},
        }
    )
    result = write_packet(
        review_dir,
        run_id="pizza-test-run",
        labels=LABELS,
        ids=ids,
        images=images,
        pred=pred,
        true=true,
        selected=selected,
        originals=originals,
        scale=2,
        max_count=20,
        strategy=config.model_dump(exclude={"gate"}),
    )
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


def packet_run(
    artifacts: Path,
    run_id: str = "pizza-test-run",
    n: int = 30,
    ids: list[str] | None = None,
    groups: list[str] | None = None,
    min_reviewed: int = 4,
    **review,
) -> Path:
    """artifacts/<run>/{bundle,review} and a registry row as a training run leaves them (a bundle with
    config and card, a packet over rendered pizzas), without training: for flows.review tests."""
    from doughflow.config import ExperimentConfig, dump_config
    from doughflow.packaging.bundle import build_bundle

    run = Path(artifacts) / run_id
    config = ExperimentConfig(
        labels=LABELS,
        artifacts_dir=str(artifacts),
        review={"gate": {"min_correct_share": 0.75, "min_reviewed": min_reviewed}},
    )
    build_bundle(
        run / "bundle",
        files={},
        documents={
            "config.yaml": dump_config(config),
            "model_card.md": "# Model card\n\n**Release status: RELEASED**\n",
        },
        run_id=run_id,
        data_fingerprint="f" * 64,
        config_hash=config.config_hash(),
    )
    synthetic_packet(run / "review", n=n, ids=ids, groups=groups, **review)
    from doughflow.registry import RunRecord, record_run

    record_run(
        Path(artifacts) / "registry.sqlite",
        RunRecord(
            run_id=run_id,
            created_at="2026-11-27T10:00:00Z",
            experiment="pizza",
            status="released",
            config_hash="h",
            data_fingerprint="f" * 64,
            git_commit="c",
            bundle=str(run / "bundle"),
            total_seconds=1.0,
        ),
    )
    return run
