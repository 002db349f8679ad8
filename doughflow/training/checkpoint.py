"""What a training checkpoint holds beyond DeepSpeed's own state, and housekeeping of the folder.

DeepSpeed saves model, optimizer and LR-scheduler state; ``latest`` is ours, not DeepSpeed's
(``save_latest=False``). DeepSpeed's rank 0 opens and writes ``latest`` before the other ranks have
finished their shards, so a kill in between left an empty pointer (a resume that silently starts
over) or one naming a tag with missing shards. We replace it atomically once every rank is done, so
a process killed while saving leaves the previous checkpoint usable. We add the loop's
position (epoch, batches done in it, so the data stream can skip to it), history, early-stopping
state and a fingerprint of everything that must not change across a resume, plus every rank's RNG
states in a file of its own (DeepSpeed keeps only rank 0's client state).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch


class CheckpointMismatchError(RuntimeError):
    """The checkpoint folder belongs to a different configuration or data."""


@dataclass
class LoopState:
    epoch: int = 0  # the epoch in progress (or next to start)
    batches_done: int = 0  # micro-batches of that epoch already trained on
    epoch_start_index: int = 0  # index into history["step_loss"] where this epoch began
    history: dict = field(default_factory=lambda: {"step_loss": [], "epoch": []})
    best_score: float | None = None
    best_epoch: int = -1
    epochs_without_improvement: int = 0
    stopped_early: bool = False
    skipped_steps: int = 0
    fingerprint: str = ""

    def to_client_state(self) -> dict:
        return {"loop": asdict(self)}

    @classmethod
    def from_client_state(cls, client_state: dict) -> "LoopState":
        return cls(**client_state["loop"])


def fingerprint(parts: dict) -> str:
    """Hash of what a resume must share with the run that wrote the checkpoint."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def rng_path(checkpoint_dir: Path, tag: str, rank: int) -> Path:
    return checkpoint_dir / tag / f"rng_rank{rank}.pt"


def save_rng(checkpoint_dir: Path, tag: str, rank: int) -> None:
    path = rng_path(checkpoint_dir, tag, rank)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(rng_state(), path)


def load_rng(checkpoint_dir: Path, tag: str, rank: int) -> bool:
    path = rng_path(checkpoint_dir, tag, rank)
    if not path.exists():
        return False
    set_rng_state(torch.load(path, map_location="cpu", weights_only=False))
    return True


def latest_tag(checkpoint_dir: Path) -> str | None:
    latest = checkpoint_dir / "latest"
    return (latest.read_text().strip() or None) if latest.exists() else None


def mark_latest(checkpoint_dir: Path, tag: str) -> None:
    """Point ``latest`` at ``tag``: call once every rank has finished saving it."""
    tmp = checkpoint_dir / f".latest.{os.getpid()}.tmp"
    tmp.write_text(tag)
    os.replace(tmp, checkpoint_dir / "latest")


def prune(checkpoint_dir: Path, keep: int) -> list[str]:
    """Delete all but the newest ``keep`` tags (tags sort by step); never the one ``latest`` names."""
    current = latest_tag(checkpoint_dir)
    tags = sorted(p.name for p in checkpoint_dir.iterdir() if p.is_dir() and p.name.startswith("step-"))
    removed = [t for t in tags[:-keep] if t != current] if keep > 0 else []
    for tag in removed:
        shutil.rmtree(checkpoint_dir / tag, ignore_errors=True)
    return removed


def atomic_torch_save(obj, path: Path) -> None:
    """Write then rename, so a kill mid-write never leaves a truncated file under the real name."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def state_dict_hash(state_dict: dict) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes: equal hashes mean identical weights."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()
