"""Description (Chinese, Cantonese or English) -> Stable Diffusion prompt.

Three steps, all rule-based and deterministic:

1. **Tokenise.** The text is cut into script runs. Chinese runs are read by
   :class:`engine.language.translate.ChineseReader` (jieba segmentation with the
   lexicon's words, counts with any measure word, CC-CEDICT for words outside
   the lexicon); a Chinese word nothing can translate is reported in
   :attr:`engine.api.Prompt.untranslated` and never reaches the prompt. Space
   separated words (English, or any other alphabet) are matched as phrases of
   up to :data:`engine.language.lexicon.EN_MAX_WORDS` words, after fixing obvious typos
   of lexicon words ("gril" -> "girl"); filler words (um, basically, kinda)
   are dropped. Punctuation is a break.
2. **Assemble** the tokens into subject, attributes, action and scene
   (:class:`engine.api.ParsedDescription`): colours attach to the next noun
   ("蓝色头发" -> "blue hair") and stay with their own noun ("a white cat and a
   black dog"), numbers pluralise the next noun (三匹马 -> "three horses"),
   transitive actions take the next object ("吃竹子" -> "eating bamboo"),
   negated words go to the negative prompt (also words outside the lexicon),
   and words outside the lexicon are kept in English (as a place after
   "在"/"in", the object of an action, the subject when no known subject was
   said, else "with ...").
3. **Render** one natural phrase ("a boy wearing glasses reading a book"),
   then the scene tags, then anything unknown, bounded so that together with
   :data:`STYLE_TAGS` it fits Stable Diffusion 1.5's 77-token CLIP window.

Input is cut to :data:`MAX_INPUT_CHARS` before any work, so the cost is
bounded whatever the caller passes in.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from engine.api import ParsedDescription, Prompt
from engine.errors import EmptyTextError
from engine.language.aspect import split_aspect
from engine.language.chinese import CJK_CLASS, CJK_RE
from engine.language.lexicon import (
    EN_INDEX,
    EN_MAX_WORDS,
    HAIR_COLOR_NAMES,
    SCENE_KINDS,
    Entry,
    Kind,
)
from engine.language.translate import gerund, plural, reader

log = logging.getLogger(__name__)

__all__ = [
    "MAX_INPUT_CHARS",
    "MAX_USER_CHARS",
    "NEGATIVE_PROMPT",
    "STYLE_TAGS",
    "build_prompt",
    "estimate_clip_tokens",
    "parse_description",
    "set_machine_translator",
]

#: A whole-sentence zh->en translator (``engine.language.translate.MachineTranslator.translate``).
MachineTranslate = Callable[[str], str]

#: Characters of a description (or translation) that are looked at at all.
MAX_INPUT_CHARS = 2000
#: Longest user-derived part of the positive prompt, in characters.
MAX_USER_CHARS = 300
#: Content tokens in one CLIP window (77 minus the start and end tokens).
CLIP_CONTENT_TOKENS = 75
#: Always appended to the positive prompt (tag style that works on SD 1.5 anime models).
STYLE_TAGS = (
    "anime style, masterpiece, best quality, highly detailed, clear face, soft lighting"
)
#: Base negative prompt; negated words from the description are appended.
NEGATIVE_PROMPT = (
    "lowres, bad anatomy, bad hands, extra fingers, missing fingers, blurry, worst quality, "
    "low quality, jpeg artifacts, watermark, signature, text, cropped, deformed"
)

#: A run of CJK ideographs, or one word of any other script (letters/digits, inner ' or -).
_TOKEN_RE = re.compile(
    rf"(?P<cjk>[{CJK_CLASS}]+)|(?P<word>[^\W_{CJK_CLASS}]+(?:['-][^\W_{CJK_CLASS}]+)*)"
)
_ESTIMATE_RE = re.compile(r"[A-Za-z0-9]+|\S")

#: Kinds a pending colour / English modifier attaches to.
_MODIFIABLE: frozenset[Kind] = frozenset(
    {Kind.SUBJECT, Kind.HAIR, Kind.EYES, Kind.FEATURE, Kind.CLOTHING, Kind.OBJECT}
    | SCENE_KINDS
)
#: Attribute roles: "pre" before the subject noun, "with ..." / "wearing ...",
#: "unknown" (passed-through words) and "loose" (a known modifier left over).
_Role = Literal["pre", "with", "wearing", "unknown", "loose"]


def estimate_clip_tokens(text: str) -> int:
    """Upper-leaning estimate of how many CLIP BPE tokens ``text`` needs.

    The real tokenizer's vocabulary is not available offline, so this counts
    one token per punctuation mark, one per started 5 letters of an ASCII word
    (common words are one token; rare ones split) and one per UTF-8 byte of any
    other character (the byte-level BPE worst case).
    """
    total = 0
    for match in _ESTIMATE_RE.finditer(text):
        piece = match.group()
        if piece.isascii():
            total += math.ceil(len(piece) / 5)
        else:
            total += len(piece.encode("utf-8", "surrogatepass"))
    return total


# --------------------------------------------------------------------------
# Tokenising
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    """One lexicon match, one unknown run, or a break (punctuation)."""

    kind: Kind | None  #: None = unknown word(s)
    text: str  #: English for lexicon matches and translated words, the original text for unknown runs
    entry: Entry | None = None
    latin: bool = False  #: from a space-separated script (modifier merging applies)
    is_break: bool = False
    source: str = ""  #: the words as written (for conjunctions and untranslated reports)
    noun: bool = False  #: a translated noun outside the lexicon
    modifier: bool = False  #: a translated adjective outside the lexicon (modifies the next noun)
    untranslated: bool = False  #: Chinese nothing could translate: reported, never rendered
    translated: bool = False  #: Chinese translated with the dictionary (the card shows it as written, not in English)


_BREAK = _Token(kind=None, text="", is_break=True)


def _clean(text: str) -> str:
    """Bound (at a word boundary), normalise (NFKC: full-width -> ASCII) and trim a description."""
    text = _cut(unicodedata.normalize("NFKC", _cut(text, MAX_INPUT_CHARS)), MAX_INPUT_CHARS)
    return text.replace("\u2019", "'").strip()


_WORD_TAIL = re.compile(r"[^\W_" + CJK_CLASS + r"]+$")


def _cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters without splitting a word (CJK text may be cut anywhere)."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    if _WORD_TAIL.match(text[limit]):
        head = _WORD_TAIL.sub("", head) or head  # one word longer than the limit is cut, not dropped
    return head


def _match_words(words: Sequence[str]) -> Iterator[_Token]:
    """Longest phrase match over one run of words; unknown words stay together."""
    start = unknown_from = 0
    while start < len(words):
        for size in range(min(EN_MAX_WORDS, len(words) - start), 0, -1):
            entry = EN_INDEX.get(tuple(words[start : start + size]))
            if entry is not None:
                break
        else:
            start += 1
            continue
        if unknown_from < start:
            yield _Token(None, " ".join(words[unknown_from:start]), latin=True)
        yield _Token(entry.kind, entry.english, entry, latin=True)
        start += size
        unknown_from = start
    if unknown_from < len(words):
        yield _Token(None, " ".join(words[unknown_from:]), latin=True)


_ADJECTIVE_TAGS = ("a", "b", "z")
_CONJUNCTIONS = frozenset({"和", "与", "跟", "同", "及", "还有", "仲有", "and", "&"})


def _read_zh(run: str) -> Iterator[_Token]:
    """A Chinese run as tokens: lexicon words, translated words (CC-CEDICT) and untranslated pieces."""
    for reading in reader().read(run):
        if reading.entry is not None:
            yield _Token(reading.entry.kind, reading.entry.english, reading.entry, source=reading.text)
        elif reading.untranslated:
            yield _Token(None, reading.text, source=reading.text, untranslated=True)
        elif reading.verb or (reading.pos.startswith("v") and reading.english.endswith("ing")):
            english = gerund(reading.english)
            yield _Token(Kind.ACTION, english, Entry(english, Kind.ACTION, transitive=True), source=reading.text, translated=True)
        elif reading.pos.startswith(_ADJECTIVE_TAGS) and " " not in reading.english:
            yield _Token(None, reading.english, source=reading.text, modifier=True, translated=True)
        else:
            yield _Token(None, reading.english, source=reading.text, noun=True, translated=True)


@lru_cache(maxsize=1)
def _typo_targets() -> dict[str, str]:
    """Single-word English lexicon forms of content words (typo correction targets), by themselves."""
    skip = {Kind.STOP, Kind.ARTICLE, Kind.NEGATION, Kind.LOCATIVE, Kind.NUMBER}
    return {words[0]: words[0] for words, entry in EN_INDEX.items() if len(words) == 1 and entry.kind not in skip}


def _close(a: str, b: str) -> bool:
    """Damerau-Levenshtein distance 1 (one insertion, deletion, substitution or swap of neighbours)."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long = sorted((a, b), key=len)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def fix_typo(word: str) -> str:
    """A lexicon word for an obvious typo of one ("gril" -> "girl", "forrest" -> "forest"), else ``word``.

    Only words of four letters or more that are neither lexicon forms nor
    English words (any word used in a CC-CEDICT gloss) are corrected, and only
    when exactly one lexicon word is one edit away.
    """
    if len(word) < 4 or not word.isalpha() or (word,) in EN_INDEX or word in reader().cedict.vocabulary:
        return word
    matches = [target for target in _typo_targets() if _close(word, target)]
    return matches[0] if len(matches) == 1 else word


