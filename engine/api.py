"""Plain, immutable data types shared by the engine and the conversation.

Everything here is a frozen dataclass so results can be cached, logged and
passed between threads/processes without surprises.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Protocol

#: Called with (stage, fraction 0..1); stages are "diffusion", "style", ...
ProgressCallback = Callable[[str, float], None]
#: Returns True when the job should stop as soon as possible.
CancelCheck = Callable[[], bool]


@dataclass(frozen=True)
class Word:
    """One recognised word with its timing and the recogniser's confidence."""

    text: str
    start: float
    end: float
    probability: float


@dataclass(frozen=True)
class Segment:
    """One decoded segment (a phrase) of the transcript."""

    text: str
    start: float
    end: float
    words: tuple[Word, ...] = ()


@dataclass(frozen=True)
class Transcript:
    """What Whisper heard in a voice note.

    ``translation`` is Whisper's English rendering of the speech
    (``task="translate"``) when it was asked for, else ``None``.
    """

    text: str
    language: str
    language_probability: float
    duration: float
    segments: tuple[Segment, ...]
    translation: str | None = None

    @property
    def words(self) -> tuple[Word, ...]:
        """All words of all segments, in order."""
        return tuple(w for s in self.segments for w in s.words)


@dataclass(frozen=True)
class ParsedDescription:
    """A description split into the parts an image prompt is made of."""

    subject: str
    attributes: tuple[str, ...] = ()
    action: str = ""
    scene: tuple[str, ...] = ()


@dataclass(frozen=True)
class Prompt:
    """A Stable Diffusion prompt built from a user's description."""

    description: str
    language: str
    parsed: ParsedDescription
    positive: str
    negative: str


# --- image jobs -------------------------------------------------------------

JobKind = Literal["text", "photo", "restyle"]


@dataclass(frozen=True)
class JobSpec:
    """One image job for an engine.

    ``text`` jobs draw ``prompt`` with ``seed`` (random when ``None``) and
    restyle the result; ``photo`` and ``restyle`` jobs restyle ``source_png``
    (a photo, or the base image of an earlier result) without diffusion.
    ``user_key`` identifies the requester for fair scheduling.
    """

    job_id: str
    user_key: str
    kind: JobKind
    style: str
    prompt: Prompt | None = None
    seed: int | None = None
    source_png: bytes | None = None

    def __post_init__(self) -> None:
        if self.kind == "text" and self.prompt is None:
            raise ValueError("a text job needs a prompt")
        if self.kind != "text" and self.source_png is None:
            raise ValueError(f"a {self.kind} job needs source_png")


@dataclass(frozen=True)
class JobResult:
    """A finished job: PNG bytes of both images plus what produced them."""

    job_id: str
    anime_png: bytes
    base_png: bytes
    style: str
    seed: int | None
    model: str | None
    prompt: Prompt | None
    timings: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class JobQueued:
    """The job waits; ``position`` 1 means it runs next."""

    position: int


@dataclass(frozen=True)
class JobStarted:
    """A worker picked the job up."""


@dataclass(frozen=True)
class JobProgress:
    """Overall progress of a running job, 0..1, and the current stage."""

    fraction: float
    stage: str


@dataclass(frozen=True)
class JobFinished:
    """Terminal: the job produced ``result``."""

    result: JobResult


#: Values a :class:`JobFailed` parameter may hold as is (anything else is kept as its ``str``).
_PLAIN = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class JobFailed:
    """Terminal: the job failed.

    ``error_key`` is a user-facing message key and ``params`` fill its
    placeholders (``UserError.params``), e.g. ``{"style": "x", "styles": "..."}``
    for ``style.unknown``. ``params`` is a read-only mapping of plain values
    (str/int/float/bool/None; anything else is turned into its ``str``) so the
    event can cross a process boundary as msgpack; it does not take part in
    hashing.
    """

    error_key: str
    detail: str = ""
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), hash=False)

    def __post_init__(self) -> None:
        plain = {str(k): v if isinstance(v, _PLAIN) else str(v) for k, v in self.params.items()}
        object.__setattr__(self, "params", MappingProxyType(plain))


@dataclass(frozen=True)
class JobCancelled:
    """Terminal: the job was cancelled before it finished."""


JobEvent = JobQueued | JobStarted | JobProgress | JobFinished | JobFailed | JobCancelled
TERMINAL_EVENTS = (JobFinished, JobFailed, JobCancelled)


class JobHandle:
    """The stream of events of one submitted job, consumed on the event loop.

    Engines publish with :meth:`publish` (from any thread); the conversation
    iterates :meth:`events`, which ends after the terminal event.
    """

    def __init__(self, job_id: str, loop: asyncio.AbstractEventLoop) -> None:
        self.job_id = job_id
        self._loop = loop
        self._queue: asyncio.Queue[JobEvent] = asyncio.Queue()

    def publish(self, event: JobEvent) -> None:
        """Deliver ``event`` to the consumer; safe to call from any thread."""
        self._loop.call_soon_threadsafe(self._queue.put_nowait, event)

    async def events(self) -> AsyncIterator[JobEvent]:
        """Yield events in order until (and including) the terminal one."""
        while True:
            event = await self._queue.get()
            yield event
            if isinstance(event, TERMINAL_EVENTS):
                return


class Engine(Protocol):
    """What the conversation needs from the models, wherever they run."""

    async def start(self) -> None:
        """Start workers (idempotent)."""

    async def close(self) -> None:
        """Stop workers; running jobs are cancelled or handed back."""

    async def transcribe(self, audio: bytes, *, language: str | None = None) -> Transcript:
        """Transcribe a voice note (raises AudioError subclasses for bad input)."""

    async def submit(self, spec: JobSpec) -> JobHandle:
        """Queue an image job (raises QueueFullError when over a cap)."""

    async def cancel(self, job_id: str) -> bool:
        """Cancel a queued or running job; False when it is unknown or already over."""
