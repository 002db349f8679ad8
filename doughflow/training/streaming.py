"""Stream training batches from Parquet shards, so data of any size trains in bounded memory.

Shards are cut into pieces of ``piece_rows`` rows. Each epoch the pieces are permuted by
(seed, epoch), dealt round-robin to ranks, and each rank's pieces to its DataLoader workers. A worker
reads one piece at a time, keeps a shuffle buffer of *encoded* rows (a few KB each) and decodes and
augments only what it emits, in whole batches, so the training process receives ready uint8 batches.

Everything a worker does is a function of (seed, epoch, rank, worker) and the manifest's row counts,
and the DataLoader takes batches from workers round-robin, so the number of batches each worker has
delivered after k batches is known without running anything (:func:`worker_skips`): a resumed epoch
tells each worker how many batches to skip, and the worker skips them without decoding.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from doughflow.config import AugmentConfig, LoaderConfig
from doughflow.preprocessing import Preprocessing
from doughflow.training import augment

if TYPE_CHECKING:
    from doughflow.data.manifest import DataManifest

log = logging.getLogger(__name__)

# (sample id, encoded image or None, targets, targets all finite, (shard path, row in the shard))
Row = tuple[str, bytes | None, np.ndarray, bool, tuple[str, int]]


class CorruptShardError(RuntimeError):
    """A shard cannot be read or does not match its manifest checksum."""


class BadRowError(ValueError):
    """A row's image cannot be decoded or its labels are not finite numbers."""


@dataclass(frozen=True)
class ShardRef:
    path: str
    rows: int
    sha256: str = ""


@dataclass(frozen=True)
class Columns:
    id: str
    image: str
    targets: tuple[str, ...]


@dataclass(frozen=True)
class Piece:
    shard: int
    start: int
    stop: int

    @property
    def rows(self) -> int:
        return self.stop - self.start


def plan_pieces(shards: list[ShardRef], piece_rows: int) -> list[Piece]:
    return [
        Piece(i, start, min(start + piece_rows, shard.rows))
        for i, shard in enumerate(shards)
        for start in range(0, shard.rows, piece_rows)
    ]


def assign_pieces(
    pieces: list[Piece], *, seed: int, epoch: int, shuffle: bool, world_size: int, num_workers: int
) -> list[list[list[Piece]]]:
    """[rank][worker] -> pieces for one epoch."""
    order = np.random.default_rng([seed, epoch]).permutation(len(pieces)) if shuffle else np.arange(len(pieces))
    workers = max(1, num_workers)
    ranks = [[pieces[i] for i in order[r::world_size]] for r in range(world_size)]
    return [[rank_pieces[w::workers] for w in range(workers)] for rank_pieces in ranks]


def batch_counts(assignment: list[list[list[Piece]]], batch_size: int, drop_remainder: bool) -> list[list[int]]:
    """[rank][worker] -> batches that worker yields (assuming no bad rows)."""

    def count(rows: int) -> int:
        return rows // batch_size if drop_remainder else -(-rows // batch_size)

    return [[count(sum(p.rows for p in worker)) for worker in rank] for rank in assignment]


def worker_skips(counts: list[int], batches_done: int) -> list[int]:
    """How many batches each worker delivered once the DataLoader handed out ``batches_done``.

    The DataLoader takes one batch from each worker that still has one, in worker order (an
    exhausted worker is dropped from the cycle), so this is a plain simulation of that cycle.
    """
    return resume_plan(counts, batches_done)[0]


def resume_plan(counts: list[int], batches_done: int) -> tuple[list[int], int]:
    """(batches each worker already delivered, the worker whose batch comes next).

    A fresh DataLoader starts its cycle at worker 0, so a resumed epoch rotates the workers' roles
    to make the cycle continue where the interrupted one stopped.
    """
    done = [0] * len(counts)
    remaining, position = batches_done, 0
    while remaining > 0:
        progressed = False
        for w in range(len(counts)):
            if remaining == 0:
                break
            if done[w] < counts[w]:
                done[w] += 1
                remaining -= 1
                progressed = True
                position = (w + 1) % len(counts)
        if not progressed:
            raise ValueError(f"cannot skip {batches_done} batches: the workers only have {sum(counts)}")
    return done, position


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_piece(path: str, piece: Piece, columns: Columns) -> pa.Table:
    """Rows [start, stop) of a shard, reading only the row groups that hold them."""
    try:
        handle = pq.ParquetFile(path)
        groups: list[int] = []
        first: int | None = None
        offset = 0
        for g in range(handle.metadata.num_row_groups):
            n = handle.metadata.row_group(g).num_rows
            if offset < piece.stop and offset + n > piece.start:
                groups.append(g)
                first = offset if first is None else first
            offset += n
        if offset < piece.stop:
            raise ValueError(f"has {offset} rows, the manifest promised at least {piece.stop}")
        table = handle.read_row_groups(groups, columns=[columns.id, columns.image, *columns.targets], use_threads=False)
        return table.slice(piece.start - (piece.start if first is None else first), piece.rows)  # None: no rows
    except CorruptShardError:
        raise
    except Exception as error:  # pyarrow raises several types for a damaged file; name the shard whatever it was
        raise CorruptShardError(
            f"cannot read shard {path} rows {piece.start}-{piece.stop}: {type(error).__name__}: {error}"
        ) from error


