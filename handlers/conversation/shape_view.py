"""What a card adds for a picture's shape and a remix's strength: the lines saying them and the buttons changing them."""

from __future__ import annotations

from dataclasses import replace

from db.records import RequestRecord
from engine.language.aspect import aspect_of_size, aspects
from handlers.actions import Action
from handlers.i18n import t
from handlers.replies import Button, Reply

#: A remix's strengths by name, in the order the card offers them: how far it moves from the picture.
STRENGTHS: dict[str, float] = {"subtle": 0.35, "strong": 0.65}
#: The strength a remix starts with.
DEFAULT_STRENGTH = "subtle"


def shape_size(aspect: str) -> dict[str, int]:
    """The request fields of a shape: its width and height."""
    shape = aspects()[aspect]
    return {"width": shape.width, "height": shape.height}


def strength_name(strength: float | None) -> str | None:
    """The name of a stored strength (the nearest offered), ``None`` for a request that is not a remix."""
    if strength is None:
        return None
    return min(STRENGTHS, key=lambda name: abs(STRENGTHS[name] - strength))


def with_shape_and_strength(card: Reply, record: RequestRecord, lang: str) -> Reply:
    """``card`` with the shape (a new picture) or the remix's strength (a remix keeps its picture's shape) and their buttons.

    A card that keeps a photo's composition has neither: it is drawn in the photo's shape.
    The line goes under the card's style line; the buttons are a row of their own.
    """
    strength = strength_name(record.strength)
    if strength is None and record.control:
        return card
    if strength is not None:
        line = t("card.field", lang, label=t("card.remix", lang), value=t(f"remix.{strength}", lang))
        row = tuple(_ticked(t(f"remix.{name}", lang), name == strength, lang, Action.REMIX_STRENGTH, record.id, name) for name in STRENGTHS)
    else:
        shape = aspect_of_size(record.width, record.height) or next(iter(aspects()))
        line = t("card.field", lang, label=t("card.shape", lang), value=t(f"shape.{shape}", lang))
        row = tuple(_ticked(t(f"shape.{name}", lang), name == shape, lang, Action.ASPECT, record.id, name) for name in aspects())
    lines = card.text.split("\n")
    style = t("card.field", lang, label=t("card.style", lang), value="").rstrip()
    at = next((i + 1 for i, shown in enumerate(lines) if shown.startswith(style)), len(lines))  # under the style
    lines.insert(at, line)
    return replace(card, text="\n".join(lines), buttons=(*card.buttons, row))


def _ticked(label: str, on: bool, lang: str, action: Action, request_id: str, value: str) -> Button:
    return Button(t("button.on", lang, label=label) if on else label, action, request_id, value)
