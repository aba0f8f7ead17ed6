"""Content policy for descriptions: the term list and the text matcher.

Descriptions (:class:`PromptChecker`) are checked before anything is
queued, against a term list shipped as data (``engine/policy/terms.txt``, its
format is described at its top; operators add their own with
``POLICY_TERMS_FILE``). The text is normalised first and read in several
*views*, each mapped back to the characters the user wrote, so a hit can be
shown as it was written: case, full/half width and accents (NFKC, NFKD),
invisible characters, look-alike Cyrillic/Greek letters, Traditional ->
Simplified (OpenCC, length-preserving), leetspeak (``p0rn``), separators
between single letters or inside a word (``n.s.f.w``, ``n s f w``, ``nu-de``,
``色 情``) and stretched letters (``nuuude``). One Aho-Corasick automaton
(pyahocorasick) finds every term in every view; Latin terms count only as
whole words (the Scunthorpe problem: "analysis", "therapist", "Essex" are
fine), Chinese terms anywhere or, marked ``~``, only where a word starts.
What the description asks to leave out is checked too ("a girl without
clothes" puts "clothes" in the negative prompt, which draws her nude).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from engine.language.chinese import CJK_CLASS, CJK_RE
from engine.policy.ages import child_ages
from engine.policy.levels import ALLOWED, Hit, Level, Verdict, effective_level, off_allowed

if TYPE_CHECKING:

    from engine.api import Prompt

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------
# The term list
# --------------------------------------------------------------------------

#: The list shipped with the project.
TERMS_FILE = Path(__file__).with_name("terms.txt")
#: Special sections of the term list.
MINOR, BODY, ALLOW, NEGATED, NEGATIVE = "minor", "body", "allow", "negated", "negative"
#: Sections that refuse nothing by themselves (children's words, body words, exceptions).
_UNLEVELLED = (MINOR, BODY, ALLOW)
#: A word for a child (or an age under 18) together with one of these refuses at every level, as this category.
SEXUAL_CATEGORIES = frozenset({"sexual", "suggestive", BODY})
MINORS_CATEGORY = "sexual_minors"
#: The term a child's age is reported as (the hit's ``found`` is the age as written).
AGE_TERM = "age under 18"

_HEADER = re.compile(r"^\[\s*([a-z_]+)\s*(?::\s*([a-z ,]*))?\]$")


class TermListError(ValueError):
    """A term file that cannot be read (the message names the file and line); the CLI exits with 2."""

    exit_code = 2


@dataclass(frozen=True)
class TermList:
    """The parsed list: terms per category, the levels each category refuses at, exceptions, negative prompt terms."""

    #: category -> levels at which a hit refuses
    categories: Mapping[str, frozenset[Level]] = field(default_factory=dict)
    #: category -> terms as written (markers included: ``porn*``, ``~色图``)
    terms: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    allow: tuple[str, ...] = ()
    negated: tuple[str, ...] = ()
    negated_levels: frozenset[Level] = frozenset()
    negative: Mapping[Level, tuple[str, ...]] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """How many terms refuse something (children's words, exceptions and negative prompt terms aside)."""
        return sum(len(terms) for category, terms in self.terms.items() if category not in _UNLEVELLED) + len(self.negated)

    @classmethod
    def parse(cls, text: str, source: str = "<terms>", base: TermList | None = None) -> TermList:
        """Read a term file (see the format at the top of ``terms.txt``), on top of ``base`` when given."""
        categories = {k: set(v) for k, v in (base.categories if base else {}).items()}
        terms: dict[str, list[str]] = {k: list(v) for k, v in (base.terms if base else {}).items()}
        allow = list(base.allow if base else ())
        negated = list(base.negated if base else ())
        negated_levels = set(base.negated_levels if base else ())
        negative = {k: list(v) for k, v in (base.negative if base else {}).items()}
        section: str | None = None
        levels: set[Level] = set()
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            header = _HEADER.match(line)
            if header:
                section = header.group(1)
                try:
                    levels = {Level(word) for word in (header.group(2) or "").replace(",", " ").split()}
                except ValueError:
                    raise TermListError(f"{source}:{number}: levels are strict, standard, off ({line!r})") from None
                if section in _UNLEVELLED and levels:
                    raise TermListError(f"{source}:{number}: [{section}] takes no levels")
                if section == NEGATED:
                    negated_levels |= levels
                elif section not in (*_UNLEVELLED, NEGATIVE):
                    categories.setdefault(section, set()).update(levels)
                    terms.setdefault(section, [])
                continue
            if section is None:
                raise TermListError(f"{source}:{number}: a term before any [section] header")
            if section == NEGATIVE:
                for level in levels:
                    negative.setdefault(level, []).append(line)
                continue
            bucket = allow if section == ALLOW else negated if section == NEGATED else terms.setdefault(section, [])
            if line.startswith("-") and len(line) > 1:
                removed = line[1:].strip()
                for values in (bucket, *terms.values()):
                    while removed in values:
                        values.remove(removed)
                continue
            if line not in bucket:
                bucket.append(line)
        return cls(
            categories={k: frozenset(v) for k, v in categories.items()},
            terms={k: tuple(v) for k, v in terms.items()},
            allow=tuple(allow),
            negated=tuple(negated),
            negated_levels=frozenset(negated_levels),
            negative={k: tuple(v) for k, v in negative.items()},
        )

    @classmethod
    def load(cls, extra: Path | None = None) -> TermList:
        """The shipped list, plus the operator's file ``extra`` (``POLICY_TERMS_FILE``) when given."""
        terms = cls.parse(TERMS_FILE.read_text(encoding="utf-8"), str(TERMS_FILE))
        if extra is not None:
            try:
                text = Path(extra).read_text(encoding="utf-8")
            except OSError as error:
                raise TermListError(f"POLICY_TERMS_FILE {extra}: cannot be read ({error.strerror or error})") from error
            terms = cls.parse(text, str(extra), base=terms)
        return terms


# --------------------------------------------------------------------------
# Normalisation: views of a text, each mapped back to the original characters
# --------------------------------------------------------------------------

#: Letters that look like Latin ones (Cyrillic, Greek), written as the Latin letter.
_CONFUSABLES = str.maketrans(
    {
        # Cyrillic
        "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t",
        "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w",
        # Greek
        "α": "a", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x",
        # Latin look-alikes
        "ɡ": "g", "ı": "i",
    }
)
#: Leetspeak digits and symbols, read as letters inside a word.
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "@": "a", "$": "s", "!": "i", "|": "l", "+": "t"})
_LEET_CHARS = "0134578@$!|+"
_LATIN = re.compile(r"[a-z0-9]")
#: A word of Latin letters and digits, with leetspeak symbols inside it.
_LEET_WORD = re.compile(r"[a-z0-9@$!|+]*[a-z][a-z0-9@$!|+]*")
#: A Latin letter or digit, or a Chinese character: what the separator rules look at.
_UNIT = re.compile(f"[a-z0-9]+|[{CJK_CLASS}]+")
#: Separators removed inside a Latin word ("nu-de", "p.orn", "s_e_x") or between Chinese characters ("色.情"; not commas).
_INNER_SEPARATORS = re.compile(
    rf"(?<=[a-z0-9])[.\-_*·~/\\'`^:,;]{{1,3}}(?=[a-z0-9])|(?<=[{CJK_CLASS}])[.\-_*·~/\\'`^|+]{{1,3}}(?=[{CJK_CLASS}])"
)
_STRETCHED = re.compile(r"([a-z])\1{2,}")


