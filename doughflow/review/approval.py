"""The review gate, and writing its outcome into the bundle.

The approval is a separate record from the automated release status: the gates say the model passed
what machines can measure; the approval says named people looked at its output and how often they
agreed. Both live in the manifest (``release`` and ``review``) and the model card. Changing
model_card.md after packaging changes its hash, so the manifest entry is re-hashed: verify keeps passing
and still catches any other edit. A signed bundle is re-signed, and the whole change is swapped in at
once, so a crash leaves either the old bundle or the approved one, each of which verifies.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from doughflow import runlock
from doughflow.config import ReviewGateConfig
from doughflow.data.manifest import file_sha256
from doughflow.packaging.bundle import MANIFEST, SIGNATURE, verify_bundle
from doughflow.packaging.signing import SIGNING_KEY_ENV, sign_bundle, signature_problems_for_key
from doughflow.packaging.swap import commit, staged_copy, write_atomic
from doughflow.paths import remove_tree
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
    return {
        "status": "approved" if not reasons else "not approved",
        "approved": not reasons,
        "reviewers": figures["reviewers"],
        "reviewed_at": reviewed_at,
        "decided_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "reasons": reasons,
        "gate": gate.model_dump(),
        "figures": figures,
    }


def card_section(approval: dict) -> str:
    figures = approval["figures"]
    share = figures["share_correct"]
    lines = [
        BEGIN,
        "## Human review",
        "",
        f"**Review: {approval['status'].upper()}** by {', '.join(map(md_text, approval['reviewers'])) or 'nobody'} "
        f"(last verdicts imported {approval['reviewed_at']}). Separate from the automated release status above.",
        "",
        f"{figures['samples']} of {figures['packet_rows']} packet samples reviewed, {figures['verdicts']} verdicts; "
        f"judged correct: {'-' if share is None else f'{share:.1%}'} "
        f"(gate: at least {approval['gate']['min_correct_share']:.0%} over at least "
        f"{approval['gate']['min_reviewed']} samples and {approval['gate']['min_reviewers']} reviewer(s)).",
        "",
        "| topping | judged | correct | share |",
        "|---|---|---|---|",
    ]
    for label, entry in figures["per_topping"].items():
        share_t = entry["share_correct"]
        lines.append(
            f"| {label} | {entry['judged']} | {entry['correct']} | {'-' if share_t is None else f'{share_t:.1%}'} |"
        )
    lines += [""] + [f"- not approved: {md_text(reason)}" for reason in approval["reasons"]] + [END, ""]
    return "\n".join(lines)


def write_approval(bundle_dir: Path, approval: dict, signing_key: Path | None = None) -> str:
    """Put the approval into manifest.json (key ``review``) and model_card.md, re-hashing the card, and
    re-sign a signed bundle with ``signing_key``. All or nothing: the new card and manifest (manifest
    last) and the signature are written in a staged copy, checked, then swapped in at once (see
    doughflow.packaging.swap), while the run folder is locked. Returns how the swap was made.

    Refused before anything is written (ValueError): a bundle that does not match its manifest (the
    re-hash must never launder an edit), a signed bundle without a key to re-sign it (the approval would
    break its signature), or a signature that does not verify with that key."""
    bundle_dir = Path(bundle_dir)
    problems = verify_bundle(bundle_dir)
    if problems:  # re-hashing the card must never launder an edit made since packaging
        raise ValueError(
            f"{bundle_dir}: bundle does not match its manifest, approval not written: " + "; ".join(problems)
        )
    if (bundle_dir / SIGNATURE).exists():
        if signing_key is None:
            raise ValueError(
                f"{bundle_dir} is signed ({SIGNATURE}) and the approval changes its manifest: give the key "
                f"to re-sign it (--signing-key, or {SIGNING_KEY_ENV}); approval not written"
            )
        problems = signature_problems_for_key(bundle_dir, signing_key)
        if problems:
            raise ValueError(
                f"{bundle_dir}: signature does not verify with {signing_key}, approval not written: "
                + "; ".join(problems)
            )
    run_dir = bundle_dir.parent
    took_lock = not runlock.holds(run_dir)
    if took_lock:
        runlock.acquire(run_dir)
    try:
        return _swap_in_approval(bundle_dir, approval, signing_key)
    finally:
        if took_lock:
            runlock.release(run_dir)


def _swap_in_approval(bundle_dir: Path, approval: dict, signing_key: Path | None) -> str:
    manifest = json.loads((bundle_dir / MANIFEST).read_text())
    staged = staged_copy(bundle_dir)
    changed = []
    try:
        card = staged / CARD
        if card.exists():
            text = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", "", card.read_text(), flags=re.S)
            write_atomic(card, (text.rstrip("\n") + "\n\n" + card_section(approval)).encode())
            manifest["files"][CARD] = {"sha256": file_sha256(card), "bytes": card.stat().st_size}
            changed.append(CARD)
        manifest["review"] = approval
        write_atomic(staged / MANIFEST, json.dumps(manifest, indent=2).encode())  # the manifest last
        if signing_key is not None:
            sign_bundle(staged, signing_key)
            changed.append(SIGNATURE)
        problems = verify_bundle(staged)
        if problems:
            raise ValueError(
                f"{bundle_dir}: the approved bundle would not verify, left unchanged: " + "; ".join(problems)
            )
    except BaseException:
        remove_tree(bundle_dir.parent, staged)
        raise
    return commit(staged, bundle_dir, [*changed, MANIFEST])
