"""What an encoded image claims to be, read from its first bytes, before anything decodes it.

Why: a decoder allocates what the header asks for. A 656 KB PNG of one colour that declares
15000x15000 pixels passed validation and cost 643 MiB to decode (measured), so the format, byte
size and pixel count are checked here and a row over a limit is quarantined with that reason
without ever being decoded. Only the fixed-size header fields are read (PNG IHDR, the JPEG SOF
segment, GIF's logical screen, WebP's VP8/VP8L/VP8X header, BMP's info header); nothing here
allocates by what the header says, and a header that cannot be read is itself a reason.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic...): not DHT (C4),
# JPG (C8) or DAC (CC), which share the range.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_SCAN_LIMIT = 1 << 20  # a frame header after 1 MiB of metadata segments is not worth finding
FORMATS = ("png", "jpeg", "gif", "webp", "bmp", "tiff")


@dataclass(frozen=True)
class ImageHeader:
    """Format sniffed from the magic bytes ("unknown" when none matches) and the declared size
    (None when the header is truncated or malformed)."""

    format: str
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class ImageLimits:
    """What validation accepts before decoding (``data.image_formats``, ``data.max_image_bytes``,
    ``data.max_image_pixels``)."""

    formats: tuple[str, ...] = ("png", "jpeg")
    max_bytes: int = 16 * 2**20
    max_pixels: int = 4096 * 4096
    min_side: int = 8  # after decoding: smaller images carry too little to learn from


def _png(data: bytes) -> ImageHeader:
    # IHDR must be the first chunk: length 13, type, width, height (big-endian).
    if len(data) < 24 or data[12:16] != b"IHDR":
        return ImageHeader("png")
    width, height = struct.unpack(">II", data[16:24])
    return ImageHeader("png", width, height)


def _jpeg(data: bytes) -> ImageHeader:
    pos, end = 2, min(len(data), _JPEG_SCAN_LIMIT)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return ImageHeader("jpeg")  # not a marker where one must be: malformed
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # standalone markers carry no length
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or start of scan before any frame header
            return ImageHeader("jpeg")
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if length < 2:
            return ImageHeader("jpeg")
        if marker in _JPEG_SOF:
            if pos + 9 > len(data):
                return ImageHeader("jpeg")
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return ImageHeader("jpeg", width, height)
        pos += 2 + length
    return ImageHeader("jpeg")


def _webp(data: bytes) -> ImageHeader:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
        return ImageHeader("webp", width, height)
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return ImageHeader("webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return ImageHeader("webp", width & 0x3FFF, height & 0x3FFF)
    return ImageHeader("webp")


def read_header(data: bytes) -> ImageHeader:
    """The format and declared size of encoded image bytes, from a bounded prefix."""
    if data[:8] == PNG_SIGNATURE:
        return _png(data)
    if data[:3] == b"\xff\xd8\xff":
        return _jpeg(data)
    if data[:6] in (b"GIF87a", b"GIF89a"):
        if len(data) < 10:
            return ImageHeader("gif")
        width, height = struct.unpack("<HH", data[6:10])
        return ImageHeader("gif", width, height)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data)
    if data[:2] == b"BM":
        if len(data) < 26:
            return ImageHeader("bmp")
        width, height = struct.unpack("<ii", data[18:26])
        return ImageHeader("bmp", abs(width), abs(height))
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return _lazy_size("tiff", data)  # the size lives in an IFD anywhere in the file
    return ImageHeader("unknown")


def _lazy_size(name: str, data: bytes) -> ImageHeader:
    """Pillow's ``Image.open`` parses headers only; pixels are read on ``load()``, never here."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Exception:  # noqa: BLE001 - any parse failure means an unreadable header
        return ImageHeader(name)
    return ImageHeader(name, width, height)


@dataclass
class HeaderVerdict:
    """Why a row's image may not be decoded: (category, detail), or both None when it may."""

    category: str | None = None
    detail: str | None = None
    header: ImageHeader = field(default_factory=lambda: ImageHeader("unknown"))


def check_header(data: bytes, limits: ImageLimits, column: str = "image") -> HeaderVerdict:
    """Apply ``limits`` to encoded bytes without decoding them. Categories are what the
    validation report counts ("image: too many pixels"); details name the numbers."""
    if len(data) > limits.max_bytes:
        return HeaderVerdict(
            f"{column}: too many bytes",
            f"{column}: {len(data)} bytes, over the limit of {limits.max_bytes} (data.max_image_bytes)",
        )
    header = read_header(data)
    if header.format not in limits.formats:
        shown = "an unknown format" if header.format == "unknown" else f"format {header.format}"
        return HeaderVerdict(
            f"{column}: format not allowed",
            f"{column}: {shown}, allowed: {', '.join(limits.formats)} (data.image_formats)",
            header,
        )
    if header.width is None or header.height is None:
        return HeaderVerdict(
            f"{column}: undecodable", f"{column}: undecodable image (unreadable {header.format} header)", header
        )
    pixels = header.width * header.height
    if pixels > limits.max_pixels:
        return HeaderVerdict(
            f"{column}: too many pixels",
            f"{column}: {header.width}x{header.height} = {pixels} pixels, over the limit of "
            f"{limits.max_pixels} (data.max_image_pixels)",
            header,
        )
    if min(header.width, header.height) < limits.min_side:
        return HeaderVerdict(
            f"{column}: too small", f"{column}: image too small {header.width}x{header.height}", header
        )
    return HeaderVerdict(header=header)
