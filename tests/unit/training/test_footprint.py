"""A step's memory: the tensor meter's counting and cap, and a real CPU step's footprint, linear in the batch."""

from __future__ import annotations

import pytest
import torch

from doughflow.preprocessing import Preprocessing
from doughflow.training.footprint import Footprint, StepProbe, TensorMeter, parameter_bytes
from doughflow.training.inference import make_model
from tests.support.configs import tiny_train_config

CPU = torch.device("cpu")


def test_meter_counts_live_storages_once_and_forgets_freed_ones():
    with TensorMeter() as meter:
        a = torch.ones(1000)  # 4,000 bytes
        view = a[10:20]  # a view shares the storage: nothing new
        a.mul_(2)  # in place: nothing new
        b = torch.ones(500, dtype=torch.float64)  # 4,000 more
        assert meter.live == 8000 and meter.peak == 8000
        del b
        c = torch.ones(250)  # 1,000: the peak stays where it was
        assert meter.live == 5000 and meter.peak == 8000
    assert view.numel() == 10 and c.numel() == 250


def test_meter_runs_out_of_memory_past_its_cap():
    with pytest.raises(torch.OutOfMemoryError, match="4000 bytes"):
        with TensorMeter(cap=4000):
            kept = torch.ones(900)
            more = torch.ones(200)  # 3,600 + 800 > 4,000
    assert "kept" in locals() and "more" not in locals()


@pytest.fixture(scope="module")
def probe():
    cfg = tiny_train_config()  # width 8
    return StepProbe(make_model(cfg, 5), Preprocessing(64), 5, "count", CPU, "fp32")


def test_a_real_step_grows_linearly_with_the_batch(probe):
    footprint = probe.footprint()
    assert footprint.per_sample_bytes > 64 * 64 * 3 * 4  # at least the float input of a sample
    for batch in (2, 3, 16, 33):  # measured at 4 and 8, exact at other sizes
        assert probe.peak_bytes(batch) == footprint.bytes_for(batch) - footprint.static_bytes
    assert probe.peak_bytes(1) == pytest.approx(footprint.bytes_for(1) - footprint.static_bytes, rel=0.01)
    assert probe.footprint() == footprint  # deterministic: counted, not sampled


def test_state_outside_the_step_is_weights_and_adamw_moments(probe):
    assert probe.static_bytes() == 3 * parameter_bytes(probe.model)


def test_classification_steps_are_measured_too():
    cfg = tiny_train_config()
    classifier = StepProbe(make_model(cfg, 3, "classification"), Preprocessing(32), 3, "classification", CPU, "fp32")
    assert classifier.peak_bytes(4) < classifier.peak_bytes(8)


def test_largest_batch_from_a_footprint():
    footprint = Footprint(static_bytes=1000, fixed_bytes=500, per_sample_bytes=100.0)
    assert footprint.largest_batch(1500 + 100 * 37 + 99) == 37
    assert footprint.largest_batch(1400) == 0
