"""Entry point of one training process: ``python -m doughflow.training.entry JOB.json``.

The launcher (torchrun or deepspeed) starts one per rank with RANK/WORLD_SIZE/MASTER_* set; alone
it trains as world size 1. A rank that fails writes its error to ``<out_dir>/errors/rank<N>.json``
so the task can report the real cause instead of the launcher's exit code.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from pathlib import Path


def die_with_parent() -> None:
    """Linux: SIGKILL this rank when its launcher dies. torchrun starts ranks in sessions of their own,
    so killing the launcher's process group alone would leave them training as orphans."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the launcher died before the line above ran
        os._exit(1)


def main(argv: list[str] | None = None) -> int:
    die_with_parent()
    args = [a for a in (argv if argv is not None else sys.argv[1:]) if not a.startswith("--local_rank")]
    if len(args) != 1:
        print("usage: python -m doughflow.training.entry JOB.json", file=sys.stderr)
        return 2
    from doughflow.training.job import TrainJob
    from doughflow.training.loop import run_training

    job = TrainJob.from_json(Path(args[0]).read_text())
    rank = os.environ.get("RANK", "0")
    logging.basicConfig(level=logging.INFO, format=f"[rank {rank}] %(levelname)s %(name)s: %(message)s")
    try:
        run_training(job)
    except BaseException as error:
        errors = Path(job.out_dir) / "errors"
        errors.mkdir(parents=True, exist_ok=True)
        (errors / f"rank{rank}.json").write_text(
            json.dumps(
                {
                    "rank": int(rank),
                    "type": type(error).__name__,
                    "message": str(error),
                    "traceback": traceback.format_exc(),
                }
            )
        )
        raise
    leave_process_group()
    return 0


def leave_process_group() -> None:
    """Destroy this rank's process group before the interpreter shuts down. Left to finalization,
    gloo's worker threads can still hold tensors whose release needs the GIL while the interpreter is
    being torn down, and the rank dies with SIGABRT ("terminate called without an active exception";
    pytorch/pytorch#190489). That happened once in CI to rank 1 of a 2-process run that had finished
    training: its launcher reported the job failed. Every rank is past its last collective here."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
