"""The study report: optimisation history, per-epoch curves, parameter importances and every trial.

Written as Markdown (also the Prefect artifact) and self-contained HTML by the run report's helpers,
plus the best configuration as a YAML file that ``python -m flows.train --config`` accepts as is.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import optuna
from matplotlib.ticker import MaxNLocator

from doughflow.config import ExperimentConfig, dump_config
from doughflow.reporting.inert import md_code
from doughflow.reporting.plots import pyplot
from doughflow.reporting.report import ReportFiles, table, write_report
from doughflow.tuning.space import apply_params, params_as_overrides
from doughflow.tuning.study import StudyRef

log = logging.getLogger(__name__)

MIN_TRIALS_FOR_IMPORTANCE = 3
State = optuna.trial.TrialState


@dataclass
class BestConfig:
    path: str | None
    trial: int | None
    value: float | None
    params: dict


def study_dir(config: ExperimentConfig, ref: StudyRef) -> Path:
    path = Path(config.artifacts_dir) / "tune" / ref.name
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_best_config(config: ExperimentConfig, study: optuna.Study, metric: str, out_dir: Path) -> BestConfig:
    """best.yaml: the full experiment with the best trial's values applied (None without a complete trial)."""
    complete = study.get_trials(deepcopy=False, states=(State.COMPLETE,))
    if not complete:
        return BestConfig(None, None, None, {})
    best, best_value = study.best_trial, study.best_value
    best_config = apply_params(config, best.params, source=f"best trial {best.number}")
    path = out_dir / "best.yaml"
    header = (
        f"# Best trial {best.number} of study {study.study_name}: {metric} {best_value:.6g}\n"
        f"# Train it: python -m flows.train --config {path}\n"
        f"# Its values: {' '.join(params_as_overrides(best.params))}\n"
    )
    path.write_text(header + dump_config(best_config))
    return BestConfig(str(path), best.number, float(best_value), dict(best.params))


def history_plot(study: optuna.Study, metric: str, path: Path) -> Path:
    """Left: each finished trial's value and the best so far; right: per-epoch values, pruned dashed."""
    trials = study.get_trials(deepcopy=False)
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    plt = pyplot()
    fig, (history, curves) = plt.subplots(1, 2, figsize=(11, 3.8))
    complete = [(t.number, t.value) for t in trials if t.state == State.COMPLETE and t.value is not None]
    if complete:
        xs, ys = [number for number, _ in complete], [value for _, value in complete]
        history.scatter(xs, ys, label="complete", zorder=3)
        best: float | None = None
        best_line: list[float] = []
        for y in ys:
            best = y if best is None or (y > best if maximize else y < best) else best
            best_line.append(best)
        history.step(xs, best_line, where="post", color="tab:red", label="best so far")
    pruned = [t for t in trials if t.state == State.PRUNED and t.intermediate_values]
    if pruned:
        history.scatter(
            [t.number for t in pruned],
            [t.intermediate_values[max(t.intermediate_values)] for t in pruned],
            marker="x",
            color="tab:gray",
            label="pruned (last epoch)",
            zorder=3,
        )
    history.set(title="optimisation history", xlabel="trial", ylabel=metric)
    history.legend(fontsize=8)
    for t in trials:
        if t.intermediate_values:
            epochs = sorted(t.intermediate_values)
            curves.plot(
                epochs,
                [t.intermediate_values[e] for e in epochs],
                marker="o",
                markersize=3,
                linestyle="--" if t.state == State.PRUNED else "-",
                label=f"#{t.number} {t.state.name.lower()}",
            )
    curves.set(title="per-epoch value (pruning input)", xlabel="epoch", ylabel=metric)
    for ax in (history, curves):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if any(t.intermediate_values for t in trials):
        curves.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def importances(study: optuna.Study) -> dict[str, float]:
    """fANOVA importances over complete trials; empty with fewer than three or when it cannot fit."""
    if len(study.get_trials(deepcopy=False, states=(State.COMPLETE,))) < MIN_TRIALS_FOR_IMPORTANCE:
        return {}
    try:
        return dict(optuna.importance.get_param_importances(study))
    except (RuntimeError, ValueError) as error:  # e.g. every complete trial had the same values
        log.warning("parameter importances unavailable: %s", error)
        return {}


