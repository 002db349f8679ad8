"""The flow command line: a config that cannot run stops it before the flow is called, naming the field;
--help answers before Prefect and torch load; --print-config prints the resolved YAML; a run ends with
the documented exit status (0 released, 1 failed, 2 bad config or arguments, 3 rejected)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from doughflow.cli.flow import main, run_flow_cli
from doughflow.config import ExperimentConfig
from doughflow.release.gates import ReleaseRejected

ROOT = Path(__file__).resolve().parents[3]
CLIS = ("train", "prepare", "tune", "compare", "verify", "review")


def test_an_unrunnable_config_exits_2_before_the_flow_runs(capsys):
    calls: list[ExperimentConfig] = []

    def flow(config: ExperimentConfig) -> dict:
        calls.append(config)
        return {"ok": True}

    with pytest.raises(SystemExit) as exit_:
        run_flow_cli(flow, argv=["data.adapter=nope"])
    assert exit_.value.code == 2 and calls == []
    assert "data.adapter: unknown dataset adapter 'nope'" in capsys.readouterr().err
    assert run_flow_cli(flow, argv=["train.epochs=3"]) == {"ok": True}
    assert calls[0].train.epochs == 3
    assert capsys.readouterr().out.strip().splitlines()[-1] == '{"ok": true}'


def test_help_of_every_cli_answers_before_prefect_and_torch_load():
    """All six ``python -m flows.<name> --help`` in one fresh interpreter, as ``-m`` runs them; afterwards
    none of the slow imports is loaded (their import is what made --help take 10-18 s)."""
    script = f"""
import contextlib, io, json, runpy, sys
usages = {{}}
for name in {list(CLIS)!r}:
    sys.argv = [f"flows/{{name}}.py", "--help"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            runpy.run_module(f"flows.{{name}}", run_name="__main__", alter_sys=True)
            code = None
        except SystemExit as exit_:
            code = exit_.code
    usages[name] = [code, out.getvalue()]
heavy = [m for m in ("prefect", "torch", "deepspeed", "onnxruntime", "matplotlib", "pandas", "dask") if m in sys.modules]
print(json.dumps({{"usages": usages, "heavy": heavy}}))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["heavy"] == [], result["heavy"]
    for name, (code, text) in result["usages"].items():
        assert code == 0, (name, text)
        assert text.startswith(f"usage: python -m flows.{name} "), text[:200]
        assert "configs/" not in text or name not in ("train", "prepare", "tune"), text  # no file that may be missing
    for name in ("train", "prepare", "tune"):
        text = result["usages"][name][1]
        assert "--print-config" in text and "3    the release was rejected" in text, text
    assert "prepare trains nothing" in result["usages"]["prepare"][1]
    assert "--run-id" not in result["usages"]["tune"][1]
    compare = result["usages"]["compare"][1]
    for option in ("--last N", "--config FILE", "--registry FILE", "--plot PNG", "--metrics NAMES"):
        assert option in compare, option
    assert compare.count("(default:") >= 4  # every option says what it does by default


def test_print_config_prints_the_resolved_yaml_and_exits_0(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "flows.train", "--print-config", "train.epochs=3", "name=printed"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    printed = yaml.safe_load(done.stdout)
    assert printed["train"]["epochs"] == 3 and printed["name"] == "printed"
    assert ExperimentConfig.model_validate(printed).train.epochs == 3  # the whole config, loadable again
    bad = subprocess.run(
        [sys.executable, "-m", "flows.prepare", "--print-config", "train.epochz=3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "train.epochz: unknown field" in bad.stderr and bad.stdout == ""
    unknown = subprocess.run(
        [sys.executable, "-m", "flows.tune", "--no-such-option"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert unknown.returncode == 2 and "usage: python -m flows.tune" in unknown.stderr


def _flow_raising(error: BaseException | None):
    def flow(config: ExperimentConfig) -> dict:
        if error is not None:
            raise error
        return {"run_id": "r1", "epochs": config.train.epochs}

    return flow


@pytest.mark.parametrize(
    ("error", "status", "word"),
    [
        (None, 0, None),
        (RuntimeError("evaluate: the model file is gone"), 1, "error: RuntimeError: evaluate: the model file is gone"),
        (
            ReleaseRejected("release rejected, bundle /b marked rejected: onnx: parity vs torch failed"),
            3,
            "rejected: release rejected, bundle /b marked rejected",
        ),
        (KeyboardInterrupt(), 130, "interrupted"),
    ],
)
def test_main_exits_with_the_documented_status(capsys, error, status, word):
    with pytest.raises(SystemExit) as exit_:
        main(_flow_raising(error), argv=["train.epochs=2"])
    assert exit_.value.code == status
    out, err = capsys.readouterr()
    last = json.loads(out.strip().splitlines()[-1])
    if error is None:
        assert last == {"run_id": "r1", "epochs": 2}
        assert err.splitlines()[0].startswith("where the time went") and "error" not in err  # the timing table
    else:
        assert last["exit"] == status and word in err
        assert "Traceback" not in err


def test_main_exits_2_on_a_bad_config_without_calling_the_flow(capsys):
    calls: list = []
    with pytest.raises(SystemExit) as exit_:
        main(lambda config: calls.append(config), argv=["split.train=2"])
    assert exit_.value.code == 2 and calls == []
    assert "split.train" in capsys.readouterr().err


def test_a_release_rejected_in_a_sub_flow_task_exits_3(prefect_api, capsys):
    """As flows.train does it: the pipeline sub-flow's last task raises ReleaseRejected; Prefect re-raises
    it from the outer flow, and the command exits 3 with the reason."""
    from prefect import flow, task

    @task
    def enforce_release() -> None:
        raise ReleaseRejected("release rejected, bundle /b marked rejected: onnx: parity vs torch failed")

    @flow(name="rejecting-pipeline")
    def pipeline(config: ExperimentConfig) -> dict:
        enforce_release()
        return {}

    @flow(name="rejecting-train")
    def train(config: ExperimentConfig = ExperimentConfig()) -> dict:  # noqa: B008 - as the real flow
        return pipeline(config)

    with pytest.raises(SystemExit) as exit_:
        main(train, argv=["train.epochs=1"])
    assert exit_.value.code == 3
    out, err = capsys.readouterr()
    assert "rejected: release rejected, bundle /b marked rejected: onnx: parity vs torch failed" in err
    assert json.loads(out.strip().splitlines()[-1])["exit"] == 3
