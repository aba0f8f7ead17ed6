"""The conversation's limits and timings, taken from the settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from db.limits import Caps
from engine.policy.text import ChatPolicy


@dataclass(frozen=True)
class ConversationConfig:
    """Limits and timings of the conversation (from settings)."""

    styles: tuple[str, ...]
    default_style: str
    #: Style id -> {UI language: display name}; ids without names are shown as they are.
    style_names: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    card_ttl: timedelta = timedelta(minutes=10)
    progress_interval: float = 2.0
    #: Show preview images of the picture being drawn in its status message (``PREVIEWS``).
    previews: bool = True
    max_text_chars: int = 500
    requests_per_minute: int = 6
    max_active_per_user: int = 3
    max_active_total: int = 100
    history_limit: int = 5
    #: Voice notes kept in memory for "Heard wrong language" while their card is open (least recently used dropped first).
    audio_cache_bytes: int = 256 * 1024 * 1024
    #: Largest photo accepted, in pixels (read from its header before decoding).
    photo_max_pixels: int = 40_000_000
    #: Photos are decoded scaled down to this longest side (what the anime style is applied at).
    photo_max_side: int = 1024
    #: What a photo sent with a description keeps (``CONTROL_PHOTO``): ``lineart`` (its outline), ``canny`` (its edges), ``depth`` or ``pose``.
    control_photo: str = "lineart"
    #: Waits (seconds) before each new try of a picture upload that failed.
    delivery_retry_delays: tuple[float, ...] = (2.0, 10.0, 30.0)
    #: The content policy (``CONTENT_POLICY``, ``POLICY_*``): levels, where ``off`` may apply, the term list.
    policy: ChatPolicy = ChatPolicy()
    #: Spoken replies (``VOICE_REPLIES``): ``off`` for none, else what a user who chose nothing hears (``voice``, ``always``).
    voice_replies: str = "voice"

    @property
    def caps(self) -> Caps:
        """The request caps the database enforces."""
        return Caps(self.requests_per_minute, self.max_active_per_user, self.max_active_total)
