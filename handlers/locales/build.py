"""Regenerate the Traditional Chinese catalog: ``python -m handlers.locales.build`` (``--check``: only compare).

``zh_Hant`` is made from ``zh_Hans`` with OpenCC ``s2twp`` (Taiwan characters
and wording: 设置 -> 設定, 默认 -> 預設), except the messages in
``zh_Hant.overrides.po``, whose texts are taken as written there (a language's
own name, a word OpenCC gets wrong). The generated file is committed, so
what the bot shows is reviewed text and no process loads OpenCC to show it;
a test checks it is up to date.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from io import BytesIO

from babel.messages.catalog import Catalog
from babel.messages.pofile import write_po

from engine.language.chinese import taiwan_phrasing
from handlers.locales.catalogs import DOMAIN, ROOT, po_path, read_catalog

#: The catalog the Traditional one is made from, and the Traditional one.
SIMPLIFIED, TRADITIONAL = "zh_Hans", "zh_Hant"
#: The Traditional texts written by hand.
OVERRIDES = ROOT / "zh_Hant.overrides.po"
#: The comment at the top of the generated catalog.
GENERATED = (
    "voice2anime's UI texts in Chinese, Traditional characters (Taiwan).\n"
    "Generated from zh_Hans/LC_MESSAGES/messages.po and zh_Hant.overrides.po by\n"
    "`python -m handlers.locales.build`: edit those, not this file."
)


def po_text(catalog: Catalog, comment: str) -> str:
    """``catalog`` as .po text, under ``comment``, with a header that does not change from run to run.

    Babel's own header carries the dates and the Babel version it was written
    with; this one only what reading the catalog needs.
    """
    header = {
        "Project-Id-Version": "voice2anime",
        "Language": str(catalog.locale),
        "MIME-Version": "1.0",
        "Content-Type": "text/plain; charset=UTF-8",
        "Content-Transfer-Encoding": "8bit",
        "Plural-Forms": catalog.plural_forms,
    }
    lines = [f"# {line}".rstrip() for line in comment.splitlines()]
    lines += ['msgid ""', 'msgstr ""', *(f'"{name}: {value}\\n"' for name, value in header.items()), ""]
    body = BytesIO()
    write_po(body, catalog, omit_header=True)
    return "\n".join(lines) + "\n" + body.getvalue().decode("utf-8")


def traditional(source: Catalog, overrides: Catalog) -> Catalog:
    """The Traditional catalog: each message of ``source`` converted, or as ``overrides`` writes it."""
    stale = {message.id for message in overrides if message.id} - {message.id for message in source if message.id}
    if stale:
        raise ValueError(f"{OVERRIDES.name} overrides messages {SIMPLIFIED} does not have: {sorted(stale)}")
    result = Catalog(locale=TRADITIONAL, domain=DOMAIN)
    for message in source:
        if not message.id:
            continue  # the header
        override = overrides.get(message.id)
        if override is not None:
            result.add(message.id, override.string, flags=message.flags, user_comments=override.user_comments)
        else:
            result.add(message.id, _converted(message.string), flags=message.flags, user_comments=message.user_comments)
    return result


def _converted(string: str | Sequence[str] | None) -> str | tuple[str, ...]:
    """A Simplified msgstr (or its plural forms) in Traditional characters and Taiwan wording."""
    if isinstance(string, str):
        return taiwan_phrasing(string)
    return tuple(taiwan_phrasing(form) for form in string or ())


def generated() -> str:
    """The text the Traditional catalog file should have."""
    source = read_catalog(po_path(SIMPLIFIED), SIMPLIFIED)
    overrides = read_catalog(OVERRIDES, TRADITIONAL)
    return po_text(traditional(source, overrides), GENERATED)


def main(argv: Sequence[str] | None = None) -> int:
    """Write the Traditional catalog; with ``--check``, exit 1 instead when it is out of date."""
    parser = argparse.ArgumentParser(prog="python -m handlers.locales.build", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether the committed catalog is up to date")
    args = parser.parse_args(argv)
    target = po_path(TRADITIONAL)
    text = generated()
    if target.exists() and target.read_text(encoding="utf-8") == text:
        return 0
    if args.check:
        print(f"{target} is out of date: run python -m handlers.locales.build", file=sys.stderr)
        return 1
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