def _tokenize(text: str) -> list[_Token]:
    """Split into lexicon tokens, unknown runs and breaks (see module doc)."""
    tokens: list[_Token] = []
    words: list[str] = []
    position = 0
    for match in _TOKEN_RE.finditer(text):
        gap = text[position : match.start()]
        position = match.end()
        if words and (match.group("cjk") or (gap and not gap.isspace())):
            tokens.extend(_match_words(words))
            words = []
        if gap and not gap.isspace() and tokens:
            tokens.append(_BREAK)
        if match.group("cjk"):
            tokens.extend(_read_zh(match.group()))
        else:
            words.append(fix_typo(match.group().lower()))
    tokens.extend(_match_words(words))
    return tokens


# --------------------------------------------------------------------------
# Assembling
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Subject:
    """One subject: its noun (plural when counted), the number word, whether it takes "a"/"an"."""

    noun: str
    number: str = ""
    singular: bool = True
    adjectives: tuple[str, ...] = ()  #: modifiers said right before this noun ("white" in "a white cat and a black dog")

    @property
    def text(self) -> str:
        return f"{self.number} {self.noun}" if self.number else self.noun


@dataclass
class _Parts:
    """The parse with enough detail to render it well."""

    subjects: list[_Subject] = field(default_factory=list)
    attributes: list[tuple[_Role, str]] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    scene: list[str] = field(default_factory=list)
    negated: list[str] = field(default_factory=list)
    untranslated: list[str] = field(default_factory=list)
    glossary: dict[str, str] = field(default_factory=dict)  #: dictionary translations: English -> Chinese as written

    def empty(self) -> bool:
        return not (self.subjects or self.attributes or self.actions or self.scene)

    def role(self, *roles: _Role) -> list[str]:
        return [text for role, text in self.attributes if role in roles]

    def words(self) -> set[str]:
        """Every English word of the parse (for checking a whole-sentence translation against it)."""
        found = {s.noun for s in self.subjects} | {text for _, text in self.attributes} | {*self.actions, *self.scene}
        return {plural_stem(word) for phrase in found for word in re.findall(r"[a-z]+", phrase.lower())} - _GLUE

    def has_cjk(self) -> bool:
        found = [s.noun for s in self.subjects] + [t for _, t in self.attributes] + self.actions + self.scene
        return any(CJK_RE.search(phrase) for phrase in found)


