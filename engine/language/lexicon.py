"""The bilingual word list behind :mod:`engine.language.prompt`: vocabulary read from a data file, grammar words, indexes.

The vocabulary is ``lexicon.tsv`` next to this module (shipped as package
data, like the policy's files): one *meaning* a row, tab-separated, under a
header row ``kind english zh en flags``:

* ``kind`` — its role, a :class:`Kind` value: subject, adjective, color,
  hair, eyes, clothing, feature, object, action, place, weather or time;
* ``english`` — the *canonical* phrase that goes into the Stable Diffusion
  prompt (lower case);
* ``zh`` — Chinese surface forms, comma-separated: Simplified, Traditional
  and common Cantonese spellings; the first, in Simplified, is the
  meaning's name for a Chinese reader (:data:`ZH_NAMES`). A colour's forms are its characters,
  from which the 色 and hair compounds are made (蓝 -> 蓝色, 蓝发, 蓝髮);
* ``en`` — English surface forms, comma-separated lower-case word sequences;
* ``flags`` — comma-separated: ``transitive`` (an action that takes the
  next object), ``hair=<word>`` (a colour said otherwise of hair, see
  :data:`HAIR_COLOR_NAMES`).

Either form column may be empty; lines starting with ``#`` and blank lines
are comments; empty cells at the end of a row may be left out. The file is
read once, at import (:func:`read_meanings`). The grammar words — numbers,
measure words, negations, locatives, articles and filler — are closed
classes the parser's rules are written around, and stay in this module.

:data:`ZH_INDEX` and :data:`EN_INDEX` are the lookup tables the parser uses.
They are built once at import, in row order, and refuse conflicting entries,
so a form can never silently mean two things: a bad row, or a form that
would mean two things, raises :class:`LexiconError` naming the file and line.

Conventions for the English side:

* subjects are bare singular nouns (``"old man"``); plurals come from
  :data:`_IRREGULAR_PLURALS` or ``+ "s"``;
* clothing and objects carry their article (``"a hat"``, ``"glasses"``,
  ``"coffee"``) so they read naturally after "wearing" / "holding";
* transitive actions (flag ``transitive``) take the next object,
  e.g. "holding" + "an umbrella"; a trailing "at" is dropped when no object
  follows ("looking at" -> "looking").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import MappingProxyType


class Kind(Enum):
    """What role a lexicon entry plays in a description."""

    SUBJECT = "subject"  #: who/what the picture is of (boy, cat, robot)
    ADJECTIVE = "adjective"  #: goes before the subject noun (cute, smiling)
    COLOR = "color"  #: modifies the next noun (blue -> blue hair)
    HAIR = "hair"  #: hair colour/length/style
    EYES = "eyes"
    CLOTHING = "clothing"  #: rendered as "wearing ..."
    FEATURE = "feature"  #: body features rendered as "with ..." (cat ears, wings)
    OBJECT = "object"  #: things held/used; object of a transitive action
    ACTION = "action"
    PLACE = "place"
    WEATHER = "weather"
    TIME = "time"  #: time of day / season / sky
    NUMBER = "number"  #: makes the next subject plural (two girls)
    NEGATION = "negation"  #: the next known content word goes to the negative prompt
    LOCATIVE = "locative"  #: in/at/在/喺: an unknown word after it is a place
    ARTICLE = "article"  #: a/an/the (English only; kept before unknown objects)
    STOP = "stop"  #: grammatical filler, ignored


#: Kinds that belong to the scene (rendered as separate comma tags).
SCENE_KINDS: frozenset[Kind] = frozenset({Kind.PLACE, Kind.WEATHER, Kind.TIME})


@dataclass(frozen=True)
class Entry:
    """One meaning: its English rendering and role.

    ``plural`` is set for subjects (and for an English surface form that *is*
    the plural, ``is_plural`` is true); ``transitive`` marks actions that take
    an object.
    """

    english: str
    kind: Kind
    plural: str = ""
    is_plural: bool = False
    transitive: bool = False


@dataclass(frozen=True)
class Meaning:
    """One row of ``lexicon.tsv``: a meaning, its forms in both languages and where it was read."""

    kind: Kind
    english: str
    zh: tuple[str, ...] = ()
    en: tuple[str, ...] = ()
    transitive: bool = False  #: an action that takes the next object
    hair: str = ""  #: a colour said otherwise of hair ("golden" -> "blonde")
    where: str = ""  #: ``file:line`` of the row


class LexiconError(ValueError):
    """A lexicon row that cannot be read, or a form that would mean two things (the message names file:line)."""


#: The vocabulary file (format in the module docstring and at the top of the file).
LEXICON_FILE: Path = Path(__file__).with_name("lexicon.tsv")

#: The header row, and so the column order, of the vocabulary file.
COLUMNS: tuple[str, ...] = ("kind", "english", "zh", "en", "flags")

#: Kinds the vocabulary file may hold (the others are grammar words, kept below).
WORD_KINDS: frozenset[Kind] = frozenset(Kind) - {Kind.NUMBER, Kind.NEGATION, Kind.LOCATIVE, Kind.ARTICLE, Kind.STOP}
_WORD_KINDS_BY_NAME: Mapping[str, Kind] = {kind.value: kind for kind in WORD_KINDS}


def read_meanings(path: Path = LEXICON_FILE) -> tuple[Meaning, ...]:
    """The meanings of a vocabulary file, in row order; :class:`LexiconError` (with file:line) for a bad row."""
    meanings: list[Meaning] = []
    seen: dict[tuple[Kind, str], str] = {}
    header = False
    name = str(path)
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        where = f"{name}:{number}"
        cells = [cell.strip() for cell in line.split("\t")]
        if not header:
            if tuple(cells) != COLUMNS:
                raise LexiconError(f"{where}: the first row must be the header {' TAB '.join(COLUMNS)}, not {line!r}")
            header = True
            continue
        if not 3 <= len(cells) <= len(COLUMNS):
            raise LexiconError(
                f"{where}: {len(cells)} cells; a row is {' TAB '.join(COLUMNS)} (empty cells at the end may be left out)"
            )
        meaning = _meaning(cells + [""] * (len(COLUMNS) - len(cells)), where)
        key = (meaning.kind, meaning.english)
        if key in seen:
            raise LexiconError(f"{where}: {meaning.kind.value} {meaning.english!r} again (first at line {seen[key]})")
        seen[key] = str(number)
        meanings.append(meaning)
    if not header:
        raise LexiconError(f"{path}: no header row ({' TAB '.join(COLUMNS)})")
    return tuple(meanings)


def _meaning(cells: list[str], where: str) -> Meaning:
    kind_name, english, zh_cell, en_cell, flags_cell = cells
    kind = _WORD_KINDS_BY_NAME.get(kind_name)
    if kind is None:
        names = ", ".join(sorted(_WORD_KINDS_BY_NAME))
        raise LexiconError(f"{where}: kind {kind_name!r} is not one of {names}")
    if not english or english != " ".join(english.lower().split()):
        raise LexiconError(f"{where}: the English rendering {english!r} must be lower case, single-spaced words")
    zh, en = _forms(zh_cell, where), _forms(en_cell, where)
    if not zh and not en:
        raise LexiconError(f"{where}: {english!r} has no Chinese or English form")
    for form in en:
        if form != " ".join(form.lower().split()):
            raise LexiconError(f"{where}: English form {form!r} must be lower case, single-spaced words")
    transitive, hair = False, ""
    for flag in filter(None, (flag.strip() for flag in flags_cell.split(","))):
        if flag == "transitive" and kind is Kind.ACTION:
            transitive = True
        elif flag.startswith("hair=") and kind is Kind.COLOR and flag.removeprefix("hair=").strip():
            hair = flag.removeprefix("hair=").strip()
        else:
            raise LexiconError(f"{where}: flag {flag!r} is not transitive (actions) or hair=<word> (colors)")
    return Meaning(kind, english, zh, en, transitive=transitive, hair=hair, where=where)


def _forms(cell: str, where: str) -> tuple[str, ...]:
    forms = tuple(form.strip() for form in cell.split(",")) if cell else ()
    if "" in forms:
        raise LexiconError(f"{where}: an empty form in {cell!r}")
    if len(set(forms)) != len(forms):
        twice = next(form for i, form in enumerate(forms) if form in forms[:i])
        raise LexiconError(f"{where}: {twice!r} twice in one row")
    return forms


# --------------------------------------------------------------------------
# Plurals
# --------------------------------------------------------------------------

#: Plurals that are not ``word + "s"`` (keyed by the last word of the subject).
_IRREGULAR_PLURALS: Mapping[str, str] = MappingProxyType(
    {
        "man": "men",
        "woman": "women",
        "child": "children",
        "fox": "foxes",
        "witch": "witches",
        "princess": "princesses",
        "samurai": "samurai",
        "elf": "elves",
        "puppy": "puppies",
        "baby": "babies",
        "lady": "ladies",
        "bunny": "bunnies",
        "kitty": "kitties",
        "doggy": "doggies",
        "mecha": "mecha",
        "goldfish": "goldfish",
    }
)


def plural_of(noun: str) -> str:
    """English plural of a (possibly multi-word) noun: only the last word changes."""
    head, _, last = noun.rpartition(" ")
    plural = _IRREGULAR_PLURALS.get(last, last + "s")
    return f"{head} {plural}" if head else plural


# --------------------------------------------------------------------------
# Grammar words (closed classes the parser's rules are written around)
# --------------------------------------------------------------------------

# Kept one rule per line on purpose; the formatter would put every word on its own line.
# fmt: off

#: Chinese words for "hair" that follow a one-character colour (蓝发 = blue hair).
_HAIR_SUFFIXES_ZH: tuple[str, ...] = ("发", "髮")

_NUMBERS_ZH: Mapping[str, str] = MappingProxyType(
    {"两": "two", "兩": "two", "二": "two", "三": "three", "四": "four", "五": "five", "几": "several", "幾": "several", "一群": "a group of", "一班": "a group of",
     "啲": "some", "些": "some", "一啲": "some", "一些": "some"}
)
#: Measure words: "两个" / "三隻" are numbers; "一个" / "一隻" are filler.
_CLASSIFIERS_ZH: tuple[str, ...] = ("个", "個", "只", "隻", "位", "名", "条", "條", "头", "頭", "张", "張", "幅", "对", "對")

_NUMBERS_EN: Mapping[str, str] = MappingProxyType(
    {"two": "two", "2": "two", "three": "three", "3": "three", "four": "four", "4": "four", "five": "five", "5": "five", "six": "six",
     "6": "six", "seven": "seven", "7": "seven", "eight": "eight", "8": "eight", "nine": "nine", "9": "nine", "ten": "ten",
     "10": "ten", "several": "several", "many": "many"}
)

_NEGATIONS_ZH: tuple[str, ...] = ("没有", "沒有", "没", "沒", "冇", "不", "唔", "不要", "唔要", "唔好", "不戴", "唔戴", "不穿", "唔着")
_NEGATIONS_EN: tuple[str, ...] = ("no", "not", "without", "don't", "dont", "never")

_LOCATIVES_ZH: tuple[str, ...] = ("在", "喺", "于", "於", "到")
_LOCATIVES_EN: tuple[str, ...] = (
    "in", "at", "on", "under", "near", "by", "inside", "beside", "behind", "above", "over",
    "through", "across", "among", "outside", "underneath", "around", "into", "onto",
)

_ARTICLES_EN: tuple[str, ...] = ("a", "an", "the")

_STOPS_ZH: tuple[str, ...] = (
    "的", "嘅", "之", "着", "著", "了", "咗", "緊", "紧", "和", "跟", "与", "與", "同", "及", "还有", "還有", "仲有",
    "一", "一起", "穿", "穿着", "穿著", "着住", "著住", "戴", "戴着", "戴著", "戴住", "有", "係", "是", "很", "好", "非常", "超",
    "正在", "里", "裡", "裏", "里面", "裡面", "下", "底下", "下面", "上", "上面", "旁边", "旁邊", "边", "邊", "隔離",
    "我", "我想", "我要", "想要", "想", "要", "请", "請", "帮我", "幫我", "给我", "給我", "俾我", "畀我", "唔该", "唔該",
    "画", "畫", "整", "生成", "图", "圖", "图片", "圖片", "照片", "画面", "畫面", "一张", "一張", "一幅",
    "那", "这", "這", "那个", "這個", "这个", "嗰", "嗰個", "呢", "呢個", "啊", "呀", "吧", "喔", "嗯", "哦", "啦", "喇", "嘢",
    "然后", "然後", "他", "她", "它", "佢", "们", "們", "一边", "一邊", "住",
    # postpositions ("in front of the blackboard" is the blackboard) and Cantonese 喺度 ("at ..." / "being ...")
    "中", "前", "前面", "后", "後", "后面", "後面", "内", "內", "外", "外面", "度", "喺度", "嗰度", "呢度",
)

_STOPS_EN: tuple[str, ...] = (
    "and", "with", "of", "is", "are", "was", "were", "be", "being", "who", "that", "which", "while", "has", "have",
    "having", "wearing", "wears", "wear", "dressed", "i", "me", "my", "want", "would", "like", "to", "please", "pls",
    "draw", "generate", "make", "create", "show", "picture", "image", "photo", "illustration", "drawing of", "some",
    "very", "really", "so", "her", "his", "their", "its", "it", "there", "here", "also", "just", "can", "could", "you",
    "as", "for", "from", "this", "these", "those", "one", "she", "he", "they", "them", "we", "up", "down", "out",
    "together", "it's", "thank", "thanks", "of a", "kind", "lot", "in the style of", "style of", "art style",
    # spoken filler
    "um", "umm", "uh", "uhh", "er", "erm", "hmm", "ah", "oh", "well", "okay", "ok", "basically", "kinda", "sorta",
    "kind of", "sort of", "you know", "i mean", "actually", "literally", "maybe", "probably", "something like",
)


# fmt: on


# --------------------------------------------------------------------------
# Index building
# --------------------------------------------------------------------------

#: Where the grammar words come from, for conflict messages.
_GRAMMAR = f"{__file__} (grammar words)"


def _describe(entry: Entry) -> str:
    return f"{entry.kind.value} {entry.english!r}" if entry.english else f"a {entry.kind.value} word"


def _add(index: dict, origins: dict, key: object, entry: Entry, where: str) -> None:
    """Insert one form, refusing a form that would mean two different things (both places are named)."""
    existing = index.get(key)
    if existing is not None and existing != entry:
        raise LexiconError(
            f"{where}: lexicon conflict for {key!r}: {_describe(entry)} here, {_describe(existing)} at {origins[key]}"
        )
    index[key] = entry
    origins.setdefault(key, where)


def _entry(meaning: Meaning) -> Entry:
    if meaning.kind is Kind.SUBJECT:
        return Entry(meaning.english, meaning.kind, plural=plural_of(meaning.english))
    return Entry(meaning.english, meaning.kind, transitive=meaning.transitive)


def zh_index(meanings: Iterable[Meaning]) -> dict[str, Entry]:
    """Chinese form -> meaning: the rows' words, then colours and their compounds, then the grammar words."""
    meanings = tuple(meanings)
    index: dict[str, Entry] = {}
    origins: dict[str, str] = {}
    for meaning in meanings:
        if meaning.kind is not Kind.COLOR:
            for form in meaning.zh:
                _add(index, origins, form, _entry(meaning), meaning.where)
    for meaning in meanings:
        if meaning.kind is Kind.COLOR:
            colour, hair = Entry(meaning.english, Kind.COLOR), Entry(f"{meaning.hair or meaning.english} hair", Kind.HAIR)
            for char in meaning.zh:
                _add(index, origins, char, colour, meaning.where)
                _add(index, origins, char + "色", colour, meaning.where)
                for suffix in _HAIR_SUFFIXES_ZH:
                    _add(index, origins, char + suffix, hair, meaning.where)
    for numeral, english in _NUMBERS_ZH.items():
        _add(index, origins, numeral, Entry(english, Kind.NUMBER), _GRAMMAR)
        for classifier in _CLASSIFIERS_ZH:
            _add(index, origins, numeral + classifier, Entry(english, Kind.NUMBER), _GRAMMAR)
    for classifier in _CLASSIFIERS_ZH:
        _add(index, origins, "一" + classifier, Entry("", Kind.STOP), _GRAMMAR)
    for kind, forms in (
        (Kind.NEGATION, _NEGATIONS_ZH),
        (Kind.LOCATIVE, _LOCATIVES_ZH),
        (Kind.STOP, _STOPS_ZH),
    ):
        for form in forms:
            _add(index, origins, form, Entry("", kind), _GRAMMAR)
    return index


