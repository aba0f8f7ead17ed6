"""Content policy for photos: a NudeNet-signature ONNX nudity detector.

Pictures (:class:`ImageCheck`) are checked by an ONNX nudity detector
with NudeNet's signature (YOLOv8: ``images`` 1x3xSxS RGB in [0, 1] ->
``output0`` 1x(4+classes)xN), by default the 320n model inside the
``nudenet`` wheel, read straight from the installed package (nudenet itself,
and its OpenCV, are never imported). The check runs where pictures are made
(:mod:`engine.jobs.runner`), so the local engine and Redis workers behave alike.
"""

from __future__ import annotations

import ast
import importlib.util
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import ImageCheckUnavailableError
from engine.policy.levels import ALLOWED, Finding, Level, Verdict, checks_images

if TYPE_CHECKING:
    from PIL.Image import Image


log = logging.getLogger(__name__)

# --------------------------------------------------------------------------
# Pictures
# --------------------------------------------------------------------------

#: NudeNet 3.4's classes, in the order of its detector's outputs (the model's metadata "names" says the same).
NUDENET_LABELS = (
    "FEMALE_GENITALIA_COVERED",
    "FACE_FEMALE",
    "BUTTOCKS_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_BREAST_EXPOSED",
    "ANUS_EXPOSED",
    "FEET_EXPOSED",
    "BELLY_COVERED",
    "FEET_COVERED",
    "ARMPITS_COVERED",
    "ARMPITS_EXPOSED",
    "FACE_MALE",
    "BELLY_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "ANUS_COVERED",
    "FEMALE_BREAST_COVERED",
    "BUTTOCKS_COVERED",
)
#: Least score that flags a picture, per class. Measured on harmless illustrations (README, "Content policy"):
#: flat skin-coloured shapes score up to 0.51 as BUTTOCKS_EXPOSED (a peach emoji), the other classes stay under 0.05.
DEFAULT_THRESHOLDS: Mapping[str, float] = {
    "FEMALE_GENITALIA_EXPOSED": 0.4,
    "MALE_GENITALIA_EXPOSED": 0.4,
    "FEMALE_BREAST_EXPOSED": 0.4,
    "ANUS_EXPOSED": 0.4,
    "BUTTOCKS_EXPOSED": 0.6,
}
#: The detector's side when its metadata does not say (NudeNet's 320n).
DEFAULT_SIDE = 320


def nudenet_model() -> Path | None:
    """The detector inside the installed ``nudenet`` wheel (``320n.onnx``), found without importing nudenet."""
    try:
        spec = importlib.util.find_spec("nudenet")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    for folder in spec.submodule_search_locations or ():
        path = Path(folder) / "320n.onnx"
        if path.is_file():
            return path
    return None


def resolve_model(path: Path | None) -> Path:
    """The ONNX file to use: ``path`` (a file, or a directory with ``model.onnx`` / one ``*.onnx``), else NudeNet's.

    Raises :class:`~engine.errors.ModelUnavailableError` saying what to install or where to put what.
    """
    if path is not None:
        path = Path(path)
        if path.is_file():
            return path
        if path.is_dir():
            named = path / "model.onnx"
            if named.is_file():
                return named
            found = sorted(path.glob("*.onnx"))
            if len(found) == 1:
                return found[0]
        raise ImageCheckUnavailableError(
            f"POLICY_IMAGE_MODEL={path}: no ONNX detector there (a .onnx file, or a directory with model.onnx)"
        )
    found_model = nudenet_model()
    if found_model is None:
        raise ImageCheckUnavailableError(
            "the image check needs a nudity detector: pip install nudenet (its wheel ships the model), "
            "set POLICY_IMAGE_MODEL to an ONNX detector, or POLICY_IMAGE_CHECK=false to send pictures unchecked"
        )
    return found_model


