from dataclasses import dataclass

import pytest

from doughflow.caching import canonical, code_version, select, stage_key
from doughflow.config import load_config


@dataclass
class Upstream:
    fingerprint: str
    rows: int


def test_stage_key_depends_only_on_its_sections_and_upstream():
    base = load_config(None)
    trained_longer = load_config(None, ["train.epochs=3"])
    upstream = {"raw": Upstream("abc", 10)}
    assert stage_key("split", base, ("split",), upstream) == stage_key("split", trained_longer, ("split",), upstream)
    assert stage_key("train", base, ("train",), upstream) != stage_key("train", trained_longer, ("train",), upstream)
    assert stage_key("split", base, ("split",), upstream) != stage_key(
        "split", base, ("split",), {"raw": Upstream("abd", 10)}
    )
    assert stage_key("split", base, ("split",), upstream) != stage_key("validate", base, ("split",), upstream)


def test_canonical_is_order_stable_and_code_version_is_a_hash():
    assert canonical({"b": 1, "a": [Upstream("x", 2)]}) == canonical({"a": [Upstream("x", 2)], "b": 1})
    assert len(code_version()) == 16
    with pytest.raises(KeyError):
        select(load_config(None), ("train.nope",))


def test_missing_outputs_names_deleted_files_under_the_artifact_roots(tmp_path):
    from dataclasses import dataclass

    from doughflow.caching import missing_outputs

    @dataclass
    class Result:
        model_path: str
        shards: list

    kept, gone = tmp_path / "runs" / "a" / "model.pt", tmp_path / "runs" / "b" / "part-0.parquet"
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"w")
    result = Result(str(kept), [{"path": str(gone)}, {"path": "/elsewhere/not-ours.parquet"}, {"note": "text"}])
    assert missing_outputs(result, (str(tmp_path),)) == [str(gone)]
    assert missing_outputs(result, (str(tmp_path / "runs" / "a"),)) == []


def test_user_module_source_and_library_versions_enter_the_key(tmp_path, monkeypatch):
    import sys

    from doughflow.caching import library_versions, module_source_hash, user_module_sources

    package = tmp_path / "my_models"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "nets.py").write_text("WIDTH = 8\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = load_config(None, ["train.model.import_module=my_models"])
    before = user_module_sources(config, ("train",))
    assert set(before) == {"train.model.import_module"}
    assert user_module_sources(config, ("data",)) == {}  # a stage that does not read the field
    upstream = {"raw": Upstream("abc", 10)}
    key = stage_key("train", config, ("train",), upstream, {"modules": before})
    (package / "nets.py").write_text("WIDTH = 16\n")  # same config, edited model code
    after = user_module_sources(config, ("train",))
    assert after != before and stage_key("train", config, ("train",), upstream, {"modules": after}) != key
    assert module_source_hash("surely_not_a_module_xyz").startswith("not found")
    assert "my_models" not in sys.modules  # hashed without importing it
    versions = library_versions(("torch", "surely-not-installed-xyz"))
    assert versions["torch"].startswith("2.") and versions["surely-not-installed-xyz"] == "absent"
