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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from handlers.events import Origin

ReplyKind = Literal["text", "card", "progress", "image", "edit_prompt", "error"]

#: Button payloads must fit Telegram's 64-byte callback_data.
MAX_BUTTON_DATA = 64


@dataclass(frozen=True)
class Button:
    """One button; state lives server-side, the payload only names request and action."""

    label: str
    action: str
    request_id: str
    value: str = ""

    @property
    def data(self) -> str:
        """Compact payload ``action:request_id[:value]`` (at most 64 bytes)."""
        data = f"{self.action}:{self.request_id}" + (f":{self.value}" if self.value else "")
        if len(data.encode()) > MAX_BUTTON_DATA:
            raise ValueError(f"button data over {MAX_BUTTON_DATA} bytes: {data!r}")
        return data


def parse_button_data(data: str) -> tuple[str, str, str] | None:
    """Inverse of :attr:`Button.data`: (action, request_id, value), or None if it is not ours."""
    parts = data.split(":", 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        return None
    return parts[0], parts[1], parts[2] if len(parts) == 3 else ""


@dataclass(frozen=True)
class Reply:
    """Something to show in the chat; ``text`` is plain text (see the module docstring)."""

    text: str
    kind: ReplyKind = "text"
    buttons: tuple[tuple[Button, ...], ...] = ()
    #: A picture (PNG, or JPEG for previews): sent with the text as its caption.
    image_png: bytes | None = None
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

    async def is_admin(self, origin: Origin) -> bool:
        """Whether the origin's user may change the chat's own settings (asked for group origins only).

        Telegram: the chat's creator and administrators (getChatMember, cached briefly);
        Discord: members with Manage Server or Manage Channels; a private chat is its user's.
        """
