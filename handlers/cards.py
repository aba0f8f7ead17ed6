"""What the conversation shows: pure functions from state to :class:`Reply`.

Kept apart from the state machine so wording and layout can change (and be
tested) without touching the flow.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from babel import Locale

from db.preferences import ChatOverrides, Preferences
from engine.api import ParsedDescription
from engine.language.chinese import simplified
from engine.language.lexicon import in_chinese
from engine.policy.levels import Level, Verdict
from handlers.actions import Action
from handlers.chat_settings import CHAT_SETTINGS, LANGUAGE_CHOICES, VOICE_CHOICES, ChatSetting, Choice, choice_for
from handlers.i18n import error_text, has_message, in_script, is_chinese, t
from handlers.locales.catalogs import LOCALES
from handlers.replies import Button, Reply

#: Draw's value on a doubtful card (ask once more first), and on the card that asked (draw).
DRAW_ASK, DRAW_SURE = "ask", "sure"
#: Request id placeholder for buttons that are not about one request.
NO_REQUEST = "-"
RETRY_LANGUAGES = ("zh", "en", "yue")
#: Request ids in file names are cut to this many characters (enough to tell pictures apart).
SHORT_ID = 8
#: Punctuation a recognised word may carry: outside unsure brackets, and not shown when the card names a corrected word.
_PUNCTUATION = " .,!?;:'\"‘’“”()「」『』，。！？；：、…"
#: Characters written without spaces between words (CJK ideographs, kana, CJK punctuation, full-width forms).
_CJK = re.compile("[\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")


#: A transcript heard below this language (or, for a language the user chose, word) confidence is doubtful.
DOUBTFUL_BELOW = 0.5
#: Whisper's codes that are not the standard ones (Babel knows the standard ones).
_WHISPER_CODES = {"jw": "jv", "iw": "he"}


def language_name(code: str, lang: str) -> str:
    """Human name of a language code in ``lang``: ours for the languages we speak, else Babel's (never the bare code)."""
    key = f"language.{code}"
    if has_message(key):
        return t(key, lang)
    name = Locale.parse(LOCALES.get(lang, "en")).languages.get(_WHISPER_CODES.get(code, code))
    return name or t("language.other", lang)


def is_doubtful(language: str, confidence: float) -> bool:
    """Was a voice note heard doubtfully: in a language we do not expect (not one of :data:`RETRY_LANGUAGES`), or unsurely?"""
    return language not in RETRY_LANGUAGES or confidence < DOUBTFUL_BELOW


#: Style id -> {UI language: display name} (from the style registry).
StyleNames = Mapping[str, Mapping[str, str]]


class SpokenWord(Protocol):
    """A recognised word (``engine.api.Word``, ``db.records.WordRecord``) and the engine's verdict on it."""

    @property
    def text(self) -> str: ...

    @property
    def unsure(self) -> bool: ...


def style_name(style: str, lang: str, names: StyleNames) -> str:
    """A style's display name in ``lang`` (Chinese for both Chinese UIs, in their script; else English, then the id)."""
    display = names.get(style, {})
    name = display.get(lang) or (display.get("zh") if is_chinese(lang) else None) or display.get("en") or style
    return in_script(name, lang)


def _needs_space(left: str, right: str) -> bool:
    """Words of spaced scripts are joined with a space; Chinese and Japanese characters are not."""
    return bool(left) and bool(right) and not (_CJK.match(left[-1]) or _CJK.match(right[0]))


def mark_unsure(words: Sequence[SpokenWord]) -> str:
    """The transcript with the words the engine is unsure of in [brackets], spaced as the language is written."""
    text = ""
    for word in words:
        token = word.text.strip()
        if not token:
            continue
        if word.unsure:  # the brackets hold the word, not the punctuation around it: "at the [height]."
            core = token.strip(_PUNCTUATION)
            lead = len(token) - len(token.lstrip(_PUNCTUATION))
            shown = f"{token[:lead]}[{core}]{token[lead + len(core):]}" if core else token
        else:
            shown = token
        text += (" " if _needs_space(text, token) else "") + shown
    return text


def _in_language(phrase: str, lang: str, glossary: Sequence[tuple[str, str]] = ()) -> str:
    """A parsed (English) phrase in the UI language: the lexicon's Chinese words, the user's own for dictionary
    translations (``glossary``: English -> Chinese as written), in the UI's script."""
    if not is_chinese(lang):
        return phrase
    for english, chinese in sorted(glossary, key=lambda pair: -len(pair[0])):
        phrase = re.sub(rf"(?<![\w-]){re.escape(english)}(?![\w-])", chinese, phrase)
    return in_script(in_chinese(phrase), lang)


