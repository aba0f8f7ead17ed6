"""A tiny ONNX model with the I/O signature of NudeNet's detector (YOLOv8, exported by Ultralytics).

NudeNet 3.4 ships ``320n.onnx``: one input ``images`` of shape ``batch x 3 x
height x width`` (RGB in [0, 1], 320 x 320 in practice) and one output
``output0`` of shape ``batch x (4 + 18) x anchors``: per anchor a box (centre
x, centre y, width, height) and one score per class, in the order of the
model's metadata ``names`` (the same as ``engine.policy.photo_check.NUDENET_LABELS``).

:func:`nudity_model` builds a stand-in with exactly that signature and
metadata whose scores are known in closed form from the picture's mean
colour (R, G, B in [0, 1]), with one anchor:

* ``FEMALE_BREAST_EXPOSED`` (class 3) = clip(R - B, 0, 1): a red picture is flagged;
* ``FACE_FEMALE`` (class 1) = clip(G, 0, 1): a harmless class;
* every other class 0.

Its metadata ``imgsz`` is :data:`SIDE` (small, so tests run fast) — the
engine reads the side from there, as it does for the real model. Nothing
here imports the engine: the model is a second source of truth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

LABELS = (
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
SIDE = 32


def expected_scores(rgb: tuple[int, int, int]) -> dict[str, float]:
    """The stand-in's class scores for a picture of one colour (8-bit RGB)."""
    r, g, b = (c / 255 for c in rgb)
    return {"FEMALE_BREAST_EXPOSED": min(max(r - b, 0.0), 1.0), "FACE_FEMALE": min(max(g, 0.0), 1.0)}


def nudity_model() -> bytes:
    """The serialized stand-in (see the module docstring)."""
    import onnx
    from onnx import TensorProto, helper

    weights = np.zeros((3, len(LABELS)), dtype=np.float32)
    weights[:, LABELS.index("FEMALE_BREAST_EXPOSED")] = (1.0, 0.0, -1.0)
    weights[:, LABELS.index("FACE_FEMALE")] = (0.0, 1.0, 0.0)
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, "height", "width"])
    output = helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 4 + len(LABELS), 1])
    initializers = [
        helper.make_tensor("weights", TensorProto.FLOAT, list(weights.shape), weights.flatten().tolist()),
        helper.make_tensor("box", TensorProto.FLOAT, [1, 4], [SIDE / 2, SIDE / 2, SIDE, SIDE]),
        helper.make_tensor("low", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor("high", TensorProto.FLOAT, [], [1.0]),
        helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3]),
        helper.make_tensor("last", TensorProto.INT64, [1], [2]),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["images", "axes"], ["means"], keepdims=0),  # batch x 3
        helper.make_node("MatMul", ["means", "weights"], ["raw"]),  # batch x classes
        helper.make_node("Clip", ["raw", "low", "high"], ["scores"]),
        helper.make_node("Concat", ["box", "scores"], ["row"], axis=1),  # batch x (4 + classes); one picture a batch here
        helper.make_node("Unsqueeze", ["row", "last"], ["output0"]),
    ]
    graph = helper.make_graph(nodes, "nudenet_stand_in", [images], [output], initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="voice2anime-tests", ir_version=8)
    names = {i: label for i, label in enumerate(LABELS)}
    for key, value in {"names": repr(names), "imgsz": repr([SIDE, SIDE]), "task": "detect"}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    return model.SerializeToString()


def write_nudity_model(path: Path) -> Path:
    """Write :func:`nudity_model` to ``path`` (a file), returning it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(nudity_model())
    return path