def _article(phrase: str) -> str:
    first = phrase.split(" ", 1)[0]
    vowel = first[:1] in "aeiou" and not first.startswith(("uni", "use", "one"))
    return "an" if vowel else "a"


def _split_article(phrase: str) -> tuple[str, str]:
    for article in ("a ", "an ", "the "):
        if phrase.startswith(article):
            return article.strip(), phrase[len(article) :]
    return "", phrase


def _modify(kind: Kind, phrase: str, modifiers: list[str]) -> str:
    """Attach pending modifiers: "long hair" + blue -> "long blue hair"; "a dress" + red -> "a red dress"."""
    if not modifiers:
        return phrase
    if kind is Kind.HAIR:
        modifiers = [HAIR_COLOR_NAMES.get(m, m) for m in modifiers]
    modifier = " ".join(modifiers)
    if kind in (Kind.HAIR, Kind.EYES):
        head, _, last = phrase.rpartition(" ")
        return " ".join(filter(None, (head, modifier, last)))
    article, rest = _split_article(phrase)
    modified = f"{modifier} {rest}"
    if article in ("a", "an"):
        return f"{_article(modified)} {modified}"
    return f"{article} {modified}" if article else modified


_GLUE = frozenset({"a", "an", "the", "with", "wearing", "and", "of", "at", "in", "on"})


