"""Small closed vocabularies stored as strings (the request state lives in ``db.states``)."""

from __future__ import annotations

from enum import StrEnum


class ChatKind(StrEnum):
    """A one-to-one conversation with the bot, or a group/server channel."""

    PRIVATE = "private"
    GROUP = "group"


class RequestKind(StrEnum):
    """What started a request. Restyle and reroll derive from a parent request."""

    VOICE = "voice"
    TEXT = "text"
    PHOTO = "photo"
    RESTYLE = "restyle"
    REROLL = "reroll"


#: Kinds that must name the request they derive from (``parent_id``).
DERIVED_KINDS: frozenset[RequestKind] = frozenset({RequestKind.RESTYLE, RequestKind.REROLL})


class ImageRole(StrEnum):
    """``base``: the Stable Diffusion picture (or the user's photo); ``anime``: the styled result."""

    BASE = "base"
    ANIME = "anime"
