"""User preferences, group overrides, and how they combine.

Precedence for a request in a group: the group's override, else the user's own
setting, else the default. ``language=None`` means "follow the platform
locale"; ``default_style=None`` means "the server's configured style".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

#: Interface languages a user or group can choose (None = platform locale).
LANGUAGES: tuple[str, ...] = ("zh", "en")


class Keep(Enum):
    """Marker for "leave this setting unchanged" in update calls (``None`` clears a setting)."""

    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass(frozen=True)
class Preferences:
    """A user's settings (or the effective settings for one request)."""

    language: str | None = None
    default_style: str | None = None
    confirm_before_generate: bool = True


@dataclass(frozen=True)
class ChatOverrides:
    """A group's settings; ``None`` = no override, use the member's own."""

    language: str | None = None
    default_style: str | None = None
    confirm_before_generate: bool | None = None


#: What a user who never changed anything gets.
DEFAULT_PREFERENCES = Preferences()


def effective_preferences(user: Preferences, chat: ChatOverrides | None) -> Preferences:
    """Combine a user's preferences with a group's overrides (group wins where set)."""
    if chat is None:
        return user
    return Preferences(
        language=chat.language if chat.language is not None else user.language,
        default_style=chat.default_style if chat.default_style is not None else user.default_style,
        confirm_before_generate=(
            chat.confirm_before_generate if chat.confirm_before_generate is not None else user.confirm_before_generate
        ),
    )


def check_language(language: str | Keep | None) -> None:
    """Raise ``ValueError`` unless ``language`` is a supported code, ``None`` or ``KEEP``."""
    if language is not None and language is not KEEP and language not in LANGUAGES:
        raise ValueError(f"unsupported language {language!r}; expected one of {LANGUAGES} or None")
