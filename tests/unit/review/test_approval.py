"""Writing an approval into a bundle: all or nothing (a kill at any point leaves a bundle that verifies,
signature included), re-signed with the key, refused without one, and exclusive per run."""

from __future__ import annotations

import json
import os
import signal

import pytest

from doughflow import runlock
from doughflow.packaging import swap
from doughflow.packaging.bundle import build_bundle, verify_bundle
from doughflow.packaging.signing import sign_bundle, signature_problems
from doughflow.review import approval as approval_module
from doughflow.review.approval import write_approval
from tests.support.signing import write_key_pair

APPROVAL = {
    "status": "approved",
    "approved": True,
    "reviewers": ["ana"],
    "reviewed_at": "t",
    "decided_at": "t",
    "reasons": [],
    "gate": {"min_correct_share": 0.9, "min_reviewed": 1, "min_reviewers": 1},
    "figures": {"samples": 3, "packet_rows": 3, "verdicts": 3, "share_correct": 1.0, "per_topping": {}},
}


@pytest.fixture
def signed(tmp_path):
    private, public = write_key_pair(tmp_path / "keys")
    bundle = tmp_path / "artifacts" / "run-1" / "bundle"
    model = tmp_path / "model.onnx"
    model.write_bytes(b"weights" * 100)
    build_bundle(
        bundle,
        files={"model.onnx": model},
        documents={"model_card.md": "# Model card\n"},
        run_id="run-1",
        data_fingerprint="f" * 64,
        config_hash="c" * 64,
    )
    sign_bundle(bundle, private)
    return bundle, private, public


def _intact(bundle, public) -> bool:
    return verify_bundle(bundle) == [] and signature_problems(bundle, public) == []


def test_approval_is_swapped_in_whole_and_re_signed(signed):
    bundle, private, public = signed
    how = write_approval(bundle, APPROVAL, private)
    assert how in ("exchanged", "renamed") and _intact(bundle, public)
    assert json.loads((bundle / "manifest.json").read_text())["review"]["status"] == "approved"
    assert "Review: APPROVED" in (bundle / "model_card.md").read_text()
    assert sorted(p.name for p in bundle.parent.iterdir()) == [".lock", "bundle"]  # no staged copy left
    assert not runlock.holds(bundle.parent)  # released once written


def test_a_signed_bundle_is_not_approved_without_its_key(signed, tmp_path):
    bundle, _, public = signed
    before = (bundle / "manifest.json").read_bytes()
    with pytest.raises(ValueError, match="is signed .* give the key"):
        write_approval(bundle, APPROVAL, None)
    other, _ = write_key_pair(tmp_path / "other")
    with pytest.raises(ValueError, match="signature does not verify"):
        write_approval(bundle, APPROVAL, other)
    assert (bundle / "manifest.json").read_bytes() == before and _intact(bundle, public)


def _exchange_works(folder) -> bool:
    (folder / "x").mkdir(parents=True)
    (folder / "y").mkdir()
    return swap.exchange(folder / "x", folder / "y")


def test_an_approval_killed_at_any_point_leaves_a_bundle_that_verifies(signed, tmp_path):
    """SIGKILL of a forked writer at each step: staged card, staged manifest, new signature, just before
    the swap, right after it. The bundle is the old one or the approved one, and verifies either way."""
    bundle, private, public = signed
    steps = {
        "card written": (approval_module, "write_atomic", "model_card.md", True),
        "manifest written": (approval_module, "write_atomic", "manifest.json", True),
        "signed": (approval_module, "sign_bundle", None, True),
        "before the swap": (swap, "exchange", None, False),
        "after the swap": (swap, "exchange", None, True),
    }
    outcomes = {}
    for step, (module, function, argument, after) in steps.items():
        pid = os.fork()
        if pid == 0:  # the writer: killed at its step, no clean-up of any kind
            original = getattr(module, function)

            def killing(*args, original=original, argument=argument, after=after):
                hit = argument is None or str(args[0]).endswith(argument)
                if hit and not after:
                    os.kill(os.getpid(), signal.SIGKILL)
                result = original(*args)
                if hit and after:
                    os.kill(os.getpid(), signal.SIGKILL)
                return result

            setattr(module, function, killing)
            try:
                write_approval(bundle, {**APPROVAL, "reviewed_at": step}, private)
            finally:
                os._exit(3)  # only reached when the step never came
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (step, status)
        assert _intact(bundle, public), (step, verify_bundle(bundle), signature_problems(bundle, public))
        outcomes[step] = json.loads((bundle / "manifest.json").read_text()).get("review", {}).get("reviewed_at")
    assert {outcomes[step] for step in ("card written", "manifest written", "signed", "before the swap")} == {None}
    if _exchange_works(tmp_path / "probe"):
        assert outcomes["after the swap"] == "after the swap"  # the approved bundle, whole
    write_approval(bundle, APPROVAL, private)  # the next writer clears what the killed ones left
    assert _intact(bundle, public) and not list(bundle.parent.glob(".bundle.staged-*"))


def test_an_approval_is_refused_while_another_process_holds_the_run(signed):
    bundle, private, public = signed
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        runlock.acquire(bundle.parent, owner="another-flow")
        os.write(write_end, b"x")
        signal.pause()
        os._exit(0)
    os.close(write_end)
    try:
        assert os.read(read_end, 1) == b"x"
        with pytest.raises(runlock.RunInUseError, match=f"pid {pid} .*flow run another-flow"):
            write_approval(bundle, APPROVAL, private)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(read_end)
    assert _intact(bundle, public) and "review" not in json.loads((bundle / "manifest.json").read_text())