def as_written(word: str, text: str) -> str:
    """``word`` (in Simplified, as a description's reading reports it) as ``text`` writes it: 王丽华 in 王麗華在海邊 is 王麗華."""
    found = simplified(text).find(word)  # the same length: OpenCC's conversion here is character for character
    return text[found : found + len(word)] if found >= 0 else word


def file_name(request_id: str, what: str = "") -> str:
    """A picture's file name without extension: ``voice2anime-<short id>[-<what>]``."""
    return f"voice2anime-{request_id[:SHORT_ID]}" + (f"-{what}" if what else "")


def help_text(lang: str, *, group: bool, commands: Sequence[str]) -> Reply:
    """/help: the buttons by their real labels, a line for each of ``commands`` that has one
    (``help.<command>``, in groups ``help.<command>_group`` where there is one), and in groups how to call the bot there.
    """
    lines = []
    for command in commands:
        key = f"help.{command}_group" if group and has_message(f"help.{command}_group") else f"help.{command}"
        if has_message(key):
            lines.append("• " + t(key, lang))
    text = t(
        "help",
        lang,
        confirm=t("button.confirm", lang),
        edit=t("button.edit", lang),
        cancel=t("button.cancel", lang),
        commands="\n".join(lines),
    )
    if group:
        text += "\n\n" + t("help.group", lang)
    return Reply(text, private=True)


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
    corrections: Sequence[tuple[str, str]] = (),
    untranslated: Sequence[str] = (),
    glossary: Sequence[tuple[str, str]] = (),
    details: bool = False,
    refusal: Sequence[str] = (),
    missing: str = "",
    fix: str = "",
    asking: bool = False,
    keeps: str | None = None,
) -> Reply:
    """What was heard (or typed), what we understood in the user's language, the style by name, and the actions.

    ``keeps``: what the drawing keeps of a picture sent with the words (a
    ``control.*`` kind: lineart, canny, pose, scribble), named under the style.

    ``corrections`` are the words the engine changed, as (heard, meant): the
    card names them and offers "Keep what I said" to put them back.
    ``untranslated`` are words nothing could translate (left out of the
    prompt), as the user wrote or the recogniser heard them: named so the user can rephrase.
    ``glossary`` (:attr:`~engine.api.Prompt.glossary`) shows dictionary-translated words in Chinese on a Chinese card.
    The English prompt shows only with ``details`` (the Details toggle).
    A ``refusal`` (:func:`policy_refusal`) replaces the question and the Draw
    button: the content policy does not allow it as it is; Edit fixes it.
    ``missing`` (a ``model.unavailable.*`` text) replaces the question when
    drawing failed for a model the server lacks: Draw becomes Retry, and
    ``fix`` says what the operator does (shown by the studio).
    A doubtful hearing (:func:`is_doubtful`) puts "Heard wrong language" and
    Edit first and makes Draw ask once more (``asking``: the card asks now).
    """
    doubtful = heard_language is not None and is_doubtful(heard_language, confidence)
    header = (
        t("card.heard", lang, language=language_name(heard_language, lang), confidence=confidence)
        if heard_language
        else t("card.typed", lang)
    )
    separator = t("card.list_separator", lang)
    lines = [header, t("card.quote", lang, text=said)]
    if has_unsure:
        lines.append(t("card.unsure", lang))
    keep = Button(t("button.keep_said", lang), Action.KEEP_SAID, request_id) if corrections else None
    if keep is not None:
        changes = separator.join(
            t("card.correction", lang, heard=heard.strip(_PUNCTUATION), meant=meant.strip(_PUNCTUATION)) for heard, meant in corrections
        )
        lines.append(t("card.corrected", lang, changes=changes, keep=keep.label))
    if untranslated:
        words = separator.join(t("card.quote", lang, text=word) for word in untranslated)
        lines.append(t("card.untranslated", lang, words=words, edit=t("button.edit", lang)))
    lines += ["", t("card.understood", lang)]
    for key, values in (
        ("card.subject", (parsed.subject,)),
        ("card.attributes", parsed.attributes),
        ("card.action", (parsed.action,)),
        ("card.scene", parsed.scene),
    ):
        shown = separator.join(_in_language(v, lang, glossary) for v in values if v)
        if shown:
            lines.append(t("card.field", lang, label=t(key, lang), value=shown))
    lines.append(t("card.field", lang, label=t("card.style", lang), value=style))
    if keeps:
        lines.append(t("card.field", lang, label=t("card.keeps", lang), value=t(f"control.{keeps}", lang)))
    if details:
        lines += ["", t("card.field", lang, label=t("card.prompt", lang), value=prompt)]
    retry = Button(t("button.retry_language", lang), Action.RETRY, request_id)
    edit = Button(t("button.edit", lang), Action.EDIT, request_id)
    lines += ["", *refusal] if refusal else ["", missing or _question(lang, doubtful, asking, confidence, retry, edit)]
    toggle = Button(t("button.hide_details" if details else "button.details", lang), Action.DETAILS, request_id, "0" if details else "1")
    second_row = [Button(t("button.style", lang), Action.STYLE, request_id), toggle, Button(t("button.cancel", lang), Action.CANCEL, request_id)]
    if missing:
        draw = Button(t("button.retry_missing", lang), Action.RETRY_MISSING, request_id)
    elif asking:
        draw = Button(t("button.draw_anyway", lang), Action.CONFIRM, request_id, DRAW_SURE)
    else:
        draw = Button(t("button.confirm", lang), Action.CONFIRM, request_id, DRAW_ASK if doubtful else "")
    if doubtful and not asking and not missing:  # what was heard is doubtful: fixing it comes first, drawing second
        first_row, second_row = [retry, edit], [draw, *second_row]
    else:
        first_row = [draw, edit]
        if heard_language:
            second_row.insert(0, retry)
    if keep is not None:
        first_row.append(keep)
    buttons = (tuple(b for b in first_row if not (refusal and b is draw)), tuple(second_row))
    return Reply("\n".join(lines), kind="card", buttons=buttons, request_id=request_id, fix=fix)


