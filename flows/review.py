"""Import human verdicts on a run's review packet: ``python -m flows.review RUN_OR_BUNDLE verdicts.csv
[--reviewer NAME] [--export-labelled OUT.parquet]``.

RUN_OR_BUNDLE is a bundle folder, a run folder (artifacts/<run-id>) or a run id (under --artifacts).
The file is validated against the packet (unknown ids, duplicate rows, impossible counts: every bad row
is named), stored in the run registry, and every verdict stored for the run is put through the review
gate; the outcome is written into the bundle's manifest and model card. The last stdout line is JSON.
Exit status: 0 approved, 3 imported but not approved, 2 the file or the target is unusable.
Without a verdict file, only recomputes the gate and/or exports corrected counts as labelled Parquet.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from pathlib import Path

from doughflow.experiment import load_experiment
from doughflow.packaging.bundle import MANIFEST
from doughflow.registry import load_verdicts, record_verdicts
from doughflow.review.approval import review_gate, write_approval
from doughflow.review.labelled import export_labelled
from doughflow.review.packet import load_packet
from doughflow.review.verdicts import Verdict, VerdictError, agreement, read_verdicts


def resolve_bundle(target: str, artifacts: Path) -> Path:
    """A bundle folder, a run folder, or a run id under ``artifacts``: the bundle folder it means."""
    for candidate in (Path(target), Path(target) / "bundle", artifacts / target / "bundle"):
        if (candidate / MANIFEST).exists():
            return candidate
    raise FileNotFoundError(f"{target}: not a bundle folder, a run folder or a run id under {artifacts}")


def import_review(bundle: Path, verdicts_file: Path | None, reviewer: str, registry: Path | None = None,
                  labelled_out: Path | None = None) -> dict:
    """The whole import, as a function the CLI and tests call; raises VerdictError on a bad file."""
    config = load_experiment(bundle / "config.yaml", [])
    run_id = json.loads((bundle / MANIFEST).read_text())["run_id"]
    registry = Path(registry or config.registry_path or bundle.parent.parent / "registry.sqlite")
    review_dir = bundle.parent / "review"
    packet = load_packet(review_dir)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    imported = 0
    if verdicts_file is not None:
        verdicts = read_verdicts(verdicts_file, packet, reviewer)
        imported = record_verdicts(registry, run_id, [
            {"sample_id": v.sample_id, "reviewer": v.reviewer, "verdict": v.verdict, "corrected": v.corrected,
             "comment": v.comment, "reviewed_at": now, "source_file": str(verdicts_file)} for v in verdicts])
    stored = load_verdicts(registry, run_id)
    figures = agreement([Verdict(r["sample_id"], r["verdict"], r["corrected"], r["comment"], r["reviewer"])
                         for r in stored], packet)
    approval = review_gate(figures, config.review.gate,
                           reviewed_at=max((r["reviewed_at"] for r in stored), default=now))
    write_approval(bundle, approval)
    result = {"run_id": run_id, "bundle": str(bundle), "imported": imported, "registry": str(registry),
              "agreement": figures, "review": approval["status"], "approved": approval["approved"],
              "reasons": approval["reasons"]}
    if labelled_out is not None:
        data = config.data
        result["labelled"] = {"path": str(labelled_out), "rows": export_labelled(
            review_dir, packet, stored, labelled_out, id_column=data.id_column, image_column=data.image_column,
            group_column=data.group_column, target_prefix=data.target_prefix)}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", help="bundle folder, run folder, or run id")
    parser.add_argument("verdicts", type=Path, nargs="?", help="verdict CSV exported from review.html (or the filled template)")
    parser.add_argument("--reviewer", default=None, help="who judged (default: the current user)")
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"), help="where run ids are looked up")
    parser.add_argument("--registry", type=Path, default=None, help="run registry (default: the run's)")
    parser.add_argument("--export-labelled", type=Path, default=None, metavar="OUT.parquet",
                        help="also write the reviewed samples with corrected counts as a training source")
    args = parser.parse_args(argv)
    try:
        bundle = resolve_bundle(args.target, args.artifacts)
        result = import_review(bundle, args.verdicts, args.reviewer or getpass.getuser(), args.registry,
                               args.export_labelled)
    except (VerdictError, FileNotFoundError, KeyError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        print(json.dumps({"ok": False, "error": str(error)}))
        return 2
    figures = result["agreement"]
    print(f"imported {result['imported']} verdict(s) for {result['run_id']}; {figures['samples']} samples reviewed "
          f"by {', '.join(figures['reviewers']) or 'nobody'}")
    share = figures["share_correct"]
    print(f"judged correct: {'-' if share is None else f'{share:.1%}'} overall")
    for label, entry in figures["per_topping"].items():
        value = entry["share_correct"]
        print(f"  {label}: {'-' if value is None else f'{value:.1%}'} of {entry['judged']}")
    print(f"review: {result['review']}" + "".join(f"\n  - {reason}" for reason in result["reasons"]))
    print(json.dumps({"ok": True, **result}))
    return 0 if result["approved"] else 3


if __name__ == "__main__":
    raise SystemExit(main())

