"""Pictures upscaled ×2 or ×4 with Real-ESRGAN's anime model, tile by tile so memory stays bounded.

* The model (``UPSCALE_MODEL``) is ``realesr-animevideov3`` — Real-ESRGAN's
  SRVGGNetCompact for anime (2.4 MB, BSD-3-Clause), downloaded on first use
  from its official release into the models directory and sha256-pinned — or
  the path of any SRVGGNetCompact ``.pth`` (the operator's own file, used as
  it is). A model that cannot be had raises
  :class:`~engine.errors.UpscaleModelUnavailableError` saying what to put where.
* The network upscales ×4; ×2 is its ×4 result scaled down (Lanczos), which
  keeps the detail it restored.
* Tiles: the picture is cut into ``tile``-pixel squares, each run with a
  margin of context as wide as the network's receptive field and cropped back
  to its square. Every output pixel then sees exactly the input it sees
  untiled, so there are no seams to blend, and memory grows with the tile,
  not the picture: the output is written into one ``uint8`` array.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from engine.api import UPSCALING, CancelCheck, ProgressCallback
from engine.errors import Cancelled, UpscaleModelUnavailableError
from engine.files import atomic_write, sha256_file
from engine.image.device import dtype_for, resolve_device
from engine.image.upscale_model import SRVGGNetCompact, from_state_dict

log = logging.getLogger(__name__)

#: The factors a picture can be upscaled by.
SCALES = (2, 4)
#: Default side of a tile, in input pixels: 256 (plus margins) keeps a tile's activations near 25 MB each on CPU.
DEFAULT_TILE = 256
#: Largest download accepted for a model (the known ones are a few MB).
MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
DOWNLOAD_TIMEOUT = 60.0


@dataclass(frozen=True)
class KnownModel:
    """An upscaling model fetched by name: its file in the models directory, official URL and sha256."""

    name: str
    file: str
    url: str
    sha256: str


#: Real-ESRGAN AnimeVideo-v3 (xinntao/Real-ESRGAN release v0.2.5.0, BSD-3-Clause).
REALESR_ANIMEVIDEOV3 = KnownModel(
    name="realesr-animevideov3",
    file="realesr-animevideov3.pth",
    url="https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.5.0/realesr-animevideov3.pth",
    sha256="b8a8376811077954d82ca3fcf476f1ac3da3e8a68a4f4d71363008000a18b75d",
)
KNOWN_MODELS = {model.name: model for model in (REALESR_ANIMEVIDEOV3,)}


@dataclass(frozen=True)
class UpscaleConfig:
    """Which model (a :data:`KNOWN_MODELS` name or a ``.pth`` path), where known ones are kept, the device and the tile side."""

    model: str = REALESR_ANIMEVIDEOV3.name
    models_dir: Path = Path("models")
    device: str = "auto"
    tile: int = DEFAULT_TILE

    def __post_init__(self) -> None:
        if not 32 <= self.tile <= 4096:
            raise ValueError(f"tile must be between 32 and 4096 pixels, got {self.tile}")


class Upscaler:
    """Real-ESRGAN upscaling; the weights load (and download) on first use, once, under a lock."""

    def __init__(self, config: UpscaleConfig) -> None:
        self.config = config
        self._network: SRVGGNetCompact | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """The model's name, as a picture's parameters note it: the known name, or the file's stem."""
        return self.config.model if self.config.model in KNOWN_MODELS else Path(self.config.model).stem

    def load(self) -> SRVGGNetCompact:
        """The network, on its device (fetched, verified and loaded the first time)."""
        with self._lock:
            if self._network is None:
                path = self._weights()
                device = resolve_device(self.config.device)
                self._network = _read(path).to(device=device, dtype=dtype_for(device))
            return self._network

    def upscale(
        self, image: Image.Image, scale: int, *, progress: ProgressCallback | None = None, cancelled: CancelCheck | None = None
    ) -> Image.Image:
        """``image`` (RGB) ``scale`` (2 or 4) times larger; ``progress`` gets ``("upscale", fraction)`` per tile.

        Raises :class:`~engine.errors.Cancelled` between tiles when ``cancelled`` says so.
        """
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {scale}")
        network = self.load()
        pixels = upscale_tiled(network, np.asarray(image.convert("RGB")), self.config.tile, progress, cancelled)
        result = Image.fromarray(pixels, "RGB")
        native = network.scale
        if scale == native:
            return result
        return result.resize((image.width * scale, image.height * scale), Image.Resampling.LANCZOS)

    def _weights(self) -> Path:
        known = KNOWN_MODELS.get(self.config.model)
        if known is None:
            path = Path(self.config.model).expanduser()
            if not path.is_file():
                raise UpscaleModelUnavailableError(
                    f"UPSCALE_MODEL={self.config.model}: no such file. Put a Real-ESRGAN SRVGGNetCompact .pth there, "
                    f"or set UPSCALE_MODEL={REALESR_ANIMEVIDEOV3.name} to download that model on first use"
                )
            return path
        path = Path(self.config.models_dir) / known.file
        if path.is_file():
            actual = sha256_file(path)
            if actual == known.sha256:
                return path
            log.warning("upscaling model %s has sha256 %s, expected %s: downloading it again", path, actual, known.sha256)
        _download(known, path)
        return path


