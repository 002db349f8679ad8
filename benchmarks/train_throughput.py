"""Training throughput: the pipeline's trainer streaming Parquet shards vs a plain torch loop.

Both train the same model with the same optimizer (AdamW), LR schedule, clipping, precision and batch
size for the same number of steps; the plain loop indexes random batches from float tensors that are
already in memory (on the device), which is the best a loader can hope to match. Both rates leave
out the first warm-up steps. One command on any machine; it draws its own pizza shards:

    python benchmarks/train_throughput.py                                   # CPU defaults
    python benchmarks/train_throughput.py --device cuda --model resnet --image-size 128 \
        --batch-size 256 --steps 300 --precision bf16 --num-workers 12

Needs only torch, deepspeed, pyarrow, numpy and pillow (no Prefect). Prints a table, then one JSON
line: {"pipeline_img_s", "plain_img_s", "ratio", "device", ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from doughflow.config import TrainConfig  # noqa: E402
from doughflow.preprocessing import Preprocessing  # noqa: E402
from doughflow.training.inference import make_model  # noqa: E402
from doughflow.training.job import TrainJob  # noqa: E402
from doughflow.training.loop import run_training  # noqa: E402
from doughflow.training.process import resolve_device  # noqa: E402
from doughflow.training.schedule import lr_factor, settled_micro_batch  # noqa: E402
from doughflow.training.streaming import ShardRef  # noqa: E402
from tests.support.sample_data import pizza_columns, pizza_shards  # noqa: E402


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--model", default="density_cnn")
    parser.add_argument(
        "--width", type=int, default=None, help="model width (default: 24 for density_cnn, 64 for resnet)"
    )
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=60, help="measured training steps per path")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--zero-stage", type=int, default=0)
    parser.add_argument(
        "--num-workers", type=int, default=None, help="loader workers (default: 1 on CPU, min(12, cores-2) on GPU)"
    )
    parser.add_argument(
        "--unique-images", type=int, default=2048, help="distinct images drawn; shards repeat to cover the steps"
    )
    parser.add_argument(
        "--repeats", type=int, default=1, help="alternate pipeline/plain this many times; report medians"
    )
    parser.add_argument("--data-dir", default=None, help="where to draw shards (default: a temporary folder)")
    return parser.parse_args(argv)


def pipeline_run(args: argparse.Namespace, device: torch.device, shards: list[ShardRef], out_dir: Path) -> dict:
    cfg = TrainConfig.model_validate(
        {
            "model": {"name": args.model, "width": args.width},
            "epochs": 1,
            "micro_batch_size": args.batch_size,
            "zero_stage": args.zero_stage,
            "precision": args.precision,
            "device": device.type,
            "warmup_steps": 10,
            "checkpoint_every_steps": 0,
            "log_every_steps": 50,
            "loader": {"num_workers": args.num_workers, "piece_rows": 256, "shuffle_buffer": 1024},
        }
    )
    # Repeat the drawn shards and trim the last one so the epoch holds about --steps batches.
    rows_needed = args.steps * args.batch_size + args.num_workers * args.batch_size
    refs, total = [], 0
    while total < rows_needed:
        for shard in shards:
            take = min(shard.rows, rows_needed - total)
            if take <= 0:
                break
            refs.append(ShardRef(shard.path, take, shard.sha256 if take == shard.rows else ""))
            total += take
    job = TrainJob(refs, [], pizza_columns(), 5, cfg, Preprocessing(args.image_size), str(out_dir))
    result = run_training(job)
    assert result is not None, "a single-process run returns its result"
    epoch = result.history["epoch"][-1]
    return {
        "img_s": epoch.get("steady_img_s", epoch["img_s"]),
        "steps": result.global_steps,
        "measured_steps": epoch.get("steady_steps", result.global_steps),
        "cfg": cfg,
    }


def in_memory(
    args: argparse.Namespace, device: torch.device, shards: list[ShardRef]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every drawn image decoded and normalised once, as float tensors on the device."""
    import pyarrow.parquet as pq

    pre = Preprocessing(args.image_size)
    images = np.stack(
        [pre.decode(b) for s in shards for b in pq.read_table(s.path, columns=["image"]).column("image").to_pylist()]
    )
    columns = pizza_columns().targets
    targets = np.concatenate(
        [
            np.stack(
                [pq.read_table(s.path, columns=list(columns)).column(c).to_numpy().astype(np.float32) for c in columns],
                axis=1,
            )
            for s in shards
        ]
    )
    data = pre.to_tensor(torch.from_numpy(images)).to(device)
    return data, torch.from_numpy(targets).to(device)


