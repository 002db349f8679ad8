"""Verify a release bundle: ``python -m flows.verify BUNDLE_DIR``.

Exit status 0: every file matches the manifest, the release was approved, and every model loaded and
predicted the bundled sample like torch did. 1: a file or model is wrong (each reason printed).
3: the bundle is intact but its release was rejected by the gates (reasons printed).
The human review approval (``python -m flows.review``) is reported apart from the automated status;
with --require-review, a bundle not approved by its reviewers exits 4. 2: bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def review_summary(review: dict | None) -> dict:
    if not review:
        return {"status": "not reviewed", "approved": False}
    figures = review.get("figures", {})
    return {
        "status": review["status"],
        "approved": review["approved"],
        "reviewers": review["reviewers"],
        "reviewed_at": review["reviewed_at"],
        "share_correct": figures.get("share_correct"),
        "samples": figures.get("samples"),
        "reasons": review.get("reasons", []),
    }


def review_line(review: dict | None) -> str:
    summary = review_summary(review)
    if summary["status"] == "not reviewed":
        return "review: not reviewed by people yet (python -m flows.review)"
    share = summary["share_correct"]
    return (
        f"review: {summary['status']} by {', '.join(summary['reviewers'])} at {summary['reviewed_at']}: "
        f"{summary['samples']} samples, {'-' if share is None else f'{share:.1%}'} judged correct"
        + "".join(f"; {reason}" for reason in summary["reasons"])
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.verify", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("bundle", type=Path, help="bundle folder (the one holding manifest.json)")
    parser.add_argument(
        "--require-review", action="store_true", help="exit 4 unless human reviewers approved the bundle"
    )
    args = parser.parse_args(argv)
    # after parsing: the model runtimes (onnxruntime, coremltools) take seconds to import
    from doughflow.packaging.verify import verify_bundle_models

    report = verify_bundle_models(args.bundle)
    for line in report.checked:
        print(f"ok: {line}")
    for line in report.problems:
        print(f"error: {line}", file=sys.stderr)
    for line in report.rejected:
        print(f"rejected: {line}", file=sys.stderr)
    print(review_line(report.review))
    status = 1 if report.problems else 3 if report.rejected else 0
    if status == 0 and args.require_review and not (report.review or {}).get("approved"):
        status = 4
    print(
        json.dumps(
            {
                "bundle": str(args.bundle),
                "ok": report.ok,
                "exit": status,
                "problems": report.problems,
                "rejected": report.rejected,
                "review": review_summary(report.review),
            }
        )
    )
    return status