@dataclass(frozen=True)
class _View:
    """A normalised reading of a text; ``index[i]`` is the original position of character ``i``."""

    text: str
    index: tuple[int, ...]

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """The original characters behind ``text[start:end]``."""
        return self.index[start], self.index[end - 1] + 1


@lru_cache(maxsize=8192)
def _fold(char: str) -> str:
    """One character as the matcher reads it: compatibility forms, accents, case and confusables folded; controls gone."""
    form = unicodedata.normalize("NFKC", char)
    form = "".join(c for c in unicodedata.normalize("NFKD", form) if not unicodedata.combining(c))
    kept = "".join(c for c in form if unicodedata.category(c) not in ("Cf", "Cc"))  # zero-width joiners, soft hyphens
    return "".join(" " if folded.isspace() else folded for folded in kept.casefold().translate(_CONFUSABLES))


def _base_view(text: str) -> _View:
    from engine.language.chinese import simplified

    chars: list[str] = []
    index: list[int] = []
    for position, char in enumerate(text):
        if char.isspace():
            if chars and chars[-1] != " ":
                chars.append(" ")
                index.append(position)
            continue
        for folded in _fold(char):
            chars.append(folded)
            index.append(position)
    joined = "".join(chars)
    converted = simplified(joined)  # length-preserving (unchanged when OpenCC would change the length)
    return _View(converted if len(converted) == len(joined) else joined, tuple(index))


