import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from doughflow.data.manifest import DataManifest, file_sha256
from doughflow.data.sources.fetch import fetch_source


def test_fetch_reshards_and_records_manifest(tiny_source, tmp_path):
    manifest = fetch_source(str(tiny_source), tmp_path / "raw", rows_per_shard=70)  # the source has 100-row shards
    source_rows = sum(pq.read_metadata(p).num_rows for p in tiny_source.glob("*.parquet"))
    assert manifest.rows == source_rows
    assert all(shard.rows <= 70 for shard in manifest.shards)
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


# --- formats, retries, resume and HTTP (doughflow.data.sources.fetch / sources / retry) ---------------------

import functools  # noqa: E402
import http.server  # noqa: E402
import io  # noqa: E402
import random  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

import fsspec  # noqa: E402
import numpy as np  # noqa: E402
from fsspec.implementations.local import LocalFileSystem  # noqa: E402
from PIL import Image  # noqa: E402

from doughflow.data.sources.fetch import FetchOptions  # noqa: E402

FAST = dict(retries=25, backoff_seconds=0.001)


class FlakyFileSystem(LocalFileSystem):
    """The real local filesystem under the ``flakytest://`` protocol, whose opens fail with an
    OSError at ``failure_rate`` (seeded) and are all recorded."""

    protocol = ("flakytest",)
    root_marker = "/"
    failure_rate = 0.3
    rng = random.Random(5)
    opened: list = []
    failures = 0

    @classmethod
    def _strip_protocol(cls, path):
        path = path[len("flakytest://") :] if str(path).startswith("flakytest://") else str(path)
        return super()._strip_protocol(path)

    def _open(self, path, mode="rb", *args, **kwargs):
        if "r" in mode:
            type(self).opened.append(path)
            if type(self).rng.random() < type(self).failure_rate:
                type(self).failures += 1
                raise OSError(f"injected transient failure opening {path}")
        return super()._open(path, mode, *args, **kwargs)


fsspec.register_implementation("flakytest", FlakyFileSystem, clobber=True)


def _png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _tabular_folder(root, files: int = 6, rows: int = 37):
    root.mkdir()
    for i in range(files):
        table = pa.table({"sample_id": [f"s{i}-{j}" for j in range(rows)], "x": list(range(rows))})
        pq.write_table(table, root / f"part-{i}.parquet")
    return files * rows


def test_csv_and_jsonl_sources_unify_inferred_types(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.csv").write_text("sample_id,note,n\n1,,3\n2,,4\n")
    (src / "b.jsonl").write_text('{"sample_id": 3, "note": "hot", "n": 5}\n{"sample_id": 4, "note": null, "n": 6}\n')
    manifest = fetch_source(str(src), tmp_path / "out", rows_per_shard=10)
    table = pa.concat_tables([pq.read_table(p) for p in manifest.paths()])
    assert manifest.rows == table.num_rows == 4 and set(manifest.columns) == {"sample_id", "note", "n"}
    assert sorted(table.column("n").to_pylist()) == [3, 4, 5, 6]
    assert {e.format for e in manifest.files} == {"csv", "jsonl"}
    single = fetch_source(str(src / "a.csv"), tmp_path / "one", options=FetchOptions(format="csv"))
    assert single.rows == 2
    (src / "c.csv").write_text("sample_id,n\n5,oops\n")
    with pytest.raises(ValueError, match="c.csv"):
        fetch_source(str(src), tmp_path / "bad", options=FetchOptions(format="auto"))


def test_image_folder_with_label_folders_and_labels_csv(tmp_path):
    src = tmp_path / "images"
    for folder, values in (("train", [1, 2, 3]), ("test", [4])):
        (src / folder / "deep").mkdir(parents=True)
        for v in values:
            (src / folder / "deep" / f"img{v}.png").write_bytes(_png(v))
    (src / "labels.csv").write_text("path,count_olive\ntrain/deep/img1.png,1\nimg2.png,2\ntest/deep/img4.png,4\n")
    manifest = fetch_source(f"file://{src}", tmp_path / "out", rows_per_shard=2)
    rows = pa.concat_tables([pq.read_table(p) for p in manifest.paths()]).to_pylist()
    by_id = {r["sample_id"]: r for r in rows}
    assert sorted(by_id) == ["test/deep/img4.png", "train/deep/img1.png", "train/deep/img2.png", "train/deep/img3.png"]
    assert by_id["train/deep/img2.png"]["image"] == _png(2) and by_id["train/deep/img2.png"]["folder"] == "train"
    assert [by_id[k]["count_olive"] for k in sorted(by_id)] == [
        4,
        1,
        2,
        None,
    ]  # img3 has no label: validate quarantines
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "a.jpg").write_bytes(_png(9))
    (tmp_path / "lab.csv").write_text("path,count_basil\na.jpg,2\n")
    one = fetch_source(
        str(flat),
        tmp_path / "out2",
        options=FetchOptions(format="images", labels=str(tmp_path / "lab.csv"), id_column="file"),
    )
    assert pq.read_table(one.paths()[0]).to_pylist() == [{"file": "a.jpg", "image": _png(9), "count_basil": 2}]


