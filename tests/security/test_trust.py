"""Hostile input against trust in results, paths, bundles and checkpoints, through the public entry points.

Each input must end in a named error or a refusal (exit status, exception naming the file, field or
holder), with nothing written outside the artifacts folder: every test runs beside a sentinel tree that
must come out of it byte for byte unchanged, and planted payloads would create a marker file if they
ever ran.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from doughflow.cli.flow import run_flow_cli
from doughflow.cli.review import main as review_main
from doughflow.cli.verify import main as verify_main
from doughflow.config import ExperimentConfig, dump_config, load_config
from doughflow.export.formats import DeployResult, FormatResult
from doughflow.export.onnx_export import ParityReport
from doughflow.export.runtimes import torch_predictor
from doughflow.packaging.bundle import SIGNATURE, BundleResult, build_bundle
from doughflow.packaging.release_contents import manifest_extra, shipped_files
from doughflow.packaging.signing import UnsignedBundleError, sign_bundle
from doughflow.preprocessing import Preprocessing
from doughflow.registry import RunRecord, record_run
from doughflow.release.gates import decide_release
from doughflow.runs import InvalidRunIdError
from doughflow.stages.publish import publish
from doughflow.stages.run import start_run
from tests.support.release import LABELS, fixed_model, fixed_model_onnx, pizzas
from tests.support.signing import write_key_pair

PATH_LIKE_RUN_IDS = [
    "../escape",
    "/tmp/absolute",
    "nested/run",
    "..",
    ".hidden",
    "-rf",
    "run..id",
    "x" * 129,
    "datasets",
    "tab\tid",
    "nul\x00id",
]


def _tree(root: Path, skip: Path) -> dict[str, str]:
    state = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if Path(folder, d) != skip]
        for name in [*files, *dirs]:
            path = Path(folder, name)
            state[str(path.relative_to(root))] = (
                path.is_dir() and "dir" or hashlib.sha256(path.read_bytes()).hexdigest()
            )
    return state


@pytest.fixture
def artifacts(tmp_path):
    """tmp_path/artifacts, beside a sentinel tree; afterwards nothing outside artifacts/ may differ."""
    sentinel = tmp_path / "sentinel"
    (sentinel / "deep").mkdir(parents=True)
    (sentinel / "outside.txt").write_text("must stay as it is\n")
    (sentinel / "deep" / "registry.sqlite").write_bytes(b"not to be touched")
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    before = _tree(tmp_path, artifacts)
    yield artifacts
    assert _tree(tmp_path, artifacts) == before, "something was written outside the artifacts folder"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    return {"signer": write_key_pair(folder / "signer"), "other": write_key_pair(folder / "other")}


@pytest.fixture(scope="module")
def released_bundle(tmp_path_factory) -> Path:
    """A gated, released ONNX bundle with a review packet beside it, built once; tests copy it."""
    out = tmp_path_factory.mktemp("bundle_source")
    config = ExperimentConfig(labels=LABELS, review={"gate": {"min_correct_share": 0.5, "min_reviewed": 1}})
    images, _ = pizzas(1)
    sample = out / "verify_sample.npz"
    np.savez(
        sample, pixels=images, expected=torch_predictor(fixed_model())(Preprocessing(64).to_tensor(images).numpy())
    )
    passing = ParityReport(4, 0.0, 0.0, 1.0, 1e-3, 1.0, True)
    formats = [
        FormatResult("torch", "model.pt", None, True),
        FormatResult("onnx", "model.onnx", str(fixed_model_onnx()), True, parity=passing, spec_problems=[]),
    ]
    deploy = DeployResult(formats, 4, "", str(sample))
    decision = decide_release(formats, [], {}, {"torch": "not tested here", "onnx": "not tested here"})
    run = out / "run-1"
    build_bundle(
        run / "bundle",
        files=shipped_files(deploy, decision),
        documents={
            "labels.json": {"labels": LABELS},
            "preprocessing.json": Preprocessing(64).to_json(),
            "config.yaml": dump_config(config),
            "model_card.md": "# Model card\n",
        },
        run_id="run-1",
        data_fingerprint="f" * 64,
        config_hash=config.config_hash(),
        extra=manifest_extra(config, deploy, decision),
    )
    from tests.support.review import synthetic_packet

    synthetic_packet(run / "review", n=12)
    return run / "bundle"


def _copy_run(bundle: Path, artifacts: Path) -> Path:
    target = artifacts / bundle.parent.name
    shutil.copytree(bundle.parent, target)
    record_run(
        artifacts / "registry.sqlite",
        RunRecord(
            run_id=target.name,
            created_at="2026-12-01T00:00:00Z",
            experiment="pizza",
            status="released",
            config_hash="h",
            data_fingerprint="f" * 64,
            git_commit="c",
            bundle=str(target / "bundle"),
            total_seconds=1.0,
        ),
    )
    return target / "bundle"


def _manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def _rewrite(bundle: Path, change) -> None:
    manifest = _manifest(bundle)
    change(manifest)
    (bundle / "manifest.json").write_text(json.dumps(manifest))


# --- run ids: command line, Python API, deployment parameter -------------------------------------------------


@pytest.mark.parametrize("run_id", PATH_LIKE_RUN_IDS)
def test_path_like_run_ids_are_refused_before_any_work(run_id, artifacts, capsys):
    from prefect.exceptions import ParameterTypeError
    from prefect.utilities.callables import parameter_schema
    from prefect.utilities.schema_tools.validation import ValidationError, validate

    from flows.train import train

    with pytest.raises(SystemExit) as exit_:  # python -m flows.train --run-id ...
        run_flow_cli(train, argv=[f"artifacts_dir={artifacts}", f"--run-id={run_id}"])
    assert exit_.value.code == 2 and "run id" in capsys.readouterr().err
    with pytest.raises(InvalidRunIdError):  # the Python API the flow's first step calls
        start_run(load_config(None, [f"artifacts_dir={artifacts}"]), run_id)
    with pytest.raises(ParameterTypeError, match="run_id"):  # a flow run's parameters, checked before any task
        train.validate_parameters({"run_id": run_id})
    schema = parameter_schema(train).model_dump_for_openapi()
    with pytest.raises(ValidationError):  # what the Prefect server enforces on a deployment run's parameters
        validate({"run_id": run_id}, schema, raise_on_error=True, ignore_required=True)
    assert not any(artifacts.iterdir())


def test_a_run_id_in_use_by_another_process_is_refused_naming_it(artifacts, capsys):
    from doughflow import runlock
    from flows.train import train

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        runlock.acquire(artifacts / "busy", owner="flow-run-in-progress")
        os.write(write_end, b"x")
        signal.pause()
        os._exit(0)
    try:
        assert os.read(read_end, 1) == b"x"
        with pytest.raises(SystemExit) as exit_:
            run_flow_cli(train, argv=[f"artifacts_dir={artifacts}", "--run-id", "busy"])
        assert exit_.value.code == 2
        assert f"is in use by pid {pid}" in capsys.readouterr().err
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


# --- tampered manifests: flows.verify --------------------------------------------------------------------------


def _absolute_entry(bundle: Path) -> None:
    _rewrite(bundle, lambda m: m["files"].update({"/etc/hostname": {"sha256": "0" * 64, "bytes": 1}}))


def _dotdot_entry(bundle: Path) -> None:
    outside = bundle.parents[2] / "sentinel" / "outside.txt"
    digest = hashlib.sha256(outside.read_bytes()).hexdigest()
    _rewrite(
        bundle,
        lambda m: m["files"].update(
            {"../../../sentinel/outside.txt": {"sha256": digest, "bytes": outside.stat().st_size}}
        ),
    )


def _symlinked_entry(bundle: Path) -> None:
    decoy = bundle.parents[1] / "labels-copy.json"
    shutil.copy(bundle / "labels.json", decoy)  # same bytes: only the link itself gives it away
    (bundle / "labels.json").unlink()
    os.symlink(decoy, bundle / "labels.json")


def _unlisted_file(bundle: Path) -> None:
    (bundle / "extra_model.onnx").write_bytes(b"not from the pipeline")


def _unlisted_symlink(bundle: Path) -> None:
    os.symlink("/etc/passwd", bundle / "passwd")


def _missing_shipped_model(bundle: Path) -> None:
    (bundle / "model.onnx").unlink()
    _rewrite(bundle, lambda m: m["files"].pop("model.onnx"))


def _shipped_without_entry(bundle: Path) -> None:
    _rewrite(bundle, lambda m: m["release"]["shipped"].append("coreml_fp32"))


def _not_a_manifest(bundle: Path) -> None:
    (bundle / "manifest.json").write_text('{"files": ["model.onnx"]}')


TAMPERED_MANIFESTS = {
    "absolute entry": (_absolute_entry, "absolute path"),
    "'..' entry": (_dotdot_entry, "contains '..'"),
    "symlinked entry": (_symlinked_entry, "labels.json: is a symlink"),
    "unlisted file": (_unlisted_file, "extra_model.onnx: present but not in manifest"),
    "unlisted symlink": (_unlisted_symlink, "passwd: is a symlink"),
    "shipped model not listed": (_missing_shipped_model, "model file model.onnx is not listed"),
    "shipped format without entry": (
        _shipped_without_entry,
        "ships 'coreml_fp32', but the manifest has no formats entry",
    ),
    "manifest without a files mapping": (_not_a_manifest, "has no files mapping"),
}


@pytest.mark.parametrize("case", TAMPERED_MANIFESTS)
def test_tampered_manifests_fail_verification_naming_the_entry(case, released_bundle, artifacts, capsys):
    bundle = _copy_run(released_bundle, artifacts)
    assert verify_main([str(bundle)]) == 0
    capsys.readouterr()
    tamper, message = TAMPERED_MANIFESTS[case]
    tamper(bundle)
    assert verify_main([str(bundle)]) == 1
    assert message in capsys.readouterr().err


# --- signatures: flows.verify --public-key, flows.review, publishing ----------------------------------------------


def _flip_release(bundle: Path) -> None:
    """The attack hashes cannot see: rewrite the manifest's own release section."""
    _rewrite(bundle, lambda m: m["release"].update(status="released", reasons=[]))