def _question(lang: str, doubtful: bool, asking: bool, confidence: float, retry: Button, edit: Button) -> str:
    """The card's last line: "Shall I draw it?", or for a doubtful hearing what to check (then, asked again, whether to draw)."""
    if asking:
        return t("card.draw_anyway", lang, confidence=confidence)
    if doubtful:
        return t("card.doubtful", lang, retry=retry.label, edit=edit.label)
    return t("card.question", lang)


def waiting_for_model(request_id: str, lang: str, key: str, *, fix: str = "") -> Reply:
    """A voice note that could not be listened to yet: which model is missing, with Retry and Cancel (``fix``: the studio's)."""
    retry = Button(t("button.retry_missing", lang), Action.RETRY_MISSING, request_id)
    cancel = Button(t("button.cancel", lang), Action.CANCEL, request_id)
    return Reply(error_text(key, lang), kind="card", buttons=((retry, cancel),), request_id=request_id, fix=fix)


#: How a refusal names each category of the term list (an operator's own category is "not allowed here").
POLICY_CATEGORIES = {
    "sexual": "policy.category.sexual",
    "suggestive": "policy.category.suggestive",
    "gore": "policy.category.gore",
    "violence": "policy.category.violence",
    "hate": "policy.category.hate",
    "sexual_minors": "policy.category.sexual_minors",
    "negated": "policy.category.negated",
}


#: How /settings names each content policy level.
POLICY_LEVELS = {Level.STRICT: "policy.level.strict", Level.STANDARD: "policy.level.standard", Level.OFF: "policy.level.off"}


def policy_reasons(lang: str, verdict: Verdict) -> str:
    """Why the content policy refuses, in ``lang``: the words as written, each with its category (“nude” (sexual content))."""
    by_category: dict[str, list[str]] = {}
    for hit in verdict.hits:
        words = by_category.setdefault(hit.category, [])
        if hit.found not in words:
            words.append(hit.found)
    reasons = []
    for category, words in by_category.items():
        name = t(POLICY_CATEGORIES.get(category, "policy.category.other"), lang)
        reasons.append(t("policy.reason", lang, words=t("card.list_separator", lang).join(words), category=name))
    return t("policy.reason_separator", lang).join(reasons)


def policy_refusal(lang: str, verdict: Verdict, *, heard: bool) -> list[str]:
    """The lines a card shows instead of its question when the policy refuses it (``heard``: a voice note's words)."""
    return [t("policy.refused_here", lang, reasons=policy_reasons(lang, verdict)), t("policy.misheard" if heard else "policy.edit_hint", lang)]


