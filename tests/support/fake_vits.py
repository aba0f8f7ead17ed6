"""A tiny fake VITS voice, built with ``onnx.helper``, that the real sherpa-onnx runs offline.

The graph has the inputs of a VITS export (``x``, ``x_length``,
``noise_scale``, ``length_scale``, ``noise_scale_w``) and one output ``y``
of shape ``[1, 1, T]``: every token becomes :data:`HOP` samples of a tone
whose loudness depends on the token id, so the audio lasts exactly
``tokens × HOP / SAMPLE_RATE`` seconds and never counts as silence. The
sherpa metadata goes into the model's ``metadata_props``; ``lexicon.txt`` and
``tokens.txt`` beside it name a handful of English words and Chinese
characters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SAMPLE_RATE = 16_000
#: Samples per token.
HOP = 800
#: Phones of the fake voice (ids from 1; 0 is the pad sherpa may use).
PHONES = ("sil", "eos", "a", "e", "i", "o", "u", "n", "h", "l", "w", "r", "d", "sh", "ao")
#: Words and the phones they are read as; punctuation is read as itself.
LEXICON = {
    "hello": ("h", "e", "l", "o"),
    "world": ("w", "o", "r", "l", "d"),
    "again": ("a", "e", "n"),
    "你": ("n", "i"),
    "好": ("h", "ao"),
    "世": ("sh", "i"),
    "界": ("i", "e"),
    "说": ("sh", "o"),
}
PUNCTUATION = (",", ".", "!", "?", "，", "。", "！", "？")


def build(directory: Path, *, language: str = "English", sample_rate: int = SAMPLE_RATE) -> Path:
    """Write a fake VITS voice (``model.onnx``, ``lexicon.txt``, ``tokens.txt``) into ``directory`` and return it.

    ``language`` is the sherpa metadata ``language``: ``Chinese`` reads text
    character by character (with ``sil``/``eos`` around sentences), anything
    else word by word with a space token between words. ``sample_rate`` is
    what the voice says it speaks at (the samples are the same).
    """
    directory.mkdir(parents=True, exist_ok=True)
    symbols = (" ", *PHONES, *PUNCTUATION)
    (directory / "tokens.txt").write_text("".join(f"{s} {i}\n" for i, s in enumerate(symbols, start=1)), encoding="utf-8")
    (directory / "lexicon.txt").write_text(
        "".join(f"{word} {' '.join(phones)}\n" for word, phones in LEXICON.items()), encoding="utf-8"
    )
    onnx.save(_graph(language, sample_rate), directory / "model.onnx")
    return directory


def _graph(language: str, sample_rate: int) -> onnx.ModelProto:
    wave = (0.1 * np.sin(2 * np.pi * 220 * np.arange(HOP) / SAMPLE_RATE) + 0.2).astype(np.float32).reshape(1, 1, HOP)
    nodes = [
        helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["xf", "step"], ["loud"]),
        helper.make_node("Add", ["loud", "floor"], ["gain"]),
        helper.make_node("Unsqueeze", ["gain", "last"], ["gain3"]),
        helper.make_node("Mul", ["gain3", "wave"], ["frames"]),
        helper.make_node("Reshape", ["frames", "shape"], ["y"]),
    ]
    scalar = helper.make_tensor_value_info
    graph = helper.make_graph(
        nodes,
        "fake_vits",
        [
            scalar("x", TensorProto.INT64, [1, "N"]),
            scalar("x_length", TensorProto.INT64, [1]),
            scalar("noise_scale", TensorProto.FLOAT, [1]),
            scalar("length_scale", TensorProto.FLOAT, [1]),
            scalar("noise_scale_w", TensorProto.FLOAT, [1]),
        ],
        [scalar("y", TensorProto.FLOAT, [1, 1, "T"])],
        initializer=[
            numpy_helper.from_array(np.array(0.01, dtype=np.float32), "step"),
            numpy_helper.from_array(np.array(1.0, dtype=np.float32), "floor"),
            numpy_helper.from_array(np.array([-1], dtype=np.int64), "last"),
            numpy_helper.from_array(wave[0], "wave"),
            numpy_helper.from_array(np.array([1, 1, -1], dtype=np.int64), "shape"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = {
        "model_type": "vits",
        "comment": "fake",
        "language": language,
        "sample_rate": str(sample_rate),
        "add_blank": "0",
        "n_speakers": "1",
        "punctuation": " ".join(PUNCTUATION),
    }
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    return model
