"""What our buttons do, and the payload that names it: ``action:request_id[:value]``.

Every button carries a :class:`Payload` packed into a short string (Telegram
allows 64 bytes of ``callback_data``). The wire format is fixed: buttons
already sent in chats keep working, so an action's code never changes.
Which action works in which state of its request is the conversation's
button table (:data:`handlers.conversation.routes.BUTTONS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

#: Button payloads must fit Telegram's 64-byte callback_data.
MAX_BUTTON_DATA = 64


class Action(StrEnum):
    """A button's action; the value is its short code on the wire."""

    #: Draw it (an open card).
    CONFIRM = "ok"
    #: Correct the words (an open card).
    EDIT = "ed"
    #: "Heard wrong language": opens the language picker ...
    RETRY = "rl"
    #: ... whose choice listens again in that language.
    RETRY_AS = "ra"
    #: The card's style: opens the style picker ...
    STYLE = "st"
    #: ... whose choice sets it.
    STYLE_SET = "ss"
    #: Stop a card, a queued or a running request.
    CANCEL = "x"
    #: Show or hide the card's English prompt.
    DETAILS = "dt"
    #: "Keep what I said": put back the words the engine corrected.
    KEEP_SAID = "kp"
    #: A delivered picture in another style: opens the style picker ...
    RESTYLE = "rs"
    #: ... whose choice draws it.
    RESTYLE_AS = "rsa"
    #: The same words with a new seed.
    REROLL = "rr"
    #: The picture before the anime style.
    BASE = "b"
    #: Send a picture again (/history, a failed upload).
    RESEND = "h"
    #: Four pictures of a delivered picture's words with new seeds, in one job (a grid) ...
    VARIATIONS = "vr"
    #: ... of which the value ("1" .. "4") keeps one: a picture of its own.
    KEEP = "vk"
    #: A delivered picture made larger: opens the ×2 / ×4 picker, whose value ("2", "4") upscales it.
    UPSCALE = "up"
    #: Run again a job whose finished picture could not be stored.
    TRY_AGAIN = "ag"
    #: Try again a request that waited for a missing model (transcribe the voice note, or draw the card).
    RETRY_MISSING = "rm"
    #: A drawing sent as a photo: draw from it as a sketch (the next words or voice note say what it is).
    USE_SKETCH = "usk"
    #: The user's own language (a value sets it, none opens the picker).
    SET_LANGUAGE = "lang"
    #: The user's default style (a value sets it, none opens the picker).
    DEFAULT_STYLE = "ds"
    #: The user's voice replies (a value sets it, none opens the picker).
    VOICE_REPLIES = "vc"
    #: Chat-wide settings (:data:`handlers.chat_settings.CHAT_SETTINGS`).
    CHAT_LANGUAGE = "cl"
    TOGGLE_CONFIRM = "conf"
    CHAT_POLICY = "pol"
    CHAT_VOICE = "cv"
    #: A delivered picture drawn again over itself with new words: asks for them.
    REMIX = "rx"
    #: A remix card's strength (the value: subtle / strong).
    REMIX_STRENGTH = "rxs"
    #: A card's picture shape (the value: square / portrait / landscape).
    ASPECT = "ar"
    #: A picture that carries its drawing parameters, drawn again with them.
    DRAW_AGAIN = "da"
    #: A photo's card: what the drawing keeps of the photo (the value: lineart / depth / canny).
    KEEPS = "cmp"


@dataclass(frozen=True)
class Payload:
    """What a button press names: the action, its request (or ``handlers.cards.NO_REQUEST``) and a value."""

    action: Action
    request_id: str
    value: str = ""

    def pack(self) -> str:
        """``action:request_id[:value]``, at most :data:`MAX_BUTTON_DATA` bytes."""
        data = f"{self.action}:{self.request_id}" + (f":{self.value}" if self.value else "")
        if len(data.encode()) > MAX_BUTTON_DATA:
            raise ValueError(f"button data over {MAX_BUTTON_DATA} bytes: {data!r}")
        return data

    @classmethod
    def unpack(cls, data: str) -> Payload | None:
        """The inverse of :meth:`pack`; None for anything that is not one of our buttons' payloads."""
        parts = data.split(":", 2)
        if len(parts) < 2 or not parts[1]:
            return None
        try:
            action = Action(parts[0])
        except ValueError:  # not an action of ours (an empty one included)
            return None
        return cls(action, parts[1], parts[2] if len(parts) == 3 else "")