def open_session(model: Path, threads: int, what: str, *, gpu: bool = False) -> Any:
    """An ONNX Runtime session of ``model`` (``threads``: 0 = its default; ``gpu``: CUDA when onnxruntime-gpu has it).

    Raises :class:`~engine.errors.ImageCheckUnavailableError` naming ``what`` when the file cannot be loaded.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    wanted = ("CUDAExecutionProvider", "CPUExecutionProvider") if gpu else ("CPUExecutionProvider",)
    available = onnxruntime.get_available_providers()
    try:
        return onnxruntime.InferenceSession(str(model), options, providers=[name for name in wanted if name in available])
    except Exception as error:
        raise ImageCheckUnavailableError(f"{what} {model} cannot be loaded: {error}") from error


class ImageCheck:
    """An ONNX nudity detector with NudeNet's signature; loads on first use, thread-safe.

    Labels come from the model's metadata ("names"), else NudeNet's; a
    picture is flagged when a class of ``thresholds`` reaches its score (per
    anchor the best class counts, as NudeNet reports it); ``threshold`` sets
    one score for all of them. Pixels go in as RGB, the order the detector was
    trained in (Ultralytics); NudeNet 3.4.2's own ``detect`` hands it BGR (its
    ``cvtColor`` and ``swapRB`` both swap), which moves scores by up to 0.15.
    """

    def __init__(
        self,
        model: Path,
        *,
        thresholds: Mapping[str, float] = DEFAULT_THRESHOLDS,
        threshold: float | None = None,
        threads: int = 0,
    ) -> None:
        self.model = Path(model)
        self.thresholds = dict.fromkeys(thresholds, threshold) if threshold is not None else dict(thresholds)
        self.threads = threads
        self._session: Any = None
        self._labels: tuple[str, ...] = NUDENET_LABELS
        self._side = DEFAULT_SIDE
        self._input = "images"
        self._lock = threading.Lock()

    def load(self) -> None:
        """Open the ONNX session (once)."""
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            session = open_session(self.model, self.threads, "the image check model")
            meta = session.get_modelmeta().custom_metadata_map
            names = _literal(meta.get("names"))
            if isinstance(names, dict) and names:
                self._labels = tuple(str(names[i]) for i in sorted(names))
            size = _literal(meta.get("imgsz"))
            if isinstance(size, list | tuple) and size and isinstance(size[0], int):
                self._side = int(size[0])
            self._input = session.get_inputs()[0].name
            self._session = session
            log.info("image check: %s (%d classes, %d px)", self.model.name, len(self._labels), self._side)

    def scores(self, image: Image) -> dict[str, float]:
        """The best score of each class the detector reports in ``image`` (NudeNet's preprocessing, without OpenCV)."""
        import numpy as np
        from PIL import Image as PILImage

        self.load()
        rgb = image.convert("RGB")
        side = max(rgb.size)
        square = PILImage.new("RGB", (side, side))  # padded right and bottom with black, like NudeNet
        square.paste(rgb, (0, 0))
        pixels = _resize_linear(np.asarray(square, dtype=np.float32), self._side)
        blob = (pixels / 255.0).transpose(2, 0, 1)[None].astype(np.float32)
        (output,) = self._session.run(None, {self._input: blob})[:1]
        rows = np.asarray(output)[0].T  # anchors x (4 + classes)
        classes = rows[:, 4:]
        if classes.size == 0:
            return {}
        best = classes.argmax(axis=1)
        score = classes.max(axis=1)
        found: dict[str, float] = {}
        for index in np.unique(best):
            label = self._labels[index] if index < len(self._labels) else f"class_{index}"
            found[label] = float(score[best == index].max())
        return found

    def findings(self, image: Image) -> tuple[Finding, ...]:
        """The flagged classes at or above their threshold, best first (shirtless men, feet and bellies never flag)."""
        hits = [
            Finding(label, score)
            for label, score in self.scores(image).items()
            if label in self.thresholds and score >= self.thresholds[label]
        ]
        return tuple(sorted(hits, key=lambda f: -f.score))

    def check(self, image: Image, level: Level | str) -> Verdict:
        """The verdict on a picture: ``strict`` refuses a flagged one, ``standard`` allows it as a spoiler; ``off`` does not look."""
        level = Level(level)
        if not checks_images(level):
            return ALLOWED[level]
        findings = self.findings(image)
        if not findings:
            return ALLOWED[level]
        if level is Level.STANDARD:
            return Verdict(True, level, findings=findings, spoiler=True)
        return Verdict(False, level, findings=findings)


def _resize_linear(pixels: Any, side: int) -> Any:
    """``pixels`` (H x W x 3) resized to ``side`` x ``side`` the way OpenCV's INTER_LINEAR does (no antialiasing).

    NudeNet (``cv2.dnn.blobFromImage``) and the YOLOv8 training it comes from
    resize like this; Pillow's bilinear filter averages over the whole
    footprint when shrinking, which moves scores by up to 0.1.
    """
    import numpy as np

    def axis(size: int) -> tuple[Any, Any, Any]:
        position = np.clip((np.arange(side) + 0.5) * (size / side) - 0.5, 0, size - 1)
        low = np.floor(position).astype(np.intp)
        high = np.minimum(low + 1, size - 1)
        return low, high, (position - low).astype(np.float32)

    top, bottom, dy = axis(pixels.shape[0])
    left, right, dx = axis(pixels.shape[1])
    rows = pixels[top] * (1 - dy)[:, None, None] + pixels[bottom] * dy[:, None, None]
    return rows[:, left] * (1 - dx)[None, :, None] + rows[:, right] * dx[None, :, None]


def _literal(value: str | None) -> Any:
    if not value:
        return None
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return None


