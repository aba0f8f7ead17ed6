"""Neutral outbound replies and the messenger interface adapters implement.

A :class:`Reply` is text plus optional button rows and an optional image;
``kind`` tells the adapter how to render it (a progress reply may come with
a "typing/uploading" chat action, an ``edit_prompt`` asks for a reply with
ForceReply on Telegram or a Modal on Discord).

Status messages change in place: a ``progress`` edit with an image shows it
in the same message (a live preview of the picture being drawn; Telegram
``editMessageMedia``, Discord a replaced attachment), and any edit without an
image keeps the picture the message already shows (its text becomes the
caption). A finished picture (``image``) is always a message of its own.

Texts (:attr:`Reply.text`, button labels, notifications) are plain text,
never markup: our own wording uses none, and user text (descriptions,
transcripts, prompts) is mixed in verbatim. Each adapter shows them
literally in its platform's terms — Discord escapes its markdown and
mentions, Telegram sends without ``parse_mode``. Should a reply ever need
formatting, it has to carry it apart from the text (spans), not as markup
inside it.

A ``private`` reply is meant for the person who caused it (their /settings,
/help, a picker they opened): Discord answers ephemerally, Telegram in the
reply thread of their message (a bot cannot start a private chat with a user
who never opened one, and a settings card in a DM could not change the group
it belongs to); in private chats and the studio it is an ordinary reply.
Answers to a button press through :meth:`Messenger.notify` are private on
every platform (a toast, an ephemeral message).

A spoken reply (:class:`VoiceNote`, :meth:`Messenger.send_voice`) is a message
of its own, never edited, after the text it reads: Telegram a voice message,
Discord an ``.ogg`` attachment, the studio an audio player under the card of
its request. A platform or user that does not take voice messages raises
:class:`VoiceRefusedError`: the conversation sends no more there.

Every message belongs to the user it was sent for (their card, status,
picture, settings, a picker they opened): :class:`OwnedMessages` remembers
whose each one is and which requests its buttons name, so a press on it by
anyone else never edits it (see :mod:`handlers.conversation.dispatcher`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from cachetools import LRUCache

from handlers.actions import Action, Payload
from handlers.events import Origin

#: What a reply is, so each platform can show it in its own way: ``card`` a confirmation card, ``picker`` a choice of
#: one value (every button the same action on the same request, e.g. a style: Discord shows a select), ``progress``
#: a status, ``image`` a picture, ``edit_prompt`` a request for corrected words, ``error`` a failure, ``text`` the rest.
ReplyKind = Literal["text", "card", "picker", "progress", "image", "edit_prompt", "error"]


@dataclass(frozen=True)
class Button:
    """One button; state lives server-side, the payload only names request and action."""

    label: str
    action: Action
    request_id: str
    value: str = ""

    @property
    def data(self) -> str:
        """Compact payload ``action:request_id[:value]`` (:meth:`handlers.actions.Payload.pack`)."""
        return Payload(self.action, self.request_id, self.value).pack()


@dataclass(frozen=True)
class Reply:
    """Something to show in the chat; ``text`` is plain text (see the module docstring)."""

    text: str
    kind: ReplyKind = "text"
    buttons: tuple[tuple[Button, ...], ...] = ()
    #: A picture (PNG, or JPEG for previews): sent with the text as its caption.
    image_png: bytes | None = None
    #: The pictures ``image_png`` is a grid of (variations, in their buttons' order): the studio shows them as tiles.
    tiles: tuple[bytes, ...] = ()
    #: Send the picture as a file, never as a photo the platform recompresses (an upscaled picture).
    as_file: bool = False
    #: For ``edit_prompt``: the text to prefill (Discord Modal).
    prefill: str = ""
    #: For ``edit_prompt``/``card``: which request it belongs to.
    request_id: str = ""
    #: For ``edit_prompt``: a short title in the user's language (the Discord Modal's title); empty = adapter default.
    title: str = ""
    #: Only for the person who caused it (see the module docstring).
    private: bool = False
    #: What to call ``image_png`` when it is uploaded as a file, without extension (e.g. ``voice2anime-1a2b3c4d``).
    file_name: str = ""
    #: Show ``image_png`` behind a spoiler (the content policy flagged it): Telegram ``has_spoiler``,
    #: Discord a ``SPOILER_`` file name, the studio a blurred picture revealed by a click.
    spoiler: bool = False
    #: What the operator does about a missing model (``ModelUnavailableError.fix``): the studio, whose user is its
    #: operator, shows it in a panel; the chat platforms leave it out (their operators read it in the log).
    fix: str = ""
    #: For ``edit_prompt``: the button that asks for the words again where the platform's form could not open
    #: at once (Discord): Edit for a card, Remix for a picture.
    asks_again: Action = Action.EDIT


@dataclass(frozen=True)
class VoiceNote:
    """A spoken reply: OGG/Opus audio, how long it lasts, and the words it says (the platforms' alt text)."""

    ogg: bytes
    seconds: float
    text: str
    #: The request it is about (the studio plays it under that request's card); empty for none.
    request_id: str = ""
    #: What to call it when it is uploaded as a file, without extension (e.g. ``voice2anime-1a2b3c4d``).
    file_name: str = ""


class VoiceRefusedError(Exception):
    """The chat does not take voice messages (a Telegram user who allows none: ``Voice_messages_forbidden``)."""


class Messenger(Protocol):
    """What the conversation needs from a platform adapter."""

    async def send(self, origin: Origin, reply: Reply) -> str:
        """Post ``reply`` in the origin's chat; returns a message reference for later edits."""

    async def edit(self, origin: Origin, message_ref: str, reply: Reply) -> None:
        """Replace a message posted earlier: text and buttons, and the picture of a ``progress`` reply that has one.

        Without an image the message keeps the picture it shows. ``message_ref``
        stays valid for later edits even when the platform had to post the
        message anew (Telegram cannot add a photo to a text message).
        """

    async def notify(self, origin: Origin, text: str) -> None:
        """A short, unobtrusive answer to a button press (toast/ephemeral), or a plain message."""

    async def send_voice(self, origin: Origin, voice: VoiceNote) -> None:
        """Post a voice note in the origin's chat; :class:`VoiceRefusedError` when the chat takes none."""

    async def is_admin(self, origin: Origin) -> bool:
        """Whether the origin's user may change the chat's own settings (asked for group origins only).

        Telegram: the chat's creator and administrators (getChatMember, cached briefly);
        Discord: members with Manage Server or Manage Channels; a private chat is its user's.
        """


#: Messages whose owner :class:`OwnedMessages` remembers (the newest ones).
MESSAGES_REMEMBERED = 10_000


@dataclass(frozen=True)
class MessageOwner:
    """Whom one of our messages was sent for, and the requests its buttons (and its reply) name."""

    #: The platform user id of the origin the message was first sent to.
    user_id: str
    #: Request ids of its buttons and of its reply; ``handlers.cards.NO_REQUEST`` for settings buttons.
    requests: frozenset[str]


def requests_of(reply: Reply) -> frozenset[str]:
    """The requests a reply is about: its own and every one its buttons name."""
    named = {b.request_id for row in reply.buttons for b in row}
    return frozenset(named | ({reply.request_id} if reply.request_id else set()))


class OwnedMessages:
    """A :class:`Messenger` that remembers whom each message it posts was sent for.

    A message belongs to the user of the origin it was first sent to; an edit
    keeps its owner and records the requests its new content names (a card
    that became a status still names its request, settings buttons name
    ``NO_REQUEST``). Only the newest ``remembered`` messages are kept, in
    memory: after a restart, or for a message never posted through it,
    :meth:`owner` is None.
    """

    def __init__(self, messenger: Messenger, *, remembered: int = MESSAGES_REMEMBERED) -> None:
        self.inner = messenger
        self._owners: LRUCache[tuple[str, str], MessageOwner] = LRUCache(maxsize=remembered)

    async def send(self, origin: Origin, reply: Reply) -> str:
        """Post ``reply`` for ``origin``'s user: the new message is theirs."""
        ref = await self.inner.send(origin, reply)
        if ref:  # a Discord form opened instead of a message has none
            self._owners[(origin.platform, ref)] = MessageOwner(origin.user_id, requests_of(reply))
        return ref

    async def edit(self, origin: Origin, message_ref: str, reply: Reply) -> None:
        """Replace message ``message_ref``; it stays its owner's and now names ``reply``'s requests."""
        await self.inner.edit(origin, message_ref, reply)
        known = self.owner(origin.platform, message_ref)
        self._owners[(origin.platform, message_ref)] = MessageOwner(known.user_id if known else origin.user_id, requests_of(reply))

    async def notify(self, origin: Origin, text: str) -> None:
        """The platform's private answer to a press (nothing to remember)."""
        await self.inner.notify(origin, text)

    async def is_admin(self, origin: Origin) -> bool:
        """Asked of the platform."""
        return await self.inner.is_admin(origin)

    async def send_voice(self, origin: Origin, voice: VoiceNote) -> None:
        """A voice note (no buttons: nothing to remember)."""
        await self.inner.send_voice(origin, voice)

    def owner(self, platform: str, message_ref: str) -> MessageOwner | None:
        """Whose message ``message_ref`` on ``platform`` is, when it is remembered."""
        return self._owners.get((platform, message_ref))
