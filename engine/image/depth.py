"""A photo's depth map for the depth ControlNet: Depth Anything V2 Small through transformers' public API.

One entry point: ``DepthEstimator(model).depth_map(picture) -> Image``, a grey
picture of ``picture``'s size, near things light and far things dark (the
convention the ``control_v11f1p_sd15_depth`` ControlNet was trained with).

* The model is ``depth-anything/Depth-Anything-V2-Small-hf`` (Apache-2.0,
  about 100 MB; the Base and Large checkpoints are CC-BY-NC, not for us) or a
  local directory saved with ``save_pretrained``, loaded with
  ``AutoModelForDepthEstimation`` and ``AutoImageProcessor``. It loads once per
  process on first use (a hub id downloads into the models directory) and a
  failure is a :class:`~engine.errors.DepthModelUnavailableError` saying what to put where.
* Depth Anything predicts relative inverse depth (larger: nearer); the map is
  that, stretched to 0..255 per picture. A metric checkpoint (distances, e.g.
  ``Depth-Anything-V2-Metric-Indoor-Small-hf``) is inverted to the same convention.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import DepthModelUnavailableError, library_reason
from engine.hub import HUB_ID

if TYPE_CHECKING:  # heavy imports stay lazy
    from PIL.Image import Image

log = logging.getLogger(__name__)

#: The depth estimator when the settings name none (Hugging Face id; Apache-2.0).
DEFAULT_ESTIMATOR = "depth-anything/Depth-Anything-V2-Small-hf"
#: The setting that names it.
SETTING = "CONTROLNET_DEPTH_ESTIMATOR"


class DepthEstimator:
    """A monocular depth model (hub id or local directory), loaded once on first use, thread-safe."""

    def __init__(self, model: str = DEFAULT_ESTIMATOR, *, cache_dir: str | Path | None = None) -> None:
        self.model = model
        self.cache_dir = cache_dir
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any] | None = None

    def depth_map(self, picture: Image, *, device: Any = "cpu") -> Image:
        """``picture``'s depth as grey RGB of its size: near is light, far is dark; raises DepthModelUnavailableError.

        ``device``: where the model runs (the drawing model's device).
        """
        import torch
        from PIL import Image as PILImage

        rgb = picture.convert("RGB")
        processor, model = self._model(device)
        inputs = processor(images=rgb, return_tensors="pt").to(model.device)
        with self._lock, torch.inference_mode():
            outputs = model(**inputs)
        depth = processor.post_process_depth_estimation(outputs, target_sizes=[(rgb.height, rgb.width)])[0]["predicted_depth"]
        metric = getattr(model.config, "depth_estimation_type", "relative") == "metric"
        return PILImage.fromarray(grey(depth.float().cpu().numpy(), metric=metric)).convert("RGB")

    def _model(self, device: Any) -> tuple[Any, Any]:
        """The processor and the model on ``device`` (loaded on the first call)."""
        with self._lock:
            if self._loaded is None:
                self._loaded = self._load()
            processor, model = self._loaded
            return processor, model.to(device)  # a no-op where it already is

    def _load(self) -> tuple[Any, Any]:
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        local = Path(self.model).expanduser()
        source = str(local) if local.is_dir() else self.model
        kwargs: dict[str, Any] = {}
        if self.cache_dir is not None:
            kwargs["cache_dir"] = str(self.cache_dir)
        started = time.perf_counter()
        try:
            processor = AutoImageProcessor.from_pretrained(source, **kwargs)
            model = AutoModelForDepthEstimation.from_pretrained(source, **kwargs)
        except (OSError, ValueError) as exc:
            raise DepthModelUnavailableError(missing(self.model, exc)) from exc
        model.eval()
        log.info("loaded the depth estimator %s in %.1f s", self.model, time.perf_counter() - started)
        return processor, model


def grey(values: Any, *, metric: bool = False) -> Any:
    """A model's depth output as 0..255 (uint8), nearest lightest: relative inverse depth as it is, ``metric`` distances inverted."""
    import numpy as np

    low, high = float(values.min()), float(values.max())
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    return ((1 - scaled if metric else scaled) * 255).round().astype(np.uint8)


def missing(model: str, exc: BaseException) -> str:
    """What to put where when the depth estimator ``model`` cannot be loaded."""
    reason = library_reason(exc)
    if HUB_ID.match(model) and not Path(model).expanduser().exists():
        name = model.rsplit("/", 1)[-1]
        return (
            f"the depth estimator {model} could not be loaded ({reason}); on a machine with "
            f"internet access run `hf download {model} --local-dir models/{name}`, copy models/{name} here and set "
            f"{SETTING}=models/{name} (or let it download into MODELS_DIR)"
        )
    return (
        f"the depth estimator at {model} could not be loaded ({reason}); put a transformers "
        f"depth-estimation directory there (config.json, model.safetensors and preprocessor_config.json) or point {SETTING} at one"
    )
