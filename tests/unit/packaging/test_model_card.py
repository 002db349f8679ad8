"""The model card states status, data, metrics, gates, formats, use and limitations."""

from __future__ import annotations

import numpy as np

from doughflow.config import CardConfig, TrainConfig
from doughflow.export.formats import FormatResult
from doughflow.export.onnx_export import ParityReport
from doughflow.packaging.model_card import dataset_statistics, hyperparameter_rows, render_model_card
from doughflow.release.gates import decide_release


def card(passed: bool, card_config: CardConfig | None = None, training: str | None = None) -> str:
    parity = ParityReport(10, 0.0 if passed else 1.0, 0.0, 1.0 if passed else 0.2, 1e-3, 0.99, passed)
    formats = [
        FormatResult("torch", "model.pt", None, True),
        FormatResult(
            "onnx",
            "model.onnx",
            "/x",
            True,
            size_bytes=1234,
            latency_ms=0.5,
            parity=parity,
            metrics={"exact_count_accuracy": 0.97},
        ),
        FormatResult(
            "onnx_int8_dynamic",
            "model_int8_dynamic.onnx",
            "/y",
            False,
            parity=ParityReport(10, 1.0, 0.5, 0.5, 0.5, 0.99, False),
        ),
    ]
    decision = decide_release(formats, [], {}, {"coreml_fp32": "macOS only"})
    rows = dataset_statistics({"train": np.array([[0, 1], [2, 0]]), "test": np.zeros((0, 2))}, ["a", "b"])
    return render_model_card(
        name="pizza",
        run_id="r1",
        labels=["a", "b"],
        data_fingerprint="fp123",
        config_hash="ch",
        image_size=64,
        dataset_rows=rows,
        metrics={"test": {"n": 5, "mae": 0.1}},
        decision=decision,
        formats=formats,
        card=card_config or CardConfig(intended_use="Counting things.", limitations=["Synthetic only."]),
        bundle_files={"model.onnx": {}},
        hyperparameters=hyperparameter_rows(TrainConfig(learning_rate=0.003, epochs=16), epochs_run=12),
        training=training,
    )


def test_released_card_has_every_section():
    text = card(True)
    for needle in (
        "Release status: RELEASED",
        "fp123",
        "## Intended use",
        "Counting things.",
        "## Data",
        "| train | 2 | 1.00 / 50% | 0.50 / 50% |",
        "## Metrics",
        "## Release gates",
        "## Formats",
        "| onnx | model.onnx | 1.21 KiB | 0.500 | 97.0 % |",
        "## Limitations",
        "Synthetic only.",
        "onnx_int8_dynamic is not shipped: parity vs torch failed",
        "flows.verify",
    ):
        assert needle in text, needle


def test_rejected_card_says_so_with_reasons():
    text = card(False)
    assert "Release status: REJECTED** - do not deploy." in text
    assert "- onnx: parity vs torch failed" in text


def test_card_states_the_recipe_that_ran():
    recipe = "8 process(es) on cuda; global batch 512 = micro batch 64 x accumulation 1 x 8"
    text = card(True, training=recipe)
    assert f"## Training\n\nTrained with: {recipe} (in full: `doughflow.recipe` in `ds_config.json`)." in text
    assert "## Training\n" not in card(True)


def test_card_states_owner_license_version_and_hyperparameters():
    text = card(
        True,
        CardConfig(
            owner="Kitchen ML",
            contact="ml@example.com",
            license="Apache-2.0",
            version="1.4.0",
            out_of_scope=["Allergen checks."],
        ),
    )
    for needle in (
        "| version | 1.4.0 |",
        "| owner | Kitchen ML |",
        "| contact | ml@example.com |",
        "| license | Apache-2.0 |",
        "Not meant for:",
        "- Allergen checks.",
        "## Training hyperparameters",
        "| epochs | 12 of 16 |",
        "AdamW, learning rate 0.00300",
        "| seed | 1234 |",
    ):
        assert needle in text, needle
    assert "| version | r1 |" in card(True)  # no version set: the run id
