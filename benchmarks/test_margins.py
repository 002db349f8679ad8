"""How far the flow tests' learned-metric checks sit from failing, over 20 training seeds.

A test that gates on what a model learned fails on the seed (or the float rounding) that learns a
little less. Each check below is run the way its test runs it, through the same stage functions and
tiny configs (tests/support/configs.py), once per training seed, and the margin is the worst seed's
distance from the test's threshold:

- shapes (tests/flows/test_classification_flow.py): test accuracy against the release bar
  ``evaluate.min_metrics.accuracy``, and the loss falling (final / first < 1);
- pizza (tests/flows/test_train_flow.py): the loss falling on the tiny pizza set;
- tune (tests/flows/test_tune_flow.py): the pruner stops trial 1 because its epoch-1 ``val_mae`` is
  worse than trial 0's; the margin is trial 1's minus trial 0's.

    python benchmarks/test_margins.py --seeds 20        # about 5 minutes on 2 cores

Prints a table and one JSON line; exits non-zero when a check fails for any seed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from doughflow.config import ExperimentConfig, load_config  # noqa: E402
from doughflow.data.synthetic.shapes import generate_shapes  # noqa: E402
from doughflow.runs import RunPaths  # noqa: E402
from doughflow.stages.evaluate import evaluate  # noqa: E402
from doughflow.stages.fetch import fetch  # noqa: E402
from doughflow.stages.split import split  # noqa: E402
from doughflow.stages.subsample import subsample_stage  # noqa: E402
from doughflow.stages.train import train  # noqa: E402
from doughflow.stages.validate import validate  # noqa: E402
from tests.support.configs import (  # noqa: E402
    TINY_OVERRIDES,
    TINY_SHAPES_IMAGES,
    TINY_SHAPES_OVERRIDES,
    TINY_TUNE_OVERRIDES,
)

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20, help="training seeds 0..N-1")
    parser.add_argument("--checks", default="shapes,pizza,tune", help="comma-separated subset")
    parser.add_argument("--work-dir", default=None, help="where data and runs go (default: a temporary folder)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="key.path=value",
        help="an extra override for every check (to try a recipe)",
    )
    return parser.parse_args(argv)


def prepared(config: ExperimentConfig, paths: RunPaths):  # noqa: ANN201 - a SplitResult
    """The data stages, once: every seed trains on the same splits, as every run of the test does."""
    raw = fetch(config, paths)
    validated = validate(config, paths, raw)
    return split(config, paths, subsample_stage(config, paths, validated.manifest).manifest)


def shapes_check(work: Path, seeds: int, extra: list[str]) -> dict:
    source = generate_shapes(work / "shapes-data", TINY_SHAPES_IMAGES, size=32, other=6)
    base = [*TINY_SHAPES_OVERRIDES, f"data.source.url={source}", f"artifacts_dir={work / 'shapes'}", *extra]
    config = load_config(ROOT / "configs" / "shapes.yaml", base)
    splits = prepared(config, RunPaths(work / "shapes", "data"))
    bar = config.evaluate.min_metrics["accuracy"]
    rows = []
    for seed in range(seeds):
        seeded = load_config(ROOT / "configs" / "shapes.yaml", [*base, f"train.seed={seed}"])
        paths = RunPaths(work / "shapes", f"seed-{seed}")
        trained = train(seeded, paths, splits)
        test = evaluate(seeded, paths, splits, trained).metrics["test"]
        rows.append(
            {
                "seed": seed,
                "accuracy": test["accuracy"],
                "macro_f1": test["macro_f1"],
                "loss_ratio": trained.final_loss / trained.first_loss,
            }
        )
    worst = min(row["accuracy"] for row in rows)
    return {
        "check": "shapes test accuracy vs release bar",
        "threshold": bar,
        "worst": worst,
        "margin": worst - bar,
        "values": [round(row["accuracy"], 4) for row in rows],
        "median": sorted(row["accuracy"] for row in rows)[len(rows) // 2],
        "macro_f1_worst": min(row["macro_f1"] for row in rows),
        "loss_ratio_worst": max(row["loss_ratio"] for row in rows),
        "passed": worst >= bar and all(row["loss_ratio"] < 1 for row in rows),
    }


def pizza_check(work: Path, seeds: int, extra: list[str]) -> dict:
    base = [*TINY_OVERRIDES, f"artifacts_dir={work / 'pizza'}", *extra]
    config = load_config(None, base)
    splits = prepared(config, RunPaths(work / "pizza", "data"))
    ratios = []
    for seed in range(seeds):
        trained = train(
            load_config(None, [*base, f"train.seed={seed}"]), RunPaths(work / "pizza", f"seed-{seed}"), splits
        )
        ratios.append(trained.final_loss / trained.first_loss)
    return {
        "check": "pizza loss falls (final / first)",
        "threshold": 1.0,
        "worst": max(ratios),
        "margin": 1.0 - max(ratios),
        "values": [round(r, 4) for r in ratios],
        "passed": max(ratios) < 1.0,
    }


def tune_check(work: Path, seeds: int, extra: list[str]) -> dict:
    base = [*TINY_OVERRIDES, *TINY_TUNE_OVERRIDES, f"artifacts_dir={work / 'tune'}", *extra]
    config = load_config(None, base)
    splits = prepared(config, RunPaths(work / "tune", "data"))
    trials = [[f"{key}={value}" for key, value in params.items()] for params in config.tune.enqueue]
    gaps = []
    for seed in range(seeds):
        first_epoch_mae = []
        for number, params in enumerate(trials):
            trial = load_config(None, [*base, *params, f"train.seed={seed}", "train.epochs=1"])
            trained = train(trial, RunPaths(work / "tune", f"seed-{seed}-trial-{number}"), splits)
            first_epoch_mae.append(trained.history["epoch"][0]["val_mae"])
        gaps.append(first_epoch_mae[1] - first_epoch_mae[0])
    return {
        "check": "tune: trial 1's epoch-1 val_mae minus trial 0's",
        "threshold": 0.0,
        "worst": min(gaps),
        "margin": min(gaps),
        "values": [round(g, 4) for g in gaps],
        "passed": min(gaps) > 0,
    }


CHECKS = {"shapes": shapes_check, "pizza": pizza_check, "tune": tune_check}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(args.work_dir or scratch)
        results = []
        for name in args.checks.split(","):
            started = time.perf_counter()
            result = CHECKS[name](work, args.seeds, args.set)
            result["seconds"] = round(time.perf_counter() - started, 1)
            results.append(result)
            print(
                f"{result['check']}: threshold {result['threshold']}, worst of {args.seeds} seeds "
                f"{result['worst']:.4f}, margin {result['margin']:+.4f}, {'ok' if result['passed'] else 'FAILS'} "
                f"({result['seconds']} s)\n  per seed: {result['values']}",
                flush=True,
            )
    print(json.dumps({"seeds": args.seeds, "results": results}))
    return 0 if all(result["passed"] for result in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
