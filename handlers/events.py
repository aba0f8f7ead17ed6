"""Neutral inbound events: what a platform adapter hands to the conversation.

Adapters translate Telegram updates / Discord interactions into these and
nothing else; the conversation never sees platform objects.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from engine.errors import UserError
from handlers.actions import Action

#: Downloads an upload's bytes; raises a ``UserError`` when the platform refuses (e.g. over its size limit).
Fetch = Callable[[], Awaitable[bytes]]



@dataclass(frozen=True)
class Origin:
    """Who said it, where: platform ids as strings, the platform's locale (e.g. "zh-CN").

    ``age_restricted``: the platform marks the channel for adults (Discord's
    age-restricted channels); there the content policy may be ``off``.
    """

    platform: str
    chat_id: str
    user_id: str
    user_name: str = ""
    locale: str | None = None
    is_group: bool = False
    age_restricted: bool = False


def fetched(data: bytes) -> Fetch:
    """A :data:`Fetch` for bytes already in hand (uploads read by the adapter, tests)."""

    async def fetch() -> bytes:
        return data

    return fetch


@dataclass(frozen=True)
class VoiceMessage:
    """A voice note or audio file; the conversation calls ``fetch`` only once the request is admitted (rate limits).

    ``photo``: the photo the voice note replies to (fetched once admitted too): what it says is drawn keeping
    the photo's composition.
    """

    origin: Origin
    fetch: Fetch
    photo: Fetch | None = None


@dataclass(frozen=True)
class TextMessage:
    """Plain text that is not a command (e.g. the corrected transcript after "Edit").

    ``request_id`` is set when the platform knows which card the text answers
    (a Discord edit form); otherwise the user's pending "Edit" decides.
    """

    origin: Origin
    text: str
    request_id: str = ""


@dataclass(frozen=True)
class PhotoMessage:
    """A photo to restyle; ``fetch`` downloads it once the request is admitted (nothing is decoded before).

    ``caption``: words sent with it (a caption, a text or voice note replying
    to it, ``/anime`` with it attached): draw them keeping the photo's composition.
    ``sketch``: the picture is a drawing made to be drawn from (the studio's sketch pad).
    ``replying``: the photo was sent before, and ``caption`` is words replying to it (not a new photo with its caption).
    """

    origin: Origin
    fetch: Fetch
    caption: str = ""
    sketch: bool = False
    replying: bool = False


@dataclass(frozen=True)
class Command:
    """A slash command without the slash, e.g. ``Command(o, "anime", "a girl with blue hair")``.

    The commands every adapter offers are :data:`handlers.conversation.routes.COMMANDS`.

    ``style`` is ``/anime``'s optional style (platforms with typed command options).
    """

    origin: Origin
    name: str
    args: str = ""
    style: str = ""


@dataclass(frozen=True)
class ButtonPress:
    """A press on one of our buttons (decoded with :meth:`handlers.actions.Payload.unpack`).

    ``message_ref`` is the message the button sits on, so the flow can edit it.
    """

    origin: Origin
    request_id: str
    action: Action
    value: str = ""
    message_ref: str = ""


@dataclass(frozen=True)
class Rejected:
    """Something the adapter could not take (e.g. a file over the platform's download limit).

    The conversation explains ``error`` to the user in their language.
    """

    origin: Origin
    error: UserError


Event = VoiceMessage | TextMessage | PhotoMessage | Command | ButtonPress | Rejected
