"""Speech recognition with faster-whisper: voice note -> :class:`engine.api.Transcript`.

One :class:`SpeechRecognizer` per process holds one Whisper model, loaded on
first use (thread-safe) and reused for every call. ``transcribe`` blocks;
``transcribe_async`` runs it on the recognizer's one speech thread so the
event loop keeps going (engines use that; a voice note never waits behind
pictures, which run on their own thread or machines).

After recognition a transcript is *reviewed* (``review=True``, the default):
Chinese text is written in the reader's ``script`` ("zh-Hans" / "zh-Hant",
OpenCC; Whisper base writes Mandarin mostly in Traditional), homophones of
lexicon words are corrected and every word gets an honest ``unsure`` flag
(:mod:`engine.speech.correction`). ``review=False`` and ``script=None`` give the
transcript exactly as Whisper wrote it (what ``bench/asr.py`` compares with).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import ctranslate2
from faster_whisper import WhisperModel, download_model
from faster_whisper.transcribe import Segment as WhisperSegment

from engine.api import Segment, Transcript, Word
from engine.errors import NoSpeechError, SpeechModelUnavailableError, library_reason
from engine.language.chinese import CJK_RE, Script, to_script
from engine.speech.audio import AudioLimits, DecodedAudio, load_audio

log = logging.getLogger(__name__)

#: Whisper's own hallucination test: a segment is dropped when the model is
#: fairly sure nothing was said AND it is unsure of the words it produced.
NO_SPEECH_PROB_THRESHOLD = 0.6
AVG_LOGPROB_THRESHOLD = -1.0
#: Decoder language for a requested one the model has no token for. Whisper models before
#: large-v3 have no Cantonese token and write Cantonese speech as Chinese text; forcing the
#: missing token instead makes them loop ("Bl Bl Bl ...") for half a minute.
_STAND_INS = {"yue": "zh"}
#: Files a CTranslate2 Whisper model directory must contain (plus ``vocabulary.*``).
_MODEL_FILES = ("model.bin", "config.json", "tokenizer.json")


@dataclass(frozen=True)
class AsrConfig:
    """How to run Whisper.

    ``model`` is a size name (``tiny``, ``base``, ``small``, ``large-v3``, ...),
    a Hugging Face id of a CTranslate2 conversion, or a local model directory.
    ``compute_type="auto"`` means int8 on CPU and float16 on CUDA.
    ``language`` forces a language (``None`` = detect); ``translate`` also
    produces an English translation of non-English speech.
    """

    model: str = "small"
    device: str = "auto"
    compute_type: str = "auto"
    beam_size: int = 5
    vad: bool = True
    cpu_threads: int = 0
    download_root: Path | None = None
    language: str | None = None
    translate: bool = True


class SpeechRecognizer:
    """Transcribes voice notes with one lazily loaded, shared Whisper model."""

    def __init__(self, config: AsrConfig, limits: AudioLimits) -> None:
        self.config = config
        self.limits = limits
        self._model: WhisperModel | None = None
        self._lock = threading.Lock()
        #: One speech thread: calls queue here instead of fighting over the model's CPU threads.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voice2anime-asr")

    def load(self) -> WhisperModel:
        """The Whisper model, loaded on the first call (e.g. at startup, to fail fast) and reused after.

        Raises :class:`ModelUnavailableError` when it cannot be loaded; a later call tries again.
        """
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = _load_model(self.config)
        return self._model

    def transcribe(
        self,
        source: bytes | Path,
        *,
        language: str | None = None,
        translate: bool | None = None,
        script: Script | None = None,
        review: bool = True,
    ) -> Transcript:
        """Decode, check and transcribe a voice note (blocking).

        ``language`` / ``translate`` override the config for this call;
        ``script`` is the reader's Chinese script and ``review`` turns the
        correction and unsure marks on (see the module doc).
        Raises the :class:`engine.errors.AudioError` family for bad audio,
        :class:`NoSpeechError` when nothing was said, and
        :class:`ModelUnavailableError` when the model cannot be loaded.
        """
        audio = load_audio(source, self.limits)
        requested = language or self.config.language
        language = self._decoder_language(requested)
        translate = self.config.translate if translate is None else translate
        segments, detected, probability = self._recognise(audio, language)
        text = "".join(s.text for s in segments).strip()
        if not text:
            log.info("no speech: %.1f s of audio produced no text", audio.duration)
            raise NoSpeechError()
        if language is not None:  # forced: Whisper reports 1.0 for it; the words say how sure it really is
            probability = _word_confidence(segments, probability)
        translation = None
        if translate:
            translation = text if detected == "en" else self._translate(audio, detected)
        heard = Transcript(
            text=text,
            language=requested if requested and language == detected else detected,
            language_probability=probability,
            duration=audio.duration,
            segments=tuple(_segment(s) for s in segments),
            translation=translation,
        )
        return finish(heard, script=script, review=review)

    async def transcribe_async(
        self,
        source: bytes | Path,
        *,
        language: str | None = None,
        translate: bool | None = None,
        script: Script | None = None,
    ) -> Transcript:
        """:meth:`transcribe` on the recognizer's own thread, for use from an event loop (which stays free)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._thread, partial(self.transcribe, source, language=language, translate=translate, script=script)
        )

    def supports(self, language: str) -> bool:
        """True when the model has a language token for ``language`` (e.g. ``yue`` only from large-v3 on)."""
        return self.load().hf_tokenizer.token_to_id(f"<|{language}|>") is not None

    def _decoder_language(self, language: str | None) -> str | None:
        """The language to force on the decoder for a requested one (a stand-in when the model lacks it)."""
        if language is None or self.supports(language):
            return language
        stand_in = _STAND_INS.get(language)
        if stand_in is None or not self.supports(stand_in):
            log.info("model has no %r token; detecting the language instead", language)
            return None
        log.info("model has no %r token; decoding as %r", language, stand_in)
        return stand_in

    def _recognise(self, audio: DecodedAudio, language: str | None) -> tuple[list[WhisperSegment], str, float]:
        """Run Whisper; return the kept faster-whisper segments, the language and its probability."""
        segments, info = self.load().transcribe(
            audio.samples,
            language=language,
            beam_size=self.config.beam_size,
            vad_filter=self.config.vad,
            word_timestamps=True,
            condition_on_previous_text=False,
        )
        if info.duration_after_vad == 0:
            log.info("no speech: VAD found no voice in %.1f s of audio", audio.duration)
            raise NoSpeechError()
        kept = [s for s in segments if s.text.strip() and not _hallucinated(s)]
        return kept, info.language, float(info.language_probability)

    def _translate(self, audio: DecodedAudio, language: str) -> str | None:
        """Whisper's English translation of speech in ``language``; ``None`` if it produced no English.

        Decoded at temperature 0 only: the fallback's sampling made the same
        voice note translate differently from run to run (and sometimes not
        at all — Whisper may answer a translate task in the source language).
        The translation is only a hint for the prompt, so a stable answer or
        none beats a lucky one.
        """
        segments, _ = self.load().transcribe(
            audio.samples,
            language=language,
            task="translate",
            beam_size=self.config.beam_size,
            vad_filter=self.config.vad,
            condition_on_previous_text=False,
            temperature=0.0,
        )
        text = "".join(s.text for s in segments if not _hallucinated(s)).strip()
        if not _mostly_latin(text):
            log.info("translation discarded: not English (%r)", text[:80])
            return None
        return text


