"""Images in and out of the style network: any file, size, orientation or colour mode.

* :func:`open_image` turns bytes, a path or a PIL image into an upright RGB
  image: EXIF orientation applied, transparency composited on white,
  greyscale/palette/CMYK/16-bit converted. Anything unreadable raises
  :class:`~engine.errors.ImageError` (a user error: "send a JPEG, PNG or WebP").
  Decompression bombs never get decoded: the pixel count is read from the
  header and checked first (:class:`~engine.errors.ImageTooManyPixelsError`);
  with ``max_side`` a big photo is decoded at reduced scale where the format
  allows it (JPEG's DCT scaling via ``Image.draft``) and shrunk right away.
* :func:`fit_within` bounds the longest side (aspect ratio kept).
* :func:`pad_for_network` / :func:`crop` mirror-pad an ``H x W x 3`` array to
  the sizes the generator handles exactly and cut the result back, so an image
  that already fits is never resampled.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from engine.errors import ImageError, ImageTooManyPixelsError
from engine.image.png_info import PictureParameters, png_info

ImageSource = Image.Image | bytes | bytearray | memoryview | str | os.PathLike

_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_WIDE_GREY_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
_RESAMPLE = Image.Resampling.LANCZOS
#: Modes that resize well as they are (shrunk before the RGB conversion, which then works on few pixels).
_RESIZABLE_MODES = {"RGB", "RGBA", "L", "LA", "CMYK", "I", "F"}
#: EXIF orientation -> the transpose that shows the image upright (as ``ImageOps.exif_transpose``).
_ORIENTATIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_EXIF_ORIENTATION = 0x0112
#: ``Image.info`` entries ``getexif()`` reads an orientation from.
_ORIENTATION_INFO = ("exif", "xmp", "XML:com.adobe.xmp", "Raw profile type exif")

#: Default largest photo (width x height) :func:`open_image` decodes: 40 megapixels, ~120 MB as RGB.
DEFAULT_MAX_PIXELS = 40_000_000

# Pillow warns (on stderr) between MAX_IMAGE_PIXELS and twice that; open_image refuses such images itself.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def open_image(
    source: ImageSource, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, max_side: int | None = None
) -> Image.Image:
    """An upright 8-bit RGB image from bytes, a file path or a PIL image.

    ``max_pixels``: an encoded image with more pixels than this (read from its
    header, before any decoding) raises :class:`ImageTooManyPixelsError`; the
    limit is never above Pillow's ``Image.MAX_IMAGE_PIXELS`` (``None``: only
    Pillow's). ``max_side``: the result is scaled down so its longest side is
    at most this; JPEGs are then decoded at 1/2, 1/4 or 1/8 scale when that is
    still big enough (``Image.draft``), other formats are shrunk right after
    decoding, before any conversion. A PIL image passed in is used as it is
    (only ``max_side`` applies).

    Raises :class:`ImageError` for empty, truncated or non-image data.
    """
    if isinstance(source, Image.Image):
        image = source
    else:
        image = _decode(source, pixel_limit(max_pixels), max_side)
    try:
        transpose = _ORIENTATIONS.get(_orientation(image))
        # fit_within() bounds both sides alike, so shrinking before rotating gives the same size.
        if max_side is not None and image.mode in _RESIZABLE_MODES:
            image = shrink(image, max_side)
        image = _to_rgb(image)
        if max_side is not None:
            image = shrink(image, max_side)
        if transpose is not None:
            image = image.transpose(transpose)
            for key in _ORIENTATION_INFO:  # upright now: opening it again must not rotate it twice
                image.info.pop(key, None)
        return image
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"cannot convert image ({type(exc).__name__}: {exc})") from exc


def pixel_limit(max_pixels: int | None) -> int | None:
    """The pixel limit in force: ``max_pixels`` capped by Pillow's ``Image.MAX_IMAGE_PIXELS`` (``None`` = no limit)."""
    limits = [limit for limit in (max_pixels, Image.MAX_IMAGE_PIXELS) if limit is not None]
    return int(min(limits)) if limits else None


def shrink(image: Image.Image, max_side: int) -> Image.Image:
    """``image`` scaled down to fit ``max_side`` (integer box reduction first, then Lanczos); unchanged if it fits."""
    size = fit_within(image.size, max_side)
    return image if size == image.size else image.resize(size, _RESAMPLE, reducing_gap=3.0)


def _decode(
    source: bytes | bytearray | memoryview | str | os.PathLike, max_pixels: int | None, max_side: int | None
) -> Image.Image:
    try:
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            if not data:
                raise ImageError("empty image data")
            source = data
        else:
            source = Path(source)
        try:
            image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)  # reads the header only
        except Image.DecompressionBombError as exc:  # over twice Pillow's limit: Pillow refuses to open it at all
            size = _header_size(source)
            if size is None or max_pixels is None:
                raise ImageError(f"decompression bomb ({exc})") from exc
            raise _too_many_pixels(size, max_pixels) from exc
        if max_pixels is not None and image.width * image.height > max_pixels:
            image.close()
            raise _too_many_pixels(image.size, max_pixels)
        if max_side is not None:
            image.draft(None, fit_within(image.size, max_side))  # JPEG: decode at the smallest scale still >= target
        image.load()  # decode now so truncated files fail here, not later
        return image
    except ImageError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"not a readable image ({type(exc).__name__}: {exc})") from exc


def _too_many_pixels(size: tuple[int, int], limit: int) -> ImageTooManyPixelsError:
    megapixels = limit / 1e6
    shown = round(megapixels, 1) if megapixels >= 0.1 else megapixels
    return ImageTooManyPixelsError(
        f"{size[0]}x{size[1]} = {size[0] * size[1]} pixels > {limit}", width=size[0], height=size[1], limit_mp=shown
    )


def _header_size(source: bytes | Path) -> tuple[int, int] | None:
    """Width and height from the header of an image Pillow refuses to open (``DecompressionBombError``).

    Does what ``Image.open`` does, minus its pixel check: the first format
    plugin that accepts the file reads the header (nothing is decoded).
    """
    Image.init()
    try:
        with io.BytesIO(source) if isinstance(source, bytes) else source.open("rb") as fp:
            prefix = fp.read(16)
            for name in Image.ID:
                factory, accept = Image.OPEN[name]
                if accept is not None and not accept(prefix):
                    continue
                fp.seek(0)
                try:
                    width, height = factory(fp, "").size
                    return width, height
                except (SyntaxError, IndexError, TypeError, ValueError, OSError, struct.error):
                    continue
    except Exception:
        return None
    return None


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation of ``image`` (1 = upright; also 1 for a missing or broken EXIF block)."""
    try:
        value = image.getexif().get(_EXIF_ORIENTATION, 1)
        return value if isinstance(value, int) else 1
    except (ValueError, TypeError, SyntaxError, KeyError, OSError, struct.error):
        return 1  # broken EXIF block: use the pixels as stored


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


def png_bytes(image: Image.Image, parameters: PictureParameters | None = None) -> bytes:
    """``image`` encoded as PNG, carrying ``parameters`` (how it was made) in its text chunks when given."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=png_info(parameters) if parameters is not None else None)
    return buffer.getvalue()