class ParquetStream(IterableDataset):
    """Whole uint8 batches from this rank's share of the shards; see the module docstring.

    Each item is a dict: ``images`` (B x H x W x 3 uint8 tensor), ``targets`` (B x K float32),
    ``ids`` (list of sample ids), ``bad_rows`` (rows this worker skipped so far), ``worker``.
    """

    def __init__(
        self,
        shards: list[ShardRef],
        columns: Columns,
        preprocessing: Preprocessing,
        *,
        batch_size: int,
        loader: LoaderConfig,
        seed: int = 0,
        shuffle: bool = True,
        augment_cfg: AugmentConfig | None = None,
        rank: int = 0,
        world_size: int = 1,
        drop_remainder: bool = True,
    ) -> None:
        super().__init__()
        self.shards = shards
        self.columns = columns
        self.preprocessing = preprocessing
        self.batch_size = batch_size
        self.loader = loader
        self.seed = seed
        self.shuffle = shuffle
        self.augment_cfg = augment_cfg if augment_cfg is not None and augment.enabled(augment_cfg) else None
        self.rank = rank
        self.world_size = world_size
        self.drop_remainder = drop_remainder
        self.pieces = plan_pieces(shards, loader.piece_rows)
        self.epoch = 0
        self.skip_batches = 0

    # -- the plan, identical in every process -------------------------------------------------
    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        """Call before iterating (workers are forked with this state)."""
        self.epoch = epoch
        self.skip_batches = skip_batches

    def assignment(self, epoch: int) -> list[list[list[Piece]]]:
        return assign_pieces(
            self.pieces,
            seed=self.seed,
            epoch=epoch,
            shuffle=self.shuffle,
            world_size=self.world_size,
            num_workers=self.loader.num_workers,
        )

    def counts(self, epoch: int) -> list[list[int]]:
        return batch_counts(self.assignment(epoch), self.batch_size, self.drop_remainder)

    def steps_per_epoch(self, epoch: int) -> int:
        """Batches every rank can deliver: the minimum over ranks, so no rank waits for a missing peer."""
        return min(sum(rank) for rank in self.counts(epoch))

    # -- the worker side ----------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        counts = self.counts(self.epoch)[self.rank]
        skips, first = resume_plan(counts, self.skip_batches)
        worker = (info.id + first) % len(counts) if info is not None else 0
        pieces = self.assignment(self.epoch)[self.rank][worker]
        skip = skips[worker] * self.batch_size
        shuffle_rng = np.random.default_rng([self.seed, self.epoch, self.rank, worker, 1])
        draws = augment.ParamStream(np.random.default_rng([self.seed, self.epoch, self.rank, worker, 2]))
        rows = self._rows(pieces)
        if self.shuffle:
            rows = self._shuffled(rows, shuffle_rng)
        batch = _BatchBuffer(self.batch_size, len(self.columns.targets), shared=info is not None)
        bad = 0
        emitted = 0
        # With on_bad_row=skip a skipped row shifts later batches, so resuming must decode the skipped
        # part too to stay exact; otherwise skipping needs no decode at all.
        decode_skipped = self.loader.on_bad_row == "skip"
        for sample_id, data, target, finite, where in rows:
            augmentation = (draws.next(), self.augment_cfg) if self.augment_cfg else None
            if emitted < skip and not decode_skipped:
                emitted += 1
                continue
            try:
                if not finite:
                    raise BadRowError(f"labels {target.tolist()} are not finite")
                if data is None:
                    raise BadRowError("the image is null")
                pixels = self.preprocessing.decode(data)
            except Exception as error:
                bad += 1
                message = f"bad row in shard {where[0]} row {where[1]} (id {sample_id!r}): {error}"
                if self.loader.on_bad_row == "fail" or bad > self.loader.max_bad_rows:
                    raise BadRowError(
                        message
                        + (
                            ""
                            if self.loader.on_bad_row == "fail"
                            else f"; more than train.loader.max_bad_rows={self.loader.max_bad_rows} skipped"
                        )
                    ) from error
                log.warning("skipping %s (%d skipped by this worker)", message, bad)
                continue
            emitted += 1
            if emitted <= skip:
                continue
            batch.add(pixels, augmentation, target, sample_id)
            if batch.full:
                yield batch.take(bad, worker)
        if batch.rows and not self.drop_remainder:
            yield batch.take(bad, worker)

    def _rows(self, pieces: list[Piece]) -> Iterator[Row]:
        for piece in pieces:
            shard = self.shards[piece.shard]
            try:
                # Only the worker holding a shard's first piece hashes it: once per shard and epoch, not per piece.
                if self.loader.verify_checksums and shard.sha256 and piece.start == 0:
                    actual = file_sha256(shard.path)
                    if actual != shard.sha256:
                        raise CorruptShardError(
                            f"shard {shard.path} has sha256 {actual[:12]}..., the split manifest "
                            f"says {shard.sha256[:12]}...: the file changed or is damaged"
                        )
                table = read_piece(shard.path, piece, self.columns)
            except CorruptShardError as error:
                if self.loader.on_bad_row == "fail":
                    raise
                log.warning("skipping %d rows: %s", piece.rows, error)
                continue
            ids = [str(i) for i in table.column(self.columns.id).to_pylist()]
            data = table.column(self.columns.image).to_pylist()
            targets = np.stack(
                [table.column(c).to_numpy(zero_copy_only=False).astype(np.float32) for c in self.columns.targets],
                axis=1,
            )
            finite = np.isfinite(targets).all(axis=1).tolist()
            for k in range(len(ids)):
                yield ids[k], data[k], targets[k], finite[k], (shard.path, piece.start + k)

    def _shuffled(self, rows: Iterator[Row], rng: np.random.Generator) -> Iterator[Row]:
        buffer: list[Row] = []
        size = self.loader.shuffle_buffer
        picks: list[int] = []
        next_pick = 0
        for item in rows:
            if len(buffer) < size:
                buffer.append(item)
                continue
            if next_pick == len(picks):  # a full buffer has a fixed size: draw its slots in blocks
                picks, next_pick = rng.integers(size, size=1024).tolist(), 0
            j = picks[next_pick]
            next_pick += 1
            yield buffer[j]
            buffer[j] = item
        while buffer:
            j = int(rng.integers(len(buffer)))
            buffer[j], buffer[-1] = buffer[-1], buffer[j]
            yield buffer.pop()


