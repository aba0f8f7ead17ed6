"""A tiny ONNX model with the I/O signature of SmilingWolf's WD tagger v3, and its tag list (pytest plugin module).

The real taggers (``SmilingWolf/wd-vit-tagger-v3`` and its siblings) ship
``model.onnx`` — one input, ``batch x 448 x 448 x 3`` float32 (BGR, 0..255,
NHWC), one output of ``batch x tags`` sigmoid probabilities — and
``selected_tags.csv`` (``tag_id,name,category,count``) whose first four rows,
category 9, are the ratings general, sensitive, questionable, explicit.

:func:`tagger_model` builds a stand-in with exactly that signature whose
outputs are known in closed form (:func:`expected_ratings`) from the
picture's mean colour as the model sees it — ``r``, ``g``, ``b`` in [0, 1],
read from the BGR input channels — so a test can tell a wrong channel order,
scale or padding apart:

* general = sigmoid(10 g - 5): green and white pictures;
* sensitive = sigmoid(20 (r + b - 2 g) - 32): only magenta-like pictures;
* questionable = sigmoid(20 (b - r - g) - 12): only strongly blue pictures;
* explicit = sigmoid(20 (r - g - b) - 12): only strongly red pictures;

and three more tags (two general, one character) that tests never look at.
Steep on purpose: the pictures other tests draw (tiny Stable Diffusion,
AnimeGANv2) are nowhere near those colours, so they pass.

As a plugin (``tests/conftest.py``) it writes the stand-in once per session
and points ``POLICY_ANIME_MODEL`` at it unless the environment already sets
it, so every pipeline the tests build from settings — in this process or a
``voice2anime`` subprocess — checks its pictures offline. Nothing here
imports the engine: the model is a second source of truth.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

SIDE = 448
#: (name, category) per output, in order: the four ratings first, as in the real tag list.
TAGS = (
    ("general", 9),
    ("sensitive", 9),
    ("questionable", 9),
    ("explicit", 9),
    ("1girl", 0),
    ("smile", 0),
    ("hatsune_miku", 4),
)
#: Per tag: weights of (r, g, b) in [0, 1] and a bias; the logit is their sum, the output its sigmoid.
LOGITS = {
    "general": ((0.0, 10.0, 0.0), -5.0),
    "sensitive": ((20.0, -40.0, 20.0), -32.0),
    "questionable": ((-20.0, -20.0, 20.0), -12.0),
    "explicit": ((20.0, -20.0, -20.0), -12.0),
    "1girl": ((0.0, 0.0, 0.0), 0.0),
    "smile": ((0.0, 4.0, 0.0), -2.0),
    "hatsune_miku": ((0.0, 0.0, 0.0), -6.0),
}


def expected_ratings(rgb: tuple[float, float, float]) -> dict[str, float]:
    """The stand-in's ratings for a picture whose mean colour, as the model sees it, is ``rgb`` (8-bit, may be fractional)."""
    r, g, b = (c / 255 for c in rgb)
    found = {}
    for name, category in TAGS:
        if category == 9:
            (wr, wg, wb), bias = LOGITS[name]
            found[name] = 1 / (1 + math.exp(-(wr * r + wg * g + wb * b + bias)))
    return found


def tags_csv() -> str:
    """The stand-in's ``selected_tags.csv``."""
    lines = ["tag_id,name,category,count"]
    lines += [f"{9999000 + i},{name},{category},{1000 - i}" for i, (name, category) in enumerate(TAGS)]
    return "\n".join(lines) + "\n"


def tagger_model() -> bytes:
    """The serialized stand-in (see the module docstring)."""
    import onnx
    from onnx import TensorProto, helper

    weights = np.zeros((3, len(TAGS)), dtype=np.float32)  # rows: the input's channels, B, G, R (0..255)
    bias = np.zeros(len(TAGS), dtype=np.float32)
    for column, (name, _) in enumerate(TAGS):
        (wr, wg, wb), bias[column] = LOGITS[name]
        weights[:, column] = (wb / 255, wg / 255, wr / 255)
    pictures = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", SIDE, SIDE, 3])
    output = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", len(TAGS)])
    initializers = [
        helper.make_tensor("weights", TensorProto.FLOAT, list(weights.shape), weights.flatten().tolist()),
        helper.make_tensor("bias", TensorProto.FLOAT, [len(TAGS)], bias.tolist()),
        helper.make_tensor("axis", TensorProto.INT64, [1], [1]),
    ]
    nodes = [  # the mean of rows, then of columns: one float32 sum of 200,704 values drifts by ~0.3%
        helper.make_node("ReduceMean", ["input", "axis"], ["rows"], keepdims=0),  # batch x SIDE x 3
        helper.make_node("ReduceMean", ["rows", "axis"], ["means"], keepdims=0),  # batch x 3 (B, G, R)
        helper.make_node("MatMul", ["means", "weights"], ["scaled"]),
        helper.make_node("Add", ["scaled", "bias"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["output"]),
    ]
    graph = helper.make_graph(nodes, "wd_tagger_stand_in", [pictures], [output], initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="voice2anime-tests", ir_version=8)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def write_tagger(directory: Path) -> Path:
    """Write ``model.onnx`` and ``selected_tags.csv`` of the stand-in into ``directory``, returning it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.onnx").write_bytes(tagger_model())
    (directory / "selected_tags.csv").write_text(tags_csv(), encoding="utf-8")
    return directory


@pytest.fixture(scope="session")
def tagger_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the stand-in tagger's two files."""
    return write_tagger(tmp_path_factory.mktemp("wd-tagger"))


@pytest.fixture(scope="session", autouse=True)
def anime_check_offline(tagger_dir: Path) -> Iterator[None]:
    """``POLICY_ANIME_MODEL`` = the stand-in for the session, unless set: the real tagger is never downloaded by tests."""
    if "POLICY_ANIME_MODEL" in os.environ:
        yield
        return
    os.environ["POLICY_ANIME_MODEL"] = str(tagger_dir)
    try:
        yield
    finally:
        os.environ.pop("POLICY_ANIME_MODEL", None)
