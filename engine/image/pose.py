"""A photo's pose as an OpenPose skeleton for the pose ControlNet: DWPose on ONNX Runtime.

One entry point: ``PoseDetector(model).skeleton(picture) -> Image``: the body of
every person found, drawn the OpenPose way (18 points, 17 coloured limbs on
black) at the size the ControlNet annotators use (the shorter side 512).

* The models are DWPose's two ONNX files (``yzd-v/DWPose``, Apache-2.0):
  ``yolox_l.onnx`` (217 MB) finds people, ``dw-ll_ucoco_384.onnx`` (134 MB)
  their whole-body points, of which the 17 body points are drawn. A hub repo
  id downloads them into the models directory on first use; a local
  directory holds them. A failure is a
  :class:`~engine.errors.PoseModelUnavailableError` saying what to put where.
* The pre- and post-processing follow the DWPose annotator of ControlNet 1.1:
  YOLOX on a 640×640 letterbox (grid decoding, person boxes above 0.3, NMS
  0.45); each box padded 1.25×, cropped to 288×384 at the model's aspect,
  normalised with ImageNet's mean and deviation; SimCC argmax decoding (a
  point counts when both axes are sure above 0.3).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import NoPoseFoundError, PoseModelUnavailableError, library_reason
from engine.hub import HUB_ID

if TYPE_CHECKING:  # heavy imports stay lazy
    from PIL.Image import Image

log = logging.getLogger(__name__)

#: The pose detector when the settings name none (Hugging Face repo holding :data:`FILES`; Apache-2.0).
DEFAULT_DETECTOR = "yzd-v/DWPose"
#: The person detector and the keypoint model, in that order.
FILES = ("yolox_l.onnx", "dw-ll_ucoco_384.onnx")
#: The setting that names it.
SETTING = "CONTROLNET_POSE_DETECTOR"
#: The shorter side a photo is read at (as the ControlNet annotators do).
DETECT_SIDE = 512
#: A person box, and a keypoint, count above this score.
THRESHOLD = 0.3
#: Boxes overlapping more than this are one person.
NMS_IOU = 0.45
#: How much room a person box gets around it before the keypoint crop.
PADDING = 1.25
MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)
#: COCO body points -> OpenPose's 18 (index 1, the neck, is the shoulders' middle).
OPENPOSE_FROM_COCO = (0, -1, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)
#: OpenPose's limbs (pairs of its points) and the colours it draws points and limbs in (RGB).
LIMBS = ((1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17))
COLOURS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0), (0, 255, 85), (0, 255, 170),
    (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)
STICK = 4


class PoseDetector:
    """DWPose's person detector and keypoint model (hub repo or local directory), loaded once on first use, thread-safe."""

    def __init__(self, model: str = DEFAULT_DETECTOR, *, cache_dir: str | Path | None = None) -> None:
        self.model = model
        self.cache_dir = cache_dir
        self._lock = threading.Lock()
        self._sessions: tuple[Any, Any] | None = None

    def skeleton(self, picture: Image, *, device: Any = "cpu") -> Image:
        """The OpenPose skeleton of the people in ``picture``; raises NoPoseFoundError, PoseModelUnavailableError.

        ``device``: the drawing model's (CUDA runs the models there when ONNX Runtime has it; first call decides).
        """
        import numpy as np
        from PIL import Image as PILImage

        rgb = picture.convert("RGB")
        scale = DETECT_SIDE / min(rgb.size)
        rgb = rgb.resize((max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))), PILImage.Resampling.LANCZOS)
        image = np.asarray(rgb)
        with self._lock:
            detector, keypoints = self._load(device)
            boxes = person_boxes(detector, image) or [(0.0, 0.0, float(image.shape[1]), float(image.shape[0]))]  # none: the whole photo
            people = [points for box in boxes for points in body_points(keypoints, image, box)]
        if not any((scores > THRESHOLD).sum() >= 2 for _, scores in people):
            raise NoPoseFoundError
        return PILImage.fromarray(draw_skeleton(image.shape[:2], people))

    def _load(self, device: Any) -> tuple[Any, Any]:
        if self._sessions is None:
            import onnxruntime as ort
            import torch

            from engine.image.animegan import onnx_providers, onnx_session_options

            providers = onnx_providers(torch.device(device))
            started = time.perf_counter()
            paths = [self._file(name) for name in FILES]
            try:
                detector, keypoints = (ort.InferenceSession(str(path), onnx_session_options(), providers=providers) for path in paths)
            except Exception as exc:  # a broken file: onnxruntime raises its own exception types
                raise PoseModelUnavailableError(missing(self.model, exc)) from exc
            self._sessions = (detector, keypoints)
            log.info("loaded the pose detector %s in %.1f s", self.model, time.perf_counter() - started)
        return self._sessions

    def _file(self, name: str) -> Path:
        local = Path(self.model).expanduser()
        if local.is_dir() or not HUB_ID.match(self.model):
            path = local / name
            if not path.is_file():
                raise PoseModelUnavailableError(missing(self.model, FileNotFoundError(f"no {path}")))
            return path
        from huggingface_hub import hf_hub_download

        try:
            return Path(hf_hub_download(self.model, name, cache_dir=None if self.cache_dir is None else str(self.cache_dir)))
        except Exception as exc:  # offline, unknown repo, ...: huggingface_hub raises many types
            raise PoseModelUnavailableError(missing(self.model, exc)) from exc


