"""Run test files N times the way ``make test`` does (2 processes) and report every test that ever failed.

A test that fails one run in five blocks one submission in five; one run cannot show it. Each round
is a fresh ``pytest -n 2 --dist loadfile`` (so files land on workers in a different order each time),
its outcomes read from a JUnit XML report; the summary lists each test that failed or errored in any
round, how often, and its first message.

    python -m tests.support.flaky --runs 5                      # the flow tests (make test-flaky)
    python -m tests.support.flaky --runs 3 tests/unit/training  # any paths

Exits 1 when any test failed in any round.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="rounds of the whole selection")
    parser.add_argument("--jobs", type=int, default=2, help="pytest-xdist processes per round (0: one process)")
    parser.add_argument("paths", nargs="*", default=["tests/flows"], help="test paths (default: tests/flows)")
    return parser.parse_args(argv)


def outcomes(report: Path) -> dict[str, tuple[str, str]]:
    """Test id -> (passed | failed | error | skipped, first line of the message) from a JUnit XML file."""
    found: dict[str, tuple[str, str]] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        test = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcome, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            element = case.find(kind)
            if element is not None:
                outcome = "failed" if kind == "failure" else kind
                text = (element.get("message") or element.text or "").strip()
                message = text.splitlines()[0][:300] if text else ""
                break
        found[test] = (outcome, message)
    return found


def run_round(paths: list[str], jobs: int, report: Path) -> tuple[int, float]:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", *paths]
    if jobs:
        command += ["-n", str(jobs), "--dist", "loadfile"]
    started = time.perf_counter()
    code = subprocess.run(command, cwd=ROOT).returncode
    return code, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    history: dict[str, list[str]] = defaultdict(list)
    messages: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for round_number in range(1, args.runs + 1):
            report = Path(scratch) / f"round-{round_number}.xml"
            code, seconds = run_round(args.paths, args.jobs, report)
            if not report.exists():
                print(f"round {round_number}: pytest exited {code} without a report", file=sys.stderr)
                return 2
            for test, (outcome, message) in outcomes(report).items():
                history[test].append(outcome)
                if outcome in ("failed", "error") and test not in messages:
                    messages[test] = message
            failed = sum(1 for runs in history.values() if runs[-1] in ("failed", "error"))
            print(f"round {round_number}/{args.runs}: exit {code}, {failed} failed, {seconds:.0f} s", flush=True)
    bad = {test: runs for test, runs in history.items() if any(r in ("failed", "error") for r in runs)}
    print(
        f"\n{len(history)} tests x {args.runs} rounds ({' '.join(args.paths)}, -n {args.jobs}): {len(bad)} ever failed"
    )
    for test, runs in sorted(bad.items()):
        failures = sum(r in ("failed", "error") for r in runs)
        print(f"  {test}: failed {failures}/{len(runs)}: {messages.get(test, '')}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
