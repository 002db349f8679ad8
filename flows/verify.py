"""Verify a release bundle: ``python -m flows.verify BUNDLE_DIR``.

Exit status 0: every file matches the manifest, the release was approved, and every model loaded and
predicted the bundled sample like torch did. 1: a file or model is wrong (each reason printed).
3: the bundle is intact but its release was rejected by the gates (reasons printed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from doughflow.packaging.verify import verify_bundle_models


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", type=Path, help="bundle folder (the one holding manifest.json)")
    args = parser.parse_args(argv)
    report = verify_bundle_models(args.bundle)
    for line in report.checked:
        print(f"ok: {line}")
    for line in report.problems:
        print(f"error: {line}", file=sys.stderr)
    for line in report.rejected:
        print(f"rejected: {line}", file=sys.stderr)
    status = 1 if report.problems else 3 if report.rejected else 0
    print(json.dumps({"bundle": str(args.bundle), "ok": report.ok, "exit": status,
                      "problems": report.problems, "rejected": report.rejected}))
    return status


if __name__ == "__main__":
    raise SystemExit(main())
