"""The picture's shape a description asks for ("landscape", 竖版), and the description without those words.

The shapes and the words that pick them are data: ``aspects.tsv`` next to
this module. A word is taken out of what is drawn only where it stands as a
word of its own (an English word between non-letters; a Chinese form
anywhere), and only words of one shape count: the last one said wins.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ASPECTS_FILE: Path = Path(__file__).with_name("aspects.tsv")


@dataclass(frozen=True)
class Aspect:
    """A picture shape: its name and its Stable Diffusion 1.5 size."""

    name: str
    width: int
    height: int
    forms: tuple[str, ...]


@cache
def aspects() -> dict[str, Aspect]:
    """Every shape by name, in the file's order (square first)."""
    with ASPECTS_FILE.open(encoding="utf-8") as file:
        rows = csv.DictReader((line for line in file if line.strip() and not line.startswith("#")), delimiter="\t")
        return {
            row["aspect"]: Aspect(row["aspect"], int(row["width"]), int(row["height"]), tuple(f.strip() for f in row["forms"].split(",")))
            for row in rows
        }


def aspect_of_size(width: int | None, height: int | None) -> str | None:
    """The shape whose size is ``width`` x ``height``, if one is."""
    return next((a.name for a in aspects().values() if (a.width, a.height) == (width, height)), None)


_GLUE = r"[,，、。.;；]"


@cache
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """English forms (a clause of their own: "a cat, landscape", "in portrait format") and Chinese forms (anywhere)."""
    shapes = aspects().values()
    english = sorted((f for a in shapes for f in a.forms if f.isascii()), key=len, reverse=True)
    chinese = sorted((f for a in shapes for f in a.forms if not f.isascii()), key=len, reverse=True)
    words = "|".join(re.escape(form) for form in english)
    clause = re.compile(
        rf"(?:^|{_GLUE}|\s(?:in|as)\b)\s*(?:a\s+|an\s+)?(?P<form>{words})(?:\s+(?:format|mode|picture|image|shot|orientation))?\s*(?={_GLUE}|$)",
        re.I,
    )
    return clause, re.compile(rf"(?P<form>{'|'.join(re.escape(form) for form in chinese)})的?")


def split_aspect(text: str) -> tuple[str, str | None]:
    """``text`` without its shape words, and the shape they pick (``None``: none said; the last one said wins)."""
    by_form = {form.lower(): aspect.name for aspect in aspects().values() for form in aspect.forms}
    found: list[tuple[int, str]] = []

    def take(match: re.Match[str]) -> str:
        found.append((match.start(), by_form[match.group("form").lower()]))
        return " "

    for pattern in _patterns():
        text = pattern.sub(take, text)
    chosen = max(found)[1] if found else None
    return re.sub(r"\s{2,}", " ", text).strip(" ,，、。.;；"), chosen
