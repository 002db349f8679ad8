"""The DeepSpeed engine set-up: a training step that never makes the host wait, with the same result.

A GPU is not needed to see a host wait: :class:`HostSyncRecorder` records the calls that would drain
a GPU's queue (value reads, blocking uploads, device synchronize) on the CPU as well.
"""

from __future__ import annotations

import deepspeed
import pytest
import torch
from deepspeed.accelerator import get_accelerator

from doughflow.preprocessing import Preprocessing
from doughflow.training.engine import backward_step, build_engine, deepspeed_config, forward_loss, full_state_dict
from doughflow.training.host_sync import HostSyncRecorder, optimizer_step_counters
from doughflow.training.inference import make_model
from doughflow.training.losses import LossLog, problem_loss
from doughflow.training.normalize import Normalizer
from doughflow.training.process import ensure_single_process_env, quiet_deepspeed
from doughflow.training.schedule import lr_factor
from tests.support.configs import tiny_train_config

DEVICE = torch.device("cpu")
STEPS = 4  # DeepSpeed's throughput timer starts synchronizing at its second global step


@pytest.fixture(scope="module", autouse=True)
def single_process_group():
    quiet_deepspeed()  # no JIT build of the shm op (see doughflow.training.process)
    ensure_single_process_env()


def _batches(count: int, size: int = 8, pixels: int = 32):
    generator = torch.Generator().manual_seed(0)
    return [
        (
            torch.randint(0, 256, (size, pixels, pixels, 3), dtype=torch.uint8, generator=generator),
            torch.randint(0, 4, (size, 5), generator=generator).float(),
        )
        for _ in range(count)
    ]


def _parts(cfg):
    torch.manual_seed(cfg.seed)
    model = make_model(cfg, 5)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg, 100))
    return model, optimizer, scheduler


def _doughflow_engine(cfg):
    model, optimizer, scheduler = _parts(cfg)
    return build_engine(model, optimizer, scheduler, cfg, DEVICE, world_size=1), optimizer


def _deepspeed_defaults_engine(cfg):
    """What a plain ``deepspeed.initialize`` with the same settings gives: its own clip, timers and all-reduce."""
    model, optimizer, scheduler = _parts(cfg)
    config = {k: v for k, v in deepspeed_config(cfg, DEVICE).items() if k != "timers"}
    engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=scheduler, config=config)
    return engine, optimizer


def _step(engine, images, targets, normalize, losses: LossLog) -> None:
    """The loop's micro-step, in the loop's order, with the loss log a GPU run uses."""
    loss = forward_loss(engine, images, targets, normalize, DEVICE, lambda out, tgt: problem_loss("count", out, tgt))
    backward_step(engine, loss)
    losses.add(loss, "test", [])


def _record_last_step(engine, optimizer, batches) -> list:
    normalize = Normalizer(Preprocessing(32), DEVICE)
    losses = LossLog(lazy=True, history=[])
    for images, targets in batches[:-1]:
        _step(engine, images, targets, normalize, losses)
    with HostSyncRecorder(DEVICE, optimizer_step_counters(optimizer)) as recorder:
        _step(engine, *batches[-1], normalize, losses)
    assert len(losses.pending) == len(batches) and losses.flush() is not None  # the reads wait for the log interval
    return recorder.syncs


def test_doughflow_step_never_waits_for_the_device():
    cfg = tiny_train_config(gradient_clipping=0.05, model={"name": "resnet", "width": 8})
    engine, optimizer = _doughflow_engine(cfg)
    syncs = _record_last_step(engine, optimizer, _batches(STEPS))
    assert syncs == [], "host waits in a training step: " + "; ".join(map(str, syncs))
    assert engine.global_steps == STEPS