def _mostly_latin(text: str) -> bool:
    """True when at least 80 % of the letters in ``text`` are ASCII (an English sentence, not CJK)."""
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and sum(c.isascii() for c in letters) >= 0.8 * len(letters)


def _hallucinated(segment: WhisperSegment) -> bool:
    """True for a segment Whisper produced over silence/noise (see the thresholds above)."""
    if segment.no_speech_prob > NO_SPEECH_PROB_THRESHOLD and segment.avg_logprob < AVG_LOGPROB_THRESHOLD:
        log.info(
            "dropped likely hallucination %r (no_speech_prob=%.2f, avg_logprob=%.2f)",
            segment.text,
            segment.no_speech_prob,
            segment.avg_logprob,
        )
        return True
    return False


def _segment(segment: WhisperSegment) -> Segment:
    """A faster-whisper segment as an :class:`engine.api.Segment`."""
    words = tuple(
        Word(text=w.word.strip(), start=float(w.start), end=float(w.end), probability=float(w.probability))
        for w in segment.words or ()
    )
    return Segment(text=segment.text.strip(), start=float(segment.start), end=float(segment.end), words=words)


def finish(transcript: Transcript, *, script: Script | None, review: bool = True) -> Transcript:
    """A transcript as Whisper wrote it, in the reader's ``script`` and (``review``) corrected with unsure marks."""
    if script is None and not review:
        return transcript
    segments = tuple(_in_script(s, script, cantonese=transcript.language == "yue") for s in transcript.segments)
    if review:
        segments = _reviewed(segments, transcript.language, script)
    text = "".join(_spaced(s.text) for s in segments).strip()
    # English speech is its own translation: it follows the reviewed text.
    translation = text if transcript.translation == transcript.text else transcript.translation
    return dataclasses.replace(
        transcript,
        text=text,
        segments=segments,
        translation=translation,
        script=script if script is not None and CJK_RE.search(text) else None,
    )


def _spaced(text: str) -> str:
    """A segment's text as it joins the transcript (Whisper's segments of spaced scripts start with a space)."""
    return text if CJK_RE.match(text[:1] or " ") else " " + text


def _join(words: tuple[Word, ...]) -> str:
    """Words back into a phrase: Chinese characters unspaced, other words spaced."""
    text = ""
    for word in words:
        if text and not (CJK_RE.match(text[-1]) or CJK_RE.match(word.text[:1] or " ")):
            text += " "
        text += word.text
    return text