def _leet(view: _View) -> _View:
    """Leetspeak inside words that have a letter ("p0rn", "s3x"); a symbol ending a word stays ("wow!")."""
    chars = list(view.text)
    for match in _LEET_WORD.finditer(view.text):
        word = match.group().rstrip("@$!|+")
        for offset, char in enumerate(word):
            if char in _LEET_CHARS:
                chars[match.start() + offset] = char.translate(_LEET)
    return _View("".join(chars), view.index)


#: English words of one letter: a spelled-out term may follow or precede one ("a n u d e girl").
_ONE_LETTER_WORDS = frozenset("ai")


def _collapse(view: _View, *, keep_one_letter_words: bool = False) -> _View:
    """Separators removed where they split a word: between single letters ("n s f w", "色 情") and inside a word ("nu-de").

    Runs of at least three single Latin characters (two Chinese ones) with
    separators between them are joined; "a red, big cat" is left alone. With
    ``keep_one_letter_words`` an "a" or "i" at either end of a run stays a
    word of its own ("a s e x y girl" -> "a sexy girl").
    """
    text = view.text
    drop = [False] * len(text)
    units = list(_UNIT.finditer(text))
    run: list[re.Match[str]] = []

    def flush() -> None:
        if keep_one_letter_words and len(run) >= 4 and run[0].group() in _ONE_LETTER_WORDS:
            run.pop(0)
        if keep_one_letter_words and len(run) >= 4 and run[-1].group() in _ONE_LETTER_WORDS:
            run.pop()
        if run and len(run) >= (2 if CJK_RE.match(run[0].group()) else 3):
            for left, right in zip(run, run[1:], strict=False):
                for i in range(left.end(), right.start()):
                    drop[i] = True
        run.clear()

    for unit in units:
        single = len(unit.group()) == 1
        gap = text[run[-1].end() : unit.start()] if run else ""
        same_kind = bool(run) and bool(CJK_RE.match(run[-1].group())) == bool(CJK_RE.match(unit.group()))
        if single and run and same_kind and 0 < len(gap) <= 3 and not any(c.isalnum() for c in gap):
            run.append(unit)
            continue
        flush()
        if single:
            run.append(unit)
    flush()
    for match in _INNER_SEPARATORS.finditer(text):
        for i in range(match.start(), match.end()):
            drop[i] = True
    kept = [i for i in range(len(text)) if not drop[i]]
    return _View("".join(text[i] for i in kept), tuple(view.index[i] for i in kept))


def _squeeze(view: _View, keep: int) -> _View:
    """Letters repeated three times or more cut to ``keep`` ("nuuude" -> "nude", "boooobs" -> "boobs")."""
    kept: list[int] = []
    position = 0
    for match in _STRETCHED.finditer(view.text):
        kept.extend(range(position, match.start() + keep))
        position = match.end()
    kept.extend(range(position, len(view.text)))
    if len(kept) == len(view.text):
        return view
    return _View("".join(view.text[i] for i in kept), tuple(view.index[i] for i in kept))


