"""Command line of the flows, ``python -m flows.train|prepare|tune``: ``--config FILE`` plus ``key.path=value``
overrides, validated before any work, and one JSON object as the last line of stdout so scripts can
read the outcome. Before that line, on stderr, a table of where the run's time went
(doughflow.orchestration.timing), and Prefect's temporary API is the one started early by
doughflow.orchestration.local_api.

Arguments are parsed before the flow module is imported: Prefect and torch take 10-18 s to import on a
busy 2-core machine, and ``--help`` or a typo should answer at once. So this module imports only the
standard library at the top, and each ``flows/<name>.py`` calls :func:`main` from an
``if __name__ == "__main__":`` block placed before its own imports; :func:`main` then imports the flow
module under its real name (``flows.train``, as Prefect's deployments name it), not as ``__main__``.

Exit status, the same for every flow (``EXIT_STATUS_HELP`` is printed by ``--help``): 0 the run
finished (for ``flows.train``: its bundle was released), 1 the run failed (the flow run's log names the
stage and error), 2 bad arguments or configuration (nothing ran), 3 the release was rejected by its
gates (the bundle is kept and marked rejected), 130 interrupted. Status 2 also covers, before anything
is written, a run id that is not a plain folder name (``--run-id ../x`` and friends) and a run id
another process is using right now (the holder is named in the message).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import inspect
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REJECTED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

EXIT_STATUS_HELP = """exit status:
  0    the run finished (flows.train: the bundle was released)
  1    the run failed: a stage raised (the flow run's logs name it)
  2    bad arguments or configuration: nothing ran
  3    the release was rejected by its gates: the bundle is kept, marked rejected
  130  interrupted"""

RUN_ID_HELP = {
    "flows.train": "resume the run with this id: its finished stages come back cached and training continues "
    "from its last checkpoint",
    "flows.prepare": "reuse this run's folder: its finished data stages come back cached (prepare trains nothing)",
}


def parse_args(
    argv: list[str] | None, description: str | None, prog: str | None = None, run_id_help: str | None = None
) -> argparse.Namespace:
    """``run_id_help``: the flow takes ``--run-id`` (it owns one run folder) and this is what it does there."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config", default=None, metavar="FILE", help="experiment YAML (default: the built-in pizza experiment)"
    )
    if run_id_help:
        parser.add_argument("--run-id", default=None, help=run_id_help)
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved config (the file with every override applied) as YAML and exit",
    )
    parser.add_argument("overrides", nargs="*", metavar="key.path=value", help="override any config field")
    return parser.parse_args(argv)


def load_or_exit(args: argparse.Namespace, trains: bool = True) -> Any:
    """The validated experiment, or exit 2 naming the file and field; with ``--print-config`` print it and exit 0.
    ``trains``: the flow trains a model, so the config's adapter must have one (flows.prepare: False)."""
    from doughflow.config import ConfigError, dump_config
    from doughflow.experiment import load_experiment

    try:
        config = load_experiment(args.config, args.overrides, trains=trains)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    if args.print_config:
        sys.stdout.write(dump_config(config))
        raise SystemExit(EXIT_OK)
    return config


def run_id_or_exit(args: argparse.Namespace) -> str | None:
    """``--run-id``, checked to be a plain folder name (exit 2 naming the rule otherwise)."""
    run_id = getattr(args, "run_id", None)
    if run_id is None:
        return None
    from doughflow.runs import InvalidRunIdError, check_run_id

    try:
        check_run_id(run_id)
    except InvalidRunIdError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    return run_id


