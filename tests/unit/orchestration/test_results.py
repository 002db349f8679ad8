"""Result storage blocks for local folders."""

from __future__ import annotations

from doughflow.orchestration.results import result_storage


def test_result_storage_for_a_local_folder(prefect_api, tmp_path):
    block = result_storage(str(tmp_path / "results"))
    assert (tmp_path / "results").is_dir() and block.basepath == str((tmp_path / "results").resolve())