def refused(request_id: str, lang: str, verdict: Verdict) -> Reply:
    """A description the policy refuses outright (typed with /anime, a reroll): why, in ``lang``."""
    return Reply(t("policy.refused_here", lang, reasons=policy_reasons(lang, verdict)), kind="error", request_id=request_id)


def as_spoiler(reply: Reply, lang: str) -> Reply:
    """``reply``'s picture behind a spoiler, its caption saying why (a picture the image check flagged at ``standard``)."""
    return replace(reply, spoiler=True, text=t("policy.spoiler", lang) + ("\n" + reply.text if reply.text else ""))


def retired_card(request_id: str, lang: str, key: str) -> Reply:
    """A card that can no longer be acted on, saying why (``key``: card.superseded, cancelled, card.expired...)."""
    return Reply(t(key, lang), kind="text", request_id=request_id)


def style_picker(
    request_id: str, action: Action, styles: Sequence[str], lang: str, names: StyleNames, current: str | None = None
) -> Reply:
    """One button per style (by display name), two per row; ``action`` says what picking does."""
    buttons = []
    for style in styles:
        label = style_name(style, lang, names)
        buttons.append(Button(t("button.on", lang, label=label) if style == current else label, action, request_id, style))
    rows = tuple(tuple(buttons[i : i + 2]) for i in range(0, len(buttons), 2))
    return Reply(t("style.choose", lang), kind="picker", buttons=rows, request_id=request_id, private=request_id == NO_REQUEST)


def language_picker(request_id: str, lang: str) -> Reply:
    """Which language was spoken, for re-transcribing."""
    row = tuple(Button(language_name(code, lang), Action.RETRY_AS, request_id, code) for code in RETRY_LANGUAGES)
    return Reply(t("retry.choose", lang), kind="picker", buttons=(row,), request_id=request_id)


def progress(request_id: str, lang: str, key: str, *, preview: bytes | None = None, **params: object) -> Reply:
    """A picture's status: ``key`` names the stage ("queued" with its ``position`` — or none yet —,
    "generating" and "progress.upscaling" with its ``percent``, "styling", "progress.sending"), with a Cancel button and,
    when given, a new ``preview`` image of the picture so far (an edit without one keeps the shown picture).
    """
    if key == "queued" and params.get("position") is None:
        key = "queued.waiting"
    cancel = Button(t("button.cancel", lang), Action.CANCEL, request_id)
    return Reply(t(key, lang, **params), kind="progress", buttons=((cancel,),), image_png=preview, request_id=request_id)


def delivered(request_id: str, lang: str, png: bytes, *, style: str, seed: int | None, description: str | None, drawn: bool) -> Reply:
    """The finished picture: what it shows, its style and seed, and the follow-up actions (Reroll only for drawn ones)."""
    caption = t("delivered", lang, style=style, seed=seed) if seed is not None and drawn else t("delivered.photo", lang, style=style)
    if description:
        caption = t("card.quote", lang, text=shorten(description, 200)) + "\n" + caption
    row = [Button(t("button.restyle", lang), Action.RESTYLE, request_id), Button(t("button.base", lang), Action.BASE, request_id)]
    more = [Button(t("button.upscale", lang), Action.UPSCALE, request_id)]
    if drawn:
        row.insert(1, Button(t("button.reroll", lang), Action.REROLL, request_id))
        more.insert(0, Button(t("button.variations", lang), Action.VARIATIONS, request_id))
        more.append(Button(t("button.remix", lang), Action.REMIX, request_id))
    rows = (tuple(row), tuple(more))
    return Reply(caption, kind="image", image_png=png, buttons=rows, request_id=request_id, file_name=file_name(request_id))


def upscale_picker(request_id: str, lang: str) -> Reply:
    """How many times larger a picture should be: ×2 or ×4."""
    choices = tuple(Button(t("button.upscale_by", lang, scale=scale), Action.UPSCALE, request_id, str(scale)) for scale in (2, 4))
    return Reply(t("upscale.choose", lang), kind="picker", buttons=(choices,), request_id=request_id)


def upscaled(request_id: str, lang: str, png: bytes, *, scale: int, size: tuple[int, int]) -> Reply:
    """An upscaled picture, sent as a file (a photo would be recompressed): its factor and size."""
    caption = t("upscaled", lang, scale=scale, width=size[0], height=size[1])
    return Reply(
        caption, kind="image", image_png=png, request_id=request_id, file_name=file_name(request_id, f"x{scale}"), as_file=True
    )


