"""Compare runs from the registry: ``python -m flows.compare [RUN ...] [--last N]``.

Prints the config differences and metrics side by side, writes a bar plot, and ends with one JSON
line. A read-only query needs no Prefect API, so this is a plain command rather than a flow.
Arguments are parsed before the library (matplotlib, pydantic) is imported, so --help answers at once."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

EPILOG = """exit status:
  0  the comparison was printed
  2  bad arguments, an unreadable registry, or an unknown run id"""


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m flows.compare",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "runs", nargs="*", metavar="RUN", help="run ids to compare, in this order (default: the newest --last runs)"
    )
    parser.add_argument(
        "--last", type=int, default=5, metavar="N", help="without run ids: compare the newest N runs (default: 5)"
    )
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="experiment YAML whose registry to read (default: the built-in pizza experiment's)",
    )
    parser.add_argument("--registry", default=None, metavar="FILE", help="registry file (overrides the config's)")
    parser.add_argument(
        "--plot", default=None, metavar="PNG", help="where to write the bar plot (default: beside the registry)"
    )
    parser.add_argument(
        "--metrics",
        default="test_exact_count_accuracy,test_mae,train_seconds",
        metavar="NAMES",
        help="comma-separated registry metrics to plot (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.last < 1:
        parser.error(f"--last must be at least 1, got {args.last}")
    from doughflow.compare import comparison_markdown, comparison_plot, config_differences
    from doughflow.config import ConfigError, load_config
    from doughflow.registry import load_runs

    try:
        registry = args.registry or load_config(args.config).registry_file()
        runs = load_runs(registry, args.runs or None, last=None if args.runs else args.last)
    except (ConfigError, FileNotFoundError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    if not runs:
        print(f"error: no runs recorded in {registry}", file=sys.stderr)
        raise SystemExit(2)
    print(comparison_markdown(runs))
    plot = Path(args.plot) if args.plot else Path(registry).parent / f"compare-{time.strftime('%Y%m%d-%H%M%S')}.png"
    comparison_plot(runs, plot, args.metrics.split(","))
    result = {
        "runs": [run.run_id for run in runs],
        "plot": str(plot),
        "config_differences": sorted(config_differences(runs)),
    }
    print(json.dumps(result), flush=True)
    return result