def importance_plot(values: dict[str, float], path: Path) -> Path:
    names = list(values)[::-1]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(names)))
    ax.barh(names, [values[n] for n in names])
    ax.set(title="parameter importance (fANOVA)", xlabel="share of variance explained")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def redact_password(url: str) -> str:
    """A storage URL as the report shows it: ``postgresql://user:***@host/db``, never the password."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/@:]*:)[^/@]*@", r"\1***@", url)


def _seconds(trial: optuna.trial.FrozenTrial) -> str:
    if trial.datetime_start and trial.datetime_complete:
        return f"{(trial.datetime_complete - trial.datetime_start).total_seconds():.1f}"
    return ""


def trial_rows(study: optuna.Study) -> list[list]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())
        detail = t.user_attrs.get("error") or (
            f"after epoch {t.user_attrs['pruned_after_epoch']}" if "pruned_after_epoch" in t.user_attrs else ""
        )
        if t.state == State.WAITING:
            continue
        rows.append(
            [
                t.number,
                t.state.name,
                t.value if t.value is not None else "",
                params,
                _seconds(t),
                t.user_attrs.get("run_id", ""),
                detail,
            ]
        )
    return rows


def counts(study: optuna.Study) -> dict[str, int]:
    """Trials per state; n_trials counts those started (enqueued ones still waiting are n_waiting)."""
    trials = study.get_trials(deepcopy=False)
    found = {
        f"n_{state.name.lower()}": sum(t.state == state for t in trials)
        for state in (State.COMPLETE, State.PRUNED, State.FAIL, State.RUNNING, State.WAITING)
    }
    return found | {"n_trials": len(trials) - found["n_waiting"]}


def build_tune_report(
    config: ExperimentConfig, study: optuna.Study, ref: StudyRef, best: BestConfig, out_dir: Path
) -> ReportFiles:
    history_plot(study, ref.metric, out_dir / "history.png")
    figures = ["history.png"]
    found = importances(study)
    if found:
        importance_plot(found, out_dir / "importance.png")
        figures.append("importance.png")
    n = counts(study)
    tune = config.tune
    space_rows = [
        [
            path,
            spec.type,
            "" if spec.low is None else spec.low,
            "" if spec.high is None else spec.high,
            "log" if spec.log else "",
            ", ".join(map(str, spec.choices or [])),
        ]
        for path, spec in tune.search_space.items()
    ]
    sections = [
        f"# doughflow tuning: study {md_code(ref.name)}",
        f"Experiment **{config.name}**, {ref.direction} `{ref.metric}` (the trainer's per-epoch validation metric). "
        f"Storage {md_code(redact_password(ref.storage))}. {n['n_trials']} trials: {n['n_complete']} complete, {n['n_pruned']} pruned, "
        f"{n['n_fail']} failed, {n['n_running']} running or abandoned.",
        "## Best",
        (
            f"Trial {best.trial}: **{ref.metric} = {best.value:.4f}** with "
            f"{md_code(' '.join(params_as_overrides(best.params)))}. Full config: {md_code(best.path)}; train and release "
            f"it with {md_code(f'python -m flows.train --config {best.path}')}."
            if best.path
            else "No trial completed yet."
        ),
        "## Optimisation history",
        "![optimisation history](history.png)",
        "## Parameter importance",
        (
            table(["parameter", "importance"], [[k, v] for k, v in found.items()]) + "\n\n![importance](importance.png)"
            if found
            else f"Needs at least {MIN_TRIALS_FOR_IMPORTANCE} complete trials with differing values."
        ),
        "## Trials",
        table(["trial", "state", ref.metric, "params", "seconds", "run", "detail"], trial_rows(study)),
        "## Search space",
        table(["path", "type", "low", "high", "scale", "choices"], space_rows),
        f"Sampler TPE (seed {tune.seed}); pruner {tune.pruner.kind} (startup trials {tune.pruner.n_startup_trials}, "
        f"warm-up epochs {tune.pruner.n_warmup_steps}).",
    ]
    files = write_report(out_dir, "\n\n".join(sections) + "\n", f"doughflow tuning {ref.name}", figures)
    (out_dir / "trials.json").write_text(json.dumps(trial_rows(study), default=str))
    return files
