"""Release gates: turn measurements into a decision that a machine can enforce and a person can read.

Decision (documented in README and the model card): a failed gate of a *primary* format (torch,
ONNX fp32, CoreML fp32) rejects the release. The bundle is still written, so the evidence can be
inspected, but its manifest and model card say ``rejected`` with every reason, `flows.verify` refuses
it, and the flow raises after packaging. A failed gate of an *optional* format (CoreML fp16, int8)
only keeps that file out of the bundle, with the reason recorded. A gate that cannot run here (CoreML
prediction off macOS) is ``skipped`` with its reason and blocks nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from doughflow.evaluation.behaviour import PropertyResult
from doughflow.export.formats import FormatResult

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


class ReleaseRejected(RuntimeError):
    """A primary format failed a release gate; the message lists every reason."""


@dataclass
class Gate:
    name: str
    fmt: str
    status: str
    detail: str


@dataclass
class ReleaseDecision:
    status: str  # released | rejected
    reasons: list[str]
    gates: list[Gate]
    shipped: list[str]  # format names whose files go into the bundle
    excluded: dict[str, str] = field(default_factory=dict)  # format name -> why it stays out

    @property
    def released(self) -> bool:
        return self.status == "released"

    def to_json(self) -> dict:
        return asdict(self)


def accuracy_gate(metrics: dict, bar: float) -> Gate:
    achieved = metrics.get("test", {}).get("exact_count_accuracy", float("nan"))
    status = PASSED if not bar or achieved >= bar else FAILED
    return Gate("test accuracy bar", "torch", status, f"exact-count accuracy {achieved:.4f} (bar {bar})")


def metric_gates(metrics: dict, bars: dict[str, float]) -> list[Gate]:
    """One gate per configured bar (evaluate.min_metrics): the test-split metric must reach it. A metric
    the task does not measure fails, naming those it does, so a typo cannot pass silently."""
    test = metrics.get("test", {})
    gates = []
    for name, bar in bars.items():
        achieved = test.get(name)
        if not isinstance(achieved, (int, float)):
            measured = sorted(k for k, v in test.items() if isinstance(v, float))
            gates.append(
                Gate(
                    f"test {name} bar", "torch", FAILED, f"{name} is not measured for this task (measured: {measured})"
                )
            )
            continue
        status = PASSED if achieved >= bar else FAILED
        gates.append(Gate(f"test {name} bar", "torch", status, f"{name} {achieved:.4f} (bar {bar})"))
    return gates


def parity_gate(result: FormatResult) -> Gate:
    if result.name == "torch":
        return Gate("parity vs torch", "torch", PASSED, "reference")
    if result.error:
        return Gate("conversion", result.name, FAILED, result.error)
    parity = result.parity
    if parity is None:
        return Gate("parity vs torch", result.name, SKIPPED, result.parity_method or "not measured")
    detail = (
        f"{parity.samples} held-out images, max |diff| {parity.max_abs_diff:.3g} (atol {parity.atol}), "
        f"{parity.agreement} equal {parity.rounded_agreement:.2%} (need {parity.min_rounded_agreement:.0%}); "
        f"{result.parity_method}"
    )
    return Gate("parity vs torch", result.name, PASSED if parity.passed else FAILED, detail)


def spec_gate(result: FormatResult) -> Gate | None:
    if result.spec_problems is None:
        return None
    if result.spec_problems:
        return Gate("spec (names, shapes, types, metadata)", result.name, FAILED, "; ".join(result.spec_problems))
    return Gate(
        "spec (names, shapes, types, metadata)",
        result.name,
        PASSED,
        "reloaded; inputs, outputs and metadata as expected",
    )


def property_gate(fmt: str, results: list[PropertyResult], skipped_reason: str | None) -> Gate:
    if skipped_reason is not None:
        return Gate("behavioural properties", fmt, SKIPPED, skipped_reason)
    if not results:
        return Gate(
            "behavioural properties", fmt, SKIPPED, "no results: disabled (release.properties.enabled) or not run"
        )
    failing = [r for r in results if not r.passed]
    if failing:
        detail = "; ".join(
            f"{r.prop} failed {r.failures}/{r.examples} (allowed {r.max_failure_rate:.0%})" for r in failing
        )
        return Gate("behavioural properties", fmt, FAILED, detail)
    return Gate(
        "behavioural properties", fmt, PASSED, f"{len(results)} properties, {sum(r.examples for r in results)} examples"
    )


def decide_release(
    formats: list[FormatResult],
    extra_gates: list[Gate],
    properties: dict[str, list[PropertyResult]],
    property_skips: dict[str, str],
) -> ReleaseDecision:
    """Gate every format; reject on any failed gate of a primary format, drop failing optional ones."""
    gates = list(extra_gates)
    for result in formats:
        gates.append(parity_gate(result))
        spec = spec_gate(result)
        if spec:
            gates.append(spec)
        if not result.error:
            gates.append(property_gate(result.name, properties.get(result.name, []), property_skips.get(result.name)))
    primary = {f.name for f in formats if f.primary}
    reasons: list[str] = []
    excluded: dict[str, str] = {}
    for gate in gates:
        if gate.status != FAILED:
            continue
        if gate.fmt in primary:
            reasons.append(f"{gate.fmt}: {gate.name} failed: {gate.detail}")
        else:
            excluded.setdefault(gate.fmt, f"{gate.name} failed: {gate.detail}")
    shipped = [f.name for f in formats if f.name not in excluded and f.name != "torch" and not f.error]
    return ReleaseDecision("rejected" if reasons else "released", reasons, gates, shipped, excluded)