def test_flaky_filesystem_completes_through_retries_with_exact_rows(tmp_path):
    rows = _tabular_folder(tmp_path / "src")
    images = tmp_path / "img"
    images.mkdir()
    for v in range(20):
        (images / f"{v:02d}.png").write_bytes(_png(v))
    FlakyFileSystem.failures, FlakyFileSystem.opened = 0, []
    manifest = fetch_source(
        f"flakytest://{tmp_path / 'src'}", tmp_path / "out", rows_per_shard=16, options=FetchOptions(**FAST)
    )
    pics = fetch_source(f"flakytest://{images}", tmp_path / "out-img", rows_per_shard=16, options=FetchOptions(**FAST))
    assert FlakyFileSystem.failures > 0
    assert manifest.rows == rows == sum(pq.read_metadata(p).num_rows for p in manifest.paths())
    assert pics.rows == 20 and len(set(pq.read_table(pics.paths()[0]).column("image").to_pylist())) == 16
    FlakyFileSystem.failure_rate = 1.0
    try:
        with pytest.raises(OSError, match="injected"):
            fetch_source(
                f"flakytest://{tmp_path / 'src'}",
                tmp_path / "out3",
                options=FetchOptions(retries=2, backoff_seconds=0.001),
            )
    finally:
        FlakyFileSystem.failure_rate = 0.3


def test_rerun_fetches_only_missing_or_changed_units(tmp_path):
    _tabular_folder(tmp_path / "src")
    url = f"flakytest://{tmp_path / 'src'}"
    FlakyFileSystem.failure_rate = 0.0
    try:
        first = fetch_source(url, tmp_path / "out", rows_per_shard=16, options=FetchOptions(**FAST))
        FlakyFileSystem.opened = []
        again = fetch_source(url, tmp_path / "out", rows_per_shard=16, options=FetchOptions(**FAST))
        assert FlakyFileSystem.opened == [] and again == first  # nothing fetched twice
        victim = first.files[2]
        Path(victim.shards[1]).unlink()
        untouched = {p: Path(p).stat().st_mtime_ns for e in first.files if e is not victim for p in e.shards}
        third = fetch_source(url, tmp_path / "out", rows_per_shard=16, options=FetchOptions(**FAST))
        assert [Path(p).name for p in FlakyFileSystem.opened] == [victim.name]
        assert {p: Path(p).stat().st_mtime_ns for p in untouched} == untouched
        assert third.rows == first.rows and third.fingerprint == first.fingerprint
        pq.write_table(pa.table({"sample_id": ["new"], "x": [0]}), tmp_path / "src" / "part-0.parquet")
        FlakyFileSystem.opened = []
        fourth = fetch_source(url, tmp_path / "out", rows_per_shard=16, options=FetchOptions(**FAST))
        assert [Path(p).name for p in FlakyFileSystem.opened] == ["part-0.parquet"]
        assert fourth.rows == first.rows - 36 and fourth.fingerprint != first.fingerprint
        assert sorted(Path(p).name for p in (tmp_path / "out").glob("*.parquet")) == sorted(
            Path(s.path).name for s in fourth.shards
        )
    finally:
        FlakyFileSystem.failure_rate = 0.3


