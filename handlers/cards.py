"""What the conversation shows: pure functions from state to :class:`Reply`.

Kept apart from the state machine so wording and layout can change (and be
tested) without touching the flow.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from engine.api import ParsedDescription
from engine.lexicon import in_chinese
from handlers.i18n import MESSAGES, t
from handlers.replies import Button, Reply

#: Action names carried in button payloads (short: Telegram allows 64 bytes).
CONFIRM, EDIT, RETRY, RETRY_AS, STYLE, STYLE_SET, CANCEL, DETAILS = "ok", "ed", "rl", "ra", "st", "ss", "x", "dt"
RESTYLE, RESTYLE_AS, REROLL, BASE, RESEND = "rs", "rsa", "rr", "b", "h"
SET_LANGUAGE, TOGGLE_CONFIRM, DEFAULT_STYLE = "lang", "conf", "ds"
#: Request id placeholder for buttons that are not about one request.
NO_REQUEST = "-"
RETRY_LANGUAGES = ("zh", "en", "yue")
#: Characters written without spaces between words (CJK ideographs, kana, CJK punctuation, full-width forms).
_CJK = re.compile("[\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")


def language_name(code: str, lang: str) -> str:
    """Human name of a language code in ``lang`` (the code itself when unknown)."""
    key = f"language.{code}"
    return t(key, lang) if key in MESSAGES else code


#: Style id -> {UI language: display name} (from the style registry).
StyleNames = Mapping[str, Mapping[str, str]]


class SpokenWord(Protocol):
    """A recognised word (``engine.api.Word``, ``db.records.WordRecord``)."""

    @property
    def text(self) -> str: ...

    @property
    def probability(self) -> float: ...


def style_name(style: str, lang: str, names: StyleNames) -> str:
    """A style's display name in ``lang`` (English, then the id, when there is none)."""
    display = names.get(style, {})
    return display.get(lang) or display.get("en") or style


def _needs_space(left: str, right: str) -> bool:
    """Words of spaced scripts are joined with a space; Chinese and Japanese characters are not."""
    return bool(left) and bool(right) and not (_CJK.match(left[-1]) or _CJK.match(right[0]))


def mark_unsure(words: Sequence[SpokenWord], threshold: float) -> str:
    """The transcript with words below ``threshold`` confidence in [brackets], spaced as the language is written."""
    text = ""
    for word in words:
        token = word.text.strip()
        if not token:
            continue
        shown = f"[{token}]" if word.probability < threshold else token
        text += (" " if _needs_space(text, token) else "") + shown
    return text


def _in_language(phrase: str, lang: str) -> str:
    return in_chinese(phrase) if lang == "zh" else phrase


def confirmation_card(
    request_id: str,
    lang: str,
    *,
    said: str,
    parsed: ParsedDescription,
    prompt: str,
    style: str,
    heard_language: str | None = None,
    confidence: float = 1.0,
    has_unsure: bool = False,
    details: bool = False,
) -> Reply:
    """What was heard (or typed), what we understood in the user's language, the style by name, and the actions.

    The English prompt shows only with ``details`` (the Details toggle).
    """
    header = (
        t("card.heard", lang, language=language_name(heard_language, lang), confidence=confidence)
        if heard_language
        else t("card.typed", lang)
    )
    lines = [header, t("card.quote", lang, text=said)]
    if has_unsure:
        lines.append(t("card.unsure", lang))
    lines += ["", t("card.understood", lang)]
    separator = t("card.list_separator", lang)
    for key, values in (
        ("card.subject", (parsed.subject,)),
        ("card.attributes", parsed.attributes),
        ("card.action", (parsed.action,)),
        ("card.scene", parsed.scene),
    ):
        shown = separator.join(_in_language(v, lang) for v in values if v)
        if shown:
            lines.append(t("card.field", lang, label=t(key, lang), value=shown))
    lines.append(t("card.field", lang, label=t("card.style", lang), value=style))
    if details:
        lines += ["", t("card.field", lang, label=t("card.prompt", lang), value=prompt)]
    lines += ["", t("card.question", lang)]
    toggle = Button(t("button.hide_details" if details else "button.details", lang), DETAILS, request_id, "0" if details else "1")
    second_row = [Button(t("button.style", lang), STYLE, request_id), toggle, Button(t("button.cancel", lang), CANCEL, request_id)]
    if heard_language:
        second_row.insert(0, Button(t("button.retry_language", lang), RETRY, request_id))
    buttons = (
        (Button(t("button.confirm", lang), CONFIRM, request_id), Button(t("button.edit", lang), EDIT, request_id)),
        tuple(second_row),
    )
    return Reply("\n".join(lines), kind="card", buttons=buttons, request_id=request_id)


def retired_card(request_id: str, lang: str, key: str) -> Reply:
    """A card that can no longer be acted on, saying why (``key``: card.superseded, cancelled, card.expired...)."""
    return Reply(t(key, lang), kind="text", request_id=request_id)