def person_boxes(session: Any, image: Any) -> list[tuple[float, float, float, float]]:
    """The people YOLOX finds in ``image`` (RGB, H×W×3): boxes (x0, y0, x1, y1) in its pixels, surest first."""
    import cv2
    import numpy as np

    size = tuple(session.get_inputs()[0].shape[2:4])  # (640, 640)
    ratio = min(size[0] / image.shape[0], size[1] / image.shape[1])
    resized = cv2.resize(image, (int(image.shape[1] * ratio), int(image.shape[0] * ratio)), interpolation=cv2.INTER_LINEAR)
    padded = np.full((*size, 3), 114, np.uint8)
    padded[: resized.shape[0], : resized.shape[1]] = resized
    batch = padded.transpose(2, 0, 1)[None].astype(np.float32)
    predictions = session.run(None, {session.get_inputs()[0].name: batch})[0][0].astype(np.float64)
    grids, strides = [], []
    for stride in (8, 16, 32):
        xs, ys = np.meshgrid(np.arange(size[1] // stride), np.arange(size[0] // stride))
        grids.append(np.stack((xs, ys), 2).reshape(-1, 2))
        strides.append(np.full((grids[-1].shape[0], 1), stride))
    grid, stride_of = np.concatenate(grids), np.concatenate(strides)
    centres = (predictions[:, :2] + grid) * stride_of
    sizes = np.exp(predictions[:, 2:4]) * stride_of
    scores = predictions[:, 4] * predictions[:, 5]  # objectness × "person"
    sure = scores > THRESHOLD
    corners = np.concatenate((centres - sizes / 2, sizes), axis=1)[sure] / ratio
    kept = cv2.dnn.NMSBoxes(corners.tolist(), scores[sure].tolist(), THRESHOLD, NMS_IOU)
    return [(x, y, x + w, y + h) for x, y, w, h in (corners[i] for i in np.array(kept).reshape(-1))]


def body_points(session: Any, image: Any, box: tuple[float, float, float, float]) -> list[tuple[Any, Any]]:
    """The 17 COCO body points of the person in ``box``: ([17, 2] pixel positions in ``image``, [17] scores)."""
    import cv2
    import numpy as np

    height, width = session.get_inputs()[0].shape[2:4]  # (384, 288)
    x0, y0, x1, y1 = box
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    span = np.array([x1 - x0, y1 - y0]) * PADDING
    aspect = width / height
    span = np.array([span[0], span[0] / aspect]) if span[0] > span[1] * aspect else np.array([span[1] * aspect, span[1]])
    zoom = width / span[0]
    warp = np.array([[zoom, 0, width / 2 - centre[0] * zoom], [0, zoom, height / 2 - centre[1] * zoom]])
    crop = cv2.warpAffine(image, warp, (int(width), int(height)), flags=cv2.INTER_LINEAR)
    batch = ((crop - np.array(MEAN)) / np.array(STD)).transpose(2, 0, 1)[None].astype(np.float32)
    simcc_x, simcc_y = session.run(None, {session.get_inputs()[0].name: batch})[:2]
    split = simcc_x.shape[-1] / width  # 2: SimCC bins per pixel
    xs, ys = simcc_x[0, :17], simcc_y[0, :17]
    located = np.stack((xs.argmax(1), ys.argmax(1)), axis=1) / split
    scores = np.minimum(xs.max(1), ys.max(1))
    points = located / np.array([width, height]) * span + centre - span / 2
    return [(points, scores)]


def draw_skeleton(shape: tuple[int, int], people: list[tuple[Any, Any]]) -> Any:
    """OpenPose's drawing of ``people`` (COCO points and scores) on black of ``shape`` (H, W): RGB uint8."""
    import cv2
    import numpy as np

    canvas = np.zeros((*shape, 3), np.uint8)
    skeletons = [_openpose(points, scores) for points, scores in people]
    for (a, b), colour in zip(LIMBS, COLOURS, strict=False):
        for skeleton in skeletons:
            start, end = skeleton[a], skeleton[b]
            if start is None or end is None:
                continue
            (xa, ya), (xb, yb) = start, end
            length = math.hypot(xa - xb, ya - yb)
            angle = math.degrees(math.atan2(ya - yb, xa - xb))
            polygon = cv2.ellipse2Poly((int((xa + xb) / 2), int((ya + yb) / 2)), (int(length / 2), STICK), int(angle), 0, 360, 1)
            cv2.fillConvexPoly(canvas, np.asarray(polygon), colour)
    canvas = (canvas * 0.6).astype(np.uint8)
    for index, colour in enumerate(COLOURS):
        for skeleton in skeletons:
            point = skeleton[index]
            if point is not None:
                cv2.circle(canvas, (int(point[0]), int(point[1])), 4, colour, thickness=-1)
    return canvas


def _openpose(points: Any, scores: Any) -> list[tuple[float, float] | None]:
    """OpenPose's 18 points from COCO's 17 (None: not seen)."""
    seen = [(float(x), float(y)) if s > THRESHOLD else None for (x, y), s in zip(points, scores, strict=True)]
    left, right = seen[5], seen[6]
    neck = ((left[0] + right[0]) / 2, (left[1] + right[1]) / 2) if left and right else None
    return [neck if coco < 0 else seen[coco] for coco in OPENPOSE_FROM_COCO]


def missing(model: str, exc: BaseException) -> str:
    """What to put where when the pose detector ``model`` cannot be loaded."""
    reason = library_reason(exc)
    files = " and ".join(FILES)
    if HUB_ID.match(model) and not Path(model).expanduser().exists():
        name = model.rsplit("/", 1)[-1]
        return (
            f"the pose detector {model} could not be loaded ({reason}); on a machine with internet "
            f"access run `hf download {model} {' '.join(FILES)} --local-dir models/{name}`, copy models/{name} here and set "
            f"{SETTING}=models/{name} (or let it download into MODELS_DIR)"
        )
    return f"the pose detector at {model} could not be loaded ({reason}); put {files} there or point {SETTING} at them"
