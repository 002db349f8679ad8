"""Image bytes <-> pixels: the one decoder every stage uses (validate, sketch, loaders, reports).

PNGs go through libspng (pyspng): 0.08 ms instead of Pillow's 0.26 ms for a 64x64 pizza, the same
pixels for every colour type (RGB, RGBA, grey, palette, 1-bit), and decoding is the training loader's
main cost. Everything else goes through Pillow.
"""

from __future__ import annotations

import io

import numpy as np
import pyspng
from PIL import Image


def encode_png(pixels: np.ndarray, compress_level: int = 6) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def decode_image(data: bytes) -> np.ndarray:
    """Decode PNG/JPEG bytes to HxWx3 uint8; raises on anything undecodable.

    PNGs go through libspng (pyspng): 0.08 ms instead of Pillow's 0.26 ms for a 64x64 pizza, the
    same pixels for every colour type (RGB, RGBA, grey, palette, 1-bit), and decoding is the training
    loader's main cost. Everything else goes through Pillow."""
    if data[:8] == PNG_SIGNATURE:
        try:
            return pyspng.load(data, format="RGB")
        except RuntimeError as error:  # libspng's message names what is wrong ("end of stream", a bad chunk)
            raise ValueError(f"undecodable PNG: {error}") from error
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
