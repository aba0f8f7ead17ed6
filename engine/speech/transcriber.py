"""The bot's :class:`engine.api.Transcriber`: faster-whisper on its own speech thread, in the bot process."""

from __future__ import annotations

from engine.api import Transcript
from engine.language.chinese import SCRIPTS
from engine.speech.asr import SpeechRecognizer


class WhisperTranscriber:
    """Transcribes voice notes with ``recognizer`` on its speech thread.

    The recognizer has its own thread, so a voice note's card never waits
    behind pictures and the event loop stays free.
    """

    def __init__(self, recognizer: SpeechRecognizer) -> None:
        self.recognizer = recognizer

    async def transcribe(self, audio: bytes, *, language: str | None = None, script: str | None = None) -> Transcript:
        """Transcribe a voice note (raises AudioError subclasses for bad input).

        ``script`` is the reader's Chinese script ("zh-Hans" / "zh-Hant"; anything else: as heard).
        """
        chosen = script if script in SCRIPTS else None
        return await self.recognizer.transcribe_async(audio, language=language, script=chosen)