def plural_stem(word: str) -> str:
    """A crude singular (cats -> cat, foxes -> fox) so two readings compare word for word."""
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "sses")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


class _Assembler:
    """Walks the tokens once, keeping a little state (pending modifiers, number, ...).

    Each token is either set aside (:meth:`_aside`: it changes no context), a
    break, a grammar word that sets context for what follows, a modifier of
    the next noun, a negated word, or a content word put where it belongs
    (:meth:`_content`).
    """

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.conjunction = False
        self.parts = _Parts()
        self.modifiers: list[str] = []
        self.number = ""
        self.negate = False
        self.locative = False
        self.article = ""
        self.awaiting_object = False

    _previous: _Token | None = None

    def run(self) -> _Parts:
        for index, token in enumerate(self.tokens):
            self._step(index, token)
            self._previous = token
        self._flush_modifiers()
        return self._finish()

    def _step(self, index: int, token: _Token) -> None:
        if self._aside(token):
            return
        self._read(index, token)
        if token.kind is not Kind.STOP:
            self.conjunction = False

    def _aside(self, token: _Token) -> bool:
        """Tokens that leave the conjunction as it is: untranslated words, "and", translated modifiers, a negated
        unknown word. True when ``token`` was one of them (and is dealt with)."""
        if token.untranslated:
            self.parts.untranslated.append(token.source)
            return True
        if token.translated:
            self.parts.glossary.setdefault(token.text, token.source)
        if token.source in _CONJUNCTIONS or (token.latin and token.text == "and"):
            self.conjunction = True
            return True
        if token.modifier:
            self.modifiers.append(token.text)
            return True
        if self.negate and token.kind is None and not token.is_break:
            self._negated(Kind.OBJECT, token.text)
            return True
        return False

    def _read(self, index: int, token: _Token) -> None:
        if token.is_break:
            self._flush_modifiers()
            self.number, self.negate = "", False
            self._reset_context()
        elif self._grammar_word(token):
            pass
        elif token.kind is Kind.COLOR or (token.kind is None and token.latin and self._modifies_next(index)):
            self.modifiers.append(token.text)
        elif self.negate and token.kind is not None:
            self._negated(token.kind, token.text)
        else:
            self.negate = False
            self._content(token)

    def _grammar_word(self, token: _Token) -> bool:
        """A word that only sets context for what follows (article, 在/in, negation, number) or says nothing (filler)."""
        kind = token.kind
        if kind is Kind.ARTICLE:
            self.article = token.text
        elif kind is Kind.LOCATIVE:
            self.locative = True
        elif kind is Kind.NEGATION:
            self.negate = True
        elif kind is Kind.NUMBER:
            self.number = token.text
        else:
            return kind is Kind.STOP
        return True

    def _negated(self, kind: Kind, text: str) -> None:
        """A negated word (with its modifiers) goes to the negative prompt, without its article."""
        self.parts.negated.append(_split_article(_modify(kind, text, self.modifiers))[1])
        self.modifiers = []
        self.negate = False
        self._reset_context()

    def _modifies_next(self, index: int) -> bool:
        """An unknown English word right before a noun or colour modifies it ("sparkly dress")."""
        if index + 1 >= len(self.tokens):
            return False
        after = self.tokens[index + 1]
        return after.latin and (after.kind is Kind.COLOR or after.kind in _MODIFIABLE or after.kind is Kind.ADJECTIVE)

    def _content(self, token: _Token) -> None:
        """A content word: put where it belongs; then the context is spent (an action may await its object)."""
        if token.kind not in _MODIFIABLE:
            self._flush_modifiers()
        transitive = self._place(token)
        self.modifiers = []
        self._reset_context()
        self.awaiting_object = transitive

    def _place(self, token: _Token) -> bool:
        """Put a content word in the parse; True for an action that takes an object."""
        match token.kind:
            case Kind.SUBJECT:
                self._subject(token)
            case Kind.ACTION:
                assert token.entry is not None
                self.parts.actions.append(token.text)
                return token.entry.transitive
            case Kind.ADJECTIVE:
                self.parts.attributes.append(("pre", token.text))
            case Kind.HAIR | Kind.EYES | Kind.FEATURE | Kind.CLOTHING | Kind.OBJECT as kind:
                self._attribute(kind, token.text)
            case Kind() as kind if kind in SCENE_KINDS:
                self._scene(kind, token.text)
            case _:
                self._other(token)
        return False

    def _subject(self, token: _Token) -> None:
        """A lexicon subject: the object of the action before it, another subject, or the subject."""
        assert token.entry is not None
        parts = self.parts
        many = bool(self.number) or token.entry.is_plural
        noun = token.entry.plural if many else token.text
        if self.awaiting_object and parts.actions:
            parts.actions[-1] = f"{parts.actions[-1]} {self._counted(noun, many)}"
        elif parts.subjects:
            parts.subjects.append(_Subject(noun, self.number, not many, tuple(self.modifiers)))
        else:
            parts.attributes.extend(("pre", m) for m in self.modifiers)
            parts.subjects.append(_Subject(noun, self.number, not many))
        self.number = ""

    def _counted(self, noun: str, many: bool) -> str:
        """``noun`` as an action's object, with its number or article and its modifiers ("a white cat", "two cats")."""
        if self.modifiers:
            return f"{self.number or _article(self.modifiers[0])} {' '.join(self.modifiers)} {noun}"
        if self.number:
            return f"{self.number} {noun}"
        return noun if many else f"{_article(noun)} {noun}"

    def _attribute(self, kind: Kind, text: str) -> None:
        """Hair, eyes and features go "with ...", clothing "wearing ...", an object to the action awaiting it."""
        parts = self.parts
        phrase = _modify(kind, text, self.modifiers)
        if kind in (Kind.HAIR, Kind.EYES):
            if phrase not in ("hair", "eyes"):  # a bare "hair" adds nothing
                parts.attributes.append(("with", phrase))
        elif kind is Kind.CLOTHING:
            parts.attributes.append(("wearing", phrase))
        elif kind is Kind.OBJECT and self.awaiting_object:
            parts.actions[-1] = f"{parts.actions[-1]} {phrase}"
        else:
            parts.attributes.append(("with", phrase))

    def _scene(self, kind: Kind, text: str) -> None:
        """A place, weather or time: the object of "looking at" and the like, else a scene tag."""
        parts = self.parts
        phrase = _modify(kind, text, self.modifiers)
        if self.awaiting_object and parts.actions[-1].endswith(" at"):
            parts.actions[-1] = f"{parts.actions[-1]} the {phrase}"
        else:
            parts.scene.append(phrase)

    def _other(self, token: _Token) -> None:
        """A word outside the lexicon: a translated noun, unknown English, an action's object, a place or an unknown."""
        parts, text = self.parts, token.text
        if token.noun:
            self._noun(token)
        elif token.kind is None and token.latin and self._unknown_english(token):
            pass
        elif self.awaiting_object:
            obj = f"{self.article} {text}" if self.article and token.latin else text
            if self.number:
                obj = f"{self.number} {plural(text)}"
                self.number = ""
            parts.actions[-1] = f"{parts.actions[-1]} {obj}"
        elif self.locative:
            parts.scene.append(text)
        else:
            parts.attributes.append(("unknown", text))

    def _noun(self, token: _Token) -> None:
        """A translated noun outside the lexicon: an object, a place, the subject, another subject, or "with ..."."""
        parts = self.parts
        noun = plural(token.text) if self.number else token.text
        phrase = " ".join([*self.modifiers, noun])
        if self.awaiting_object and parts.actions:
            parts.actions[-1] = " ".join(filter(None, (parts.actions[-1], self.number, phrase)))
        elif self.locative:
            parts.scene.append(phrase)
        elif not parts.subjects or self.conjunction or self.number:
            if not parts.subjects:
                parts.attributes.extend(("pre", m) for m in self.modifiers)
                parts.subjects.append(_Subject(noun, self.number, not self.number))
            else:
                parts.subjects.append(_Subject(noun, self.number, not self.number, tuple(self.modifiers)))
        else:
            parts.attributes.append(("with", phrase))
        self.number = ""

    def _unknown_english(self, token: _Token) -> bool:
        """Unknown English words: verbs in -ing are actions, a counted word is a subject, a word after the subject
        noun joins it ("fox spirit"). False when none applies (the word is kept as before)."""
        parts, text = self.parts, token.text
        words = text.split()
        if words[-1].endswith("ing") and len(words[-1]) > 4 and not self.locative:
            parts.actions.append(text)
            return True
        if self.number and not self.locative and not self.awaiting_object:
            parts.subjects.append(_Subject(" ".join([*self.modifiers, text]), self.number, False))
            self.number = ""
            return True
        if parts.subjects and self._follows_subject and not self.locative and not self.awaiting_object and not self.modifiers:
            last = parts.subjects[-1]
            parts.subjects[-1] = _Subject(f"{last.noun} {text}", last.number, last.singular, last.adjectives)
            return True
        return False

    @property
    def _follows_subject(self) -> bool:
        return self._previous is not None and self._previous.kind is Kind.SUBJECT

    def _flush_modifiers(self) -> None:
        """Modifiers that found no noun are kept as loose tags, not dropped."""
        if self.modifiers:
            self.parts.attributes.append(("loose", " ".join(self.modifiers)))
            self.modifiers = []

    def _reset_context(self) -> None:
        self.locative = False
        self.article = ""
        self.awaiting_object = False

    def _finish(self) -> _Parts:
        parts = self.parts
        parts.actions = [a.removesuffix(" at") for a in parts.actions]
        if not parts.subjects:
            unknown = parts.role("unknown")
            if unknown:
                parts.subjects.append(_Subject(unknown[0], singular=False))
                parts.attributes.remove(("unknown", unknown[0]))
        parts.subjects = list(dict.fromkeys(parts.subjects))
        parts.attributes = list(dict.fromkeys(parts.attributes))
        parts.actions = list(dict.fromkeys(parts.actions))
        parts.scene = list(dict.fromkeys(parts.scene))
        parts.negated = list(dict.fromkeys(parts.negated))
        parts.untranslated = list(dict.fromkeys(parts.untranslated))
        return parts


