"""The flow command line: a config that cannot run stops it before the flow is called, naming the field."""

from __future__ import annotations

import pytest

from doughflow.cli.flow import run_flow_cli
from doughflow.config import ExperimentConfig


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