def variations(
    request_id: str, lang: str, grid_png: bytes, *, tiles: Sequence[bytes], style: str, seeds: Sequence[int], description: str | None
) -> Reply:
    """Variations of a picture: the grid of them (``tiles``, in order), their style and seeds, and V1 .. Vn to keep one."""
    caption = t("variations.delivered", lang, style=style, first=seeds[0], last=seeds[-1]) if seeds else ""
    if description:
        caption = t("card.quote", lang, text=shorten(description, 200)) + "\n" + caption
    keep = tuple(Button(t("button.keep", lang, number=n), Action.KEEP, request_id, str(n)) for n in range(1, len(tiles) + 1))
    return Reply(
        caption,
        kind="image",
        image_png=grid_png,
        buttons=(keep,),
        request_id=request_id,
        file_name=file_name(request_id, "variations"),
        tiles=tuple(tiles),
    )


def original(request_id: str, lang: str, png: bytes) -> Reply:
    """The picture as drawn, before the anime style (the Original button)."""
    return Reply(t("base_image", lang), kind="image", image_png=png, file_name=file_name(request_id, "original"))


def settings_card(
    lang: str,
    *,
    user: Preferences,
    chat: ChatOverrides | None,
    style: str,
    app_language: str,
    name: str = "",
    policy: Level | None = None,
    voice_default: str | None = None,
) -> Reply:
    """The /settings view: the user's own settings and, in a group (``chat`` given), the chat's.

    ``voice_default`` is what a user who chose no voice replies hears (the operator's ``VOICE_REPLIES``);
    None: the deployment speaks no replies, and the card does not offer them.

    ``user``/``chat`` are the stored settings (``None``: not set), ``style`` the default style's
    display name, ``app_language`` the language the platform locale picks. In a private chat the
    lines are the user's (the chat-wide ones that apply there too); in a group they come in two
    parts, the user's ("just for you") and the chat's (only admins may change those).
    """
    if user.language is not None:
        language = t(f"ui_language.{user.language}", lang)
    elif chat is not None and chat.language is not None:
        language = t("settings.language_follows_chat", lang, current=t(f"ui_language.{chat.language}", lang))
    else:
        language = t("settings.language_auto", lang, current=t(f"ui_language.{app_language}", lang))
    personal = [("settings.language_label", language), ("settings.style_label", style)]
    if voice_default is not None:
        personal.append(("settings.voice_label", _voice_shown(user.voice_replies, voice_default, lang)))
    shared = [
        entry for entry in CHAT_SETTINGS
        if (chat is not None or entry.in_private) and (voice_default is not None or entry.field != "voice_replies")
    ]
    values = {entry.field: entry.current(chat, user) for entry in shared}
    chat_lines = [(entry.label, _shown(entry.choice_of(values[entry.field]), lang)) for entry in shared]
    chat_buttons = tuple(_setting_button(entry, values[entry.field], lang) for entry in shared)
    if chat is None:
        lines = [t("settings.heading", lang)]
        lines += [t("settings.row", lang, label=t(label, lang), value=value) for label, value in personal + chat_lines]
        mine: tuple[Button, ...] = (
            Button(t("settings.language", lang), Action.SET_LANGUAGE, NO_REQUEST),
            Button(t("button.style", lang), Action.DEFAULT_STYLE, NO_REQUEST),
        )
    else:
        lines = [t("settings.heading", lang), t("settings.yours", lang, name=name)]
        lines += [t("card.field", lang, label=t(label, lang), value=value) for label, value in personal]
        lines += ["", t("settings.chat", lang)]
        lines += [t("card.field", lang, label=t(label, lang), value=value) for label, value in chat_lines]
        mine = (
            Button(t("settings.my_language", lang), Action.SET_LANGUAGE, NO_REQUEST),
            Button(t("settings.my_style", lang), Action.DEFAULT_STYLE, NO_REQUEST),
        )
    if voice_default is not None:
        mine += (Button(t("settings.voice_button" if chat is None else "settings.my_voice", lang), Action.VOICE_REPLIES, NO_REQUEST),)
    if policy is not None:  # the level that applies here (a chat's "off" where it may not be is "standard")
        row = "settings.row" if chat is None else "card.field"
        lines.append(t(row, lang, label=t("settings.policy_here", lang), value=t(POLICY_LEVELS[policy], lang)))
    buttons = (mine, chat_buttons) if chat_buttons else (mine,)
    return Reply("\n".join(lines), buttons=buttons, private=True)


