"""Images for Discord uploads: keep every file under the size limit Discord reports.

Discord refuses an upload over the limit of the interaction
(``Interaction.attachment_size_limit``) or guild (``Guild.filesize_limit``).
A PNG that is too big is re-encoded as JPEG at falling quality, then scaled
down, until it fits.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

#: JPEG qualities tried, best first, before the image is scaled down.
JPEG_QUALITIES = (90, 80, 70, 60)
#: Each downscale keeps this fraction of both sides.
SCALE_STEP = 0.75
#: Never scale below this many pixels on the longest side.
MIN_SIDE = 32
#: The first bytes of every JPEG file (SOI marker + the next marker's 0xFF).
JPEG_MAGIC = b"\xff\xd8\xff"


class TooLargeError(ValueError):
    """Even the smallest JPEG is over the limit."""


@dataclass(frozen=True)
class Upload:
    """Bytes and a file name whose extension matches them."""

    data: bytes
    filename: str


def fit_image(png: bytes, limit: int, stem: str = "anime") -> Upload:
    """``png`` itself when it fits in ``limit`` bytes (a JPEG — e.g. a preview — named ``.jpg``), else the best JPEG that does."""
    if len(png) <= limit:
        return Upload(png, f"{stem}.jpg" if png.startswith(JPEG_MAGIC) else f"{stem}.png")
    with Image.open(io.BytesIO(png)) as source:
        image = source.convert("RGB")
    while True:
        for quality in JPEG_QUALITIES:
            data = _jpeg(image, quality)
            if len(data) <= limit:
                return Upload(data, f"{stem}.jpg")
        width, height = image.size
        if max(width, height) * SCALE_STEP < MIN_SIDE:
            raise TooLargeError(f"image does not fit in {limit} bytes")
        image = image.resize((max(1, round(width * SCALE_STEP)), max(1, round(height * SCALE_STEP))), Image.Resampling.LANCZOS)


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, optimize=True)
    return buffer.getvalue()
