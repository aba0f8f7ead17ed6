"""Voice replies: text in English or Chinese read aloud by a sherpa-onnx voice, as an OGG/Opus voice note.

A :class:`Narrator` holds one voice (``TTS_MODEL``, Mandarin and English) and
optionally a Cantonese one (``TTS_MODEL_YUE``); without it Cantonese is read
in Mandarin. Traditional characters are read as their Simplified forms, which
the Mandarin lexicons know. Voices load on first use; synthesis runs on a
worker thread (sherpa-onnx releases the GIL), one call per voice at a time.
Long text is read sentence by sentence (:meth:`Narrator.stream`), so the
first sentence is ready early; fixed phrases are kept in a small LRU cache.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
from cachetools import LRUCache

from engine.errors import EmptyTextError
from engine.language.chinese import CJK_RE, script_of, simplified
from engine.speech.opus import ogg_opus
from engine.speech.sentences import sentences
from engine.speech.tts_models import VoiceFiles, catalogue, model_directory

#: The languages a reply can be read in.
Language = Literal["en", "zh-Hans", "zh-Hant", "yue"]
LANGUAGES: tuple[str, ...] = get_args(Language)
#: Other names accepted for them.
ALIASES = {"zh": "zh-Hans", "cmn": "zh-Hans", "zh-cn": "zh-Hans", "zh-tw": "zh-Hant", "zh-hk": "yue"}
#: The voice used when ``TTS_MODEL`` is not set: MIT, 163 MB, VITS (fast on a CPU), Mandarin and English from lexicons.
DEFAULT_MODEL = "vits-melo-tts-zh_en"
#: Seconds of silence between two sentences of one reply.
PAUSE = 0.25
#: How many fixed phrases (:meth:`Narrator.phrase`) are kept as voice notes.
PHRASES = 64


def language_of(tag: str) -> Language:
    """``tag`` (``en``, ``zh``, ``zh-Hans``, ``zh-Hant``, ``yue``, any case) as a :data:`Language`; ``ValueError`` if unknown."""
    key = tag.strip().lower()
    for language in LANGUAGES:
        if language.lower() == key:
            return language  # type: ignore[return-value]  # one of Language's values
    if key in ALIASES:
        return ALIASES[key]  # type: ignore[return-value]
    raise ValueError(f"unknown language {tag!r}: use en, zh, zh-Hans, zh-Hant or yue")


def guess_language(text: str) -> Language:
    """The language ``text`` is most likely read in: English without Chinese characters, else its script."""
    if not CJK_RE.search(text):
        return "en"
    return script_of(text) or "zh-Hans"


@dataclass(frozen=True)
class TtsConfig:
    """Which voices to use and how (from the ``TTS_*`` settings)."""

    model: str = DEFAULT_MODEL
    cantonese_model: str | None = None
    models_dir: Path = Path("models")
    threads: int = 2
    download: bool = True


@dataclass(frozen=True, eq=False)
class Speech:
    """Mono float samples in [-1, 1] and their rate."""

    samples: np.ndarray
    sample_rate: int

    @property
    def seconds(self) -> float:
        """How long it lasts."""
        return len(self.samples) / self.sample_rate


def joined(parts: Iterable[Speech]) -> Speech:
    """The sentences ``parts`` one after another, with a short pause between them."""
    parts = list(parts)
    if not parts:
        raise EmptyTextError("nothing could be read aloud")
    rate = parts[0].sample_rate
    pause = np.zeros(int(PAUSE * rate), dtype=np.float32)
    chunks = [chunk for part in parts for chunk in (pause, part.samples)][1:]
    return Speech(np.concatenate(chunks), rate)


def voice_note(speech: Speech) -> bytes:
    """``speech`` as an OGG/Opus file."""
    return ogg_opus(speech.samples, speech.sample_rate)


@dataclass
class _Voice:
    """One sherpa-onnx voice, loaded on first use; one synthesis at a time."""

    model: str
    config: TtsConfig
    _tts: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def load(self) -> None:
        """Fetch and load the voice unless it is loaded."""
        with self._lock:
            self._loaded()

    def read(self, text: str) -> Speech:
        """``text`` (one sentence) read aloud."""
        with self._lock:
            audio = self._loaded().generate(text, sid=self._speaker(), speed=1.0)
        return Speech(np.asarray(audio.samples, dtype=np.float32), audio.sample_rate)

    def _loaded(self) -> Any:  # -> sherpa_onnx.OfflineTts; the caller holds the lock
        if self._tts is None:
            import sherpa_onnx

            directory = model_directory(self.model, self.config.models_dir, download=self.config.download)
            self._tts = sherpa_onnx.OfflineTts(VoiceFiles(directory).config(self.config.threads))
        return self._tts

    def _speaker(self) -> int:
        known = catalogue().get(self.model)
        return known.speaker if known else 0


class Narrator:
    """Reads replies aloud: text -> :class:`Speech` per sentence, or one OGG/Opus voice note.

    Thread-safe. Raises :class:`engine.errors.EmptyTextError` for text with
    nothing to read and :class:`engine.speech.tts_models.VoiceModelUnavailableError`
    when a voice cannot be fetched or loaded (a later call tries again).
    """

    def __init__(self, config: TtsConfig) -> None:
        self.config = config
        self._mandarin = _Voice(config.model, config)
        self._cantonese = _Voice(config.cantonese_model, config) if config.cantonese_model else None
        self._phrases: LRUCache[tuple[str, Language], bytes] = LRUCache(maxsize=PHRASES)
        self._phrases_lock = threading.Lock()

    def load(self) -> None:
        """Fetch and load the voices now (e.g. at start), not on the first reply."""
        for voice in (self._mandarin, self._cantonese):
            if voice is not None:
                voice.load()

    def speech(self, text: str, language: str) -> Iterator[Speech]:
        """``text`` read aloud, one :class:`Speech` per sentence, each as soon as it is ready."""
        voice, text = self._voice_for(text, language_of(language))
        parts = sentences(text)
        if not parts:
            raise EmptyTextError("nothing to read aloud")
        for part in parts:
            speech = voice.read(part)
            if len(speech.samples):
                yield speech

    def read(self, text: str, language: str) -> Speech:
        """``text`` read aloud, all sentences in one :class:`Speech`."""
        return joined(self.speech(text, language))

    def voice_note(self, text: str, language: str) -> bytes:
        """``text`` read aloud as one OGG/Opus voice note."""
        return voice_note(self.read(text, language))

    def phrase(self, text: str, language: str) -> bytes:
        """The voice note of a fixed phrase (a greeting, "here is your picture"), kept in a small LRU cache."""
        key = (text, language_of(language))
        with self._phrases_lock:
            cached = self._phrases.get(key)
        if cached is None:
            cached = self.voice_note(*key)
            with self._phrases_lock:
                self._phrases[key] = cached
        return cached

    async def voice_note_async(self, text: str, language: str) -> bytes:
        """:meth:`voice_note` on a worker thread, off the event loop."""
        return await asyncio.to_thread(self.voice_note, text, language)

    async def stream(self, text: str, language: str) -> AsyncIterator[Speech]:
        """:meth:`speech` off the event loop: each sentence is read on a worker thread and yielded when ready."""
        parts = self.speech(text, language)
        while (speech := await asyncio.to_thread(next, parts, None)) is not None:
            yield speech

    def _voice_for(self, text: str, language: Language) -> tuple[_Voice, str]:
        if language == "yue" and self._cantonese is not None:
            return self._cantonese, text
        if language == "en":
            return self._mandarin, text
        return self._mandarin, simplified(text)
