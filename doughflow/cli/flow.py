"""Command line for flows: ``--config FILE`` plus ``key.path=value`` overrides, validated before
any work, a table of where the run's time went on stderr (doughflow.orchestration.timing), and one
JSON object as the last line of stdout so scripts can read the result."""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import sys
import time
from collections.abc import Callable

from doughflow.config import ConfigError
from doughflow.experiment import load_experiment
from doughflow.orchestration.local_api import local_api
from doughflow.orchestration.timing import format_rows, latest_run, process_started_at, run_rows


def parse_args(argv: list[str] | None, description: str | None, takes_run_id: bool = True) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None, help="experiment YAML (default: configs/pizza.yaml)")
    if takes_run_id:  # only flows that own one run folder can resume into it
        parser.add_argument("--run-id", default=None, help="reuse a run's folder: training resumes from its latest checkpoint")
    parser.add_argument("overrides", nargs="*", metavar="key.path=value", help="override any config field")
    return parser.parse_args(argv)


def run_flow_cli(flow_fn: Callable, argv: list[str] | None = None, description: str | None = None) -> dict:
    takes_run_id = "run_id" in inspect.signature(getattr(flow_fn, "fn", flow_fn)).parameters
    args = parse_args(argv, description, takes_run_id)
    try:
        config = load_experiment(args.config, args.overrides)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    run_id = getattr(args, "run_id", None)
    # Called with argv (a test, another program) the process did not start for this run: no start-up row.
    started = process_started_at() if argv is None else None
    gc.freeze()  # what the imports built stays for good: collections then skip it, and so does the exit
    with local_api() as api_seconds:
        flow_called = time.time()
        result = flow_fn(config=config, **({"run_id": run_id} if run_id else {}))
        flow_returned = time.time()
    rows = run_rows(started, api_seconds, flow_called, flow_returned, latest_run())
    print(format_rows(rows), file=sys.stderr)  # before the JSON line, which stays last on stdout
    sys.stderr.flush()
    print(json.dumps(result, default=str), flush=True)
    gc.freeze()  # the interpreter's exit then frees the run's objects without a last full collection
    return result