def _parse_parts(text: str) -> _Parts:
    return _Assembler(_tokenize(text)).run()


def _noun_phrase(subject: _Subject, adjectives: list[str]) -> str:
    words = " ".join([*adjectives, *subject.adjectives, subject.noun])
    determiner = subject.number or (_article(words) if subject.singular else "")
    return f"{determiner} {words}" if determiner else words


def _to_parsed(parts: _Parts) -> ParsedDescription:
    attributes = tuple(
        f"wearing {text}" if role == "wearing" else text
        for role, text in parts.attributes
    )
    return ParsedDescription(
        subject=" and ".join(
            [" ".join([*parts.subjects[0].adjectives, parts.subjects[0].text]) for _ in parts.subjects[:1]]
            + [_noun_phrase(s, []) for s in parts.subjects[1:]]
        ),
        attributes=attributes,
        action=" and ".join(parts.actions),
        scene=tuple(parts.scene),
    )


# --------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------


def _phrases(parts: _Parts) -> list[str]:
    """Prompt phrases, most important first: the subject phrase, scene tags, loose words."""
    with_, wearing, actions = parts.role("with"), parts.role("wearing"), parts.actions
    if parts.subjects:
        first, *others = parts.subjects
        head = " and ".join(
            [
                _noun_phrase(first, parts.role("pre")),
                *(_noun_phrase(s, []) for s in others),
            ]
        )
        if with_:
            head += " with " + " and ".join(with_)
        if wearing:
            head += " wearing " + " and ".join(wearing)
        if actions:
            head += " " + " and ".join(actions)
        phrases = [head]
    else:
        phrases = [
            *parts.role("pre"),
            *with_,
            *(f"wearing {w}" for w in wearing),
            *actions,
        ] or ["scenery"]
    return [*phrases, *parts.scene, *parts.role("unknown", "loose")]


