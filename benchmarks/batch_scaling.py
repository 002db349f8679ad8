"""Learning-rate scaling rules at a larger global batch: the pizza counter at its reference batch and
at ``--times`` x that batch with ``train.scaling.rule`` none, sqrt and linear, same samples seen.

The larger batch is made by gradient accumulation on one process: per sample, that is the same
arithmetic as more processes (the global batch and the schedule in samples are what the rules read),
so the comparison runs on any machine. Also prints the measured per-sample memory of a training step
and the micro-batch ``micro_batch_size: auto`` picks for a budget.

    python benchmarks/batch_scaling.py                 # CPU: ~2,400 images, 6 epochs, 4 runs
    python benchmarks/batch_scaling.py --times 8 --epochs 10

Needs only torch, deepspeed, pyarrow, numpy and pillow (no Prefect). Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from doughflow.config import TrainConfig  # noqa: E402
from doughflow.preprocessing import Preprocessing  # noqa: E402
from doughflow.training.footprint import StepProbe  # noqa: E402
from doughflow.training.inference import make_model  # noqa: E402
from doughflow.training.job import TrainJob  # noqa: E402
from doughflow.training.loop import run_training  # noqa: E402
from doughflow.training.streaming import ShardRef  # noqa: E402
from tests.support.sample_data import pizza_columns, pizza_shards  # noqa: E402


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2400, help="drawn pizzas: two thirds train, one third validation")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch", type=int, default=64, help="reference global batch (micro batch)")
    parser.add_argument("--times", type=int, default=4, help="the larger global batch is this many reference batches")
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--warmup-samples", type=int, default=3200)
    parser.add_argument("--budget-gb", type=float, default=4.0, help="memory budget for the auto micro-batch line")
    return parser.parse_args(argv)


def train(args: argparse.Namespace, shards: list[ShardRef], out: Path, accumulation: int, rule: str) -> dict:
    cfg = TrainConfig.model_validate(
        {
            "epochs": args.epochs,
            "micro_batch_size": args.batch,
            "gradient_accumulation_steps": accumulation,
            "learning_rate": args.learning_rate,
            "warmup_samples": args.warmup_samples,
            "checkpoint_every_steps": 0,
            "scaling": {"rule": rule, "reference_global_batch": args.batch},
            "num_threads": torch.get_num_threads(),
            "loader": {"num_workers": 1, "piece_rows": 100},
        }
    )
    started = time.perf_counter()
    result = run_training(
        TrainJob(shards[:2], shards[2:], pizza_columns(), 5, cfg, Preprocessing(64), str(out), "bench")
    )
    assert result is not None, "a single-process run returns its result"
    last = result.history["epoch"][-1]
    return {
        "global_batch": result.recipe["global_batch_size"],
        "rule": rule,
        "effective_lr": result.recipe["effective_learning_rate"],
        "updates": result.global_steps,
        "final_train_loss": last["train_loss"],
        "val_mae": last["val_mae"],
        "val_exact_count_accuracy": last["val_exact_count_accuracy"],
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="batch_scaling_"))
    shards = pizza_shards(work / "data", args.images, rows_per_shard=args.images // 3)
    probe = StepProbe(make_model(TrainConfig(), 5), Preprocessing(64), 5, "count", torch.device("cpu"), "fp32")
    footprint = probe.footprint()
    auto = footprint.largest_batch(0.9 * args.budget_gb * 10**9)
    runs = [train(args, shards, work / "reference", 1, "none")]
    runs += [train(args, shards, work / rule, args.times, rule) for rule in ("none", "sqrt", "linear")]
    print(
        f"step memory (density_cnn width 24, 64 px, fp32): {footprint.per_sample_bytes / 2**20:.3f} MiB a sample, "
        f"{(footprint.static_bytes + footprint.fixed_bytes) / 2**20:.2f} MiB fixed; auto micro-batch for "
        f"{args.budget_gb} GB less 10%: {auto}"
    )
    print(
        f"{'global batch':>12} {'rule':>6} {'eff. lr':>8} {'updates':>7} {'train loss':>10} {'val MAE':>8} "
        f"{'val exact':>9} {'s':>6}"
    )
    for run in runs:
        print(
            f"{run['global_batch']:>12} {run['rule']:>6} {run['effective_lr']:>8.4g} {run['updates']:>7} "
            f"{run['final_train_loss']:>10.4f} {run['val_mae']:>8.4f} {run['val_exact_count_accuracy']:>9.3f} "
            f"{run['seconds']:>6}"
        )
    summary = {
        "runs": runs,
        "per_sample_bytes": footprint.per_sample_bytes,
        "auto_micro_batch": auto,
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
