"""Plain, immutable data types shared by the engine and the conversation.

The records are frozen dataclasses so results can be cached, logged and
passed between threads/processes without surprises; :class:`JobHandle` (an
event stream) and the :class:`Transcriber` and :class:`JobQueue` protocols are the only behaviour here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Annotated, Literal, Protocol

from pydantic import PlainSerializer

#: Called with (stage, fraction 0..1); stages are "diffusion", "style", ... and :data:`LOADING` / :data:`PREPARING`.
ProgressCallback = Callable[[str, float], None]
#: The stage reported once before the drawing model loads (the first picture; it may download first).
LOADING = "loading"
#: The stage reported once, after :data:`LOADING`, when the drawing model is being converted for this computer
#: first (the ONNX export of its UNet with ``SD_BACKEND=onnx``: minutes, once per model).
PREPARING = "preparing"
#: The stage of an upscale job: its fraction is the share of the picture's tiles made larger so far.
UPSCALING = "upscale"
#: Called with (stage, small JPEG of the picture so far): previews while "diffusion" runs, the sketch as "style" starts.
PreviewCallback = Callable[[str, bytes], None]
#: Returns True when the job should stop as soon as possible.
CancelCheck = Callable[[], bool]


@dataclass(frozen=True)
class Word:
    """One recognised word with its timing and the recogniser's confidence.

    ``unsure`` is the engine's verdict that the word may be wrong (low
    probability together with other signals: not a dictionary word, corrected,
    a very short word, the wrong script); the card shows such words marked.
    ``corrected_from`` is what the recogniser wrote when the engine replaced a
    word it believes misheard (a homophone of a lexicon word: 红散 -> 红伞,
    "fuck spirit" -> "fox spirit"); a corrected word is always unsure, and the
    user can keep the original.
    """

    text: str
    start: float
    end: float
    probability: float
    unsure: bool = False
    corrected_from: str | None = None


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
    (``task="translate"``) when it was asked for, else ``None``. ``script``
    is the Chinese script the text is written in when it was converted for
    the reader (``"zh-Hans"`` / ``"zh-Hant"``), ``None`` when left as heard.
    ``text`` holds the corrected words; :attr:`heard_text` is what the
    recogniser wrote (same script), for "keep what I said".
    ``language_probability`` is how sure the recogniser was of the language
    it detected, or, when the language was given, of its words (their mean
    probability).
    """

    text: str
    language: str
    language_probability: float
    duration: float
    segments: tuple[Segment, ...]
    translation: str | None = None
    script: str | None = None

    @property
    def words(self) -> tuple[Word, ...]:
        """All words of all segments, in order."""
        return tuple(w for s in self.segments for w in s.words)

    @property
    def corrected(self) -> bool:
        """True when the engine corrected at least one word."""
        return any(w.corrected_from is not None for w in self.words)

    @property
    def heard_text(self) -> str:
        """The transcript with every corrected word put back as the recogniser wrote it."""
        return uncorrected(self.text, self.words)


class Correctable(Protocol):
    """A word that may have been corrected (:class:`Word`, ``db.records.WordRecord``)."""

    @property
    def text(self) -> str: ...

    @property
    def corrected_from(self) -> str | None: ...


def uncorrected(text: str, words: Iterable[Correctable]) -> str:
    """``text`` (made of ``words``, in order) with every corrected word put back as the recogniser wrote it."""
    position = 0
    for word in words:
        found = text.find(word.text, position)
        if found < 0:
            continue
        if word.corrected_from is not None:
            text = text[:found] + word.corrected_from + text[found + len(word.text) :]
            position = found + len(word.corrected_from)
        else:
            position = found + len(word.text)
    return text


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
    #: Chinese words of the description nothing could translate (shown on the card; never in ``positive``).
    untranslated: tuple[str, ...] = ()
    #: (English, Chinese as written) for the words translated with the dictionary: the card shows them in Chinese.
    glossary: tuple[tuple[str, str], ...] = ()
    #: The picture shape the description asked for ("landscape", 竖版: :mod:`engine.language.aspect`), its words not drawn.
    aspect: str | None = None


# --- image jobs -------------------------------------------------------------
#
# JobSpec, JobResult and the JobEvent types are the job contract between the
# conversation and an engine (in distributed mode it crosses Redis): the wire
# format (engine.jobs.wire) is generated from these declarations, so every field is
# a plain value (str, int, float, bool, None, bytes, tuples and mappings of them).

JobKind = Literal["text", "photo", "restyle", "upscale"]
#: What a text job's control image keeps (:data:`engine.image.control.CONTROL_KINDS`); "": no control image.
ControlKind = Literal["", "lineart", "canny", "pose", "scribble", "depth"]
#: The values of :class:`engine.policy.levels.Level` (the wire carries plain strings).
PolicyLevel = Literal["strict", "standard", "off"]

#: What a job may need of a worker beyond drawing from words or restyling a picture (:attr:`JobSpec.needs`): each
#: names fields of the spec a worker must act on to make the picture asked for. A new one goes here with its rule in
#: :meth:`JobSpec.features`; a worker refuses a job that needs a feature it does not know (queued by a newer bot)
#: instead of ignoring fields it cannot read and drawing something else (:mod:`engine.jobs.compat`).
FEATURES = frozenset({"upscale", "variations", "control", "remix", "size", "steps", "depth", "pose_detection"})