@contextlib.contextmanager
def run_lock(config: Any, run_id: str | None) -> Iterator[None]:
    """Hold the run folder's lock for the whole flow, so a second process with this run id is refused
    (exit 2, naming the holder); a new run id is locked by the flow's own start-run step."""
    if run_id is None:
        yield
        return
    from doughflow import runlock
    from doughflow.paths import PathEscapeError
    from doughflow.runs import RunPaths

    try:
        run_dir = RunPaths(Path(config.artifacts_dir), run_id).stage("")
        runlock.acquire(run_dir)
    except (runlock.RunInUseError, PathEscapeError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    try:
        yield
    finally:
        runlock.release(run_dir)


def _takes_run_id(flow_fn: Callable) -> bool:
    return "run_id" in inspect.signature(getattr(flow_fn, "fn", flow_fn)).parameters


def run_flow_cli(
    flow_fn: Callable, argv: list[str] | None = None, description: str | None = None, trains: bool = True
) -> dict:
    """Parse, load and call ``flow_fn``; return its result after printing it as the last stdout line.
    A failing flow raises here (tests see the exception); :func:`main` turns it into an exit status."""
    args = parse_args(argv, description, run_id_help="reuse this run's folder" if _takes_run_id(flow_fn) else None)
    run_id = run_id_or_exit(args)
    config = load_or_exit(args, trains)
    with run_lock(config, run_id):
        # Called with argv (a test, another program) the process did not start for this run: no start-up row.
        result = run_timed(flow_fn, config, run_id, process_started=argv is None)
    sys.stderr.flush()
    print(json.dumps(result, default=str), flush=True)
    gc.freeze()  # the interpreter's exit then frees the run's objects without a last full collection
    return result


def run_timed(flow_fn: Callable, config: Any, run_id: str | None, process_started: bool) -> Any:
    """Call the flow against Prefect's API (the temporary one started early, unless one is configured)
    and print the table of where the time went on stderr, also when the flow raised."""
    from doughflow.orchestration.local_api import local_api
    from doughflow.orchestration.timing import format_rows, latest_run, process_started_at, run_rows

    started = process_started_at() if process_started else None
    gc.freeze()  # what the imports built stays for good: collections then skip it, and so does the exit
    with local_api() as api_seconds:
        flow_called = time.time()
        try:
            return flow_fn(config=config, **({"run_id": run_id} if run_id else {}))
        finally:
            rows = run_rows(started, api_seconds, flow_called, time.time(), latest_run())
            print(format_rows(rows), file=sys.stderr)  # before the JSON line, which stays last on stdout


def exit_status(error: BaseException) -> int:
    """The exit status of a run that raised ``error``."""
    from doughflow.release.gates import ReleaseRejected

    if isinstance(error, ReleaseRejected):
        return EXIT_REJECTED
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return EXIT_FAILED


def main(
    flow: str | Callable, description: str | None = None, argv: list[str] | None = None, trains: bool = True
) -> NoReturn:
    """``python -m flows.<name>``: parse, validate, import the flow (``"flows.train:train"``), run it and exit
    with the documented status. A failure ends with one ``error:``/``rejected:`` line on stderr and a JSON
    line ``{"exit": N, "error": ...}`` on stdout instead of a traceback (Prefect's log above it has one)."""
    module_name = flow.partition(":")[0] if isinstance(flow, str) else getattr(flow, "__module__", "")
    prog = f"python -m {module_name}" if module_name.startswith("flows.") else None
    run_id_help = RUN_ID_HELP.get(module_name)
    args = parse_args(argv, description, prog, run_id_help)
    run_id = run_id_or_exit(args)
    config = load_or_exit(args, trains)
    if isinstance(flow, str):
        attribute = flow.partition(":")[2]
        flow_fn = getattr(importlib.import_module(module_name), attribute)
    else:
        flow_fn = flow
    try:
        with run_lock(config, run_id):
            result = run_timed(flow_fn, config, run_id, process_started=argv is None)
    except (Exception, KeyboardInterrupt) as error:  # noqa: BLE001 - every failure becomes a documented status
        status = exit_status(error)
        sys.stderr.flush()
        word = "rejected" if status == EXIT_REJECTED else "interrupted" if status == EXIT_INTERRUPTED else "error"
        print(
            f"{word}: {error}" if status != EXIT_FAILED else f"error: {type(error).__name__}: {error}", file=sys.stderr
        )
        print(json.dumps({"exit": status, "error": f"{type(error).__name__}: {error}"}), flush=True)
        raise SystemExit(status) from None
    sys.stderr.flush()
    print(json.dumps(result, default=str), flush=True)
    gc.freeze()  # the interpreter's exit then frees the run's objects without a last full collection
    raise SystemExit(EXIT_OK)
