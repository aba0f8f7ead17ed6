"""Images in and out of the style network: any file, size, orientation or colour mode.

* :func:`open_image` turns bytes, a path or a PIL image into an upright RGB
  image: EXIF orientation applied, transparency composited on white,
  greyscale/palette/CMYK/16-bit converted. Anything unreadable raises
  :class:`~engine.errors.ImageError` (a user error: "send a JPEG, PNG or WebP").
* :func:`fit_within` bounds the longest side (aspect ratio kept).
* :func:`pad_for_network` / :func:`crop` mirror-pad an ``H x W x 3`` array to
  the sizes the generator handles exactly and cut the result back, so an image
  that already fits is never resampled.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from engine.errors import ImageError

ImageSource = Image.Image | bytes | bytearray | memoryview | str | os.PathLike

_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_WIDE_GREY_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
_RESAMPLE = Image.Resampling.LANCZOS


def open_image(source: ImageSource) -> Image.Image:
    """An upright 8-bit RGB image from bytes, a file path or a PIL image.

    Raises :class:`ImageError` for empty, truncated or non-image data.
    """
    if isinstance(source, Image.Image):
        image = source
    else:
        image = _decode(source)
    try:
        try:
            image = ImageOps.exif_transpose(image)
        except (ValueError, TypeError, SyntaxError, KeyError, OSError):
            pass  # broken EXIF block: use the pixels as stored
        return _to_rgb(image)
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"cannot convert image ({type(exc).__name__}: {exc})") from exc


def _decode(source: bytes | bytearray | memoryview | str | os.PathLike) -> Image.Image:
    try:
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            if not data:
                raise ImageError("empty image data")
            image = Image.open(io.BytesIO(data))
        else:
            image = Image.open(Path(source))
        image.load()  # decode now so truncated files fail here, not later
        return image
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"not a readable image ({type(exc).__name__}: {exc})") from exc


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode in _WIDE_GREY_MODES:
        values = np.asarray(image, dtype=np.float64)
        top = float(values.max()) if values.size else 0.0
        if mode == "F" and top <= 1.0:
            values = values * 255.0  # float images in [0, 1]
        elif mode.startswith("I;16") or top > 255.0:
            values = values / 257.0  # 16-bit -> 8-bit
        grey = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    return image.convert("RGB")


def fit_within(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """``size`` (width, height) scaled down so neither side exceeds ``max_side``; never scaled up."""
    width, height = size
    longest = max(width, height)
    if longest <= max_side:
        return width, height
    scale = max_side / longest
    return max(1, min(max_side, round(width * scale))), max(1, min(max_side, round(height * scale)))


def padded_side(side: int, multiple: int, minimum: int) -> int:
    """The smallest multiple of ``multiple`` that is >= ``side`` and >= ``minimum``."""
    return max(minimum, -(-side // multiple) * multiple)


def pad_for_network(pixels: np.ndarray, multiple: int, minimum: int) -> np.ndarray:
    """Mirror-pad an ``H x W x C`` array at the bottom/right to network-friendly sizes."""
    height, width = pixels.shape[:2]
    pad_h = padded_side(height, multiple, minimum) - height
    pad_w = padded_side(width, multiple, minimum) - width
    if not pad_h and not pad_w:
        return pixels
    # "symmetric" repeats the edge pixel too, so it works even for 1-pixel sides
    return np.pad(pixels, ((0, pad_h), (0, pad_w), (0, 0)), mode="symmetric")


def crop(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """The top-left ``height x width`` of an ``H x W x C`` array."""
    return pixels[:height, :width]


def resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``image`` at ``size`` (width, height) with a high-quality filter; unchanged if already that size."""
    return image if image.size == size else image.resize(size, _RESAMPLE)


def png_bytes(image: Image.Image) -> bytes:
    """``image`` encoded as PNG."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
