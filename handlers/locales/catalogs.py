"""Reading the catalogs of :mod:`handlers.locales` with Babel; each is read once, when first used."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from io import BytesIO
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

#: The directory of the catalogs.
ROOT = Path(__file__).parent
#: The gettext domain (file name) of every catalog.
DOMAIN = "messages"
#: UI language -> the locale of its catalog (also the CLDR locale it reads language names in).
LOCALES: Mapping[str, str] = {"en": "en", "zh-Hans": "zh_Hans", "zh-Hant": "zh_Hant"}
#: The catalog every other one falls back to; its msgids are the messages there are.
SOURCE = "en"
#: The flag of a message with plural forms that names the parameter it counts: ``#, count:limit``.
COUNT_FLAG = "count:"


def po_path(locale: str) -> Path:
    """The catalog file of ``locale`` (a value of :data:`LOCALES`)."""
    return ROOT / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalog(path: Path, locale: str) -> Catalog:
    """The catalog in the .po file ``path``, of ``locale`` (which gives its plural rule)."""
    with path.open("rb") as file:
        return read_po(file, locale=locale, domain=DOMAIN)


@cache
def index() -> Mapping[str, str | None]:
    """Every message of the source catalog (:data:`SOURCE`), in file order: its key -> the parameter it counts.

    The parameter is the one that chooses the form of a message with plural
    forms (its :data:`COUNT_FLAG`); None for a message without.
    """
    counted_by: dict[str, str | None] = {}
    for message in read_catalog(po_path(LOCALES[SOURCE]), LOCALES[SOURCE]):
        if not message.id:
            continue  # the header
        key = message.id if isinstance(message.id, str) else message.id[0]
        flags = [flag.removeprefix(COUNT_FLAG) for flag in message.flags if flag.startswith(COUNT_FLAG)]
        counted_by[key] = flags[0] if flags else None
    return counted_by


@cache
def translations(lang: str) -> Translations:
    """The catalog of UI language ``lang``, compiled in memory; a message it lacks is the source catalog's."""
    locale = LOCALES[lang]
    compiled = BytesIO()
    write_mo(compiled, read_catalog(po_path(locale), locale))
    compiled.seek(0)
    found = Translations(compiled, domain=DOMAIN)
    if lang != SOURCE:
        found.add_fallback(translations(SOURCE))
    return found