def plain_run(device: torch.device, data: torch.Tensor, labels: torch.Tensor, cfg: TrainConfig, steps: int) -> float:
    """The reference: same model and optimisation, random batches from device-resident float tensors."""
    torch.manual_seed(cfg.seed)
    model = make_model(cfg, labels.shape[1]).to(device)
    if device.type == "cuda":
        # Module.to takes memory_format at run time; its typed overloads leave it out
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg, steps))
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[cfg.precision]
    generator = torch.Generator(device="cpu").manual_seed(0)
    warm = min(10, max(1, steps // 5))
    micro_batch = settled_micro_batch(cfg)
    start = None
    for step in range(steps):
        index = torch.randint(0, len(data), (micro_batch,), generator=generator).to(device)
        batch = data[index]
        if device.type == "cuda":
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            out = model(batch)
        loss = torch.nn.functional.mse_loss(out.float(), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.gradient_clipping)
        optimizer.step()
        scheduler.step()
        if step + 1 == warm:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
    if device.type == "cuda":
        torch.cuda.synchronize()
    assert start is not None, "steps must exceed the warm-up steps"
    return (steps - warm) * micro_batch / (time.perf_counter() - start)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    device = resolve_device(args.device)
    if args.width is None:
        args.width = 64 if args.model == "resnet" else 24
    if args.num_workers is None:
        args.num_workers = 1 if device.type == "cpu" else max(1, min(12, (os.cpu_count() or 4) - 2))
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(args.data_dir) if args.data_dir else Path(tmp) / "shards"
        started = time.perf_counter()
        shards = pizza_shards(
            data_dir,
            args.unique_images,
            image_size=args.image_size,
            rows_per_shard=512,
            workers=min(8, os.cpu_count() or 1),
        )
        print(
            f"drew {args.unique_images} pizzas at {args.image_size}px in {time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
        data, labels = in_memory(args, device, shards)
        # Alternate the two paths so that a neighbour's load on a shared machine hits both alike.
        pipe_rates, plain_rates = [], []
        for repeat in range(args.repeats):
            pipe = pipeline_run(args, device, shards, Path(tmp) / f"run{repeat}")
            pipe_rates.append(pipe["img_s"])
            plain_rates.append(plain_run(device, data, labels, pipe["cfg"], pipe["steps"]))
        pipe["img_s"] = float(np.median(pipe_rates))
        plain = float(np.median(plain_rates))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    rows = [("pipeline (DeepSpeed + Parquet stream)", pipe["img_s"]), ("plain torch (in-memory tensors)", plain)]
    print(
        f"\n{args.model} {args.image_size}px batch {args.batch_size} {args.precision} ZeRO-{args.zero_stage}, "
        f"{pipe['steps']} steps ({pipe['measured_steps']} timed), {args.num_workers} loader workers, {name}"
    )
    print(f"{'path':<40} {'img/s':>10}  {'each repeat':<30}")
    for (label, value), each in zip(rows, (pipe_rates, plain_rates)):
        print(f"{label:<40} {value:>10.1f}  {' '.join(f'{v:.1f}' for v in each):<30}")
    summary = {
        "pipeline_img_s": round(pipe["img_s"], 1),
        "plain_img_s": round(plain, 1),
        "ratio": round(pipe["img_s"] / plain, 3),
        "device": name,
        "model": args.model,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "precision": args.precision,
        "steps": pipe["steps"],
        "num_workers": args.num_workers,
        "repeats": args.repeats,
    }
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
