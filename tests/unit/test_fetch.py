import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from doughflow.data.fetch import DataManifest, fetch_source, file_sha256


def test_fetch_reshards_and_records_manifest(tiny_source, tmp_path):
    manifest = fetch_source(str(tiny_source), tmp_path / "raw", rows_per_shard=100)
    source_rows = sum(pq.read_metadata(p).num_rows for p in tiny_source.glob("*.parquet"))
    assert manifest.rows == source_rows
    assert all(shard.rows <= 100 for shard in manifest.shards)
    assert sum(pq.read_metadata(s.path).num_rows for s in manifest.shards) == source_rows
    assert all(file_sha256(s.path) == s.sha256 for s in manifest.shards)
    assert DataManifest.load(tmp_path / "raw" / "manifest.json") == manifest


def test_fingerprint_depends_on_content_not_location(tiny_source, tmp_path):
    local = fetch_source(str(tiny_source), tmp_path / "a")
    via_url = fetch_source(f"file://{tiny_source}", tmp_path / "b")
    assert local.fingerprint == via_url.fingerprint
    changed = tmp_path / "changed"
    changed.mkdir()
    for path in sorted(tiny_source.glob("*.parquet")):
        table = pq.read_table(path)
        if path.name.endswith("00000.parquet"):
            table = table.slice(1)
        pq.write_table(table, changed / path.name)
    assert fetch_source(str(changed), tmp_path / "c").fingerprint != local.fingerprint


def test_missing_or_unreadable_sources_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fetch_source(str(tmp_path / "nowhere"), tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no .parquet files"):
        fetch_source(str(tmp_path / "empty"), tmp_path / "out")
    broken = tmp_path / "broken"
    broken.mkdir()
    pq.write_table(pa.table({"a": [1, 2, 3]}), broken / "part-0.parquet")
    (broken / "part-1.parquet").write_bytes(b"PAR1 not really parquet")
    with pytest.raises(ValueError, match="cannot read Parquet source"):
        fetch_source(str(broken), tmp_path / "out")
