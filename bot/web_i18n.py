"""The studio page's own words (its controls), in every UI language, served as ``/strings.json``.

Everything the conversation says (cards, progress, errors) comes from
:mod:`handlers.i18n` through the replies; these are only the labels of the
page around it, the messages of :mod:`handlers.locales`' catalogs whose key
starts with ``studio.`` (the page knows them without it). Where the
conversation already has the words (the command descriptions, the /anime
example, "Language"), they are taken from there, and the few chat templates
the page recognises in the replies (``chat.*``: the quote marks of a
description, "Done", "Cancelled") are passed on unformatted.

A key ending in ``.touch`` is the wording for touch screens (``pointer: coarse``):
"tap", never "click".
"""

from __future__ import annotations

from handlers.conversation.routes import COMMANDS
from handlers.i18n import LANGUAGES, has_message, message_keys, t, template

#: The catalog key of page word ``key`` is this followed by ``key``.
PREFIX = "studio."
#: Page words that are the chat's own: page key -> catalog key.
FROM_CHAT = {"placeholder": "command.anime.text", "language.label": "settings.language_label"}
#: Chat templates the page recognises in the replies, sent unformatted as ``chat.<key>``.
CHAT_TEMPLATES = ("card.quote", "progress.done", "cancelled")


def page_strings() -> dict[str, dict[str, str]]:
    """Every language's page words: the ``studio.`` messages, the chat's words it shares and the commands' descriptions.

    ``{name}`` placeholders are left for the page to fill.
    """
    page_keys = [key.removeprefix(PREFIX) for key in message_keys() if key.startswith(PREFIX)]
    strings: dict[str, dict[str, str]] = {}
    for lang in LANGUAGES:
        words = {key: page_word(key, lang) for key in page_keys}
        words |= {key: t(source, lang) for key, source in FROM_CHAT.items()}
        words |= {f"chat.{key}": template(key, lang) for key in CHAT_TEMPLATES}
        for route in COMMANDS:
            if has_message(route.description):
                words[route.description] = t(route.description, lang)
        strings[lang] = words
    return strings


def page_word(key: str, lang: str) -> str:
    """Page word ``key`` in ``lang``, unformatted (also what the server itself says about the page's uploads and connections)."""
    return template(PREFIX + key, lang)
