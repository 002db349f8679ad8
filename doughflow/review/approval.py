"""The review gate, and writing its outcome into the bundle.

The approval is a separate record from the automated release status: the gates say the model passed
what machines can measure; the approval says named people looked at its output and how often they
agreed. Both live in the manifest (``release`` and ``review``) and the model card. Changing
model_card.md after packaging changes its hash, so the manifest entry is re-hashed: verify keeps passing
and still catches any other edit.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from doughflow.config import ReviewGateConfig
from doughflow.data.manifest import file_sha256
from doughflow.packaging.bundle import MANIFEST, verify_bundle
from doughflow.reporting.inert import md_text

CARD = "model_card.md"
BEGIN, END = "<!-- human-review:begin -->", "<!-- human-review:end -->"


def review_gate(figures: dict, gate: ReviewGateConfig, *, reviewed_at: str) -> dict:
    """Approved only when enough samples, enough reviewers and a high enough share judged correct."""
    reasons = []
    if figures["samples"] < gate.min_reviewed:
        reasons.append(f"{figures['samples']} samples reviewed, at least {gate.min_reviewed} needed")
    if len(figures["reviewers"]) < gate.min_reviewers:
        reasons.append(f"{len(figures['reviewers'])} reviewer(s), at least {gate.min_reviewers} needed")
    share = figures["share_correct"]
    if share is None:
        reasons.append("no verdicts yet")
    elif share < gate.min_correct_share:
        reasons.append(f"share judged correct {share:.1%} is below {gate.min_correct_share:.1%}")
    return {"status": "approved" if not reasons else "not approved", "approved": not reasons,
            "reviewers": figures["reviewers"], "reviewed_at": reviewed_at,
            "decided_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "reasons": reasons,
            "gate": gate.model_dump(), "figures": figures}


def card_section(approval: dict) -> str:
    figures = approval["figures"]
    share = figures["share_correct"]
    lines = [BEGIN, "## Human review", "",
             f"**Review: {approval['status'].upper()}** by {', '.join(map(md_text, approval['reviewers'])) or 'nobody'} "
             f"(last verdicts imported {approval['reviewed_at']}). Separate from the automated release status above.", "",
             f"{figures['samples']} of {figures['packet_rows']} packet samples reviewed, {figures['verdicts']} verdicts; "
             f"judged correct: {'-' if share is None else f'{share:.1%}'} "
             f"(gate: at least {approval['gate']['min_correct_share']:.0%} over at least "
             f"{approval['gate']['min_reviewed']} samples and {approval['gate']['min_reviewers']} reviewer(s)).", "",
             "| topping | judged | correct | share |", "|---|---|---|---|"]
    for label, entry in figures["per_topping"].items():
        share_t = entry["share_correct"]
        lines.append(f"| {label} | {entry['judged']} | {entry['correct']} | {'-' if share_t is None else f'{share_t:.1%}'} |")
    lines += [""] + [f"- not approved: {md_text(reason)}" for reason in approval["reasons"]] + [END, ""]
    return "\n".join(lines)


def write_approval(bundle_dir: Path, approval: dict) -> None:
    """Put the approval into manifest.json (key ``review``) and model_card.md, re-hashing the card."""
    bundle_dir = Path(bundle_dir)
    problems = verify_bundle(bundle_dir)
    if problems:  # re-hashing the card must never launder an edit made since packaging
        raise ValueError(f"{bundle_dir}: bundle does not match its manifest, approval not written: " + "; ".join(problems))
    manifest_path = bundle_dir / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    card = bundle_dir / CARD
    if card.exists():
        text = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", "", card.read_text(), flags=re.S)
        card.write_text(text.rstrip("\n") + "\n\n" + card_section(approval))
        manifest["files"][CARD] = {"sha256": file_sha256(card), "bytes": card.stat().st_size}
    manifest["review"] = approval
    tmp = manifest_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2))
    tmp.replace(manifest_path)
