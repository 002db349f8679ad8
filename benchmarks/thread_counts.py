"""Why the shapes flow test failed on one run of ``make test`` and passed alone: the thread count.

CPU float reductions are split by thread, so one config trained with 1 and with 2 torch threads
gives different weights, and on the tiny shapes set a different test accuracy. Before the fix,
``train.num_threads: 0`` kept whatever count the process had, and a pytest worker that had trained a
``num_threads: 1`` job in-process was left at 1 thread (a fresh worker has one per usable core). This
script trains the flow test's tiny shapes config (tests/support/configs.py) through the stage
functions:

1. with ``train.num_threads`` 1 and 2: the weights (and usually the accuracy) differ;
2. with ``train.num_threads: 0`` in a process whose torch thread count was set to 1, then to 2 first:
   the weights are identical, equal to those of this process's share of the cores, and the caller
   gets its own count back;
3. the same config in two processes started at the same time on the same cores (each slowed by the
   other, as under ``pytest -n 2``): the weights are those of part 2, bit for bit.

    python benchmarks/thread_counts.py        # about 1 minute on 2 cores

Prints one line per training and one JSON line; exits 1 when part 2 or 3 does not hold.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import pickle
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from doughflow.config import ExperimentConfig, load_config  # noqa: E402
from doughflow.data.synthetic.shapes import generate_shapes  # noqa: E402
from doughflow.runs import RunPaths  # noqa: E402
from doughflow.stages.evaluate import evaluate  # noqa: E402
from doughflow.stages.fetch import fetch  # noqa: E402
from doughflow.stages.split import split  # noqa: E402
from doughflow.stages.subsample import subsample_stage  # noqa: E402
from doughflow.stages.train import train  # noqa: E402
from doughflow.stages.validate import validate  # noqa: E402
from doughflow.training.process import usable_cores  # noqa: E402
from tests.support.configs import TINY_SHAPES_IMAGES, TINY_SHAPES_OVERRIDES  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def trained(config: ExperimentConfig, work: Path, name: str, splits: object) -> dict:
    paths = RunPaths(work / "runs", "".join(c if c.isalnum() else "-" for c in name))
    result = train(config, paths, splits)  # type: ignore[arg-type]
    accuracy = evaluate(config, paths, splits, result).metrics["test"]["accuracy"]  # type: ignore[arg-type]
    threads = json.loads(Path(result.history_path).read_text()).get("num_threads")
    row = {"run": name, "threads": threads, "weights": result.weights_sha256[:16], "test_accuracy": round(accuracy, 4)}
    print(f"{name:<28} threads {threads}  weights {row['weights']}  test accuracy {accuracy:.4f}", flush=True)
    return row


def trained_elsewhere(config_yaml: str, overrides: list[str], work: str, name: str, splits_file: str) -> dict:
    """:func:`trained` in a fresh process (started by the pool below, two at a time)."""
    splits = pickle.loads(Path(splits_file).read_bytes())
    return trained(load_config(config_yaml, overrides), Path(work), name, splits)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", default=None, help="where data and runs go (default: a temporary folder)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(args.work_dir or scratch)
        source = generate_shapes(work / "shapes-data", TINY_SHAPES_IMAGES, size=32, other=6)
        base = [*TINY_SHAPES_OVERRIDES, f"data.source.url={source}", f"artifacts_dir={work / 'runs'}"]
        config = load_config(ROOT / "configs" / "shapes.yaml", base)
        data = RunPaths(work / "runs", "data")
        validated = validate(config, data, fetch(config, data))
        splits = split(config, data, subsample_stage(config, data, validated.manifest).manifest)

        explicit = [
            trained(
                load_config(ROOT / "configs" / "shapes.yaml", [*base, f"train.num_threads={n}"]),
                work,
                f"num_threads={n}",
                splits,
            )
            for n in (1, 2)
        ]
        automatic, returned = [], []
        for caller in (1, 2):
            torch.set_num_threads(caller)
            automatic.append(trained(config, work, f"num_threads=0, caller at {caller}", splits))
            returned.append(torch.get_num_threads() == caller)
        splits_file = work / "splits.pickle"
        splits_file.write_bytes(pickle.dumps(splits))
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=2, mp_context=spawn) as pool:
            at_once = list(
                pool.map(
                    trained_elsewhere,
                    [str(ROOT / "configs" / "shapes.yaml")] * 2,
                    [base] * 2,
                    [str(work)] * 2,
                    ["at once, left", "at once, right"],
                    [str(splits_file)] * 2,
                )
            )
    share = usable_cores()
    fixed = (
        automatic[0]["weights"] == automatic[1]["weights"]
        and all(row["threads"] == share for row in automatic)
        and all(returned)
    )
    concurrent = all(row["weights"] == automatic[0]["weights"] for row in at_once)
    matches = next((row["run"] for row in explicit if row["threads"] == share), None)
    print(
        json.dumps(
            {
                "usable_cores": share,
                "explicit_counts_differ": explicit[0]["weights"] != explicit[1]["weights"],
                "num_threads_0_fixed": fixed,
                "num_threads_0_equals": matches
                if matches
                and automatic[0]["weights"] == explicit[[r["run"] for r in explicit].index(matches)]["weights"]
                else None,
                "two_processes_at_once_identical": concurrent,
                "runs": explicit + automatic + at_once,
            }
        )
    )
    return 0 if fixed and concurrent else 1


if __name__ == "__main__":
    raise SystemExit(main())