def _voice_shown(mode: str | None, default: str, lang: str) -> str:
    """A user's voice replies as /settings shows them: their choice, else the default, said to be one."""
    shown = t(_voice_choice(mode or default).label, lang)
    return shown if mode is not None else t("settings.voice_default", lang, current=shown)


def _voice_choice(mode: str) -> Choice:
    """The choice of voice replies ``mode`` names (the first, off, for one no longer offered)."""
    return choice_for(VOICE_CHOICES, mode) or VOICE_CHOICES[0]


def voice_choice_picker(lang: str, current: str) -> Reply:
    """The user's voice replies: off, after voice notes, always (``current`` ticked)."""
    return choice_picker(Action.VOICE_REPLIES, lang, "settings.choose_voice", VOICE_CHOICES, current)


def _shown(choice: Choice, lang: str) -> str:
    return t(choice.shown or choice.label, lang)


def _setting_button(entry: ChatSetting, value: object, lang: str) -> Button:
    """A toggle carries the value it switches to (pressing a stale card twice never flips back); a picker opens."""
    token = entry.other(value).token if entry.toggles else ""
    return Button(t(entry.button, lang), entry.action, NO_REQUEST, token)


def choice_picker(action: Action, lang: str, question: str, choices: Sequence[Choice], current: object) -> Reply:
    """A setting's choices (the current one ticked), two per row; picking one sets it."""
    buttons = []
    for choice in choices:
        label = t(choice.label, lang)
        shown = t("button.on", lang, label=label) if choice.value == current else label
        buttons.append(Button(shown, action, NO_REQUEST, choice.token))
    rows = tuple(tuple(buttons[i : i + 2]) for i in range(0, len(buttons), 2))
    return Reply(t(question, lang), kind="picker", buttons=rows, private=True)


def language_choice_picker(lang: str, current: str | None) -> Reply:
    """The user's own language: automatic, English, Simplified or Traditional Chinese."""
    return choice_picker(Action.SET_LANGUAGE, lang, "settings.choose_language", LANGUAGE_CHOICES, current)


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
        return Reply(t("history.empty", lang), private=True)
    lines = [t("history.title", lang)]
    for i, entry in enumerate(entries, start=1):
        description = t("card.quote", lang, text=shorten(entry.description, 40)) if entry.description else t("history.photo", lang)
        lines.append(t("history.entry", lang, index=i, description=description, style=entry.style, date=entry.created.date().isoformat()))
    buttons = [Button(t("button.resend", lang, index=i), Action.RESEND, entry.request_id) for i, entry in enumerate(entries, 1)]
    rows = tuple(tuple(buttons[i : i + 5]) for i in range(0, len(buttons), 5))
    return Reply("\n".join(lines), buttons=rows, private=True)


def delivery_failed(request_id: str, lang: str) -> Reply:
    """The picture is drawn but every upload failed: say so, with a button to try again."""
    retry = Button(t("button.send_again", lang), Action.RESEND, request_id)
    return Reply(t("delivery.failed", lang), kind="error", buttons=((retry,),), request_id=request_id)


def not_stored(request_id: str, lang: str) -> Reply:
    """A finished picture that could not be stored (a server problem): it waits, with Try again and Cancel."""
    again = Button(t("button.try_again", lang), Action.TRY_AGAIN, request_id)
    cancel = Button(t("button.cancel", lang), Action.CANCEL, request_id)
    return Reply(t("job.not_stored", lang), kind="error", buttons=((again, cancel),), request_id=request_id)


def worker_outdated(request_id: str, lang: str) -> Reply:
    """No worker could make the picture yet (the picture server is being updated): it waits, with Try again and Cancel."""
    again = Button(t("button.try_again", lang), Action.TRY_AGAIN, request_id)
    cancel = Button(t("button.cancel", lang), Action.CANCEL, request_id)
    return Reply(t("worker.outdated", lang), kind="error", buttons=((again, cancel),), request_id=request_id)


def progress_done(request_id: str, lang: str, *, sketch: bool) -> Reply:
    """The status message once the picture is delivered: one line, no buttons (``sketch``: it shows the drawing)."""
    return Reply(t("progress.done_sketch" if sketch else "progress.done", lang), request_id=request_id)