def en_index(meanings: Iterable[Meaning]) -> dict[tuple[str, ...], Entry]:
    """English word sequence -> meaning: the rows' words (and subjects' plurals), then the grammar words."""
    index: dict[tuple[str, ...], Entry] = {}
    origins: dict[tuple[str, ...], str] = {}
    for meaning in meanings:
        entry = _entry(meaning)
        for form in meaning.en:
            _add(index, origins, tuple(form.split()), entry, meaning.where)
            if meaning.kind is Kind.SUBJECT and plural_of(form) != form:
                plural = Entry(meaning.english, meaning.kind, plural=entry.plural, is_plural=True)
                _add(index, origins, tuple(plural_of(form).split()), plural, meaning.where)
    for word, english in _NUMBERS_EN.items():
        _add(index, origins, (word,), Entry(english, Kind.NUMBER), _GRAMMAR)
    for article in _ARTICLES_EN:
        _add(index, origins, (article,), Entry(article, Kind.ARTICLE), _GRAMMAR)
    for kind, forms in (
        (Kind.NEGATION, _NEGATIONS_EN),
        (Kind.LOCATIVE, _LOCATIVES_EN),
        (Kind.STOP, _STOPS_EN),
    ):
        for form in forms:
            _add(index, origins, tuple(form.split()), Entry("", kind), _GRAMMAR)
    return index