SIGNATURE_CASES = {
    "absent": (lambda bundle, keys: (bundle / SIGNATURE).unlink(), "missing"),
    "file changed after signing": (
        lambda bundle, keys: (bundle / "model_card.md").write_text("# edited\n"),
        "does not verify",
    ),
    "manifest rewritten after signing": (lambda bundle, keys: _flip_release(bundle), "does not verify"),
    "signed by another key": (lambda bundle, keys: sign_bundle(bundle, keys["other"][0]), "does not verify"),
    "garbage signature": (
        lambda bundle, keys: (bundle / SIGNATURE).write_bytes(b"\x00not a bundle"),
        "does not verify",
    ),
}


@pytest.mark.parametrize("case", SIGNATURE_CASES)
def test_tampered_or_absent_signatures_exit_5(case, released_bundle, artifacts, keys, capsys):
    bundle = _copy_run(released_bundle, artifacts)
    private, public = keys["signer"]
    sign_bundle(bundle, private)
    assert verify_main([str(bundle), "--public-key", str(public)]) == 0
    capsys.readouterr()
    tamper, message = SIGNATURE_CASES[case]
    tamper(bundle, keys)
    assert verify_main([str(bundle), "--public-key", str(public)]) == 5
    captured = capsys.readouterr()
    assert message in captured.err and json.loads(captured.out.strip().splitlines()[-1])["exit"] == 5


