"""The training contract: what a training process is given (:class:`TrainJob`) and what it hands back.

A job is plain JSON so that ranks a launcher starts (torchrun, deepspeed) in fresh processes, possibly
on other hosts, train on exactly the job the task built: :mod:`doughflow.training.launch` writes
``<out_dir>/job.json`` and :mod:`doughflow.training.entry` reads it. Rank 0 writes ``result.json``
beside the weights; the task reads it back with :func:`load_result` whether training ran in its own
process or under a launcher.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from doughflow.config import TrainConfig
from doughflow.preprocessing import Preprocessing
from doughflow.training import checkpoint as ckpt
from doughflow.training.streaming import Columns, ShardRef

JOB_FILE = "job.json"
RESULT_FILE = "result.json"

# Launcher settings and logging choices do not change what is trained, so a resume may change them.
_NOT_PART_OF_A_RUN: dict[str, set[str] | bool] = {
    "launcher": {"isolate", "master_port", "master_addr", "timeout_minutes", "launcher", "hostfile"},
    "log_every_steps": True,
    "num_threads": True,
}


@dataclass
class TrainResult:
    """What rank 0 reports after training: where the outputs are, and how the run went."""

    model_path: str
    history_path: str
    ds_config_path: str
    epochs_run: int
    resumed_from_epoch: int
    first_loss: float
    final_loss: float
    best_epoch: int
    seconds: float
    images_per_second: float
    history: dict = field(default_factory=dict)
    resumed_from_step: int = 0
    global_steps: int = 0
    world_size: int = 1
    stopped_early: bool = False
    skipped_steps: int = 0
    bad_rows: int = 0
    weights_sha256: str = ""
    recipe: dict = field(default_factory=dict)  # doughflow.training.recipe.Recipe.as_dict(): what the run trained with


@dataclass
class TrainJob:
    """Everything a training process needs, JSON-serialisable so launched ranks can read it."""

    train_shards: list[ShardRef]
    val_shards: list[ShardRef]
    columns: Columns
    num_classes: int
    cfg: TrainConfig
    preprocessing: Preprocessing
    out_dir: str
    data_fingerprint: str = ""
    # A folder for the epoch handshake with a tuner (doughflow.training.control); empty: none.
    control_dir: str = ""
    problem: str = (
        "count"  # count: MSE on counts; classification: cross-entropy on logits (see doughflow.data.adapters)
    )

    def to_json(self) -> str:
        return json.dumps(
            {
                "train_shards": [asdict(s) for s in self.train_shards],
                "val_shards": [asdict(s) for s in self.val_shards],
                "columns": asdict(self.columns),
                "num_classes": self.num_classes,
                "cfg": self.cfg.model_dump(mode="json"),
                "preprocessing": asdict(self.preprocessing),
                "out_dir": self.out_dir,
                "data_fingerprint": self.data_fingerprint,
                "control_dir": self.control_dir,
                "problem": self.problem,
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> TrainJob:
        raw = json.loads(text)
        columns = raw["columns"]
        pre = raw["preprocessing"]
        return cls(
            [ShardRef(**s) for s in raw["train_shards"]],
            [ShardRef(**s) for s in raw["val_shards"]],
            Columns(columns["id"], columns["image"], tuple(columns["targets"])),
            raw["num_classes"],
            TrainConfig.model_validate(raw["cfg"]),
            Preprocessing(pre["image_size"], tuple(pre["mean"]), tuple(pre["std"]), pre.get("problem", "count")),
            raw["out_dir"],
            raw.get("data_fingerprint", ""),
            raw.get("control_dir", ""),
            raw.get("problem", "count"),
        )


def resume_fingerprint(job: TrainJob, world_size: int) -> str:
    """Hash of what a resumed run must share with the run that wrote the checkpoint.

    Config (less launcher and logging settings), training shards, data fingerprint, world size and
    classes. The problem enters only when it is not ``count``, under the key ``task`` (its name when
    the first checkpoints were written), so those checkpoints still resume.
    """
    return ckpt.fingerprint(
        {
            "cfg": job.cfg.model_dump(mode="json", exclude=_NOT_PART_OF_A_RUN),
            "data": [asdict(s) for s in job.train_shards],
            "fingerprint": job.data_fingerprint,
            "world_size": world_size,
            "num_classes": job.num_classes,
            **({"task": job.problem} if job.problem != "count" else {}),
        }
    )


def write_result(result: TrainResult, out_dir: str | Path) -> None:
    (Path(out_dir) / RESULT_FILE).write_text(json.dumps(asdict(result)))


def load_result(out_dir: str | Path) -> TrainResult:
    return TrainResult(**json.loads((Path(out_dir) / RESULT_FILE).read_text()))
