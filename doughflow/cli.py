"""Command line for flows: ``--config FILE`` plus ``key.path=value`` overrides, validated before
any work, and one JSON object as the last line of stdout so scripts can read the result."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from doughflow.config import ConfigError, load_config


def parse_args(argv: list[str] | None, description: str | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None, help="experiment YAML (default: configs/pizza.yaml)")
    parser.add_argument("--run-id", default=None, help="reuse a run's folder: training resumes from its latest checkpoint")
    parser.add_argument("overrides", nargs="*", metavar="key.path=value", help="override any config field")
    return parser.parse_args(argv)


def run_flow_cli(flow_fn: Callable, argv: list[str] | None = None, description: str | None = None) -> dict:
    args = parse_args(argv, description)
    try:
        config = load_config(args.config, args.overrides)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    result = flow_fn(config=config, **({"run_id": args.run_id} if args.run_id else {}))
    sys.stderr.flush()
    print(json.dumps(result, default=str), flush=True)
    return result
