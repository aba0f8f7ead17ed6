"""Plain, immutable data types shared by the engine and the conversation.

Everything here is a frozen dataclass so results can be cached, logged and
passed between threads/processes without surprises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

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
