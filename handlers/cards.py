"""What the conversation shows: pure functions from state to :class:`Reply`.

Kept apart from the state machine so wording and layout can change (and be
tested) without touching the flow.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.api import Prompt, Word
from handlers.i18n import MESSAGES, t
from handlers.replies import Button, Reply

#: Action names carried in button payloads (short: Telegram allows 64 bytes).
CONFIRM, EDIT, RETRY, RETRY_AS, STYLE, STYLE_SET, CANCEL = "ok", "ed", "rl", "ra", "st", "ss", "x"
RESTYLE, RESTYLE_AS, REROLL, BASE, RESEND = "rs", "rsa", "rr", "b", "h"
SET_LANGUAGE, TOGGLE_CONFIRM, DEFAULT_STYLE = "lang", "conf", "ds"
#: Request id placeholder for buttons that are not about one request.
NO_REQUEST = "-"
RETRY_LANGUAGES = ("zh", "en", "yue")


def language_name(code: str, lang: str) -> str:
    """Human name of a language code in ``lang`` (the code itself when unknown)."""
    key = f"language.{code}"
    return t(key, lang) if key in MESSAGES else code


def mark_unsure(words: Sequence[Word], threshold: float) -> str:
    """The transcript with words below ``threshold`` confidence in [brackets]."""
    return "".join(f"[{w.text.strip()}]" if w.probability < threshold else w.text for w in words).strip()


def confirmation_card(
    request_id: str,
    lang: str,
    *,
    text: str,
    prompt: Prompt,
    style: str,
    heard_language: str | None = None,
    confidence: float = 1.0,
    has_unsure: bool = False,
) -> Reply:
    """The card that shows what was heard (or typed), the parse and the prompt, with the actions."""
    header = (
        t("card.heard", lang, language=language_name(heard_language, lang), confidence=confidence)
        if heard_language
        else t("card.typed", lang)
    )
    parsed = prompt.parsed
    lines = [header, f"“{text}”"]
    if has_unsure:
        lines.append(t("card.unsure", lang))
    lines.append("")
    for key, value in (
        ("card.subject", parsed.subject),
        ("card.attributes", ", ".join(parsed.attributes)),
        ("card.action", parsed.action),
        ("card.scene", ", ".join(parsed.scene)),
    ):
        if value:
            lines.append(f"{t(key, lang)}: {value}")
    lines += [f"{t('card.prompt', lang)}: {prompt.positive}", f"{t('card.style', lang)}: {style}", "", t("card.question", lang)]
    second_row = [Button(t("button.style", lang), STYLE, request_id), Button(t("button.cancel", lang), CANCEL, request_id)]
    if heard_language:
        second_row.insert(0, Button(t("button.retry_language", lang), RETRY, request_id))
    buttons = (
        (Button(t("button.confirm", lang), CONFIRM, request_id), Button(t("button.edit", lang), EDIT, request_id)),
        tuple(second_row),
    )
    return Reply("\n".join(lines), kind="card", buttons=buttons, request_id=request_id)


def style_picker(request_id: str, action: str, styles: Sequence[str], lang: str, current: str | None = None) -> Reply:
    """One button per style, two per row; ``action`` says what picking does."""
    buttons = [
        Button(t("button.on", lang, label=name) if name == current else name, action, request_id, name) for name in styles
    ]
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


def delivered(request_id: str, lang: str, png: bytes, *, style: str, seed: int | None, prompt: str | None) -> Reply:
    """The finished picture with its recipe and the follow-up actions."""
    caption = t("delivered", lang, style=style, seed=seed, prompt=prompt) if prompt else t("delivered.photo", lang, style=style)
    row = [Button(t("button.restyle", lang), RESTYLE, request_id), Button(t("button.base", lang), BASE, request_id)]
    if prompt:
        row.insert(1, Button(t("button.reroll", lang), REROLL, request_id))
    return Reply(caption, kind="image", image_png=png, buttons=(tuple(row),), request_id=request_id)


def settings_card(lang: str, *, language: str | None, style: str, confirm: bool) -> Reply:
    """The /settings view with its toggles."""
    text = t(
        "settings.title",
        lang,
        language=language_name(language, lang) if language else "auto",
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


def history_list(lang: str, entries: Sequence[tuple[str, str]]) -> Reply:
    """Last pictures as (request id, one-line description), each with a re-send button."""
    if not entries:
        return Reply(t("history.empty", lang))
    lines = [t("history.title", lang)] + [f"#{i} {label}" for i, (_, label) in enumerate(entries, start=1)]
    buttons = [Button(t("button.resend", lang, index=i), RESEND, request_id) for i, (request_id, _) in enumerate(entries, 1)]
    rows = tuple(tuple(buttons[i : i + 5]) for i in range(0, len(buttons), 5))
    return Reply("\n".join(lines), buttons=rows)


def delivery_failed(request_id: str, lang: str) -> Reply:
    """The picture is drawn but every upload failed: say so, with a button to try again."""
    retry = Button(t("button.send_again", lang), RESEND, request_id)
    return Reply(t("delivery.failed", lang), kind="error", buttons=((retry,),), request_id=request_id)


def progress_done(request_id: str, lang: str, *, sketch: bool) -> Reply:
    """The status message once the picture is delivered: one line, no buttons (``sketch``: it shows the drawing)."""
    return Reply(t("progress.done_sketch" if sketch else "progress.done", lang), request_id=request_id)