def test_deepspeed_defaults_wait_and_the_recorder_sees_where():
    cfg = tiny_train_config(gradient_clipping=0.05, model={"name": "resnet", "width": 8})
    engine, optimizer = _deepspeed_defaults_engine(cfg)
    syncs = _record_last_step(engine, optimizer, _batches(STEPS))
    kinds = {s.kind for s in syncs}
    assert "synchronize" in kinds, syncs  # the throughput timer, at forward and at step
    assert "tensor(device=cpu)" in kinds, syncs  # ZeRO-0 clipping builds max_norm on the device
    assert all("deepspeed/" in s.where for s in syncs), syncs


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_sync_free_engine_trains_like_deepspeed_defaults(precision):
    cfg = tiny_train_config(gradient_clipping=0.05, precision=precision, model={"width": 8})
    batches = _batches(STEPS)
    weights = {}
    for name, build in (("doughflow", _doughflow_engine), ("deepspeed", _deepspeed_defaults_engine)):
        engine, _ = build(cfg)
        normalize = Normalizer(Preprocessing(32), DEVICE)
        for images, targets in batches:
            _step(engine, images, targets, normalize, LossLog(lazy=False, history=[]))
        weights[name] = {k: v.detach().clone() for k, v in engine.module.state_dict().items()}
    unclipped, _ = _doughflow_engine(tiny_train_config(gradient_clipping=0.0, precision=precision, model={"width": 8}))
    for images, targets in batches:
        _step(unclipped, images, targets, Normalizer(Preprocessing(32), DEVICE), LossLog(lazy=False, history=[]))
    for key, value in weights["deepspeed"].items():
        torch.testing.assert_close(weights["doughflow"][key], value, rtol=1e-5, atol=1e-6, msg=key)
    moved = max(
        float((unclipped.module.state_dict()[k] - v).abs().max())
        for k, v in weights["doughflow"].items()
        if v.is_floating_point()
    )
    assert moved > 1e-4, "the clip never engaged, so the comparison proves nothing"


def test_deepspeed_monitors_pass_through_and_the_step_still_never_waits(tmp_path):
    """DeepSpeed's CSV monitor, enabled through train.deepspeed.monitor, writes its learning-rate event
    at every optimizer step of our engine (throughput timer off), and adds no host wait to a step."""
    out_dir = tmp_path / "pizza-run1" / "train"
    cfg = tiny_train_config(gradient_clipping=0.05, deepspeed={"monitor": {"csv_monitor": {"enabled": True}}})
    assert deepspeed_config(cfg, DEVICE, str(out_dir))["csv_monitor"] == {
        "enabled": True,
        "output_path": str(out_dir / "monitor"),
        "job_name": "pizza-run1",
    }
    model, optimizer, scheduler = _parts(cfg)
    engine = build_engine(model, optimizer, scheduler, cfg, DEVICE, world_size=1, out_dir=str(out_dir))
    assert engine.monitor.enabled
    syncs = _record_last_step(engine, optimizer, _batches(STEPS))
    assert syncs == [], "host waits in a training step: " + "; ".join(map(str, syncs))
    rows = (out_dir / "monitor" / "pizza-run1" / "Train_Samples_lr.csv").read_text().splitlines()
    assert rows[0] == "step,lr" and [int(row.split(",")[0]) for row in rows[1:]] == [
        16 * (i + 1) for i in range(STEPS)
    ]  # micro batch 16


def test_single_process_zero0_skips_the_identity_allreduce_only():
    engine, _ = _doughflow_engine(tiny_train_config())
    assert engine.enable_backward_allreduce is False
    zero1, _ = _doughflow_engine(tiny_train_config(zero_stage=1))
    assert zero1.enable_backward_allreduce is True  # ZeRO's optimizer needs its reduce hooks even alone


def test_recorder_catches_reads_uploads_and_synchronize_and_restores():
    accelerator = get_accelerator()
    counter = torch.zeros(())
    value = torch.ones(3)
    with HostSyncRecorder(DEVICE, host_tensors=[counter]) as recorder:
        value.sum().item()
        bool(value.sum() > 0)
        float(value.mean())
        value.tolist()
        torch.tensor([1.0], device=DEVICE)
        torch.tensor([1.0])  # stays on the host: no upload
        torch.zeros(3, device=DEVICE)  # allocated on the device, nothing copied
        counter.item()  # a host-side counter
        accelerator.synchronize()
    assert [s.kind for s in recorder.syncs] == [
        "item",
        "__bool__",
        "__float__",
        "tolist",
        "tensor(device=cpu)",
        "synchronize",
    ]
    assert all(s.where.startswith("unit/training/test_engine.py:") for s in recorder.syncs), recorder.syncs
    assert "synchronize" not in vars(accelerator)


def test_full_state_dict_is_a_detached_cpu_copy_of_the_weights():
    engine, _ = _doughflow_engine(tiny_train_config())
    weights = full_state_dict(engine, zero_stage=0)
    module = engine.module.state_dict()
    assert weights.keys() == module.keys()
    assert all(
        torch.equal(weights[k], v) and weights[k].device.type == "cpu" and not weights[k].requires_grad
        for k, v in module.items()
    )
    next(iter(weights.values())).add_(1.0)
    assert not torch.equal(next(iter(weights.values())), next(iter(module.values()))), "a copy, not a view"