#: The vocabulary, in row order (read once per process).
MEANINGS: tuple[Meaning, ...] = read_meanings()
#: Chinese surface form (simplified, traditional or Cantonese) -> meaning.
ZH_INDEX: Mapping[str, Entry] = MappingProxyType(zh_index(MEANINGS))
#: Longest Chinese form, in characters (bounds the greedy segmenter).
ZH_MAX_LEN: int = max(map(len, ZH_INDEX))
#: Lower-case English word sequence -> meaning (plurals of subjects included).
EN_INDEX: Mapping[tuple[str, ...], Entry] = MappingProxyType(en_index(MEANINGS))
#: Longest English form, in words.
EN_MAX_WORDS: int = max(map(len, EN_INDEX))
#: How a colour is said when it describes hair ("golden hair" -> "blonde hair"): the ``hair=`` flags.
HAIR_COLOR_NAMES: Mapping[str, str] = MappingProxyType({m.english: m.hair for m in MEANINGS if m.hair})


# --------------------------------------------------------------------------
# English phrases back into Chinese (for showing a parse to a Chinese reader)
# --------------------------------------------------------------------------

#: Words the prompt builder adds around lexicon phrases, in Chinese ("" = dropped).
_GLUE_ZH: Mapping[str, str] = MappingProxyType(
    {"wearing": "戴着", "with": "有", "and": "和", "a": "", "an": "", "the": "", "of": "的"}
)


