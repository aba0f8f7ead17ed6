"""An engine the test drives by hand: jobs wait until the test finishes, fails or cancels them.

For conversation tests about what the conversation itself must guarantee
(caps, serialisation, delivery) — the real engines are tested elsewhere and
in the main flow tests.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass, field, replace

from PIL import Image

from engine.api import (
    JobCancelled,
    JobFinished,
    JobHandle,
    JobQueue,
    JobQueued,
    JobResult,
    JobSpec,
    JobStarted,
    Segment,
    Transcriber,
    Transcript,
    Variation,
    Word,
)
from engine.language.chinese import SCRIPTS
from engine.speech.asr import finish


def png(colour: tuple[int, int, int] = (90, 160, 220), size: tuple[int, int] = (16, 16)) -> bytes:
    """A small PNG."""
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def whisper_wrote(text_words: list[tuple[str, float]], language: str) -> Transcript:
    """A transcript as the speech engine gets it from faster-whisper, before its review: (word, probability) pairs.

    Chinese words are written unspaced, others spaced; English speech is its own translation.
    """
    words = tuple(Word(w, 0.0, 0.0, p) for w, p in text_words)
    text = ("" if language in ("zh", "yue") else " ").join(w for w, _ in text_words)
    translation = text if language == "en" else None
    return Transcript(text, language, 0.97, 3.0, (Segment(text, 0.0, 3.0, words),), translation)


#: Our clip of 一个长头发的女孩在雨中撑着红伞 as Whisper base writes it: Traditional, and 伞 (umbrella) heard, unsurely, as 散.
RED_SAN = whisper_wrote(
    [("一個", 0.9), ("長頭髮", 0.9), ("的", 0.9), ("女孩", 0.9), ("在", 0.9), ("雨中", 0.9), ("撐著", 0.9), ("紅", 0.9), ("散", 0.45)],
    "zh",
)


@dataclass
class ScriptedEngine:
    """Records every submitted :class:`JobSpec`; :meth:`finish` / :meth:`cancel` end them.

    :meth:`transcribe` answers :attr:`transcript` the way the speech engine
    finishes Whisper's output (:func:`engine.speech.asr.finish`): in the reader's
    script, and reviewed (homophones corrected, unsure flags set) when
    :attr:`review` is on; without it the words keep the flags they were given.
    """

    transcript: Transcript | None = None
    review: bool = False
    #: The ``script`` of every :meth:`transcribe` call, in order.
    scripts: list[str | None] = field(default_factory=list)
    specs: list[JobSpec] = field(default_factory=list)
    handles: dict[str, JobHandle] = field(default_factory=dict)

    async def start(self) -> None:
        """Nothing to start."""

    async def close(self) -> None:
        """Nothing to stop."""

    async def transcribe(self, audio: bytes, *, language: str | None = None, script: str | None = None) -> Transcript:
        assert self.transcript is not None, "set ScriptedEngine.transcript first"
        self.scripts.append(script)
        return finish(self.transcript, script=next((s for s in SCRIPTS if s == script), None), review=self.review)

    async def submit(self, spec: JobSpec) -> JobHandle:
        handle = JobHandle(spec.job_id, asyncio.get_running_loop())
        self.specs.append(spec)
        self.handles[spec.job_id] = handle
        handle.publish(JobQueued(len(self.handles)))
        return handle

    async def cancel(self, job_id: str) -> bool:
        handle = self.handles.pop(job_id, None)
        if handle is None:
            return False
        handle.publish(JobCancelled())
        return True

    def finish(self, job_id: str) -> None:
        """Let job ``job_id`` start and produce a picture."""
        spec = next(s for s in self.specs if s.job_id == job_id)
        handle = self.handles.pop(job_id)
        handle.publish(JobStarted())
        drawn = png() if spec.kind == "text" else None  # photo/restyle jobs return no base: the conversation has it
        result = JobResult(job_id, png((200, 80, 120)), spec.style, base_png=drawn, seed=spec.seed, model="scripted")
        if spec.seeds:  # a variations job: a picture and a drawing per seed, and their grid
            pictures = tuple(Variation(png((200, 80, 10 * n)), png((10 * n, 160, 220)), seed) for n, seed in enumerate(spec.seeds))
            result = replace(result, anime_png=png((200, 80, 120), (32, 32)), base_png=None, seed=spec.seeds[0], variations=pictures)
        handle.publish(JobFinished(result))


class SpeechAndJobs:
    """A transcriber and a job queue handed around the tests as one object (the conversation takes each separately)."""

    def __init__(self, transcriber: Transcriber, jobs: JobQueue) -> None:
        self.transcriber = transcriber
        self.jobs = jobs

    async def transcribe(self, audio: bytes, *, language: str | None = None, script: str | None = None) -> Transcript:
        return await self.transcriber.transcribe(audio, language=language, script=script)

    async def start(self) -> None:
        await self.jobs.start()

    async def close(self) -> None:
        await self.jobs.close()

    async def submit(self, spec: JobSpec) -> JobHandle:
        return await self.jobs.submit(spec)

    async def cancel(self, job_id: str) -> bool:
        return await self.jobs.cancel(job_id)
