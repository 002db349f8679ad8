"""``micro_batch_size: auto``: the search, the GPU probe driven by a real CPU step under a memory cap,
the CPU budget, the global batch kept, the data cap, and reuse on resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from doughflow.preprocessing import Preprocessing
from doughflow.training.footprint import StepProbe
from doughflow.training.inference import make_model
from doughflow.training.job import TrainJob
from doughflow.training.loop import training_stream
from doughflow.training.micro_batch import CHOICE_FILE, GB, largest_fitting, probe_largest, settle_batch
from doughflow.training.process import ProcessContext
from tests.support.configs import tiny_train_config
from tests.support.sample_data import pizza_columns

CPU = torch.device("cpu")
ALONE = ProcessContext(rank=0, world_size=1, local_rank=0, device=CPU)


@settings(max_examples=300, deadline=None)
@given(threshold=st.integers(0, 5000), start=st.integers(1, 512), limit=st.integers(1, 4096))
def test_search_finds_the_largest_size_that_fits_in_few_trials(threshold, start, limit):
    tried: list[int] = []

    def fits(size: int) -> bool:
        tried.append(size)
        return size <= threshold

    assert largest_fitting(fits, start, limit) == min(threshold, limit)
    assert len(tried) == len(set(tried)) <= 2 * limit.bit_length() + 2  # doubling, then bisection
    assert all(1 <= size <= limit for size in tried)


def test_gpu_probe_backs_off_from_a_real_out_of_memory_step():
    """The GPU path's search, driven by a real CPU step that runs out of memory like a device of 30 MB."""
    cap = 30_000_000
    model = make_model(tiny_train_config(), 5)
    probe = StepProbe(model, Preprocessing(64), 5, "count", CPU, "fp32", cap=cap)
    allowed = 0.9 * cap  # headroom 0.1
    chosen, trials = probe_largest(probe, allowed, start=16, limit=4096)
    measure = StepProbe(model, Preprocessing(64), 5, "count", CPU, "fp32")  # no cap: the true need
    assert measure.peak_bytes(chosen) + measure.static_bytes() <= allowed
    assert measure.peak_bytes(chosen + 1) + measure.static_bytes() > allowed
    outcomes = {t["outcome"] for t in trials}
    assert "out of memory" in outcomes and "fits" in outcomes  # it ran out, backed off and bisected
    assert trials[0]["micro_batch"] == 16 and chosen == max(t["micro_batch"] for t in trials if t["outcome"] == "fits")


def _job(shards, out_dir: Path, **overrides) -> TrainJob:
    cfg = tiny_train_config(**{"micro_batch_size": "auto", "epochs": 1, **overrides})
    return TrainJob(shards[:2], [], pizza_columns(), 5, cfg, Preprocessing(64), str(out_dir), "fp")


def _steps(job: TrainJob):
    return lambda micro: [training_stream(job, ALONE, micro).steps_per_epoch(e) for e in range(job.cfg.epochs)]


def test_cpu_choice_fills_the_memory_budget_and_is_recorded(tiny_shards, tmp_path):
    job = _job(tiny_shards, tmp_path, memory_budget_gb=0.02)
    settled, choice = settle_batch(job, ALONE, _steps(job))
    detail = choice.detail
    assert choice.method == "cpu memory budget" and detail["budget_bytes"] == 0.02 * GB
    allowed = 0.9 * 0.02 * GB
    need = lambda batch: detail["static_bytes"] + detail["fixed_bytes"] + detail["per_sample_bytes"] * batch  # noqa: E731
    assert need(choice.micro_batch_size) <= allowed < need(choice.micro_batch_size + 1)
    assert settled.cfg.micro_batch_size == choice.micro_batch_size and settled.cfg.gradient_accumulation_steps == 1
    assert job.cfg.micro_batch_size == "auto"  # the caller's job is left as it was
    recorded = json.loads((tmp_path / CHOICE_FILE).read_text())
    assert recorded["micro_batch_size"] == choice.micro_batch_size and recorded["detail"]["per_sample_bytes"] > 0


def test_a_global_batch_is_kept_by_accumulating(tiny_shards, tmp_path):
    job = _job(tiny_shards, tmp_path, memory_budget_gb=0.02, global_batch_size=64)
    settled, choice = settle_batch(job, ALONE, _steps(job))
    cap = choice.detail["memory_cap"]
    assert choice.micro_batch_size * choice.gradient_accumulation_steps == 64 and choice.micro_batch_size <= cap
    assert settled.cfg.gradient_accumulation_steps == choice.gradient_accumulation_steps > 1


def test_a_configured_micro_batch_with_a_global_batch_derives_the_accumulation(tiny_shards, tmp_path):
    job = _job(tiny_shards, tmp_path, micro_batch_size=16, global_batch_size=64)
    _, choice = settle_batch(job, ProcessContext(0, 2, 0, CPU), _steps(job))
    assert (choice.micro_batch_size, choice.gradient_accumulation_steps, choice.method) == (16, 2, "global batch")
    with pytest.raises(ValueError, match="train.global_batch_size 64 .* multiple of 48"):
        settle_batch(job, ProcessContext(0, 3, 0, CPU), _steps(job))


def test_a_large_budget_is_capped_so_every_epoch_keeps_an_update(tiny_shards, tmp_path):
    job = _job(tiny_shards, tmp_path, memory_budget_gb=100.0, loader={"num_workers": 2})
    _, choice = settle_batch(job, ALONE, _steps(job))
    assert choice.detail["memory_cap"] == 4096 > choice.detail["data_cap"] == choice.micro_batch_size
    assert min(_steps(job)(choice.micro_batch_size)) >= 1 and min(_steps(job)(choice.micro_batch_size + 1)) == 0


def test_a_budget_without_room_for_one_sample_names_the_setting(tiny_shards, tmp_path):
    job = _job(tiny_shards, tmp_path, memory_budget_gb=0.0001)
    with pytest.raises(ValueError, match="not one sample fits in train.memory_budget_gb"):
        settle_batch(job, ALONE, _steps(job))


def test_a_resumed_run_reuses_the_recorded_choice(tiny_shards, tmp_path):
    job = _job(tiny_shards, tmp_path, memory_budget_gb=0.02)
    _, first = settle_batch(job, ALONE, _steps(job))
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "latest").write_text("step-00000003")
    bigger = _job(tiny_shards, tmp_path, memory_budget_gb=1.0)  # a new probe would choose more
    _, again = settle_batch(bigger, ALONE, _steps(bigger))
    assert again.micro_batch_size == first.micro_batch_size and again.method == "cpu memory budget, reused"