#: Hair-length words the English side merges into "long silver hair".
ZH_NAMES_EXTRA: Mapping[str, str] = MappingProxyType({"long": "长", "short": "短"})


def zh_names(meanings: Iterable[Meaning]) -> dict[str, str]:
    """English phrase -> its first Chinese form (subjects' plurals, colours, numbers and hair lengths too)."""
    meanings = tuple(meanings)
    names: dict[str, str] = {}
    for meaning in meanings:
        if meaning.kind is not Kind.COLOR and meaning.zh:
            names.setdefault(meaning.english, meaning.zh[0])
            if meaning.kind is Kind.SUBJECT:
                names.setdefault(plural_of(meaning.english), meaning.zh[0])
    for meaning in meanings:
        if meaning.kind is Kind.COLOR and meaning.zh:
            names.setdefault(meaning.english, meaning.zh[0])
    for numeral, english in _NUMBERS_ZH.items():
        names.setdefault(english, numeral if numeral.startswith("一") else numeral + "个")
    for english in ("long", "short"):
        names.setdefault(english, ZH_NAMES_EXTRA[english])
    return names


#: English canonical phrase -> its first (simplified) Chinese form.
ZH_NAMES: Mapping[str, str] = MappingProxyType(zh_names(MEANINGS))
_ZH_NAMES_MAX_WORDS = max(len(name.split()) for name in ZH_NAMES)


def in_chinese(phrase: str) -> str:
    """An English phrase built from the lexicon, in Chinese: longest known word groups first.

    A phrase with a word the lexicon does not know stays as it is, in English
    ("deep snow", not "deep下雪"): half a translation reads as a mistake.
    """
    words = phrase.split()
    pieces: list[str] = []
    start = 0
    while start < len(words):
        for end in range(min(len(words), start + _ZH_NAMES_MAX_WORDS), start, -1):
            group = " ".join(words[start:end]).lower()
            known = next((ZH_NAMES[g] for g in (group, f"a {group}", f"an {group}") if g in ZH_NAMES), None)
            if known is not None:
                pieces.append(known)
                break
        else:
            end = start + 1
            glue = _GLUE_ZH.get(words[start].lower())
            if glue is None:
                return phrase
            pieces.append(glue)
        start = end
    text = ""
    for piece in filter(None, pieces):
        spaced = text and piece.isascii() and text[-1].isascii()
        text += (" " if spaced else "") + piece
    return text
