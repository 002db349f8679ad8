"""What one loader worker delivers: read Parquet, shuffle, decode, augment, fill the batch.

A GPU run needs ``num_workers`` x this rate to exceed the model's img/s, with cores to spare for
the training process. The stream runs in this process (num_workers=0, the code a worker runs), so the
CPU time per image is the worker's cost alone. Repeats report the best pass and the median; the
first pass also pays for imports and the page cache.

    python benchmarks/loader_throughput.py --image-size 128 --images 2048 --repeats 5

Prints a table, then one JSON line: {"img_s_per_worker", "cpu_us_per_image", "workers_for", ...}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from doughflow.config import AugmentConfig, LoaderConfig  # noqa: E402
from doughflow.preprocessing import Preprocessing  # noqa: E402
from doughflow.training.streaming import ParquetStream  # noqa: E402
from tests.support.sample_data import pizza_columns, pizza_shards  # noqa: E402


def one_pass(stream: ParquetStream) -> tuple[float, float]:
    wall, cpu, images = time.perf_counter(), time.process_time(), 0
    for batch in stream:
        images += len(batch["ids"])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return images / wall, cpu / images * 1e6


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-augment", action="store_true")
    parser.add_argument(
        "--target-img-s",
        type=float,
        default=16_800.0,
        help="a model's rate to size workers for (default: plain torch ResNet-18 128 px bf16 on an H200)",
    )
    args = parser.parse_args(argv)
    augment = AugmentConfig(rot90=False, hflip=False, vflip=False) if args.no_augment else AugmentConfig()
    with tempfile.TemporaryDirectory() as tmp:
        shards = pizza_shards(Path(tmp), args.images, image_size=args.image_size, rows_per_shard=512, workers=2)
        stream = ParquetStream(
            shards,
            pizza_columns(),
            Preprocessing(args.image_size),
            batch_size=args.batch_size,
            loader=LoaderConfig(num_workers=0, piece_rows=256, shuffle_buffer=1024),
            augment_cfg=augment,
        )
        passes = [one_pass(stream) for _ in range(args.repeats)]
    print(f"{args.images} pizzas, {args.image_size} px, batch {args.batch_size}, augment {not args.no_augment}")
    print(f"{'pass':<6} {'img/s':>10} {'CPU us/img':>12}")
    for index, (rate, cpu_us) in enumerate(passes, 1):
        print(f"{index:<6} {rate:>10.0f} {cpu_us:>12.1f}")
    best = max(rate for rate, _ in passes)
    summary = {
        "img_s_per_worker": round(best, 1),
        "median_img_s": round(statistics.median(rate for rate, _ in passes), 1),
        "cpu_us_per_image": round(min(cpu for _, cpu in passes), 1),
        "workers_for": {"target_img_s": args.target_img_s, "workers": int(-(-args.target_img_s // best))},
        "image_size": args.image_size,
        "augment": not args.no_augment,
    }
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
