"""A tiny ONNX model with the I/O signature of the AnimeGANv2 authors' TensorFlow exports.

The authors convert a frozen TF generator with ``tf2onnx`` (their
``pb_and_onnx_model/animegan2pb.py``: ``--inputs generator_input:0 --outputs
generator/G_MODEL/out_layer/Tanh:0``), which gives one input ``generator_input:0``
of shape ``1 x H x W x 3`` (NHWC, RGB, float32 in ``[-1, 1]``, height and width
dynamic) and one output of the same shape in ``[-1, 1]`` (tanh). Their reference
inference (``test_by_onnx.py``) feeds sides that are multiples of 32.

:func:`nhwc_style_model` builds a stand-in with exactly that signature whose
result is known in closed form, so a test can check the engine's pre- and
post-processing pixel by pixel:

* it **refuses sides that are not multiples of 32** (a ``SpaceToDepth`` /
  ``DepthToSpace`` round trip with block size 32 fails on anything else, like a
  real network whose stages must divide evenly);
* it is **channel-asymmetric**, so RGB/BGR or NHWC/NCHW mix-ups show:
  ``R' = -R``, ``G' = G``, ``B' = B / 2 + 1/4`` in network units, i.e. on 8-bit
  pixels ``r -> 255 - r``, ``g -> g``, ``b -> b / 2 + 95.625`` (:func:`expected_pixels`).
  No result is a rounding tie (the fractions are 0, .125 or .625), so float32
  noise cannot flip a level and the expected pixels are exact.

Nothing here imports the engine: the model is a second source of truth.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

#: Input and output names of the authors' tf2onnx exports.
INPUT_NAME = "generator_input:0"
OUTPUT_NAME = "generator/G_MODEL/out_layer/Tanh:0"
#: The side multiple the stand-in enforces.
BLOCK = 32
#: Per-channel affine map (R, G, B) applied in network units: y = x * SCALE + SHIFT.
SCALE = (-1.0, 1.0, 0.5)
SHIFT = (0.0, 0.0, 0.25)
OPSET = 17
IR_VERSION = 8


def nhwc_style_model(*, input_name: str = INPUT_NAME, output_name: str = OUTPUT_NAME, static_size: int | None = None) -> bytes:
    """The serialized stand-in model (see the module docstring).

    ``static_size`` fixes height and width (a model the engine must refuse);
    by default they are symbolic, like the authors' exports.
    """
    import onnx
    from onnx import TensorProto, helper

    height: int | str = static_size if static_size is not None else "height"
    width: int | str = static_size if static_size is not None else "width"
    image = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [1, height, width, 3])
    anime = helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [1, height, width, 3])
    scale = helper.make_tensor("scale", TensorProto.FLOAT, [3], list(SCALE))
    shift = helper.make_tensor("shift", TensorProto.FLOAT, [3], list(SHIFT))
    nodes = [
        helper.make_node("Transpose", [input_name], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("SpaceToDepth", ["nchw"], ["blocks"], blocksize=BLOCK),  # fails unless H, W % 32 == 0
        helper.make_node("DepthToSpace", ["blocks"], ["nchw_back"], blocksize=BLOCK, mode="DCR"),
        helper.make_node("Transpose", ["nchw_back"], ["nhwc"], perm=[0, 2, 3, 1]),
        helper.make_node("Mul", ["nhwc", "scale"], ["scaled"]),  # broadcasts over the last (channel) axis
        helper.make_node("Add", ["scaled", "shift"], [output_name]),
    ]
    graph = helper.make_graph(nodes, "animeganv2_nhwc_stand_in", [image], [anime], initializer=[scale, shift])
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="voice2anime-tests", ir_version=IR_VERSION
    )
    onnx.checker.check_model(model)
    return model.SerializeToString()


def write_nhwc_style(path: Path, **kwargs) -> str:
    """Write :func:`nhwc_style_model` to ``path``; returns its sha256."""
    data = nhwc_style_model(**kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def expected_pixels(pixels: np.ndarray) -> np.ndarray:
    """What the engine must return for ``H x W x 3`` uint8 RGB ``pixels`` (exactly: no rounding ties)."""
    x = pixels.astype(np.float64) / 127.5 - 1.0
    y = x * np.asarray(SCALE) + np.asarray(SHIFT)
    return np.clip(np.rint((y + 1.0) * 127.5), 0, 255).astype(np.uint8)


def add_nhwc_style(
    directory: Path,
    name: str = "hayao",
    *,
    file: str = "AnimeGANv2_Hayao.onnx",
    names: dict[str, str] | None = None,
    **entry,
) -> str:
    """Write the stand-in model into ``directory`` and register it in its ``styles.json`` as an ``onnx-nhwc`` style.

    The registry entry pins the file's sha256 (override with ``sha256=None``
    for trust on first use) and has no URL unless ``url=...`` is given.
    Returns the file's sha256.
    """
    import json

    sha = write_nhwc_style(directory / file)
    registry_path = directory / "styles.json"
    registry = json.loads(registry_path.read_text(encoding="utf-8")) if registry_path.is_file() else {"styles": {}}
    registry["styles"][name] = {
        "format": "onnx-nhwc",
        "file": file,
        "sha256": sha,
        "url": None,
        "licence": "test model",
        "description": f"stand-in NHWC model {name}",
        "names": names or {"en": "Hayao", "zh": "宫崎骏 Hayao"},
        "aliases": [],
        **entry,
    }
    registry_path.write_text(json.dumps(registry, ensure_ascii=False, indent=2), encoding="utf-8")
    return sha
