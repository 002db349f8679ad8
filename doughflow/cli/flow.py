"""Command line for flows: ``--config FILE`` plus ``key.path=value`` overrides, validated before
any work, and one JSON object as the last line of stdout so scripts can read the result.

Exit status 2, before anything is written: a bad config, a run id that is not a plain folder name
(``--run-id ../x`` and friends), or a run id another process is using right now (named in the message).
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from doughflow import runlock
from doughflow.config import ConfigError
from doughflow.experiment import load_experiment
from doughflow.paths import PathEscapeError
from doughflow.runs import InvalidRunIdError, RunPaths, check_run_id


def parse_args(argv: list[str] | None, description: str | None, takes_run_id: bool = True) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None, help="experiment YAML (default: configs/pizza.yaml)")
    if takes_run_id:  # only flows that own one run folder can resume into it
        parser.add_argument("--run-id", default=None, help="reuse a run's folder: training resumes from its latest checkpoint")
    parser.add_argument("overrides", nargs="*", metavar="key.path=value", help="override any config field")
    return parser.parse_args(argv)


def _fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2) from None


def run_flow_cli(flow_fn: Callable[..., Any], argv: list[str] | None = None, description: str | None = None) -> dict:
    takes_run_id = "run_id" in inspect.signature(getattr(flow_fn, "fn", flow_fn)).parameters
    args = parse_args(argv, description, takes_run_id)
    run_id = getattr(args, "run_id", None)
    try:
        if run_id is not None:
            check_run_id(run_id)
        config = load_experiment(args.config, args.overrides)
    except (ConfigError, InvalidRunIdError) as error:
        _fail(str(error))
    run_dir = None
    if run_id is not None:  # held for the whole flow: a second process with this id is refused here
        try:
            run_dir = RunPaths(Path(config.artifacts_dir), run_id).stage("")
            runlock.acquire(run_dir)
        except (runlock.RunInUseError, PathEscapeError) as error:
            _fail(str(error))
    try:
        result = flow_fn(config=config, **({"run_id": run_id} if run_id else {}))
    finally:
        if run_dir is not None:
            runlock.release(run_dir)
    sys.stderr.flush()
    print(json.dumps(result, default=str), flush=True)
    return result