def test_a_signed_bundle_is_re_signed_by_the_review_or_refused_without_its_key(
    released_bundle, artifacts, keys, capsys, monkeypatch
):
    monkeypatch.delenv("DOUGHFLOW_SIGNING_KEY", raising=False)
    bundle = _copy_run(released_bundle, artifacts)
    private, public = keys["signer"]
    sign_bundle(bundle, private)
    before = (bundle / "manifest.json").read_bytes()
    assert review_main([str(bundle)]) == 2  # flows.review would break the signature: refused, nothing written
    assert "is signed" in capsys.readouterr().err and (bundle / "manifest.json").read_bytes() == before
    assert review_main([str(bundle), "--signing-key", str(keys["other"][0])]) == 2
    assert "does not verify" in capsys.readouterr().err
    assert review_main([str(bundle), "--signing-key", str(private)]) == 3  # re-signed: no verdicts, not approved
    capsys.readouterr()
    assert verify_main([str(bundle), "--public-key", str(public)]) == 0
    assert _manifest(bundle)["review"]["status"] == "not approved"


def test_publishing_refuses_an_unsigned_bundle_when_signing_is_configured(released_bundle, artifacts, keys):
    bundle = _copy_run(released_bundle, artifacts)
    destination = artifacts / "published"
    config = load_config(
        None,
        [
            f"artifacts_dir={artifacts}",
            f"orchestration.publish_url=file://{destination}",
            f"packaging.signing_key={keys['signer'][0]}",
        ],
    )
    decision = decide_release([], [], {}, {})
    with pytest.raises(UnsignedBundleError, match="not signed"):
        publish(config, BundleResult(str(bundle), str(bundle / "manifest.json"), 0), decision)
    assert not destination.exists()


