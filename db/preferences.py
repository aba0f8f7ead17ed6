"""User preferences, group settings, and how they combine.

Settings are of two kinds. *Personal* ones — the language the bot speaks to a
user, their default style and their voice replies — are the user's, wherever they are: a user's own
choice wins over a group's default for their own cards; the group's applies
where they chose nothing. *Chat-wide* ones — "confirm before drawing" (and
later settings like it) — belong to the chat, and only its admins change them
(the conversation checks who may): in a group the group's value, else the
default; a private chat is its user's, so there the user's own value counts.
``language=None`` means "follow the platform locale"; ``default_style=None``
means "the server's configured style"; ``voice_replies=None`` means "the
server's ``VOICE_REPLIES``". A group's admins may turn voice replies off for
everyone in it (``ChatOverrides.voice_replies=False``), which wins over a
member's own choice there.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

#: Interface languages a user or group can choose (None = platform locale); ``handlers.i18n.LANGUAGES``.
LANGUAGES: tuple[str, ...] = ("zh-Hans", "en", "zh-Hant")


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
    #: The chat's content policy level (effective settings in a group only; None: the deployment's).
    content_policy: str | None = None
    #: Voice replies: ``off`` / ``voice`` (after voice notes) / ``always`` (:data:`VOICE_MODES`); None: the deployment's.
    voice_replies: str | None = None


@dataclass(frozen=True)
class ChatOverrides:
    """A group's settings; ``None`` = not set (members' own language and style, the default confirmation)."""

    language: str | None = None
    default_style: str | None = None
    confirm_before_generate: bool | None = None
    #: ``strict`` / ``standard`` / ``off`` (``engine.policy.levels.Level``), chosen by the chat's admins.
    content_policy: str | None = None
    #: False: no voice replies in this group, whatever its members chose; None: each member's own setting.
    voice_replies: bool | None = None


#: What a user who never changed anything gets.
DEFAULT_PREFERENCES = Preferences()


def effective_preferences(user: Preferences, chat: ChatOverrides | None) -> Preferences:
    """What applies to ``user`` in a chat with settings ``chat`` (``None``: a private chat).

    Personal settings (language, default style): the user's own, else the group's default.
    Chat-wide ones (confirm before drawing): the group's, else the default; in a private chat the user's.
    Voice replies are the user's own unless the group turned them off.
    """
    if chat is None:
        return user
    return Preferences(
        language=user.language if user.language is not None else chat.language,
        default_style=user.default_style if user.default_style is not None else chat.default_style,
        confirm_before_generate=(
            chat.confirm_before_generate
            if chat.confirm_before_generate is not None
            else DEFAULT_PREFERENCES.confirm_before_generate
        ),
        content_policy=chat.content_policy,
        voice_replies="off" if chat.voice_replies is False else user.voice_replies,
    )


def check_language(language: str | Keep | None) -> None:
    """Raise ``ValueError`` unless ``language`` is a supported code, ``None`` or ``KEEP``."""
    if language is not None and language is not KEEP and language not in LANGUAGES:
        raise ValueError(f"unsupported language {language!r}; expected one of {LANGUAGES} or None")


#: Content policy levels a chat's admins can choose (``engine.policy.levels.Level``; None = the deployment's).
POLICY_LEVELS: tuple[str, ...] = ("strict", "standard", "off")


def check_policy(level: str | Keep | None) -> None:
    """Raise ``ValueError`` unless ``level`` is a content policy level, ``None`` or ``KEEP``."""
    if level is not None and level is not KEEP and level not in POLICY_LEVELS:
        raise ValueError(f"unsupported content policy {level!r}; expected one of {POLICY_LEVELS} or None")


#: Voice replies a user can choose (None = the deployment's ``VOICE_REPLIES``): none, after their voice notes, always.
VOICE_MODES: tuple[str, ...] = ("off", "voice", "always")


def check_voice_mode(mode: str | Keep | None) -> None:
    """Raise ``ValueError`` unless ``mode`` is one of :data:`VOICE_MODES`, ``None`` or ``KEEP``."""
    if mode is not None and mode is not KEEP and mode not in VOICE_MODES:
        raise ValueError(f"unsupported voice replies {mode!r}; expected one of {VOICE_MODES} or None")
