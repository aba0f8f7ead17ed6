"""Stand-ins for DWPose's two ONNX files, made with ``onnx.helper``: the real input and output shapes, set answers.

The person detector (``yolox_l.onnx``: 1×3×640×640 -> 1×8400×85) finds one
person, the box :data:`BOX` of a 768×512 photo; the keypoint model
(``dw-ll_ucoco_384.onnx``: 1×3×384×288 -> SimCC 1×133×576 and 1×133×768) puts the
17 body points at :data:`CROP_POINTS` of its crop. Their answers do not depend
on the pixels (each output adds 0 × the input's mean, so the input is used).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

#: The photo the stand-ins answer for (width, height), and the person's box in it (x0, y0, x1, y1): 3:4, as the crop.
PHOTO = (768, 512)
BOX = (294.0, 136.0, 474.0, 376.0)
#: COCO's 17 body points in the 288×384 crop: a person standing, arms down (the person's left is the picture's right).
CROP_POINTS = (
    (144, 80), (154, 70), (134, 70), (164, 76), (124, 76), (184, 130), (104, 130), (200, 190), (88, 190),
    (208, 240), (80, 240), (168, 240), (120, 240), (172, 300), (116, 300), (176, 360), (112, 360),
)


def photo_point(crop: tuple[float, float]) -> tuple[float, float]:
    """Where a crop point lands in the photo: the box padded 1.25× is what the crop shows."""
    x0, y0, x1, y1 = BOX
    span_x, span_y = (x1 - x0) * 1.25, (y1 - y0) * 1.25
    return (crop[0] / 288 * span_x + (x0 + x1) / 2 - span_x / 2, crop[1] / 384 * span_y + (y0 + y1) / 2 - span_y / 2)


def _graph(name: str, input_shape: list[int], outputs: dict[str, object]) -> object:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("ReduceMean", ["input"], ["mean"], keepdims=0),
        helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.zeros((), np.float32))),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
    ]
    declared = []
    for output, values in outputs.items():
        array = np.asarray(values, np.float32)
        nodes.append(helper.make_node("Constant", [], [f"{output}_answer"], value=numpy_helper.from_array(array)))
        nodes.append(helper.make_node("Add", [f"{output}_answer", "nothing"], [output]))
        declared.append(helper.make_tensor_value_info(output, TensorProto.FLOAT, list(array.shape)))
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, input_shape)], declared)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def build_tiny_dwpose(dest: Path, *, person: bool = True) -> Path:
    """``yolox_l.onnx`` and ``dw-ll_ucoco_384.onnx`` in ``dest``; ``person=False``: no box, no sure point."""
    import numpy as np
    import onnx

    dest.mkdir(parents=True, exist_ok=True)
    boxes = np.zeros((1, 8400, 85), np.float32)
    simcc_x, simcc_y = np.zeros((1, 133, 576), np.float32), np.zeros((1, 133, 768), np.float32)
    if person:
        ratio = min(640 / PHOTO[1], 640 / PHOTO[0])
        x0, y0, x1, y1 = (side * ratio for side in BOX)
        cx, cy, w, h = (x0 + x1) / 2 / 32, (y0 + y1) / 2 / 32, (x1 - x0) / 32, (y1 - y0) / 32
        anchor = 6400 + 1600 + int(cy) * 20 + int(cx)  # the 32-pixel grid comes last
        boxes[0, anchor, :6] = (cx - int(cx), cy - int(cy), math.log(w), math.log(h), 0.9, 0.9)
        for index, (u, v) in enumerate(CROP_POINTS):
            simcc_x[0, index, 2 * u] = simcc_y[0, index, 2 * v] = 0.9
    onnx.save(_graph("yolox", [1, 3, 640, 640], {"output": boxes}), str(dest / "yolox_l.onnx"))
    onnx.save(_graph("dwpose", [1, 3, 384, 288], {"simcc_x": simcc_x, "simcc_y": simcc_y}), str(dest / "dw-ll_ucoco_384.onnx"))
    return dest


@pytest.fixture(scope="session")
def tiny_pose_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The DWPose stand-ins finding one person, built once per test session."""
    return build_tiny_dwpose(tmp_path_factory.mktemp("tiny-pose") / "dwpose")


@pytest.fixture(scope="session")
def empty_pose_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The DWPose stand-ins finding nobody."""
    return build_tiny_dwpose(tmp_path_factory.mktemp("empty-pose") / "dwpose", person=False)