class _BatchBuffer:
    """One batch being filled in place: images go straight into their slot (no list, no np.stack).

    In a loader worker the image tensor is allocated in shared memory, so handing the batch to the
    training process copies nothing more (the DataLoader would otherwise move it there, a copy).
    """

    def __init__(self, batch_size: int, target_width: int, shared: bool) -> None:
        self.batch_size = batch_size
        self.target_width = target_width
        self.shared = shared
        self._fresh()

    def _fresh(self) -> None:
        self.images: torch.Tensor | None = None
        self.pixels: np.ndarray | None = None
        self.targets = np.empty((self.batch_size, self.target_width), dtype=np.float32)
        self.ids: list[str] = []

    @property
    def rows(self) -> int:
        return len(self.ids)

    @property
    def full(self) -> bool:
        return len(self.ids) == self.batch_size

    def add(
        self,
        pixels: np.ndarray,
        augmentation: tuple[augment.Params, AugmentConfig] | None,
        target: np.ndarray,
        sample_id: str,
    ) -> None:
        shape = augment.output_shape(pixels.shape, *augmentation) if augmentation is not None else pixels.shape
        if self.pixels is None:
            self.images = torch.empty((self.batch_size, *shape), dtype=torch.uint8)
            if self.shared:
                self.images.share_memory_()
            self.pixels = self.images.numpy()
        elif tuple(shape) != self.pixels.shape[1:]:
            raise BadRowError(
                f"sample {sample_id!r} decodes to {tuple(shape)}, the batch holds {self.pixels.shape[1:]}"
            )
        slot = self.pixels[len(self.ids)]
        if augmentation is not None:
            augment.apply_into(pixels, *augmentation, slot)
        else:
            slot[...] = pixels
        self.targets[len(self.ids)] = target
        self.ids.append(sample_id)

    def take(self, bad: int, worker: int) -> dict[str, Any]:
        assert self.images is not None, "take() follows at least one add()"
        n = len(self.ids)
        batch = {
            "images": self.images[:n],
            "targets": torch.from_numpy(self.targets[:n]),
            "ids": self.ids,
            "bad_rows": bad,
            "worker": worker,
        }
        self._fresh()
        return batch


def _worker_init(_: int) -> None:
    # Workers decode; the training process owns the cores' math threads.
    torch.set_num_threads(1)


def make_loader(stream: ParquetStream, loader: LoaderConfig, device: torch.device) -> DataLoader:
    workers = loader.num_workers
    return DataLoader(
        stream,
        batch_size=None,
        num_workers=workers,
        worker_init_fn=_worker_init if workers else None,
        pin_memory=loader.pin_memory and device.type == "cuda",
        prefetch_factor=loader.prefetch_factor if workers else None,
        persistent_workers=False,
    )


def shard_refs(manifest: DataManifest) -> list[ShardRef]:
    """ShardRefs from a split DataManifest (path, rows and sha256 of each shard)."""
    return [ShardRef(str(Path(s.path)), int(s.rows), getattr(s, "sha256", "") or "") for s in manifest.shards]
