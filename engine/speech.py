"""Speech in an engine: both engines recognise voice notes in the bot process, the same way."""

from __future__ import annotations

from engine.api import Transcript
from engine.asr import SpeechRecognizer
from engine.chinese import SCRIPTS


class RecognizerSpeech:
    """Engine mixin: :meth:`transcribe` on ``self.recognizer``'s speech thread.

    The recognizer has its own thread, so a voice note's card never waits
    behind pictures and the event loop stays free.
    """

    recognizer: SpeechRecognizer

    async def transcribe(self, audio: bytes, *, language: str | None = None, script: str | None = None) -> Transcript:
        """Transcribe a voice note (raises AudioError subclasses for bad input).

        ``script`` is the reader's Chinese script ("zh-Hans" / "zh-Hant"; anything else: as heard).
        """
        chosen = script if script in SCRIPTS else None
        return await self.recognizer.transcribe_async(audio, language=language, script=chosen)
