"""Comparing generated pictures without depending on bit-exact floating point.

The same seed drawn in another batch shape, with another thread count, on another
CPU (AVX2 vs AVX-512 kernels, MKL's alignment-dependent paths) or by another backend
(ONNX Runtime vs torch) may round a handful of values the other way: measured, a
64x64 tiny-SD image drawn in a batch of 3 vs alone differs in 3 of 12,288 values, by 1.
A wrong seed, prompt, style or weights changes the picture by tens of levels on
average (different seeds: mean |diff| ~45 of 255; a negative prompt ~5; the test
LoRA ~9; another AnimeGAN style ~110). So:

- :func:`assert_images_close` allows rounding noise only: every value within
  ``max_abs`` (default 2 of 255) and a mean |diff| of at most ``mean_abs`` (default
  0.05, i.e. about one value in twenty off by one);
- :func:`assert_images_differ` demands a mean |diff| of at least ``min_mean_abs``
  (default 1.0, twenty times the closeness budget), so "close" and "different" never overlap.

Exact comparison stays right only where no floating point is involved (pure
cropping/padding, stored bytes read back).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

#: Largest per-value difference (of 255) that counts as rounding noise.
MAX_ABS = 2
#: Largest mean absolute difference (of 255) that counts as rounding noise.
MEAN_ABS = 0.05
#: Smallest mean absolute difference (of 255) for two pictures to count as different.
MIN_MEAN_ABS_DIFFERENT = 1.0


def pixels(image: Any) -> np.ndarray:
    """``image`` as a signed int16 array: a PIL image, an array, encoded bytes, a path, or anything with ``.image``."""
    if hasattr(image, "image") and not isinstance(image, (np.ndarray, Image.Image)):
        image = image.image  # e.g. engine.image.diffusion.GeneratedImage
    if isinstance(image, (bytes, bytearray)):
        image = Image.open(io.BytesIO(image))
    elif isinstance(image, (str, Path)):
        image = Image.open(image)
    if isinstance(image, Image.Image):
        image.load()
    return np.asarray(image).astype(np.int16)


def _diff(a: Any, b: Any) -> np.ndarray:
    pa, pb = pixels(a), pixels(b)
    assert pa.shape == pb.shape, f"images differ in shape: {pa.shape} vs {pb.shape}"
    return np.abs(pa - pb)


def _describe(diff: np.ndarray) -> str:
    return f"max |diff| {int(diff.max())}, mean |diff| {diff.mean():.4f}, {int((diff > 0).sum())} of {diff.size} values differ"


def assert_images_close(a: Any, b: Any, *, max_abs: int = MAX_ABS, mean_abs: float = MEAN_ABS) -> None:
    """``a`` and ``b`` have the same shape and differ by floating-point rounding at most."""
    diff = _diff(a, b)
    assert diff.max() <= max_abs and diff.mean() <= mean_abs, (
        f"images are not the same picture: {_describe(diff)} (allowed: max {max_abs}, mean {mean_abs})"
    )


def assert_images_differ(a: Any, b: Any, *, min_mean_abs: float = MIN_MEAN_ABS_DIFFERENT) -> None:
    """``a`` and ``b`` have the same shape and are clearly different pictures, not a rounding away from each other."""
    diff = _diff(a, b)
    assert diff.mean() >= min_mean_abs, f"images are (nearly) the same picture: {_describe(diff)} (needed: mean >= {min_mean_abs})"