def _how_to_get(model: KnownModel, path: Path) -> str:
    return (
        f"Put {model.file} (from {model.url}, sha256 {model.sha256}) at {path}, "
        "or set UPSCALE_MODEL to the path of a Real-ESRGAN SRVGGNetCompact .pth"
    )


def _download(model: KnownModel, path: Path) -> None:
    """Fetch ``model`` to ``path``: checked against its sha256 before it takes the file's place."""
    log.info("downloading the upscaling model %s from %s to %s", model.name, model.url, path)
    request = urllib.request.Request(model.url, headers={"User-Agent": "voice2anime"})
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT) as response:
            data = response.read(MAX_DOWNLOAD_BYTES + 1)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        raise UpscaleModelUnavailableError(
            f"the upscaling model {model.name} is missing and downloading it from {model.url} failed ({reason}). "
            f"{_how_to_get(model, path)}"
        ) from error
    actual = hashlib.sha256(data).hexdigest()
    if len(data) > MAX_DOWNLOAD_BYTES or actual != model.sha256:
        raise UpscaleModelUnavailableError(
            f"the file downloaded from {model.url} has sha256 {actual}, expected {model.sha256}; it was not kept. "
            f"{_how_to_get(model, path)}"
        )
    try:
        atomic_write(path, data)
    except OSError as error:
        raise UpscaleModelUnavailableError(f"cannot write {path} ({error}). {_how_to_get(model, path)}") from error


def _read(path: Path) -> SRVGGNetCompact:
    """The network in a checkpoint: Real-ESRGAN's ``{"params": …}`` / ``{"params_ema": …}`` or a bare state dict."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        state = checkpoint.get("params_ema") or checkpoint.get("params") or checkpoint
        return from_state_dict(state)
    except Exception as error:  # torch raises pickle, zip and runtime errors alike for a file that is not a checkpoint
        raise UpscaleModelUnavailableError(
            f"{path} is not a Real-ESRGAN SRVGGNetCompact checkpoint ({type(error).__name__}: {error}); "
            f"replace it, or set UPSCALE_MODEL={REALESR_ANIMEVIDEOV3.name} to download that model"
        ) from error


def tiles(height: int, width: int, tile: int) -> Iterator[tuple[int, int, int, int]]:
    """The ``(top, left, bottom, right)`` squares of side ``tile`` (smaller at the edges) that cover the picture."""
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            yield top, left, min(top + tile, height), min(left + tile, width)


def upscale_tiled(
    network: SRVGGNetCompact,
    pixels: np.ndarray,
    tile: int,
    progress: ProgressCallback | None = None,
    cancelled: CancelCheck | None = None,
) -> np.ndarray:
    """``pixels`` (H x W x 3, uint8) upscaled by the network's factor, one tile at a time (see the module docstring)."""
    height, width = pixels.shape[:2]
    scale, margin = network.scale, network.receptive_radius
    parameter = next(network.parameters())
    out = np.empty((height * scale, width * scale, 3), dtype=np.uint8)
    squares = list(tiles(height, width, tile))
    with torch.inference_mode():
        for done, (top, left, bottom, right) in enumerate(squares, start=1):
            if cancelled is not None and cancelled():
                raise Cancelled
            y0, x0 = max(0, top - margin), max(0, left - margin)
            y1, x1 = min(height, bottom + margin), min(width, right + margin)
            patch = torch.from_numpy(pixels[y0:y1, x0:x1].copy()).permute(2, 0, 1)[None]  # a copy: torch wants writable memory
            result = network(patch.to(parameter.device, parameter.dtype) / 255.0)[0]
            core = result[:, (top - y0) * scale : (bottom - y0) * scale, (left - x0) * scale : (right - x0) * scale]
            rgb = (core.float().clamp_(0, 1) * 255.0).round_().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
            out[top * scale : bottom * scale, left * scale : right * scale] = rgb
            if progress is not None:
                progress(UPSCALING, done / len(squares))
    return out
