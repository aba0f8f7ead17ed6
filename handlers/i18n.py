"""The UI's words in English, Chinese (Simplified) and Chinese (Traditional): the API over :mod:`handlers.locales`.

``t(key, lang, **params)`` formats one; :func:`pick_language` chooses the
language from the user's setting, else the platform locale, else English.
Engine errors carry a message key (``engine.errors.UserError.key``) that is
looked up here too. The words themselves are in the gettext catalogs of
:mod:`handlers.locales`, whose msgids are these keys; a message with plural
forms is chosen by the parameter its catalog entry counts (``#, count:limit``).
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.language.chinese import Script, script_for, taiwan_phrasing
from handlers.locales.catalogs import LOCALES, index, translations

#: The UI languages: English, Chinese in Simplified characters ("zh-Hans") and in Traditional ones ("zh-Hant"),
#: the script names of :data:`engine.language.chinese.SCRIPTS`.
LANGUAGES = tuple(LOCALES)
#: The count :func:`template` picks a plural message's form for when given none: "several".
SEVERAL = 2


def pick_language(setting: str | None, locale: str | None) -> str:
    """The chosen UI language, else the platform locale's, else English.

    zh-TW, zh-HK, zh-MO, zh-Hant and Cantonese (yue) read Traditional ("zh-Hant");
    zh, zh-CN, zh-SG and zh-Hans Simplified ("zh-Hans").
    """
    if setting in LANGUAGES:
        return setting
    return script_for(locale) or "en"


def reader_script(setting: str | None, locale: str | None, *, spoken: str | None = None) -> Script | None:
    """The Chinese script a user reads transcripts in: their chosen language's, else their platform locale's.

    A chosen Chinese UI ("zh-Hans", "zh-Hant") decides; any other choice (or none)
    leaves it to the locale, where ``spoken`` (the language asked for) decides
    only for a bare "zh" (Cantonese: Traditional). ``None``: not a Chinese
    reader, the transcript stays as heard.
    """
    return script_for(setting) or script_for(locale, spoken=spoken)


def is_chinese(lang: str) -> bool:
    """True for both Chinese UIs (Simplified and Traditional)."""
    return lang in ("zh-Hans", "zh-Hant")


def in_script(text: str, lang: str) -> str:
    """Simplified Chinese ``text`` (a lexicon word, a style name) as the ``lang`` UI writes it."""
    return taiwan_phrasing(text) if lang == "zh-Hant" else text


def message_keys() -> tuple[str, ...]:
    """Every message's key, in the catalogs' order."""
    return tuple(index())


def has_message(key: str) -> bool:
    """Is there a message ``key``?"""
    return key in index()


def template(key: str, lang: str, count: int = SEVERAL) -> str:
    """The unformatted message ``key`` in ``lang`` (falls back to English); a plural one in its form for ``count``.

    Raises ``KeyError`` for a key no catalog has.
    """
    found = translations(lang)
    return found.ngettext(key, key, count) if index()[key] else found.gettext(key)


def t(key: str, lang: str, **params: object) -> str:
    """The message ``key`` in ``lang`` (falls back to English), formatted with ``params``.

    A message with plural forms takes the form for the parameter it counts.
    """
    counted = index()[key]
    count = params[counted] if counted else SEVERAL
    if not isinstance(count, int | float):
        raise ValueError(f"{key} counts {counted}, a number, not {count!r}")
    return template(key, lang, int(count)).format(**params)


def error_text(key: str, lang: str, params: Mapping[str, object] | None = None) -> str:
    """The message for an error ``key``; the generic one when the key is unknown or its ``params`` are missing.

    Engine failures that cross a thread or process (``JobFailed``) carry only
    their key, so a parameterised message must degrade, not crash.
    """
    try:
        return t(key, lang, **(params or {}))
    except (KeyError, IndexError, ValueError):
        return t("error.generic", lang)