def style_picker(
    request_id: str, action: str, styles: Sequence[str], lang: str, names: StyleNames, current: str | None = None
) -> Reply:
    """One button per style (by display name), two per row; ``action`` says what picking does."""
    buttons = []
    for style in styles:
        label = style_name(style, lang, names)
        buttons.append(Button(t("button.on", lang, label=label) if style == current else label, action, request_id, style))
    rows = tuple(tuple(buttons[i : i + 2]) for i in range(0, len(buttons), 2))
    return Reply(t("style.choose", lang), buttons=rows, request_id=request_id)


def language_picker(request_id: str, lang: str) -> Reply:
    """Which language was spoken, for re-transcribing."""
    row = tuple(Button(language_name(code, lang), RETRY_AS, request_id, code) for code in RETRY_LANGUAGES)
    return Reply(t("retry.choose", lang), buttons=(row,), request_id=request_id)


def progress(request_id: str, lang: str, key: str, *, preview: bytes | None = None, **params: object) -> Reply:
    """A picture's status: ``key`` names the stage ("queued" with its ``position`` — or none yet —,
    "generating" with its ``percent``, "styling", "progress.sending"), with a Cancel button and,
    when given, a new ``preview`` image of the picture so far (an edit without one keeps the shown picture).
    """
    if key == "queued" and params.get("position") is None:
        key = "queued.waiting"
    cancel = Button(t("button.cancel", lang), CANCEL, request_id)
    return Reply(t(key, lang, **params), kind="progress", buttons=((cancel,),), image_png=preview, request_id=request_id)


def delivered(request_id: str, lang: str, png: bytes, *, style: str, seed: int | None, description: str | None, drawn: bool) -> Reply:
    """The finished picture: what it shows, its style and seed, and the follow-up actions (Reroll only for drawn ones)."""
    caption = t("delivered", lang, style=style, seed=seed) if seed is not None and drawn else t("delivered.photo", lang, style=style)
    if description:
        caption = t("card.quote", lang, text=shorten(description, 200)) + "\n" + caption
    row = [Button(t("button.restyle", lang), RESTYLE, request_id), Button(t("button.base", lang), BASE, request_id)]
    if drawn:
        row.insert(1, Button(t("button.reroll", lang), REROLL, request_id))
    return Reply(caption, kind="image", image_png=png, buttons=(tuple(row),), request_id=request_id)


def settings_card(lang: str, *, language: str | None, style: str, confirm: bool) -> Reply:
    """The /settings view with its toggles; "automatic" says which language it follows now."""
    shown = t(f"ui_language.{language}", lang) if language else t("settings.language_auto", lang, current=t(f"ui_language.{lang}", lang))
    text = t(
        "settings.title",
        lang,
        language=shown,
        style=style,
        confirm=t("settings.confirm_on" if confirm else "settings.confirm_off", lang),
    )
    other = "en" if lang == "zh" else "zh"
    buttons = (
        (Button(t("settings.language", lang), SET_LANGUAGE, NO_REQUEST, other),),
        (Button(t("settings.toggle_confirm", lang), TOGGLE_CONFIRM, NO_REQUEST),),
        (Button(t("button.style", lang), DEFAULT_STYLE, NO_REQUEST),),
    )
    return Reply(text, buttons=buttons)


@dataclass(frozen=True)
class HistoryEntry:
    """One delivered picture as /history lists it."""

    request_id: str
    description: str
    style: str
    created: datetime


def shorten(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters at a word boundary (anywhere in CJK text), with "…" when cut."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    if " " in head and not _CJK.match(text[limit - 1]) and not _CJK.match(head[-1]):
        head = head.rsplit(" ", 1)[0]
    return head.rstrip(" ,.;:，。") + "…"


def history_list(lang: str, entries: Sequence[HistoryEntry]) -> Reply:
    """Last pictures: description, style and date, each with a re-send button."""
    if not entries:
        return Reply(t("history.empty", lang))
    lines = [t("history.title", lang)]
    for i, entry in enumerate(entries, start=1):
        description = t("card.quote", lang, text=shorten(entry.description, 40)) if entry.description else t("history.photo", lang)
        lines.append(t("history.entry", lang, index=i, description=description, style=entry.style, date=entry.created.date().isoformat()))
    buttons = [Button(t("button.resend", lang, index=i), RESEND, entry.request_id) for i, entry in enumerate(entries, 1)]
    rows = tuple(tuple(buttons[i : i + 5]) for i in range(0, len(buttons), 5))
    return Reply("\n".join(lines), buttons=rows)


def delivery_failed(request_id: str, lang: str) -> Reply:
    """The picture is drawn but every upload failed: say so, with a button to try again."""
    retry = Button(t("button.send_again", lang), RESEND, request_id)
    return Reply(t("delivery.failed", lang), kind="error", buttons=((retry,),), request_id=request_id)


def progress_done(request_id: str, lang: str, *, sketch: bool) -> Reply:
    """The status message once the picture is delivered: one line, no buttons (``sketch``: it shows the drawing)."""
    return Reply(t("progress.done_sketch" if sketch else "progress.done", lang), request_id=request_id)