def views(text: str) -> list[_View]:
    """Every reading of ``text`` the matcher looks at (duplicates dropped)."""
    base = _base_view(text)
    collapsed = _collapse(base)
    leet_collapsed = _leet(collapsed)
    worded = _collapse(base, keep_one_letter_words=True)
    found: dict[str, _View] = {}
    for view in (
        base, _leet(base), collapsed, leet_collapsed, _squeeze(leet_collapsed, 1), _squeeze(leet_collapsed, 2), worded, _leet(worded)
    ):
        found.setdefault(view.text, view)
    return list(found.values())


def normalise(term: str) -> str:
    """A term as the matcher stores it (the base view of its text)."""
    return _base_view(term).text.strip()


# --------------------------------------------------------------------------
# Matching
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    category: str
    term: str
    key: str
    prefix: bool
    word_start: bool
    whole_word: bool


_NEGATIONS = re.compile(r"(?:\b(?:no|not|without|never|non)[\s-]+|(?:不要|不能|没有|没|不|别|无|非)\s*)$", re.IGNORECASE)


#: How many recent verdicts a checker remembers (the same description is checked two or three times).
VERDICT_MEMORY = 1024


class PromptChecker:
    """Finds the term list's terms in descriptions and prompts (thread-safe after construction)."""

    def __init__(self, terms: TermList | None = None) -> None:
        import ahocorasick

        self.terms = terms or TermList.load()
        # A description is checked when its card is offered, again on Draw and before the job is queued:
        # verdicts are immutable, so the same question is answered once (bounded; per checker, i.e. per term list).
        self._verdicts = lru_cache(maxsize=VERDICT_MEMORY)(self._judge)
        self._automaton = ahocorasick.Automaton()
        from engine.policy.classifier import SecondCheck

        #: The classifier behind the list (engine/policy/classifier.py): it refuses what the list lets through.
        self.second_check = SecondCheck(self.terms)
        entries: dict[str, list[_Entry]] = {}

        def add(category: str, term: str) -> None:
            word_start = term.startswith("~")
            whole_word = term.startswith("=")
            prefix = term.endswith("*")
            key = normalise(term.lstrip("~=").removesuffix("*"))
            if not key:
                return
            variants = {key}
            if " " in key and _LATIN.search(key):
                variants.add(key.replace(" ", ""))  # "blow job" -> "blowjob"
            for variant in variants:
                entries.setdefault(variant, []).append(_Entry(category, term, variant, prefix, word_start, whole_word))

        for category, terms_of in self.terms.terms.items():
            for term in terms_of:
                add(category, term)
        for term in self.terms.allow:
            add(ALLOW, term)
        for term in self.terms.negated:
            add(NEGATED, term)
        for key, values in entries.items():
            self._automaton.add_word(key, tuple(values))
        if entries:
            self._automaton.make_automaton()
        self._empty = not entries

    # --- finding ---------------------------------------------------------

    def scan(self, text: str, *, negated: bool = False) -> list[Hit]:
        """Every term in ``text`` (all categories, every level), as written, each span once.

        With ``negated`` only the ``[negated]`` terms are looked for (the
        words a description asks to leave out); otherwise those are skipped.
        A term inside an ``[allow]`` phrase ("murder of crows") is not a hit.
        """
        return self._scan(text, negated)[0]

    def _scan(self, text: str, negated: bool = False) -> tuple[list[Hit], set[tuple[str, str]]]:
        """:meth:`scan`, and the (category, term) pairs that were found only inside allowed phrases."""
        if self._empty or not text:
            return [], set()
        hits: dict[tuple[str, str, int, int], Hit] = {}
        allowed: list[tuple[int, int]] = []
        for view in views(text):
            for end, entries in self._automaton.iter(view.text):
                for entry in entries:
                    start = end + 1 - len(entry.key)
                    stop = self._match_end(view.text, start, end + 1, entry)
                    if stop is None or not self._on_boundaries(view.text, start, stop, entry):
                        continue
                    begin, finish = view.original_span(start, stop)
                    if entry.category == ALLOW:
                        allowed.append((begin, finish))
                        continue
                    if (entry.category == NEGATED) != negated:
                        continue
                    hits.setdefault((entry.category, entry.term, begin, finish), Hit(entry.category, entry.term, text[begin:finish], begin, finish))
            if not negated:
                for start, stop in child_ages(view.text):
                    begin, finish = view.original_span(start, stop)
                    hits.setdefault((MINOR, AGE_TERM, begin, finish), Hit(MINOR, AGE_TERM, text[begin:finish], begin, finish))
        kept, excused = [], set()
        spans = {(hit.start, hit.end) for hit in hits.values()}
        for hit in hits.values():
            if any(a <= hit.start and hit.end <= b for a, b in allowed):
                excused.add((hit.category, hit.term))
            elif not any(a <= hit.start and hit.end <= b and (a, b) != (hit.start, hit.end) for a, b in spans):
                kept.append(hit)  # the longest term wins: "sex appeal" is suggestive, not "sex"
        kept.sort(key=lambda hit: (hit.start, hit.end, hit.category))
        return kept, excused - {(hit.category, hit.term) for hit in kept}

    @staticmethod
    def _match_end(text: str, start: int, end: int, entry: _Entry) -> int | None:
        """Where a match of ``entry`` at ``text[start:end]`` ends, or None when it is not a whole word (Latin terms)."""
        key = entry.key
        if _LATIN.match(key[0]) and start > 0 and _LATIN.match(text[start - 1]):
            return None
        if not _LATIN.match(key[-1]) or entry.prefix:
            if entry.prefix:
                while end < len(text) and _LATIN.match(text[end]):
                    end += 1
            return end
        for suffix in ("", "s", "es"):
            stop = end + len(suffix)
            if text[end:stop] == suffix and (stop >= len(text) or not _LATIN.match(text[stop])):
                return stop
        return None

    @classmethod
    def _on_boundaries(cls, text: str, start: int, stop: int, entry: _Entry) -> bool:
        """A ``~`` term starts a word, a ``=`` term starts and ends one (Chinese segmentation); other terms always pass."""
        if entry.whole_word:
            return cls._word_boundary(text, start) and cls._word_boundary(text, stop)
        return not entry.word_start or cls._word_boundary(text, start)

    @staticmethod
    def _word_boundary(text: str, position: int) -> bool:
        """Chinese segmentation (jieba, with the lexicon's words) puts a word boundary at ``position``."""
        if position <= 0 or position >= len(text) or not CJK_RE.match(text[position]) or not CJK_RE.match(text[position - 1]):
            return True
        run_start = position
        while run_start > 0 and CJK_RE.match(text[run_start - 1]):
            run_start -= 1
        run_end = position
        while run_end < len(text) and CJK_RE.match(text[run_end]):
            run_end += 1
        from engine.language.translate import reader

        boundary = run_start
        for word, _ in reader().words(text[run_start:run_end]):
            boundary += len(word)
            if boundary >= position:
                return boundary == position
        return False

    # --- verdicts --------------------------------------------------------

    def check_text(self, text: str, level: Level | str, *, prompt: str = "", negated: str = "") -> Verdict:
        """The verdict on a description ``text`` at ``level``.

        ``prompt`` is the English prompt made of it (checked too: a Chinese
        word outside the list may still become an English one on it) and
        ``negated`` what it asked to leave out of the picture. A word the
        description itself negates ("no gore", 不要血腥) does not count when the
        prompt does not carry it.
        """
        return self._verdicts(text, Level(level), prompt, negated)

    def _judge(self, text: str, level: Level, prompt: str, negated: str) -> Verdict:
        found, excused = self._scan(text)
        prompt_hits = [
            Hit(h.category, h.term, h.found, h.start, h.end, "prompt")
            for h in self.scan(prompt)
            if (h.category, h.term) not in excused  # "murder of crows" becomes "murder, crows" on the prompt
        ]
        prompt_categories = {hit.category for hit in prompt_hits}
        text_hits = [hit for hit in found if hit.category in prompt_categories or not _NEGATIONS.search(text[: hit.start])]
        hits = text_hits + [hit for hit in prompt_hits if (hit.category, hit.term) not in {(h.category, h.term) for h in text_hits}]
        blocking = [hit for hit in hits if level in self.terms.categories.get(hit.category, frozenset())]
        if level in self.terms.negated_levels:
            blocking += [
                Hit(NEGATED, h.term, h.found, h.start, h.end, "negated") for h in self.scan(negated, negated=True)
            ]
        minors = [hit for hit in hits if hit.category == MINOR]
        sexual = [hit for hit in hits if hit.category in SEXUAL_CATEGORIES]
        if minors and not sexual:  # a child, and no word of the list for sex: what the classifier reads as sexual counts
            read = self.second_check.hits(text, Level.STRICT, known=found)
            sexual = [hit for hit in read if hit.category in SEXUAL_CATEGORIES]
        if minors and sexual:
            blocking += [Hit(MINORS_CATEGORY, h.term, h.found, h.start, h.end, h.source) for h in (*minors, *sexual)]
        if not blocking:  # what the list has no word for (its own words are its to judge)
            blocking = self.second_check.hits(text, level, known=found)
        if not blocking:
            return ALLOWED[level]
        unique = {(h.category, h.found.casefold()): h for h in reversed(blocking)}
        ordered = sorted(unique.values(), key=lambda h: (h.source != "text", h.start))
        return Verdict(False, level, tuple(ordered))

    def check_prompt(self, prompt: Prompt, level: Level | str) -> Verdict:
        """The verdict on a built :class:`~engine.api.Prompt`: its description, its English prompt and what it negates."""
        from engine.language.prompt import NEGATIVE_PROMPT

        negative = prompt.negative
        negated = negative[len(NEGATIVE_PROMPT) :].lstrip(", ") if negative.startswith(NEGATIVE_PROMPT) else negative
        return self.check_text(prompt.description, level, prompt=prompt.positive, negated=negated)

    def negative_terms(self, level: Level | str) -> str:
        """What the policy adds to the negative prompt at ``level`` (comma-separated; empty at ``off``)."""
        return ", ".join(self.terms.negative.get(Level(level), ()))

    def with_negative(self, negative: str, level: Level | str) -> str:
        """``negative`` with the policy's terms in front (so the CLIP window never cuts them)."""
        terms = self.negative_terms(level)
        if not terms:
            return negative
        return f"{terms}, {negative}" if negative else terms


@lru_cache(maxsize=4)
def prompt_checker(extra: Path | None = None) -> PromptChecker:
    """The process-wide checker for the shipped list (+ the operator's file ``extra``), built once."""
    return PromptChecker(TermList.load(extra))


@dataclass(frozen=True)
class ChatPolicy:
    """The deployment's policy as the conversation applies it (``CONTENT_POLICY`` and the ``POLICY_*`` settings).

    ``spoilers``: at ``standard`` a picture the image check flags is sent
    behind a spoiler (False: not sent, as at ``strict``).
    """

    level: Level = Level.STRICT
    off_chats: frozenset[str] = frozenset()
    spoilers: bool = True
    terms_file: Path | None = None

    @property
    def checker(self) -> PromptChecker:
        """The term matcher (built once per process and term file)."""
        return prompt_checker(self.terms_file)

    def level_for(self, platform: str, chat_id: str, *, age_restricted: bool = False, override: Level | str | None = None) -> Level:
        """The level in one chat: the chat's ``override`` (set by its admins), else :attr:`level`; ``off`` only where allowed."""
        allowed = off_allowed(platform, chat_id, age_restricted=age_restricted, off_chats=self.off_chats)
        return effective_level(self.level, override, off_allowed=allowed)
