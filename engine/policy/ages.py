"""Ages written in a description, in English and Chinese: which of them are a child's (under 18).

The content policy treats an age below :data:`ADULT_AGE` like a word for a
child (``[minor]`` in the term list): together with a sexual, suggestive or
body word it refuses the description at every level. Read here: digits and
number words ("12 year old", "10-year-old", "twelve-year-old", "aged 9",
"age: 9", "12yo", "12 y/o", "15 yrs old", "16 years of age", "8 months old",
"a girl of 11", "5th grader", "grade 5"), Chinese numerals and digits (12岁, 十岁, 十二周岁,
两岁, 十几岁, 几岁, 五年级). The text is read as the matcher reads it
(:func:`engine.policy.text.views`: case and width folded, Traditional as
Simplified), so 12歲 and ｔｗｅｌｖｅ count too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache

#: The first age that is not a child's.
ADULT_AGE = 18

_UNITS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen"
).split()
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_EN_VALUES = {word: value for value, word in enumerate(_UNITS)}

_EN_NUMBER = (
    r"(?<![\d.,])\d{1,4}(?![\d.,]\d)"
    rf"|\b(?:(?:{'|'.join(_TENS)})[\s-]?)?(?:{'|'.join(sorted(_UNITS, key=len, reverse=True))})\b"
    rf"|\b(?:{'|'.join(_TENS)})\b"
)
_GAP = r"[\s-]*"
_EN_AGES = re.compile(
    rf"(?P<n>{_EN_NUMBER}){_GAP}(?:years?|yrs?|yr){_GAP}old\b"
    rf"|(?P<m>{_EN_NUMBER}){_GAP}(?:months?|weeks?|days?){_GAP}old\b"
    rf"|(?P<yo>{_EN_NUMBER}){_GAP}(?:y\.?\s?o\b\.?|y/o\b)"
    rf"|\bage(?:d|\s*[:=])?{_GAP}(?P<aged>{_EN_NUMBER})"
    rf"|(?P<ofage>{_EN_NUMBER})\s+years?\s+of\s+age\b"
    rf"|\b(?:girl|boy|child|kid|daughter|son|sister|brother|student|pupil)s?,?\s+of\s+(?P<personof>{_EN_NUMBER})\b"
    rf"|(?P<grade>{_EN_NUMBER})(?:st|nd|rd|th)?{_GAP}grader?s?\b"
    rf"|\bgrade{_GAP}(?P<gradeof>{_EN_NUMBER})\b",
    re.IGNORECASE,
)

_ZH_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_ZH_NUMERAL = "[零〇一二两三四五六七八九十百千]"
_ZH_AGES = re.compile(
    rf"(?:(?<!{_ZH_NUMERAL})(?<!\d)(?P<n>\d{{1,4}}|{_ZH_NUMERAL}{{1,6}})(?P<few>[几多来])?|(?P<some>几))\s*(?:周岁|岁)"
    rf"|(?P<grade>[一二三四五六1-6])\s*年级"
)
#: The last school grade whose pupils are all children (a 12th grader is 17 or 18); every 年级 (primary school) is.
_LAST_CHILD_GRADE = 11


def _english_value(number: str) -> int:
    """``12``, ``twelve``, ``twenty-one`` (or ``twentyone``, as a collapsed view reads it) as an integer."""
    number = number.lower()
    if number.isdigit():
        return int(number)
    tens = next((value for word, value in _TENS.items() if number.startswith(word)), 0)
    units = re.sub(r"^(?:" + "|".join(_TENS) + r")[\s-]*", "", number) if tens else number
    return tens + _EN_VALUES.get(units, 0)


def _chinese_value(numeral: str) -> int:
    """A Chinese numeral up to the thousands (十二 -> 12, 二十 -> 20, 一百零五 -> 105) or digits."""
    if numeral.isdigit():
        return int(numeral)
    total, current = 0, 0
    for char in numeral:
        if char in _ZH_DIGITS:
            current = _ZH_DIGITS[char]
        else:
            scale = {"十": 10, "百": 100, "千": 1000}[char]
            total += (current or 1) * scale
            current = 0
    return total + current


def _english_child(match: re.Match[str]) -> bool:
    groups = match.groupdict()
    if groups["m"] is not None:
        return True  # months, weeks or days old: a baby
    grade = groups["grade"] or groups["gradeof"]
    if grade is not None:
        return _english_value(grade) <= _LAST_CHILD_GRADE
    number = groups["n"] or groups["yo"] or groups["aged"] or groups["ofage"] or groups["personof"]
    return number is not None and _english_value(number) < ADULT_AGE


def _chinese_child(match: re.Match[str]) -> bool:
    if match.group("grade") is not None or match.group("some") is not None:
        return True  # a primary school year; 几岁, a few years old
    numeral, few = match.group("n"), match.group("few")
    value = _chinese_value(numeral)
    if few is not None:
        value += 1  # 十几岁: at least eleven
    return value < ADULT_AGE


@lru_cache(maxsize=4096)
def child_ages(text: str) -> tuple[tuple[int, int], ...]:
    """The spans of ``text`` (folded, lower case) that give an age under 18, in order."""
    return tuple(_spans(text))


def _spans(text: str) -> Iterator[tuple[int, int]]:
    for match in _EN_AGES.finditer(text):
        if _english_child(match):
            yield match.span()
    for match in _ZH_AGES.finditer(text):
        if _chinese_child(match):
            yield match.span()
