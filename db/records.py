"""Immutable snapshots of database rows handed to the rest of the bot."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from db.enums import ChatKind, ImageRole, RequestKind
from db.files import ImageStore
from db.models import Image, Request, Transcript
from db.states import RequestState
from engine.api import uncorrected


@dataclass(frozen=True)
class WordRecord:
    """A recognised word, the recogniser's confidence in it and the engine's verdict (``engine.api.Word``).

    ``corrected_from`` is what the recogniser wrote when the engine corrected
    the word. Rows written before these were stored have neither key: such
    words read as sure and uncorrected.
    """

    text: str
    probability: float
    unsure: bool = False
    corrected_from: str | None = None

    def as_said(self) -> WordRecord:
        """The word as the recogniser wrote it; one the user kept is theirs, no longer unsure."""
        if self.corrected_from is None:
            return self
        return replace(self, text=self.corrected_from, unsure=False, corrected_from=None)


@dataclass(frozen=True)
class TranscriptRecord:
    """What was heard, the user's edit, and the text finally used."""

    heard_text: str
    language: str
    language_probability: float
    translation: str | None
    words: tuple[WordRecord, ...]
    edited_text: str | None
    final_text: str | None

    @property
    def corrections(self) -> tuple[tuple[str, str], ...]:
        """What the engine corrected, in order: (what the recogniser wrote, what the engine made of it)."""
        return tuple((w.corrected_from, w.text) for w in self.words if w.corrected_from is not None)

    def as_said(self) -> TranscriptRecord:
        """What was heard with every corrected word put back as the recogniser wrote it ("Keep what I said").

        A translation that was the heard text itself (English speech, see
        ``engine.speech.asr.finish``) follows it; a user's edit is not touched.
        """
        text = uncorrected(self.heard_text, self.words)
        translation = text if self.translation == self.heard_text else self.translation
        return replace(self, heard_text=text, translation=translation, words=tuple(w.as_said() for w in self.words))

    @classmethod
    def from_row(cls, row: Transcript) -> TranscriptRecord:
        """Snapshot of a ``transcripts`` row."""
        return cls(
            heard_text=row.heard_text,
            language=row.language,
            language_probability=row.language_probability,
            translation=row.translation,
            words=tuple(
                WordRecord(w["text"], w["probability"], w.get("unsure", False), w.get("corrected_from")) for w in row.words
            ),
            edited_text=row.edited_text,
            final_text=row.final_text,
        )


@dataclass(frozen=True)
class ImageRecord:
    """A stored picture; ``path`` is absolute (inside the data dir)."""

    id: int
    request_id: str
    role: ImageRole
    path: Path
    sha256: str
    width: int
    height: int
    seed: int | None
    model: str | None
    style: str | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: Image, store: ImageStore) -> ImageRecord:
        """Snapshot of an ``images`` row with its path resolved under the data dir."""
        return cls(
            id=row.id,
            request_id=row.request_id,
            role=ImageRole(row.role),
            path=store.path_of(row.path),
            sha256=row.sha256,
            width=row.width,
            height=row.height,
            seed=row.seed,
            model=row.model,
            style=row.style,
            created_at=row.created_at,
        )


@dataclass(frozen=True)
class RequestRecord:
    """A request with its transcript (if any) and images (oldest first)."""

    id: str
    user_id: int
    chat_id: int
    kind: RequestKind
    parent_id: str | None
    state: RequestState
    style: str | None
    seed: int | None
    prompt_positive: str | None
    prompt_negative: str | None
    source_language: str | None
    error_key: str | None
    card_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    transcript: TranscriptRecord | None
    images: tuple[ImageRecord, ...]
    #: An upscale request's factor (2 or 4); None for every other kind.
    upscale: int | None = None
    #: What the drawing keeps of the request's ``control`` image (lineart, canny, pose, scribble); None: none.
    control: str | None = None
    #: The picture's size (``None``: the deployment's).
    width: int | None = None
    height: int | None = None
    #: A remix's strength (``None``: not a remix).
    strength: float | None = None
    #: Its own drawing steps and guidance (``None``: the deployment's).
    steps: int | None = None
    guidance: float | None = None

    def image(self, role: ImageRole) -> ImageRecord | None:
        """The image with ``role``, if there is one."""
        return next((img for img in self.images if img.role == role), None)

    @classmethod
    def from_row(cls, row: Request, store: ImageStore) -> RequestRecord:
        """Snapshot of a ``requests`` row whose transcript and images are loaded."""
        return cls(
            id=row.id,
            user_id=row.user_id,
            chat_id=row.chat_id,
            kind=RequestKind(row.kind),
            parent_id=row.parent_id,
            state=RequestState(row.state),
            style=row.style,
            seed=row.seed,
            prompt_positive=row.prompt_positive,
            prompt_negative=row.prompt_negative,
            source_language=row.source_language,
            error_key=row.error_key,
            card_expires_at=row.card_expires_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            transcript=TranscriptRecord.from_row(row.transcript) if row.transcript is not None else None,
            images=tuple(ImageRecord.from_row(img, store) for img in row.images),
            upscale=row.upscale,
            control=row.control,
            width=row.width,
            height=row.height,
            strength=row.strength,
            steps=row.steps,
            guidance=row.guidance,
        )


@dataclass(frozen=True)
class RequestAddress:
    """A request's platform, chat and user ids, as the platform knows them."""

    platform: str
    platform_chat_id: str
    platform_user_id: str
    chat_kind: ChatKind