def _in_script(segment: Segment, script: Script | None, *, cantonese: bool) -> Segment:
    """``segment`` with its Chinese in ``script``: the whole phrase is converted (OpenCC needs the context: 头发 -> 頭髮)."""
    if script is None or not CJK_RE.search(segment.text):
        return segment
    joined = "".join(w.text for w in segment.words)
    converted = to_script(joined, script, cantonese=cantonese)
    words, position = [], 0
    for word in segment.words:
        words.append(dataclasses.replace(word, text=converted[position : position + len(word.text)]))
        position += len(word.text)
    return Segment(to_script(segment.text, script, cantonese=cantonese), segment.start, segment.end, tuple(words))


def _reviewed(segments: tuple[Segment, ...], language: str, script: Script | None) -> tuple[Segment, ...]:
    """Segments with corrected homophones and unsure flags (:func:`engine.speech.correction.review`)."""
    from engine.speech.correction import review

    out = []
    for segment in segments:
        words = review(segment.words, language, script=script)
        changed = any(w.corrected_from is not None for w in words)
        out.append(Segment(_join(words) if changed else segment.text, segment.start, segment.end, words))
    return tuple(out)


def _word_confidence(segments: list[WhisperSegment], default: float) -> float:
    """How sure Whisper was of its words: their mean probability (``default`` when it gave no words)."""
    probabilities = [word.probability for segment in segments for word in segment.words or ()]
    return sum(probabilities) / len(probabilities) if probabilities else default


def whisper_device(setting: str) -> str:
    """``auto`` -> ``cuda`` when CTranslate2 sees a GPU, else ``cpu``; ``cuda`` without one is refused, saying so."""
    if setting == "cpu":
        return setting
    gpus = ctranslate2.get_cuda_device_count()
    if setting == "cuda" and gpus == 0:
        raise SpeechModelUnavailableError(
            "WHISPER_DEVICE=cuda, but CTranslate2 finds no usable CUDA GPU here (no GPU, no driver, or a driver older "
            "than its CUDA runtime). Set WHISPER_DEVICE=auto or cpu, or run on a machine with an NVIDIA GPU and driver."
        )
    return "cuda" if gpus > 0 else "cpu"


def _load_model(config: AsrConfig) -> WhisperModel:
    """Load the configured Whisper model or explain to the operator how to provide it."""
    device = whisper_device(config.device)
    compute_type = config.compute_type
    if compute_type == "auto":
        compute_type = "float16" if device == "cuda" else "int8"
    path = _model_path(config)
    _check_model_dir(path)
    log.info("loading Whisper model %s on %s (%s)", path, device, compute_type)
    try:
        return WhisperModel(str(path), device=device, compute_type=compute_type, cpu_threads=config.cpu_threads)
    except Exception as exc:  # CTranslate2 raises RuntimeError/ValueError for corrupt files and bad settings
        raise SpeechModelUnavailableError(
            f"Whisper model directory {path} could not be loaded on {device} ({compute_type}): {exc}. Replace it "
            f"with a complete CTranslate2 Whisper model directory (model.bin, config.json, tokenizer.json, "
            f"vocabulary.*) or change WHISPER_DEVICE / WHISPER_COMPUTE_TYPE."
        ) from exc


def _model_path(config: AsrConfig) -> Path:
    """The local directory of the configured model, downloading a hub model if needed."""
    local = Path(config.model).expanduser()
    if local.is_dir() or config.model.startswith((".", "/", "~")):
        return local
    try:
        return Path(download_model(config.model, cache_dir=str(config.download_root) if config.download_root else None))
    except ValueError as exc:  # not a known size name nor an "owner/name" hub id
        raise SpeechModelUnavailableError(
            f"Unknown Whisper model '{config.model}': {exc}. Set WHISPER_MODEL to one of these names, "
            f"a Hugging Face id of a CTranslate2 conversion, or a local model directory."
        ) from exc
    except Exception as exc:  # huggingface_hub: offline, DNS, HTTP, missing cache entry, ...
        target = (config.download_root or Path("models")) / f"faster-whisper-{config.model.replace('/', '--')}"
        raise SpeechModelUnavailableError(
            f"Whisper model '{config.model}' could not be downloaded (offline?). Put a CTranslate2 Whisper model "
            f"directory (model.bin, config.json, tokenizer.json, vocabulary.*) at {target} and set "
            f"WHISPER_MODEL={target}. Cause: {library_reason(exc)}"
        ) from exc


def _check_model_dir(path: Path) -> None:
    """Raise :class:`ModelUnavailableError` naming what a local model directory lacks."""
    if not path.is_dir():
        raise SpeechModelUnavailableError(
            f"Whisper model directory {path} does not exist. Put a CTranslate2 Whisper model directory "
            f"(model.bin, config.json, tokenizer.json, vocabulary.*) there or set WHISPER_MODEL to a size name."
        )
    missing = [name for name in _MODEL_FILES if not (path / name).is_file()]
    if not any(path.glob("vocabulary.*")):
        missing.append("vocabulary.*")
    if missing:
        raise SpeechModelUnavailableError(
            f"Whisper model directory {path} is missing {', '.join(missing)}. It must be a CTranslate2 "
            f"Whisper conversion (model.bin, config.json, tokenizer.json, vocabulary.*)."
        )