@pytest.fixture
def http_root(tmp_path):
    """A folder served by python's http.server on 127.0.0.1 in a thread."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_fetch_over_http(http_root, tmp_path, tiny_source):
    root, base = http_root
    (root / "pizza").mkdir()
    for path in sorted(tiny_source.glob("*.parquet")):
        (root / "pizza" / path.name).write_bytes(path.read_bytes())
    (root / "pics" / "a").mkdir(parents=True)
    for v in range(3):
        (root / "pics" / "a" / f"{v}.png").write_bytes(_png(v))
    over_http = fetch_source(f"{base}/pizza/", tmp_path / "http", rows_per_shard=100, options=FetchOptions(**FAST))
    local = fetch_source(str(root / "pizza"), tmp_path / "local", rows_per_shard=100)
    assert over_http.rows == local.rows > 0 and over_http.fingerprint == local.fingerprint
    assert [e.sha256 for e in over_http.files] == [e.sha256 for e in local.files]
    pics = fetch_source(f"{base}/pics/", tmp_path / "pics", options=FetchOptions(**FAST))
    assert pics.rows == 3 and pq.read_table(pics.paths()[0]).column("folder").to_pylist() == ["a"] * 3
    with pytest.raises(FileNotFoundError):
        fetch_source(f"{base}/nothing-here/", tmp_path / "none", options=FetchOptions(**FAST))


def test_a_column_some_files_lack_takes_its_default_and_is_counted(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    pq.write_table(pa.table({"sample_id": ["a", "b", "c"], "count_olive": [1, 0, 2]}), src / "old.parquet")
    pq.write_table(
        pa.table({"sample_id": ["d", "e"], "count_olive": [1, 1], "count_onion": pa.array([3, None], pa.int16())}),
        src / "new.parquet",
    )
    plain = fetch_source(str(src), tmp_path / "plain")
    filled = fetch_source(str(src), tmp_path / "filled", options=FetchOptions(column_defaults={"count_onion": 0.0}))
    onions = dict(
        zip(
            *(
                pa.concat_tables([pq.read_table(p) for p in filled.paths()]).column(c).to_pylist()
                for c in ("sample_id", "count_onion")
            )
        )
    )
    assert onions == {"a": 0, "b": 0, "c": 0, "d": 3, "e": None}  # a null in a file with the column stays null
    assert filled.filled == {"count_onion": 3} and plain.filled == {}
    assert filled.fingerprint != plain.fingerprint  # the default is part of the data
    other = fetch_source(str(src), tmp_path / "other", options=FetchOptions(column_defaults={"count_onion": 1.0}))
    assert other.fingerprint != filled.fingerprint
    again = fetch_source(str(src), tmp_path / "filled", options=FetchOptions(column_defaults={"count_onion": 0.0}))
    assert again.fingerprint == filled.fingerprint and again.filled == filled.filled  # a rerun reuses the shards


def test_rows_of_files_without_an_id_column_get_file_and_row_ids(tmp_path):
    """'<file>#<row>' per file without the id column, the file's own ids otherwise; the same on a rerun, and a
    change of data.id_column fetches the files again under the new name."""
    from doughflow.data.sources.fetch import FetchOptions

    source = tmp_path / "src"
    (source / "more").mkdir(parents=True)
    (source / "a.jsonl").write_text('{"text": "one"}\n{"text": "two"}\n')
    (source / "more" / "b.jsonl").write_text('{"text": "three", "sample_id": "own-1"}\n')
    first = fetch_source(str(source), tmp_path / "raw", options=FetchOptions(format="jsonl"))
    ids = sorted(i for s in first.shards for i in pq.read_table(s.path).column("sample_id").to_pylist())
    assert ids == ["a.jsonl#000000000", "a.jsonl#000000001", "own-1"] and first.made_ids == 2
    assert {e.name: e.made_ids for e in first.files} == {"a.jsonl": 2, "more/b.jsonl": 0}
    rerun = fetch_source(str(source), tmp_path / "raw", options=FetchOptions(format="jsonl"))
    assert rerun.shards == first.shards and rerun.made_ids == 2  # reused, not refetched
    renamed = fetch_source(str(source), tmp_path / "raw", options=FetchOptions(format="jsonl", id_column="doc"))
    assert {e.key for e in renamed.files}.isdisjoint({e.key for e in first.files})
    assert sorted(i for s in renamed.shards for i in pq.read_table(s.path).column("doc").to_pylist())[:2] == [
        "a.jsonl#000000000",
        "a.jsonl#000000001",
    ]
