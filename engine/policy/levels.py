"""Content policy levels and verdicts: what may be drawn, one verdict type for the conversation, the CLI and the workers.

Three levels (:class:`Level`): ``strict`` (the default: no sexual or
suggestive content, no gore or graphic violence, no hate symbols; every
picture checked), ``standard`` (suggestive words and graphic violence pass,
explicit sexual content, gore and hate do not; a picture the image check flags
is sent as a spoiler, or not at all) and ``off`` (nothing is checked — except
sexual content with children, which is refused at every level). ``off`` is
only for chats that allow it (:func:`effective_level`): Discord channels
marked age-restricted and Telegram chats the operator lists.

Descriptions are checked by :mod:`engine.policy.text`, drawn pictures by
:mod:`engine.policy.image_check` and photos by :mod:`engine.policy.photo_check`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from engine.errors import UserError

if TYPE_CHECKING:

    pass

log = logging.getLogger(__name__)


class Level(StrEnum):
    """How much a chat allows (see the module docstring)."""

    STRICT = "strict"
    STANDARD = "standard"
    OFF = "off"


LEVELS: tuple[Level, ...] = (Level.STRICT, Level.STANDARD, Level.OFF)
#: Where ``off`` is not allowed, a chat asking for it gets this.
OFF_FALLBACK = Level.STANDARD


def effective_level(default: Level | str, override: Level | str | None = None, *, off_allowed: bool = False) -> Level:
    """The level that applies in a chat: its override (set by an admin), else the deployment's; ``off`` only where allowed."""
    level = Level(override or default)
    if level is Level.OFF and not off_allowed:
        return OFF_FALLBACK
    return level


def off_allowed(platform: str, chat_id: str, *, age_restricted: bool, off_chats: Iterable[str]) -> bool:
    """May ``off`` apply here? A Discord channel marked age-restricted, or a Telegram chat the operator listed."""
    if platform == "discord":
        return age_restricted
    if platform == "telegram":
        return chat_id in set(off_chats)
    return False


def checks_images(level: Level | str) -> bool:
    """Pictures are checked at ``strict`` (flagged: not sent) and ``standard`` (flagged: a spoiler, or not sent)."""
    return Level(level) is not Level.OFF


# --------------------------------------------------------------------------
# Verdicts
# --------------------------------------------------------------------------

#: Where a prompt hit was found: the user's words, the English prompt made of them, or what they asked to leave out.
HitSource = Literal["text", "prompt", "negated"]


@dataclass(frozen=True)
class Hit:
    """A term of the list found in a description: its category, the list's term and the words as the user wrote them.

    ``start``/``end`` index the checked text (``source`` says which); ``found``
    is ``text[start:end]``.
    """

    category: str
    term: str
    found: str
    start: int
    end: int
    source: HitSource = "text"


@dataclass(frozen=True)
class Finding:
    """What the image detector saw: a class label and its score (0..1)."""

    label: str
    score: float

    def __str__(self) -> str:
        return f"{self.label} {self.score:.2f}"


@dataclass(frozen=True)
class Verdict:
    """The policy's answer for one description or picture.

    ``allowed`` False: refused, for the ``hits`` (prompt) or ``findings``
    (image) that block at ``level``. ``spoiler``: allowed, but shown behind a
    spoiler (``standard``, a flagged picture). :attr:`reasons` says why in
    plain words (logs, the CLI); chat messages word it in the user's language
    from ``hits``/``findings``.
    """

    allowed: bool
    level: Level
    hits: tuple[Hit, ...] = ()
    findings: tuple[Finding, ...] = ()
    spoiler: bool = False

    @property
    def reasons(self) -> tuple[str, ...]:
        """One line per reason: ``sexual: "n.s.f.w"`` or ``image: FEMALE_BREAST_EXPOSED 0.83``."""
        lines = [f'{hit.category}: "{hit.found}"' for hit in self.hits]
        lines += [f"image: {finding}" for finding in self.findings]
        return tuple(dict.fromkeys(lines))

    @property
    def categories(self) -> tuple[str, ...]:
        """The categories behind a refusal, in order, each once."""
        return tuple(dict.fromkeys(hit.category for hit in self.hits))

    @property
    def words(self) -> tuple[str, ...]:
        """The words that triggered, as written, each once."""
        return tuple(dict.fromkeys(hit.found for hit in self.hits))

    def as_json(self) -> dict[str, Any]:
        """``{"level", "allowed", "reasons"}`` (the CLI's ``"policy"``), plus ``"spoiler"`` when set."""
        payload: dict[str, Any] = {"level": self.level.value, "allowed": self.allowed, "reasons": list(self.reasons)}
        if self.spoiler:
            payload["spoiler"] = True
        return payload


ALLOWED = {level: Verdict(True, level) for level in LEVELS}



def combine(verdicts: Iterable[Verdict], level: Level | str) -> Verdict:
    """One verdict for several pictures of a job: refused if any is, a spoiler if any is."""
    level = Level(level)
    allowed, spoiler = True, False
    findings: list[Finding] = []
    for verdict in verdicts:
        allowed &= verdict.allowed
        spoiler |= verdict.spoiler
        findings.extend(f for f in verdict.findings if f not in findings)
    if allowed and not spoiler:
        return ALLOWED[level]
    return Verdict(allowed, level, findings=tuple(findings), spoiler=spoiler and allowed)


# --------------------------------------------------------------------------
# Errors (user-facing words: the catalogs in handlers/locales/)
# --------------------------------------------------------------------------


class PromptRefusedError(UserError):
    """A description the content policy refuses (``reasons``: :attr:`Verdict.reasons`, joined; ``level``)."""

    key = "policy.refused"

    @classmethod
    def of(cls, verdict: Verdict) -> PromptRefusedError:
        """The error for a refused ``verdict``."""
        return cls(", ".join(verdict.reasons), level=verdict.level.value, reasons="; ".join(verdict.reasons))


class ImageFlaggedError(UserError):
    """The image check flagged a drawn picture: it is not sent (the operator's log names the findings)."""

    key = "policy.image_flagged"


class PhotoFlaggedError(ImageFlaggedError):
    """The image check flagged a photo a user sent (before styling)."""

    key = "policy.photo_flagged"
