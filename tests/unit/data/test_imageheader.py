"""Hostile images: the header is read before decoding, and an image over a limit is quarantined with
that reason and never decoded; rows in = valid + quarantined."""

import io
import struct
import zlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from doughflow.data import validate as validation
from doughflow.data.imageheader import ImageLimits, check_header, read_header
from doughflow.data.sources.fetch import fetch_source
from doughflow.data.validate import validate_shards
from tests.support.configs import PIZZA_COLUMNS as COLUMNS
from tests.support.configs import PIZZA_TARGETS as TARGETS


def encoded(fmt: str, size: tuple[int, int] = (24, 16), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, (200, 30, 30) if mode == "RGB" else 3).save(buffer, format=fmt)
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A few hundred bytes of PNG whose header declares width x height RGB pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "fmt,name", [("PNG", "png"), ("JPEG", "jpeg"), ("GIF", "gif"), ("BMP", "bmp"), ("WEBP", "webp"), ("TIFF", "tiff")]
)
def test_header_sizes_match_what_pillow_writes(fmt, name):
    header = read_header(encoded(fmt, (37, 21)))
    assert (header.format, header.width, header.height) == (name, 37, 21)


def test_progressive_jpeg_and_unknown_bytes():
    buffer = io.BytesIO()
    Image.new("RGB", (50, 30)).save(buffer, format="JPEG", progressive=True)
    assert read_header(buffer.getvalue()) == read_header(buffer.getvalue())
    assert (read_header(buffer.getvalue()).width, read_header(buffer.getvalue()).height) == (50, 30)
    assert read_header(b"hello world").format == "unknown"
    assert read_header(b"\x89PNG\r\n\x1a\n").width is None  # truncated before IHDR


@settings(max_examples=200, deadline=None)
@given(
    st.binary(max_size=64),
    st.sampled_from(
        [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"BM", b"RIFF\0\0\0\0WEBPVP8X", b"II*\x00"]
    ),
)
def test_any_bytes_give_a_verdict_not_an_exception(tail, magic):
    verdict = check_header(magic + tail, ImageLimits(formats=("png", "jpeg", "gif", "bmp", "webp", "tiff")))
    assert (verdict.category is None) == (verdict.detail is None)


def test_limits_are_applied_before_decoding(tmp_path, monkeypatch):
    decoded: list[int] = []
    real = validation.decode_image
    monkeypatch.setattr(validation, "decode_image", lambda data: decoded.append(len(data)) or real(data))
    good = encoded("PNG", (16, 16))
    rows = {
        "sample_id": ["ok", "huge", "fat", "gif", "tiny", "jpeg"],
        "customer_id": ["c"] * 6,
        "image": [
            good,
            png_claiming(15000, 15000),
            good + b"\0" * 5000,
            encoded("GIF"),
            encoded("PNG", (4, 40)),
            encoded("JPEG", (16, 16)),
        ],
        **{name: [1] * 6 for name in TARGETS},
    }
    (tmp_path / "src").mkdir()
    pq.write_table(pa.table(rows), tmp_path / "src" / "part-0.parquet")
    raw = fetch_source(str(tmp_path / "src"), tmp_path / "raw")
    limits = ImageLimits(formats=("png", "jpeg"), max_bytes=3000, max_pixels=4096 * 4096)
    result = validate_shards(raw, tmp_path / "valid", **COLUMNS, limits=limits)
    quarantine = {r["sample_id"]: r["_reason"] for r in pq.read_table(result.quarantine_path).to_pylist()}
    assert result.rows_in == 6 and result.rows_valid + result.rows_quarantined == 6
    assert "15000x15000 = 225000000 pixels, over the limit of 16777216 (data.max_image_pixels)" in quarantine["huge"]
    assert "over the limit of 3000 (data.max_image_bytes)" in quarantine["fat"]
    assert "format gif, allowed: png, jpeg (data.image_formats)" in quarantine["gif"]
    assert "too small 4x40" in quarantine["tiny"]
    assert set(quarantine) == {"huge", "fat", "gif", "tiny"}
    assert sorted(decoded) == sorted([len(good), len(rows["image"][5])])  # only the two valid images were decoded
    assert result.reasons == {
        "image: too many pixels": 1,
        "image: too many bytes": 1,
        "image: format not allowed": 1,
        "image: too small": 1,
    }


def test_decoded_size_must_match_the_header(tmp_path):
    """A PNG whose data does not fill the size its header declares is quarantined, not padded."""
    liar = png_claiming(64, 64)  # 4096 zero bytes of image data for 64 rows of 193 bytes
    category, detail, pixels = validation.row_problem(liar, "x", "g", [1] * len(TARGETS), 20, TARGETS, "image")
    assert category == "image: undecodable" and pixels is None, detail
    ok = validation.row_problem(encoded("PNG", (20, 10)), "x", "g", [1] * len(TARGETS), 20, TARGETS, "image")
    assert ok[0] is None and ok[2].shape == (10, 20, 3) and ok[2].dtype == np.uint8