def _fit(text: str, budget: int, max_chars: int) -> str:
    """The longest prefix of ``text`` (whole words, or characters of one long word) within both limits."""
    kept = ""
    for word in text.split(" "):
        candidate = f"{kept} {word}" if kept else word
        if estimate_clip_tokens(candidate) <= budget and len(candidate) <= max_chars:
            kept = candidate
            continue
        if not kept:
            for char in word:
                if (
                    estimate_clip_tokens(kept + char) > budget
                    or len(kept) + 1 > max_chars
                ):
                    break
                kept += char
        break
    return kept


def _bounded_join(phrases: list[str], budget: int, max_chars: int) -> str:
    """Join phrases with ", " while they fit; the first one is shortened rather than dropped."""
    joined = ""
    for phrase in phrases:
        candidate = f"{joined}, {phrase}" if joined else phrase
        if estimate_clip_tokens(candidate) <= budget and len(candidate) <= max_chars:
            joined = candidate
        elif not joined:
            joined = _fit(phrase, budget, max_chars)
    return joined


#: Tokens left for the user part: the window minus the style tags and the joining comma.
_USER_BUDGET = CLIP_CONTENT_TOKENS - estimate_clip_tokens(STYLE_TAGS) - 1
_NEGATIVE_BUDGET = CLIP_CONTENT_TOKENS - estimate_clip_tokens(NEGATIVE_PROMPT) - 1