#: A value a :class:`JobFailed` parameter may hold.
PlainValue = str | int | float | bool | None


@dataclass(frozen=True)
class JobSpec:
    """One image job for an engine: only what a worker needs to run it.

    ``text`` jobs draw ``positive`` (steering away from ``negative``) with
    ``seed`` (random when ``None``) and restyle the drawing; ``photo`` and
    ``restyle`` jobs restyle ``source_png`` (a photo, or the base image of an
    earlier picture) without diffusion. ``user_key`` identifies the requester
    for fair scheduling. Generation settings (model, steps, size) belong to the
    engine, not to the job. ``policy`` is the content policy level of the
    requester's chat (:class:`engine.policy.levels.Level`): it decides the image check
    (a job without one, from an older bot, is checked as ``strict``).
    ``transcript`` and ``language`` are the words a text job was asked for with
    (what was heard in the voice note, or typed) and their language code; the
    picture's PNG carries them (:mod:`engine.image.png_info`), empty: not told.
    ``seeds`` makes a text job a variations job: one picture per seed, all
    drawn in one diffusion call (``seed`` is then unused); empty: one picture.
    An ``upscale`` job makes ``source_png`` (a delivered picture) ``scale``
    (2 or 4) times larger with the engine's upscaler (Real-ESRGAN).
    ``control`` and ``control_png``: a text job drawn keeping the composition
    of a picture (a photo's outline or edges, a sketch's strokes, a pose) with
    a ControlNet; ``""`` and ``None`` (the defaults) draw from the words alone.
    ``width``/``height`` are a text job's picture size (``None``: the engine's;
    portrait and landscape pictures). ``init_png`` with ``strength`` makes a text
    job a remix: ``positive`` drawn over that picture (img2img), moving
    ``strength`` (0..1) of the way towards a new picture; ``None``: drawn from noise.
    ``steps``/``guidance`` draw a text job with its own (a picture drawn again
    as its PNG says it was drawn); ``None``: the engine's.
    ``needs`` lists the :data:`FEATURES` the job uses (always at least :meth:`features`; a newer
    bot may send names this version does not know, which its workers then refuse).
    """

    job_id: str
    user_key: str
    kind: JobKind
    style: str
    positive: str = ""
    negative: str = ""
    seed: int | None = None
    source_png: bytes | None = None
    policy: PolicyLevel = "strict"
    transcript: str = ""
    language: str = ""
    seeds: tuple[int, ...] = ()
    scale: int = 0
    control: ControlKind = ""
    control_png: bytes | None = None
    width: int | None = None
    height: int | None = None
    init_png: bytes | None = None
    strength: float | None = None
    steps: int | None = None
    guidance: float | None = None
    needs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.kind == "upscale") != (self.scale in (2, 4)):
            raise ValueError("an upscale job, and only one, has a scale of 2 or 4")
        if self.seeds and (self.kind != "text" or len(self.seeds) < 2):
            raise ValueError("variations (seeds) are two or more pictures of a text job")
        if bool(self.control) != (self.control_png is not None):
            raise ValueError("control and control_png go together")
        if self.control and (self.kind != "text" or self.seeds):
            raise ValueError("only a text job of one picture draws with a control image")
        if (self.init_png is None) != (self.strength is None):
            raise ValueError("a remix needs both init_png and strength")
        if self.init_png is not None and self.seeds:
            raise ValueError("a remix draws one picture over its own: it takes no seeds")
        if self.kind == "text":
            if not self.positive:
                raise ValueError("a text job needs a positive prompt")
            if self.source_png is not None:
                raise ValueError("a text job draws its picture: it takes no source_png")
        elif self.init_png is not None:
            raise ValueError(f"a {self.kind} job draws nothing: it takes no init_png")
        elif self.source_png is None:
            raise ValueError(f"a {self.kind} job needs source_png")
        needs = tuple(sorted({*self.needs, *self.features()}))
        if needs != self.needs:
            object.__setattr__(self, "needs", needs)

    def features(self) -> tuple[str, ...]:
        """The :data:`FEATURES` this job's fields use: a worker must know each of them to make the picture asked for."""
        used = {
            "upscale": self.kind == "upscale",
            "variations": bool(self.seeds),
            "control": bool(self.control),
            "remix": self.init_png is not None,
            "size": self.width is not None or self.height is not None,
            "steps": self.steps is not None or self.guidance is not None,
            "depth": self.control == "depth",
            "pose_detection": self.control == "pose",  # a photo's pose found (an older worker takes it as a skeleton)
        }
        return tuple(name for name, on in used.items() if on)


@dataclass(frozen=True)
class Variation:
    """One picture of a variations job: the anime PNG, its drawing before the style, and its seed."""

    anime_png: bytes
    base_png: bytes
    seed: int


