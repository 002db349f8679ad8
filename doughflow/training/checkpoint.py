"""What a training checkpoint holds beyond DeepSpeed's own state, and housekeeping of the folder.

DeepSpeed saves model, optimizer and LR-scheduler state; ``latest`` is ours, not DeepSpeed's
(``save_latest=False``). DeepSpeed's rank 0 opens and writes ``latest`` before the other ranks have
finished their shards, so a kill in between left an empty pointer (a resume that silently starts
over) or one naming a tag with missing shards. We replace it atomically once every rank is done, so
a process killed while saving leaves the previous checkpoint usable. We add the loop's
position (epoch, batches done in it, so the data stream can skip to it), history, early-stopping
state and a fingerprint of everything that must not change across a resume, plus every rank's RNG
states in a file of its own (DeepSpeed keeps only rank 0's client state), as plain arrays in an .npz;
the loop's state is JSON, not DeepSpeed's pickled client state.

DeepSpeed's ``load_checkpoint`` unpickles its files (``torch.load`` without ``weights_only``), so a
file swapped into a checkpoint folder would run code on resume. Once every rank has saved a tag, rank 0
records the SHA-256 of each of its files in ``<tag>/sha256.json``, and a resume refuses a tag whose
files differ from that record in any way before DeepSpeed opens them. (The record lives beside the
files: it catches files swapped, added or damaged after the save, not someone who rewrites the record
too; the run folder's permissions are the boundary for that.) Every ``torch.load`` of ours passes
``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from doughflow.paths import remove_tree

TAG = re.compile(r"step-\d{8}")
DIGESTS = "sha256.json"  # in each tag folder: every file's SHA-256, recorded at save time
LOOP_STATE = "loop_state.json"  # in each tag folder: where the loop stood (epoch, batches, history)


class CheckpointMismatchError(RuntimeError):
    """The checkpoint folder belongs to a different configuration or data."""


class CheckpointIntegrityError(RuntimeError):
    """A checkpoint's files are not the ones this run wrote (changed, added, missing or unrecorded)."""


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

    def save(self, checkpoint_dir: Path, tag: str) -> Path:
        """``<tag>/loop_state.json``, replaced whole (rank 0, before the save's closing barrier)."""
        path = checkpoint_dir / tag / LOOP_STATE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"loop": asdict(self)}))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, checkpoint_dir: Path, tag: str) -> LoopState:
        path = checkpoint_dir / tag / LOOP_STATE
        try:
            return cls(**json.loads(path.read_text())["loop"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise CheckpointIntegrityError(
                f"{path}: no readable loop state ({type(error).__name__}: {error})"
            ) from None


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
    return checkpoint_dir / tag / f"rng_rank{rank}.npz"


def rng_arrays(state: dict) -> dict[str, np.ndarray]:
    """The RNG states as plain arrays (an .npz holds no code, unlike a pickle or torch.save)."""
    version, words, gauss = state["python"]
    kind, keys, pos, has_gauss, cached = state["numpy"]
    arrays = {
        "python": np.asarray([version, *words], np.int64),
        "python_gauss": np.asarray([np.nan if gauss is None else gauss], np.float64),
        "numpy_keys": np.asarray(keys, np.uint32),
        "numpy_rest": np.asarray([pos, has_gauss], np.int64),
        "numpy_cached": np.asarray([cached], np.float64),
        "numpy_kind": np.asarray([kind]),
        "torch": state["torch"].numpy(),
    }
    for index, cuda in enumerate(state.get("cuda", [])):
        arrays[f"cuda_{index}"] = cuda.cpu().numpy()
    return arrays


def rng_from_arrays(arrays: dict[str, np.ndarray]) -> dict:
    python, gauss = arrays["python"], float(arrays["python_gauss"][0])
    pos, has_gauss = (int(v) for v in arrays["numpy_rest"])
    state = {
        "python": (int(python[0]), tuple(int(v) for v in python[1:]), None if np.isnan(gauss) else gauss),
        "numpy": (str(arrays["numpy_kind"][0]), arrays["numpy_keys"], pos, has_gauss, float(arrays["numpy_cached"][0])),
        "torch": torch.from_numpy(np.array(arrays["torch"], np.uint8)),
    }
    cuda = sorted((name for name in arrays if name.startswith("cuda_")), key=lambda name: int(name.split("_")[1]))
    if cuda:
        state["cuda"] = [torch.from_numpy(np.array(arrays[name], np.uint8)) for name in cuda]
    return state


def save_rng(checkpoint_dir: Path, tag: str, rank: int) -> None:
    path = rng_path(checkpoint_dir, tag, rank)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **rng_arrays(rng_state()))  # type: ignore[arg-type]
    os.replace(tmp, path)


def load_rng(checkpoint_dir: Path, tag: str, rank: int) -> bool:
    path = rng_path(checkpoint_dir, tag, rank)
    if not path.exists():
        return False
    with np.load(path, allow_pickle=False) as arrays:
        set_rng_state(rng_from_arrays({name: arrays[name] for name in arrays.files}))
    return True


def latest_tag(checkpoint_dir: Path) -> str | None:
    """The tag ``latest`` names; a name that is not ``step-<8 digits>`` (a tampered pointer that could
    lead out of the folder) is an integrity error."""
    latest = checkpoint_dir / "latest"
    tag = (latest.read_text().strip() or None) if latest.exists() else None
    if tag is not None and not TAG.fullmatch(tag):
        raise CheckpointIntegrityError(f"{latest} names {tag[:80]!r}, which is not a checkpoint tag (step-NNNNNNNN)")
    return tag


def mark_latest(checkpoint_dir: Path, tag: str) -> None:
    """Point ``latest`` at ``tag``: call once every rank has finished saving it."""
    tmp = checkpoint_dir / f".latest.{os.getpid()}.tmp"
    tmp.write_text(tag)
    os.replace(tmp, checkpoint_dir / "latest")


def prune(checkpoint_dir: Path, keep: int) -> list[str]:
    """Delete all but the newest ``keep`` tags (tags sort by step); never the one ``latest`` names."""
    current = latest_tag(checkpoint_dir)
    tags = sorted(p.name for p in checkpoint_dir.iterdir() if p.is_dir() and TAG.fullmatch(p.name))
    removed = [t for t in tags[:-keep] if t != current] if keep > 0 else []
    for tag in removed:
        remove_tree(checkpoint_dir, checkpoint_dir / tag)
    return removed


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _tag_files(tag_dir: Path) -> tuple[dict[str, Path], list[str]]:
    """Every file under ``tag_dir`` but the digest file (relative name -> path), and every symlink."""
    files, links = {}, []
    for folder, dirs, names in os.walk(tag_dir, followlinks=False):
        for name in [*dirs, *names]:
            path = Path(folder) / name
            relative = path.relative_to(tag_dir).as_posix()
            if path.is_symlink():
                links.append(relative)
            elif name in names and relative != DIGESTS:
                files[relative] = path
    return files, links


def record_digests(checkpoint_dir: Path, tag: str) -> Path:
    """Write ``<tag>/sha256.json``: the SHA-256 of every file the save wrote (all ranks, after DeepSpeed's
    closing barrier), replaced whole so that a kill leaves no half-written digest file."""
    tag_dir = checkpoint_dir / tag
    files, links = _tag_files(tag_dir)
    if links:
        raise CheckpointIntegrityError(f"{tag_dir}: symlinks in a checkpoint we just wrote: {links}")
    digests = {"tag": tag, "files": {name: file_sha256(path) for name, path in sorted(files.items())}}
    tmp = tag_dir / f".{DIGESTS}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(digests, indent=1))
    os.replace(tmp, tag_dir / DIGESTS)
    return tag_dir / DIGESTS


def verify_digests(checkpoint_dir: Path, tag: str) -> None:
    """Refuse (CheckpointIntegrityError naming the file) a checkpoint whose files are not exactly the
    ones recorded when it was saved: a changed, missing, added or symlinked file, or no record at all.
    Called before DeepSpeed's ``load_checkpoint``, which unpickles what it finds."""
    tag_dir = checkpoint_dir / tag
    record_path = tag_dir / DIGESTS
    try:
        record = json.loads(record_path.read_text())
        expected = {str(name): str(digest) for name, digest in record["files"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise CheckpointIntegrityError(
            f"{record_path}: no valid digest record ({type(error).__name__}); this checkpoint was not written by "
            f"this version of the pipeline or was altered: delete {checkpoint_dir} to start over"
        ) from None
    files, links = _tag_files(tag_dir)
    problems = [f"{name}: is a symlink" for name in links]
    problems += [f"{name}: not written by the save (unlisted)" for name in sorted(set(files) - set(expected))]
    problems += [f"{name}: missing" for name in sorted(set(expected) - set(files))]
    problems += [
        f"{name}: sha256 differs from the one recorded at save time"
        for name in sorted(set(files) & set(expected))
        if file_sha256(files[name]) != expected[name]
    ]
    if problems:
        raise CheckpointIntegrityError(
            f"checkpoint {tag_dir} was changed after it was saved, refusing to load it: " + "; ".join(problems)
        )


def atomic_torch_save(obj: object, path: Path) -> None:
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
