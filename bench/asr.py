"""Speech recognition speed by hand: real-time factor of beam 1 vs beam 5, plus peak memory.

    python bench/asr.py [--model DIR] [--audio FILE] [--threads 1] [--compute-type int8] [--repeats 3]

Defaults: the Whisper base test model (assembled from the dev-extra wheels) and
a ~7 s English voice note synthesised with espeak-ng as Telegram Opus. Each
beam size runs in a fresh process so its peak RSS (``ru_maxrss``) is its own.
RTF = best transcription wall time / audio duration (lower is faster; < 1 is faster than real time).
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.asr import AsrConfig, SpeechRecognizer
from engine.audio import AudioLimits, load_audio

LIMITS = AudioLimits(max_bytes=20 * 1024 * 1024, max_seconds=600)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_config(model: str, audio: Path, beam: int, threads: int, compute_type: str, repeats: int) -> dict:
    """Load the model and transcribe ``audio`` ``repeats`` times after one warm-up; runs in a child process."""
    rss_start = _peak_rss_mb()
    config = AsrConfig(model=model, device="cpu", compute_type=compute_type, beam_size=beam, cpu_threads=threads, translate=False)
    recognizer = SpeechRecognizer(config, LIMITS)
    started = time.perf_counter()
    recognizer.load()
    load_s = time.perf_counter() - started
    rss_loaded = _peak_rss_mb()
    transcript = recognizer.transcribe(audio)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        recognizer.transcribe(audio)
        times.append(time.perf_counter() - started)
    return {
        "load_s": load_s,
        "best_s": min(times),
        "median_s": statistics.median(times),
        "rtf": min(times) / transcript.duration,
        "rss_start_mb": rss_start,
        "rss_loaded_mb": rss_loaded,
        "rss_peak_mb": _peak_rss_mb(),
        "text": transcript.text,
    }


def main() -> None:
    """Parse arguments, run beam 1 and beam 5 in fresh processes, print them side by side."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="CTranslate2 Whisper model directory or size name (default: the Whisper base test model)")
    parser.add_argument("--audio", type=Path, help="voice note to transcribe (default: synthesised ~7 s English Opus note)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--compute-type", default="int8")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        if args.model is None:
            from tests.support.whisper_model import assemble_whisper_base

            args.model = str(assemble_whisper_base(Path.home() / ".cache" / "voice2anime-tests"))
        if args.audio is None:
            from tests.support.speech import english_voice_notes_in

            args.audio = english_voice_notes_in(Path(tmp))["ogg"].path
        duration = load_audio(args.audio, LIMITS).duration
        results = {}
        for beam in (1, 5):
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                results[beam] = pool.submit(
                    run_config, args.model, args.audio, beam, args.threads, args.compute_type, args.repeats
                ).result()

    one, five = results[1], results[5]
    print(
        f"model {args.model}\naudio {args.audio.name} {duration:.2f} s, {args.compute_type}, {args.threads} thread(s), "
        f"{args.repeats} runs after 1 warm-up, VAD on, word timestamps on\n"
    )
    print(f"{'':22}{'beam 1':>10}{'beam 5':>10}{'5 / 1':>9}")
    for key, label, fmt in (
        ("load_s", "model load (s)", "{:10.2f}"),
        ("best_s", "transcribe best (s)", "{:10.2f}"),
        ("median_s", "transcribe median (s)", "{:10.2f}"),
        ("rtf", "real-time factor", "{:10.3f}"),
        ("rss_loaded_mb", "RSS after load (MB)", "{:10.0f}"),
        ("rss_peak_mb", "peak RSS (MB)", "{:10.0f}"),
    ):
        print(f"{label:22}" + fmt.format(one[key]) + fmt.format(five[key]) + f"{five[key] / one[key]:9.2f}")
    print(f"\nprocess RSS before loading: {one['rss_start_mb']:.0f} MB (imports)")
    print(f"beam 1: {one['text']}\nbeam 5: {five['text']}")


if __name__ == "__main__":
    main()