def _without_cjk(phrases: list[str]) -> list[str]:
    """The phrases with every CJK character taken out (CLIP cannot read them), the empty ones dropped."""
    return [p for p in (" ".join(CJK_RE.sub(" ", phrase).split()) for phrase in phrases) if p]


def _render(parts: _Parts) -> tuple[str, str]:
    user = _bounded_join(_without_cjk(_phrases(parts)), _USER_BUDGET, MAX_USER_CHARS)
    positive = f"{user}, {STYLE_TAGS}" if user else STYLE_TAGS
    negated = _bounded_join(_without_cjk(parts.negated), _NEGATIVE_BUDGET, MAX_USER_CHARS)
    negative = f"{NEGATIVE_PROMPT}, {negated}" if negated else NEGATIVE_PROMPT
    return positive, negative


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def _detect_language(text: str) -> str:
    return "zh" if CJK_RE.search(text) else "en"


def _has_words(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


def parse_description(text: str, language: str) -> ParsedDescription:
    """Split a description into subject, attributes, action and scene (English phrases).

    ``language`` is the description's language code ("zh", "yue", "en", ...).
    Parsing is driven by script, not by the label, so mixed Chinese/English
    text parses the same whatever the label says; the argument is accepted so
    callers state what they know.

    Only the first :data:`MAX_INPUT_CHARS` characters are read. Raises
    :class:`~engine.errors.EmptyTextError` when nothing usable is left (empty,
    punctuation only, or only filler words such as "please draw").
    """
    parts = _reading(_clean(text))
    if parts.empty():
        raise EmptyTextError()
    return _to_parsed(parts)


def _reading(cleaned: str) -> _Parts:
    """The parse of a cleaned text; empty when it has no words."""
    return _parse_parts(cleaned) if _has_words(cleaned) else _Parts()


def _choose_reading(original: _Parts, translated: _Parts) -> _Parts:
    """A sentence translation's reading when it is usable and keeps everything the word reading understood.

    Small Whisper models translate Mandarin poorly and not even the same way
    twice ("See you in the next episode" for 下雨的晚上城市街道, "blue
    hair-like still" for a blue-haired girl). A translation (Whisper's, or the
    optional MT model's) is used only when its parse contains every concept
    the word-by-word reading found in what the user said — every English word
    of it, and everything negated — (it usually adds what the dictionaries
    do not know); otherwise the reading of the user's own words wins.
    """
    if translated.empty() or translated.has_cjk():
        return original
    keeps = original.words() <= translated.words() and set(original.negated) <= set(translated.negated)
    return translated if keeps else original


_MACHINE: MachineTranslate | None = None
#: How many recent prompts :func:`build_prompt` remembers without a machine translator (the same text is read 2-3 times).
PROMPT_MEMORY = 1024


def warm_up() -> None:
    """Load what the first description would otherwise wait for (jieba, CC-CEDICT, its English words; 1-3 s of CPU).

    The bot calls it in a thread at start, so the first Chinese message or
    English typo does not hold up everyone's events while it loads.
    """
    reader().words("一个女孩")  # jieba and its word tags
    reader().cedict.pinyin("月球")  # CC-CEDICT's entries
    reader().cedict.vocabulary  # noqa: B018 - its English words: loading them is the point


def set_machine_translator(translate: MachineTranslate | None) -> None:
    """Use ``translate`` (e.g. ``MachineTranslator(...).translate``) for Chinese descriptions from now on (``None``: off).

    Set once at startup by :mod:`bot.factory` when ``MT_MODEL`` is configured.
    A failing model is logged and the dictionary reading used instead.
    """
    global _MACHINE
    _MACHINE = translate


def _machine_reading(cleaned: str, machine: MachineTranslate | None, strict: bool) -> _Parts:
    if machine is None or not CJK_RE.search(cleaned):
        return _Parts()
    try:
        english = machine(cleaned)
    except Exception:
        if strict:
            raise
        log.warning("machine translation failed; using the dictionary reading", exc_info=True)
        return _Parts()
    english = _clean(english)
    return _reading(english) if english.isascii() else _Parts()


def _best_reading(cleaned: str, original: _Parts, translation: str | None, machine: MachineTranslate | None) -> _Parts:
    """The reading to draw: ``original`` (the user's words), or a translation's that keeps all of it
    (:func:`_choose_reading`): Whisper's ``translation`` first, else the machine translator's."""
    parts = _choose_reading(original, _reading(_clean(translation or "")))
    if parts is original and (machine is not None or _MACHINE is not None):
        parts = _choose_reading(original, _machine_reading(cleaned, machine or _MACHINE, strict=machine is not None))
    return parts


def build_prompt(
    description: str,
    *,
    translation: str | None = None,
    language: str | None = None,
    machine: MachineTranslate | None = None,
) -> Prompt:
    """Build the Stable Diffusion prompt for a description.

    ``translation`` is Whisper's English translation of the same speech and
    ``machine`` a whole-sentence translator (default: the one set with
    :func:`set_machine_translator`, if any); a translation that gives a usable
    parse keeping everything the word reading understood of ``description``
    is preferred (see :func:`_choose_reading`). The description stays in
    :attr:`Prompt.description` (trimmed and cut to :data:`MAX_INPUT_CHARS`).
    ``language`` is the description's language ("zh", "yue", "en", ...);
    without it, any CJK ideograph means "zh", anything else "en".

    The positive prompt is the user's part (bounded to fit the CLIP window
    and :data:`MAX_USER_CHARS`) followed by :data:`STYLE_TAGS`, never with a
    CJK character in it; the negative prompt is :data:`NEGATIVE_PROMPT` plus
    anything the user negated ("no glasses", 不要帽子). Chinese words nothing
    could translate are listed in :attr:`Prompt.untranslated` (for the card).
    Deterministic: the same input gives the same prompt.

    Raises :class:`~engine.errors.EmptyTextError` when the description has no
    usable words.
    """
    if machine is None and _MACHINE is None:  # pure: a card, its Draw and its job share one reading
        return _remembered_prompt(description, translation, language)
    return _build(description, translation, language, machine)


@lru_cache(maxsize=PROMPT_MEMORY)
def _remembered_prompt(description: str, translation: str | None, language: str | None) -> Prompt:
    return _build(description, translation, language, None)


def _build(description: str, translation: str | None, language: str | None, machine: MachineTranslate | None) -> Prompt:
    drawn, aspect = split_aspect(description)
    if translation:
        translation, _ = split_aspect(translation)
    cleaned = _clean(drawn)
    if not _has_words(cleaned):
        raise EmptyTextError()
    original = _parse_parts(cleaned)
    parts = _best_reading(cleaned, original, translation, machine)
    own = parts is original  # the user's own words are drawn: the card names what could not be translated
    untranslated = tuple(original.untranslated) if own else ()
    glossary = tuple(original.glossary.items()) if own else ()
    if parts.empty() and not untranslated:
        raise EmptyTextError()
    positive, negative = _render(parts)
    return Prompt(
        description=_cut(description.strip(), MAX_INPUT_CHARS).strip(),
        language=(language or "").strip().lower() or _detect_language(cleaned),
        parsed=_to_parsed(parts),
        positive=positive,
        negative=negative,
        untranslated=untranslated,
        glossary=glossary,
        aspect=aspect,
    )
