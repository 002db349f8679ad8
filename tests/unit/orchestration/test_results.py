"""Result storage blocks for local folders."""

from __future__ import annotations

from doughflow.orchestration.results import result_storage


def test_result_storage_for_a_local_folder(prefect_api, tmp_path):
    block = result_storage(str(tmp_path / "results"))
    assert (tmp_path / "results").is_dir() and block.basepath == str((tmp_path / "results").resolve())


def test_a_saved_block_is_reused_and_another_location_gets_its_own(prefect_api, tmp_path):
    first = result_storage(str(tmp_path / "results"))
    again = result_storage(str(tmp_path / "results"))  # an earlier run saved it: loaded, not saved again
    assert again.basepath == first.basepath and again._block_document_id == first._block_document_id
    other = result_storage(str(tmp_path / "other"))
    assert other.basepath == str((tmp_path / "other").resolve())
    assert other._block_document_id != first._block_document_id
