"""Verify a release bundle: ``python -m flows.verify BUNDLE_DIR [--public-key PUB.pem] [--require-review]``.

Exit status:
  0  every file matches the manifest, the release was approved, every model loaded and predicted the
     bundled sample like torch did (and, with --public-key, the signature verifies);
  1  a file, a manifest entry or a model is wrong (each reason printed): a changed, missing or unlisted
     file, a symlink, an absolute or ``..`` entry, a shipped model the manifest does not list;
  2  the command line is wrong (unreadable public key file included);
  3  the bundle is intact but its release was rejected by the gates (reasons printed);
  4  with --require-review: intact and released, but not approved by its human reviewers;
  5  with --public-key: the signature (bundle.sig) is missing or does not verify with that key. This
     wins over 1, 3 and 4: a bundle whose signature fails is not the one that was signed.
The human review approval (``python -m flows.review``) is reported apart from the automated status.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SIGNATURE_FAILED = 5


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
    parser.add_argument(
        "--public-key",
        type=Path,
        default=None,
        metavar="PUB.pem",
        help="check bundle.sig against this ECDSA public key (PEM); exit 5 when it fails",
    )
    args = parser.parse_args(argv)
    if args.public_key is not None and not args.public_key.is_file():
        parser.error(f"--public-key {args.public_key}: no such file")
    # after parsing: the model runtimes (onnxruntime, coremltools) take seconds to import
    from doughflow.packaging.signing import signature_problems
    from doughflow.packaging.verify import verify_bundle_models

    signature = signature_problems(args.bundle, args.public_key) if args.public_key is not None else []
    for line in signature:
        print(f"signature: {line}", file=sys.stderr)
    report = verify_bundle_models(args.bundle)
    for line in report.checked:
        print(f"ok: {line}")
    for line in report.problems:
        print(f"error: {line}", file=sys.stderr)
    for line in report.rejected:
        print(f"rejected: {line}", file=sys.stderr)
    print(review_line(report.review))
    if args.public_key is not None and not signature:
        print(f"ok: bundle.sig verifies with {args.public_key}")
    status = 1 if report.problems else 3 if report.rejected else 0
    if status == 0 and args.require_review and not (report.review or {}).get("approved"):
        status = 4
    if signature:
        status = SIGNATURE_FAILED
    print(
        json.dumps(
            {
                "bundle": str(args.bundle),
                "ok": report.ok and not signature,
                "exit": status,
                "problems": report.problems,
                "rejected": report.rejected,
                "signature": signature or None,
                "review": review_summary(report.review),
            }
        )
    )
    return status