# --- planted result records: flows.prepare ------------------------------------------------------------------------


class Planted:
    """Unpickling this creates the marker file: proof that a record was deserialised with pickle."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.slow
def test_planted_pickle_records_are_cache_misses_never_loaded(prefect_api, artifacts, capsys):
    from prefect.filesystems import LocalFileSystem
    from prefect.results import ResultStore
    from prefect.serializers import PickleSerializer

    from flows.prepare import prepare
    from tests.support.configs import TINY_OVERRIDES

    argv = [*TINY_OVERRIDES, f"artifacts_dir={artifacts}"]
    run_flow_cli(prepare, argv=[*argv, "--run-id", "first"])
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    marker = artifacts / "PAYLOAD-RAN"
    records = artifacts / ".prefect-results"
    planter = ResultStore(result_storage=LocalFileSystem(basepath=str(records)), serializer=PickleSerializer())
    planted = 0
    for record in records.iterdir():  # every stored result, cached stages and the sub-flow's own
        record.write_bytes(planter.create_result_record(Planted(marker), key=record.name).serialize())
        planted += 1
    assert planted >= 4
    warnings: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: warnings.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("doughflow.orchestration.stage_tasks").addHandler(handler)  # Prefect stops propagation
    try:
        run_flow_cli(prepare, argv=[*argv, "--run-id", "second"])
    finally:
        logging.getLogger("doughflow.orchestration.stage_tasks").removeHandler(handler)
    second = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert not marker.exists(), "a planted record was unpickled"
    assert second["fingerprint"] == first["fingerprint"] and second["rows"] == first["rows"]
    ignored = [w for w in warnings if "ignoring cached result" in w and "serializer 'pickle'" in w]
    # fetch's record is a miss and fetch recomputes into this run's folder; the stages after it then key on
    # the new upstream result and recompute under fresh keys (their planted records are never read).
    assert any("doughflow-fetch-" in w for w in ignored), warnings


# --- checkpoints: a file swapped after the save --------------------------------------------------------------------


def test_a_checkpoint_file_swapped_after_the_save_is_refused_on_resume(artifacts, tmp_path_factory):
    from doughflow.training.checkpoint import CheckpointIntegrityError, latest_tag
    from doughflow.training.job import TrainJob
    from doughflow.training.launch import run_job
    from tests.support.configs import tiny_train_config
    from tests.support.sample_data import pizza_columns, pizza_shards

    shards = pizza_shards(tmp_path_factory.mktemp("shards"), 96, rows_per_shard=48)
    cfg = tiny_train_config(epochs=1, checkpoint_every_steps=2, loader={"num_workers": 0})
    out = artifacts / "run-ckpt" / "train"
    job = TrainJob(shards[:1], shards[1:], pizza_columns(), 5, cfg, Preprocessing(64), str(out), "fp-test")
    run_job(job, cfg.launcher)
    tag = out / "checkpoints" / latest_tag(out / "checkpoints")
    marker = artifacts / "PAYLOAD-RAN"
    victim = next(tag.glob("*model_states.pt"))
    torch.save({"module": Planted(marker)}, victim)  # a pickle that runs on load, under the expected name
    with pytest.raises(CheckpointIntegrityError, match=f"{victim.name}: sha256 differs"):
        run_job(job, cfg.launcher)  # the resume a retry makes
    assert not marker.exists()
