"""What a photo's card adds for what the drawing keeps of the photo: a row choosing ✏️ Outline, 🏔 Depth or 🧍 Pose.

The card's "Keeps" line already says the choice (:func:`handlers.cards.confirmation_card`).
A sketch (kept as its strokes) and a card without a photo get no choice.
"""

from __future__ import annotations

from dataclasses import replace

from db.records import RequestRecord
from handlers.actions import Action
from handlers.i18n import t
from handlers.replies import Button, Reply

#: What a photo's card offers to keep, in the order of its buttons (``CONTROL_PHOTO`` comes first when it is another).
PHOTO_KEEPS = ("lineart", "depth", "pose")


def choices(default: str) -> tuple[str, ...]:
    """The kinds a photo's card offers: the deployment's ``default`` (``CONTROL_PHOTO``), then :data:`PHOTO_KEEPS`."""
    return tuple(dict.fromkeys((default, *PHOTO_KEEPS)))


def with_keep_choice(card: Reply, record: RequestRecord, lang: str, default: str) -> Reply:
    """``card`` with a row choosing what is kept of its photo, the current choice ticked; other cards unchanged."""
    offered = choices(default)
    if record.control not in offered:
        return card
    row = tuple(_ticked(t(f"keeps.{kind}", lang), kind == record.control, lang, record.id, kind) for kind in offered)
    return replace(card, buttons=(*card.buttons, row))


def _ticked(label: str, on: bool, lang: str, request_id: str, kind: str) -> Button:
    return Button(t("button.on", lang, label=label) if on else label, Action.KEEPS, request_id, kind)
