"""Small closed vocabularies stored as strings (the request state lives in ``db.states``)."""

from __future__ import annotations

from enum import StrEnum


class ChatKind(StrEnum):
    """A one-to-one conversation with the bot, or a group/server channel."""

    PRIVATE = "private"
    GROUP = "group"


class RequestKind(StrEnum):
    """What started a request. Restyle, reroll, variations and kept derive from a parent request.

    ``variations`` draws a delivered picture's words again with four new seeds
    (one job, a grid of four); ``kept`` is the one of them the user kept, a
    picture of its own (its images are the variation's, no job runs);
    ``upscale`` makes a delivered picture 2 or 4 times larger (sent as a file).
    """

    VOICE = "voice"
    TEXT = "text"
    PHOTO = "photo"
    RESTYLE = "restyle"
    REROLL = "reroll"
    VARIATIONS = "variations"
    KEPT = "kept"
    UPSCALE = "upscale"
    #: A delivered picture drawn again over itself with new words (img2img).
    REMIX = "remix"


#: Kinds that must name the request they derive from (``parent_id``).
DERIVED_KINDS: frozenset[RequestKind] = frozenset(
    {RequestKind.RESTYLE, RequestKind.REROLL, RequestKind.VARIATIONS, RequestKind.KEPT, RequestKind.UPSCALE, RequestKind.REMIX}
)


class ImageRole(StrEnum):
    """``base``: the Stable Diffusion picture (or the user's photo); ``anime``: the styled result;
    ``control``: the picture whose composition a drawing keeps (a photo sent with a description, a sketch).

    A variations request's ``anime`` is the grid of its pictures; each picture
    is ``v1`` .. ``v4`` (styled) with its drawing ``v1b`` .. ``v4b``
    (:func:`variation_roles`).
    """

    BASE = "base"
    ANIME = "anime"
    V1 = "v1"
    V2 = "v2"
    V3 = "v3"
    V4 = "v4"
    V1_BASE = "v1b"
    V2_BASE = "v2b"
    V3_BASE = "v3b"
    V4_BASE = "v4b"
    CONTROL = "control"


#: The roles of styled pictures (they record their style; drawings and photos do not).
STYLED_ROLES: frozenset[ImageRole] = frozenset({ImageRole.ANIME, ImageRole.V1, ImageRole.V2, ImageRole.V3, ImageRole.V4})

#: How many pictures a variations request draws.
VARIATIONS = 4


def variation_roles(number: int) -> tuple[ImageRole, ImageRole]:
    """The roles of variation ``number`` (1 .. :data:`VARIATIONS`): its styled picture and its drawing."""
    if not 1 <= number <= VARIATIONS:
        raise ValueError(f"no variation {number}")
    return ImageRole(f"v{number}"), ImageRole(f"v{number}b")