@dataclass(frozen=True)
class JobResult:
    """What a job made: the anime PNG and how it was made.

    ``base_png`` is the picture before styling when the job drew it (text
    jobs); ``None`` for photo/restyle jobs, whose base is the source the
    conversation sent (and already stored). ``seed`` and ``model`` are those of
    the diffusion run (``None`` without one); ``timings`` are seconds per stage.
    ``flagged`` lists what the image check found ("BUTTOCKS_EXPOSED 0.71") in
    a picture it let through at ``standard``: it is shown behind a spoiler
    (``strict`` never returns a flagged picture).
    ``variations`` are the pictures of a variations job (``JobSpec.seeds``), in
    the order of its seeds; ``anime_png`` is then all of them in one grid
    (:func:`engine.image.grid.grid`), ``seed`` the first one's.
    """

    job_id: str
    anime_png: bytes
    style: str
    base_png: bytes | None = None
    seed: int | None = None
    model: str | None = None
    timings: tuple[tuple[str, float], ...] = ()
    flagged: tuple[str, ...] = ()
    variations: tuple[Variation, ...] = ()


@dataclass(frozen=True)
class JobQueued:
    """The job waits; ``position`` 1 means it runs next."""

    position: int
    type: Literal["queued"] = field(default="queued", init=False, repr=False)


@dataclass(frozen=True)
class JobStarted:
    """A worker picked the job up."""

    type: Literal["started"] = field(default="started", init=False, repr=False)


@dataclass(frozen=True)
class JobProgress:
    """Overall progress of a running job, 0..1 (never falling), and the current stage ("diffusion", "style").

    ``preview``, when set, is a small JPEG (at most ``engine.image.diffusion.SKETCH_SIDE``
    pixels a side, a few KB) of the picture so far: the current latents while
    "diffusion" runs, the drawing before the anime style (the sketch) as
    "style" starts. Engines make previews only when asked to (``PREVIEWS``).
    """

    fraction: float
    stage: str
    preview: bytes | None = field(default=None, repr=False)
    type: Literal["progress"] = field(default="progress", init=False, repr=False)


@dataclass(frozen=True)
class JobFinished:
    """Terminal: the job produced ``result``."""

    result: JobResult
    type: Literal["finished"] = field(default="finished", init=False, repr=False)


def _as_dict(params: Mapping[str, PlainValue]) -> dict[str, PlainValue]:
    return dict(params)


@dataclass(frozen=True)
class JobFailed:
    """Terminal: the job failed.

    ``error_key`` is a user-facing message key and ``params`` fill its
    placeholders (``UserError.params``), e.g. ``{"style": "x", "styles": "..."}``
    for ``style.unknown``. ``params`` is a read-only mapping of plain values
    (str/int/float/bool/None; anything else is turned into its ``str``) so the
    event can cross a process boundary; it does not take part in hashing.
    """

    error_key: str
    detail: str = ""
    params: Annotated[Mapping[str, PlainValue], PlainSerializer(_as_dict)] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    type: Literal["failed"] = field(default="failed", init=False, repr=False)

    def __post_init__(self) -> None:
        plain = {str(k): v if isinstance(v, _PLAIN) else str(v) for k, v in self.params.items()}
        object.__setattr__(self, "params", MappingProxyType(plain))


#: Values a :class:`JobFailed` parameter may hold as is (anything else is kept as its ``str``).
_PLAIN = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class JobCancelled:
    """Terminal: the job was cancelled before it finished."""

    type: Literal["cancelled"] = field(default="cancelled", init=False, repr=False)


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
        self._ended = False

    def publish(self, event: JobEvent) -> None:
        """Deliver ``event`` to the consumer; safe to call from any thread."""
        self._loop.call_soon_threadsafe(self._arrived, event)

    def _arrived(self, event: JobEvent) -> None:
        self._ended = self._ended or isinstance(event, TERMINAL_EVENTS)
        self._queue.put_nowait(event)

    @property
    def ended(self) -> bool:
        """Whether the job's terminal event has arrived, consumed or not (an event being handled may be out of date)."""
        return self._ended

    async def events(self) -> AsyncIterator[JobEvent]:
        """Yield events in order until (and including) the terminal one."""
        while True:
            event = await self._queue.get()
            yield event
            if isinstance(event, TERMINAL_EVENTS):
                return


class Transcriber(Protocol):
    """What the conversation needs to read voice notes (in the bot process)."""

    async def transcribe(self, audio: bytes, *, language: str | None = None, script: str | None = None) -> Transcript:
        """Transcribe a voice note (raises AudioError subclasses for bad input).

        ``script`` is the reader's Chinese script ("zh-Hans" / "zh-Hant"; ``None``: as heard).
        """


class JobQueue(Protocol):
    """What the conversation needs to have pictures made, wherever the models run."""

    async def start(self) -> None:
        """Start workers (idempotent)."""

    async def close(self) -> None:
        """Stop workers; running jobs are cancelled or handed back."""

    async def submit(self, spec: JobSpec) -> JobHandle:
        """Queue an image job; its events arrive on the handle (caps are the conversation's, kept in the database)."""

    async def cancel(self, job_id: str) -> bool:
        """Cancel a queued or running job; False when it is unknown or already over."""
