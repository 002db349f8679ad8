"""Import human verdicts on a run's review packet: ``python -m flows.review RUN_OR_BUNDLE verdicts.csv
[--reviewer NAME] [--export-labelled OUT.parquet]``.

RUN_OR_BUNDLE is a bundle folder, a run folder (artifacts/<run-id>) or a run id (under --artifacts).
The file is validated against the packet (unknown ids, duplicate rows, impossible counts: every bad row
is named), stored in the run registry, and every verdict stored for the run is put through the review
gate; the outcome is written into the bundle's manifest and model card. The last stdout line is JSON.
Exit status: 0 approved, 3 imported but not approved, 2 the file or the target is unusable (also: a
signed bundle without --signing-key / DOUGHFLOW_SIGNING_KEY to re-sign it, a signature that does not
verify with that key, a bundle that does not match its manifest, or a run another process is using).
The approval is swapped into the bundle at once (card and manifest, then the new signature).
Without a verdict file, only recomputes the gate and/or exports corrected counts as labelled Parquet.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.review", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("target", help="bundle folder, run folder, or run id")
    parser.add_argument(
        "verdicts", type=Path, nargs="?", help="verdict CSV exported from review.html (or the filled template)"
    )
    parser.add_argument("--reviewer", default=None, help="who judged (default: the current user)")
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"), help="where run ids are looked up")
    parser.add_argument("--registry", type=Path, default=None, help="run registry (default: the run's)")
    parser.add_argument(
        "--export-labelled",
        type=Path,
        default=None,
        metavar="OUT.parquet",
        help="also write the reviewed samples with corrected counts as a training source",
    )
    parser.add_argument(
        "--signing-key",
        type=Path,
        default=None,
        metavar="KEY.pem",
        help="ECDSA private key that re-signs a signed bundle after the approval "
        "(default: the file DOUGHFLOW_SIGNING_KEY names)",
    )
    args = parser.parse_args(argv)
    from doughflow.packaging.signing import SigningError
    from doughflow.review.importer import import_review, resolve_bundle
    from doughflow.review.verdicts import VerdictError
    from doughflow.runlock import RunInUseError

    try:
        bundle = resolve_bundle(args.target, args.artifacts)
        result = import_review(
            bundle,
            args.verdicts,
            args.reviewer or getpass.getuser(),
            args.registry,
            args.export_labelled,
            args.signing_key,
        )
    except (VerdictError, FileNotFoundError, KeyError, ValueError, RunInUseError, SigningError) as error:
        print(f"error: {error}", file=sys.stderr)
        print(json.dumps({"ok": False, "error": str(error)}))
        return 2
    figures = result["agreement"]
    print(
        f"imported {result['imported']} verdict(s) for {result['run_id']}; {figures['samples']} samples reviewed "
        f"by {', '.join(figures['reviewers']) or 'nobody'}"
    )
    share = figures["share_correct"]
    print(f"judged correct: {'-' if share is None else f'{share:.1%}'} overall")
    for label, entry in figures["per_topping"].items():
        value = entry["share_correct"]
        print(f"  {label}: {'-' if value is None else f'{value:.1%}'} of {entry['judged']}")
    print(f"review: {result['review']}" + "".join(f"\n  - {reason}" for reason in result["reasons"]))
    if "error" in result.get("mlflow", {}):
        print(f"warning: {result['mlflow']['error']}", file=sys.stderr)
    print(json.dumps({"ok": True, **result}))
    return 0 if result["approved"] else 3
