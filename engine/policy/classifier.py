"""The content policy's second check: a small text classifier behind the term list.

A hand list always has holes: a word it does not have, or a spelling of one it
does ("nakked", "hentaii", "decapitaded"), passes it. This check reads a
description the way the list's matcher does (:func:`engine.policy.text.views`:
case, width, accents, look-alike letters, Traditional -> Simplified, leetspeak,
separators, stretched letters) and scores it with a linear model over
*windows* of it:

* a Latin word, and each pair of neighbouring words: the word's character
  n-grams (2-5, ``<`` and ``>`` marking where it starts and ends), the word
  itself, its *skeleton* (each run of vowels one ``*``, doubled letters single,
  ``ph`` as ``f``, ``x`` as ``ks``...: "nakid", "nekkid" and "naked" are all
  ``n*k*d``) and the skeleton's n-grams (3-5); a pair adds itself;
* a stretch of 2-4 Chinese characters (a lone character on its own): its
  characters, their pairs and triples, and the stretch itself;
* each window also has its neighbours (the word, or character, before and
  after it) as features, so that "blood" can be learned apart from "blood
  orange".

Each category (sexual, suggestive, gore, violence, hate) scores a description
by its worst window plus a fixed :data:`BIAS` (multiple-instance learning: the
model learns which window of a refused example carries it, so "a naked woman
lying on a bed" teaches "naked", not "bed"); a softmax over those scores and
"harmless" (0) gives each category's probability. At a level, the
probabilities of the categories the term list refuses there add up, and above
the level's threshold the description is refused, as its own
:class:`~engine.policy.levels.Hit` (term ``"classifier"``) naming the windows that
weigh most. It is only asked when the list refuses nothing, and it does not
read what the description negates ("no gore", 不要血腥), the words the list
found in it (the list judges those: "sexy" passes at ``standard``), the
list's exceptions and its own (``allow`` lines: "blood orange", 图书馆), or
the terms an operator removed (``-term`` in ``POLICY_TERMS_FILE``). It never
refuses at ``off``; children are the list's.

**Trained at first use, not shipped as weights.** The data are text files
written for this project: ``exemplars.tsv`` (short descriptions per
category and harmless ones, in English and Chinese), the term list's terms
(``terms.txt``, each a refused example of its category; the words of a
term of several words harmless alone, its ``[allow]`` phrases harmless) and
every word and rendering of the lexicon (:mod:`engine.language.lexicon`, harmless).
Training (numpy, Adam, full batch) takes under a second once per process
(:func:`classifier`), so a word added to the lexicon or the list teaches the
model at the next start, with no weights to regenerate and none in git. The
thresholds are the one thing computed offline: ``python -m bench.policy
--write`` chooses them from cross-validated scores of our harmless
descriptions and sentences and writes ``thresholds.tsv`` (figures in
the README, "Content policy").

It reads spelling, not meaning: a word unlike anything in its data
("cadaver", "seggs", 约炮) passes it as it passes the list, and an ordinary
word near a refused one can be refused ("a stripped down car engine").
"""

from __future__ import annotations

import logging
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from engine.language.chinese import CJK_CLASS, CJK_RE
from engine.policy.levels import Hit, Level
from engine.policy.text import TERMS_FILE, PromptChecker, TermList, normalise, views

log = logging.getLogger(__name__)

#: The training examples written for this check (format at its top).
EXEMPLARS_FILE = Path(__file__).with_name("exemplars.tsv")
#: The thresholds per level (written by ``python -m bench.policy --write``).
THRESHOLDS_FILE = Path(__file__).with_name("thresholds.tsv")
#: The categories the classifier tells apart (the term list's), after "harmless".
CATEGORIES: tuple[str, ...] = ("sexual", "suggestive", "gore", "violence", "hate")
HARMLESS = "harmless"
LABELS: tuple[str, ...] = (HARMLESS, *CATEGORIES)
#: The term of a classifier's :class:`~engine.policy.levels.Hit`.
TERM = "classifier"
#: At most this many windows are named in a refusal.
MAX_FOUND = 3

# Training: Adam on the cross-entropy, L2 on the weights. Chosen with `python -m bench.policy`.
EPOCHS = 60
LEARNING_RATE = 0.1
L2 = 3e-4
#: Each category's fixed score before any window counts: a description is harmless until a window argues otherwise
#: (a learned bias gave words the model has never seen a probability of about 0.7 of being refused).
BIAS = -3.0

_TOKEN = re.compile(f"[{CJK_CLASS}]+|[^\\W_{CJK_CLASS}]+")
#: What a description negates is not read: a negation and the word after it (Chinese: the two characters after it).
_NEGATED = re.compile(
    r"\b(?:no|not|without|never|non)\b[\s-]*(?:[^\W\d_]+)?|(?:不要|不能|没有|沒有|没|沒|别|別)[\u4e00-\u9fff]{0,2}", re.IGNORECASE
)
#: Refused examples with a negation in them are left to the list ("no clothes", 不穿衣服): they are never read so.
_NEGATION = re.compile(r"\b(?:no|not|without|never|non)\b|[不没沒别別无無]", re.IGNORECASE)
#: Spelling folded into a word's skeleton, in order.
_SKELETON = (
    (re.compile("ph"), "f"),
    (re.compile("ck"), "k"),
    (re.compile("q"), "k"),
    (re.compile("x"), "ks"),
    (re.compile("z"), "s"),
    (re.compile("c(?=[eiy])"), "s"),
    (re.compile("c"), "k"),
    (re.compile(r"([a-z])\1+"), r"\1"),
    (re.compile("[aeiouy]+"), "*"),
)
_ASCII_WORD = re.compile("[a-z]+")
#: Sizes of a word's character n-grams, and of its skeleton's.
_GRAMS = range(2, 6)
_SKELETON_GRAMS = range(3, 6)

FloatArray = npt.NDArray[np.float32]


# --------------------------------------------------------------------------
# Reading a text: windows and their features
# --------------------------------------------------------------------------


def skeleton(word: str) -> str:
    """A Latin word's consonant skeleton: "naked", "nakid", "nekkid" -> ``n*k*d``; "pornografic" = "pornographic"."""
    for pattern, replacement in _SKELETON:
        word = pattern.sub(replacement, word)
    return word


@lru_cache(maxsize=65536)
def _word_features(word: str) -> frozenset[str]:
    """A word's spelling: its character n-grams and itself."""
    padded = f"<{word}>"
    features = {padded[i : i + n] for n in _GRAMS for i in range(len(padded) - n + 1)}
    features.add("w:" + word)
    return frozenset(features)


@lru_cache(maxsize=65536)
def _skeleton_features(word: str) -> frozenset[str]:
    """A word's skeleton and the skeleton's n-grams (Latin letters only; else none)."""
    if not _ASCII_WORD.fullmatch(word):
        return frozenset()
    bones = f"<{skeleton(word)}>"
    features = {"s" + bones[i : i + n] for n in _SKELETON_GRAMS for i in range(len(bones) - n + 1)}
    features.add("k:" + bones)
    return frozenset(features)


@lru_cache(maxsize=65536)
def _chinese_features(stretch: str) -> frozenset[str]:
    """A stretch's characters, their pairs and triples, and itself."""
    features = {stretch[i : i + n] for n in range(1, 4) for i in range(len(stretch) - n + 1)}
    features.add("w:" + stretch)
    return frozenset(features)


@dataclass(frozen=True)
class Window:
    """A word, a pair of words or a stretch of Chinese characters; ``start``/``end`` index the text as written.

    ``parts``: its features, in sets shared between windows (a word's, its
    neighbours', the pair's), so that training adds up each set once.
    """

    key: str
    parts: tuple[frozenset[str], ...]
    start: int
    end: int

    @property
    def features(self) -> frozenset[str]:
        """All its features."""
        return frozenset().union(*self.parts)


@lru_cache(maxsize=65536)
def _single(feature: str) -> frozenset[str]:
    return frozenset((feature,))


def _parts(*parts: frozenset[str]) -> tuple[frozenset[str], ...]:
    return tuple(part for part in parts if part)


class _Identity:
    """A reading of a text whose positions are its own (what training reads: spans are not needed there)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        return start, end


def windows(text: str, *, every_view: bool = True) -> list[Window]:
    """The windows of ``text`` in every view the matcher reads, each with its neighbours as features ("blood orange").

    Without ``every_view`` only the normalised text is read (training: its
    examples are written plainly; spans then index that text).
    """
    found: dict[str, Window] = {}

    def add(key: str, parts: tuple[frozenset[str], ...], left: str, right: str, start: int, end: int) -> None:
        context = f"{left}|{key}|{right}"
        if context not in found:
            around = ((_single("l:" + left),) if left else ()) + ((_single("r:" + right),) if right else ())
            found[context] = Window(context, parts + around, start, end)

    readings = views(text) if every_view else [_Identity(group_of(text))]
    for view in readings:
        tokens = list(_TOKEN.finditer(view.text))
        latin = [not CJK_RE.match(token.group()) for token in tokens]
        joined = [
            latin[i] and latin[i + 1] and not view.text[tokens[i].end() : tokens[i + 1].start()].strip()
            for i in range(len(tokens) - 1)
        ] + [False]
        for number, token in enumerate(tokens):
            word = token.group()
            if not latin[number]:
                for size in range(min(2, len(word)), min(4, len(word)) + 1):
                    for offset in range(len(word) - size + 1):
                        stretch = word[offset : offset + size]
                        left = word[offset - 1] if offset else ""
                        right = word[offset + size : offset + size + 1]
                        start, end = view.original_span(token.start() + offset, token.start() + offset + size)
                        add(stretch, (_chinese_features(stretch),), left, right, start, end)
                continue
            before = tokens[number - 1].group() if number and joined[number - 1] else ""
            after = tokens[number + 1].group() if joined[number] else ""
            start, end = view.original_span(token.start(), token.end())
            add(word, _parts(_word_features(word), _skeleton_features(word)), before, after, start, end)
            if joined[number]:
                second = tokens[number + 1]
                further = tokens[number + 2].group() if joined[number + 1] else ""
                pair = f"{word} {second.group()}"
                parts = _parts(
                    _word_features(word),
                    _skeleton_features(word),
                    _word_features(second.group()),
                    _skeleton_features(second.group()),
                    _single("b:" + pair),
                )
                start, end = view.original_span(token.start(), second.end())
                add(pair, parts, before, further, start, end)
    return list(found.values())


def unnegated(text: str) -> str:
    """``text`` with what it negates blanked out (same length, so positions still index the text as written)."""
    return _NEGATED.sub(lambda match: " " * len(match.group()), text)


# --------------------------------------------------------------------------
# Training data
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    """A labelled description; ``group`` keeps its variants together when the data are split for cross-validation."""

    text: str
    label: str
    group: str


@dataclass(frozen=True)
class Exemplars:
    """``exemplars.tsv``: the written examples, the templates the term list's terms go in, and ``allow``:
    harmless phrases that hold a word of a refused category ("a blood orange"), never read (and learned as harmless)."""

    examples: tuple[Example, ...]
    templates: Mapping[str, tuple[str, ...]]
    allow: tuple[str, ...] = ()

    @classmethod
    def load(cls, path: Path = EXEMPLARS_FILE) -> Exemplars:
        """Read the file; a line that is not ``label TAB text`` with a known label is an error naming the line."""
        examples: list[Example] = []
        templates: dict[str, list[str]] = {"en": [], "zh": []}
        allow: list[str] = []
        for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            label, tab, text = line.partition("\t")
            if not tab or not text.strip():
                raise ValueError(f"{path}:{number}: expected <label> TAB <text>")
            if label.startswith("template-") and label[len("template-") :] in templates:
                templates[label[len("template-") :]].append(text)
            elif label == "allow":
                allow.append(text.strip())
                examples.append(Example(text.strip(), HARMLESS, group_of(text)))
            elif label in LABELS:
                examples.append(Example(text.strip(), label, group_of(text)))
            else:
                raise ValueError(f"{path}:{number}: unknown label {label!r}")
        return cls(tuple(examples), {key: tuple(value) for key, value in templates.items()}, tuple(allow))


@lru_cache(maxsize=16384)
def group_of(text: str) -> str:
    """The cross-validation group of a text: its normalised form (藍髮 and 蓝发 are one)."""
    return normalise(text)


def harmless_lexicon() -> list[str]:
    """Every word and rendering of the lexicon: Chinese words, English word sequences, English renderings."""
    from engine.language.lexicon import EN_INDEX, ZH_INDEX

    words = set(ZH_INDEX) | {" ".join(words) for words in EN_INDEX}
    words |= {entry.english for entry in ZH_INDEX.values()} | {entry.english for entry in EN_INDEX.values()}
    return sorted(words)


def _bare(term: str) -> str:
    """A list term without its markers (``~色图`` -> 色图, ``porn*`` -> porn)."""
    return term.lstrip("~=").removesuffix("*")


def training_examples(
    terms: TermList,
    exemplars: Exemplars | None = None,
    *,
    lexicon: Iterable[str] | None = None,
    leave_out: Callable[[str], bool] | None = None,
) -> list[Example]:
    """The training data: the written examples, the list's terms in the templates, its exceptions and the lexicon.

    A term of several words refuses as a whole: each of its words that the
    list does not refuse alone is a harmless example ("slit throat": "throat"),
    so that the phrase is learned, not its ordinary words. Refused examples
    with a negation in them are left out (the classifier never reads a
    negation: they are the list's). ``leave_out`` drops any example it is true
    for (the benchmark keeps held-out words out so).
    """
    exemplars = exemplars or Exemplars.load()
    examples = [example for example in exemplars.examples if example.label == HARMLESS or not _NEGATION.search(example.text)]
    words: set[str] = set()
    for category in CATEGORIES:
        for term in terms.terms.get(category, ()):
            bare = _bare(term)
            if not bare or _NEGATION.search(bare):
                continue
            for template in exemplars.templates["zh" if CJK_RE.search(bare) else "en"]:
                examples.append(Example(template.replace("{t}", bare), category, group_of(bare)))
            if not CJK_RE.search(bare):
                words.update(word for word in re.split(r"[\s-]+", bare) if len(word) > 2)
    matcher = PromptChecker(terms)
    examples += [
        Example(word, HARMLESS, group_of(word))
        for word in sorted(words)
        if not any(hit.category in CATEGORIES for hit in matcher.scan(word))
    ]
    examples += [Example(phrase, HARMLESS, group_of(phrase)) for phrase in terms.allow]
    examples += [Example(word, HARMLESS, group_of(word)) for word in (harmless_lexicon() if lexicon is None else lexicon)]
    if leave_out is not None:
        examples = [example for example in examples if not leave_out(example.text)]
    return examples


# --------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------


class _Bags:
    """Examples as bags of windows, windows as sums of feature sets, feature sets as rows of features.

    Index arrays for numpy's ``reduceat``: a window's score is the sum of its
    sets' scores, a set's the sum of its features' weights.
    """

    def __init__(self, bags: Sequence[Sequence[Window]], vocabulary: dict[str, int], *, grow: bool) -> None:
        window_ids: dict[str, int] = {}
        part_ids: dict[frozenset[str], int] = {}
        part_list: list[frozenset[str]] = []
        window_parts: list[int] = []
        window_part_starts: list[int] = []
        members: list[int] = []
        starts = [0]
        for bag in bags:
            for window in bag:
                index = window_ids.get(window.key)
                if index is None:
                    index = window_ids[window.key] = len(window_part_starts)
                    window_part_starts.append(len(window_parts))
                    for part in window.parts:
                        part_id = part_ids.get(part)
                        if part_id is None:
                            part_id = part_ids[part] = len(part_list)
                            part_list.append(part)
                        window_parts.append(part_id)
                members.append(index)
            starts.append(len(members))
        rows: list[int] = []
        columns: list[int] = []
        for row, part in enumerate(part_list):
            for feature in sorted(part):  # the same columns, and sums, whatever the process's string hashing
                column = vocabulary.get(feature)
                if column is None:
                    if not grow:
                        continue
                    column = vocabulary[feature] = len(vocabulary)
                rows.append(row)
                columns.append(column)
        self.windows = len(window_part_starts)
        self.parts = len(part_list)
        self.rows = np.asarray(rows, dtype=np.int64)
        self.columns = np.asarray(columns, dtype=np.int64)
        self.row_starts = np.searchsorted(self.rows, np.arange(self.parts))
        self.part_has_features = np.diff(np.append(self.row_starts, len(self.rows))) > 0
        self.window_parts = np.asarray(window_parts, dtype=np.int64)
        self.window_part_starts = np.asarray(window_part_starts, dtype=np.int64)
        self.window_of_part = np.repeat(np.arange(self.windows), np.diff(np.append(self.window_part_starts, len(window_parts))))
        self.members = np.asarray(members, dtype=np.int64)
        self.starts = np.asarray(starts, dtype=np.int64)
        self.sizes = np.diff(self.starts)
        self.bag_of_member = np.repeat(np.arange(len(bags)), self.sizes)

    def part_scores(self, weights: FloatArray) -> FloatArray:
        """Each feature set's score per category: the sum of its features' weights."""
        scores = np.zeros((self.parts, weights.shape[1]), dtype=np.float32)
        if len(self.rows):
            scores[self.part_has_features] = np.add.reduceat(
                weights[self.columns], self.row_starts[self.part_has_features], axis=0
            )
        return scores

    def window_scores(self, weights: FloatArray) -> FloatArray:
        """Each window's score per category: the sum of its feature sets' scores."""
        if not self.windows:
            return np.zeros((0, weights.shape[1]), dtype=np.float32)
        return np.add.reduceat(self.part_scores(weights)[self.window_parts], self.window_part_starts, axis=0)

    def bag_scores(self, window_scores: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Each bag's score per category (its worst window's), and the member windows' scores."""
        member_scores = window_scores[self.members]
        scores = np.full((len(self.sizes), window_scores.shape[1]), -1e4, dtype=np.float32)
        filled = self.sizes > 0
        if filled.any():
            scores[filled] = np.maximum.reduceat(member_scores, self.starts[:-1][filled], axis=0)
        return scores, member_scores


def _softmax_with_harmless(scores: FloatArray) -> FloatArray:
    """Probabilities of (harmless, *categories) from the categories' scores (harmless scores 0)."""
    logits = np.concatenate([np.zeros((scores.shape[0], 1), dtype=np.float32), scores], axis=1)
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


@dataclass(frozen=True)
class Assessment:
    """What the classifier makes of a description: each label's probability, and each window's scores per category."""

    probabilities: Mapping[str, float]
    windows: tuple[Window, ...]
    window_scores: FloatArray

    def solo(self, index: int) -> dict[str, float]:
        """The probabilities had the description been window ``index`` alone."""
        probabilities = _softmax_with_harmless((self.window_scores[index] + BIAS)[None, :])[0]
        return dict(zip(LABELS, map(float, probabilities), strict=True))


class TextClassifier:
    """The learned model: a weight per feature and category. Immutable, thread-safe."""

    def __init__(self, vocabulary: Mapping[str, int], weights: FloatArray) -> None:
        self.vocabulary = dict(vocabulary)
        self.weights = weights
        self.weights.setflags(write=False)

    @classmethod
    def train(
        cls,
        examples: Sequence[Example],
        *,
        epochs: int = EPOCHS,
        learning_rate: float = LEARNING_RATE,
        l2: float = L2,
    ) -> TextClassifier:
        """Fit the model to ``examples`` (deterministic).

        Each category's score of an example is :data:`BIAS` plus its worst
        window's; the loss is the cross-entropy of the softmax over (harmless:
        0, categories), every example weighing the same; Adam, full batch. The
        gradient reaches only each example's worst windows.
        """
        bags = [windows(unnegated(example.text), every_view=False) for example in examples]
        kept = [i for i, bag in enumerate(bags) if bag]
        labels = np.asarray([LABELS.index(examples[i].label) for i in kept], dtype=np.int64)
        vocabulary: dict[str, int] = {}
        data = _Bags([bags[i] for i in kept], vocabulary, grow=True)
        features, categories = len(vocabulary), len(CATEGORIES)
        weights = np.zeros((features, categories), dtype=np.float32)
        target = np.zeros((len(kept), len(LABELS)), dtype=np.float32)
        target[np.arange(len(kept)), labels] = 1.0
        # Scatter orders: bag members by window, windows' sets by set, features by column.
        by_window = np.argsort(data.members, kind="stable")
        window_member_starts = np.searchsorted(data.members[by_window], np.arange(data.windows))
        by_part = np.argsort(data.window_parts, kind="stable")
        part_entry_starts = np.searchsorted(data.window_parts[by_part], np.arange(data.parts))
        windows_by_part = data.window_of_part[by_part]
        by_column = np.argsort(data.columns, kind="stable")
        column_starts = np.searchsorted(data.columns[by_column], np.arange(features))
        rows_by_column = data.rows[by_column]
        moment = np.zeros_like(weights)
        second = np.zeros_like(weights)
        for epoch in range(1, epochs + 1):
            window_scores = data.window_scores(weights)
            scores, member_scores = data.bag_scores(window_scores)
            probabilities = _softmax_with_harmless(scores + BIAS)
            gradient = ((probabilities - target)[:, 1:] / len(kept)).astype(np.float32)
            worst = member_scores >= scores[data.bag_of_member] - 1e-6
            member_gradient = np.where(worst, gradient[data.bag_of_member], np.float32(0))
            window_gradient = np.add.reduceat(member_gradient[by_window], window_member_starts, axis=0)
            part_gradient = np.add.reduceat(window_gradient[windows_by_part], part_entry_starts, axis=0)
            weight_gradient = np.add.reduceat(part_gradient[rows_by_column], column_starts, axis=0)
            weight_gradient += l2 * weights
            moment *= 0.9
            moment += 0.1 * weight_gradient
            second *= 0.999
            second += 0.001 * np.square(weight_gradient)
            step = learning_rate / (1 - 0.9**epoch)
            weights -= step * moment / (np.sqrt(second / (1 - 0.999**epoch)) + 1e-8)
        return cls(vocabulary, weights.astype(np.float32))

    def assess(self, text: str) -> Assessment:
        """Score a description as it is: a category's score is its worst window's (negations are the caller's)."""
        found = windows(text)
        data = _Bags([found], self.vocabulary, grow=False)
        scores, member_scores = data.bag_scores(data.window_scores(self.weights))
        probabilities = _softmax_with_harmless(scores + BIAS)[0]
        return Assessment(dict(zip(LABELS, map(float, probabilities), strict=True)), tuple(found), member_scores)

    def probabilities(self, texts: Sequence[str]) -> FloatArray:
        """Each description's probabilities (rows; columns in :data:`LABELS` order), negations blanked out."""
        data = _Bags([windows(unnegated(text)) for text in texts], self.vocabulary, grow=False)
        scores, _ = data.bag_scores(data.window_scores(self.weights))
        return _softmax_with_harmless(scores + BIAS)


_MODEL: TextClassifier | None = None
_MODEL_LOCK = threading.Lock()


def classifier() -> TextClassifier:
    """The process-wide model, trained on first use from the shipped data (about a second; thread-safe)."""
    global _MODEL
    if _MODEL is None:
        with _MODEL_LOCK:
            if _MODEL is None:
                began = time.perf_counter()
                examples = training_examples(TermList.load())
                _MODEL = TextClassifier.train(examples)
                log.debug(  # every process that checks a description trains it: not news to the operator
                    "policy classifier: trained on %d examples, %d features in %.2f s",
                    len(examples),
                    len(_MODEL.vocabulary),
                    time.perf_counter() - began,
                )
    return _MODEL


# --------------------------------------------------------------------------
# The check
# --------------------------------------------------------------------------


def read_thresholds(path: Path = THRESHOLDS_FILE) -> dict[Level, float]:
    """``level TAB threshold`` lines (``#`` comments); a level without a line is not checked."""
    thresholds: dict[Level, float] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        level, _, value = line.partition("\t")
        try:
            thresholds[Level(level.strip())] = float(value)
        except ValueError:
            raise ValueError(f"{path}:{number}: expected <level> TAB <threshold>") from None
    return thresholds


@lru_cache(maxsize=1)
def thresholds() -> Mapping[Level, float]:
    """The shipped thresholds (read once)."""
    return read_thresholds()


def group_fold(group: str, folds: int) -> int:
    """The cross-validation fold of a group (stable across runs and machines)."""
    return zlib.crc32(group.encode("utf-8")) % folds


class SecondCheck:
    """The classifier as the checker of one term list applies it: the list's levels, its removed terms.

    ``hits(text, level)`` is empty, or the hits that refuse ``text`` at
    ``level``: the categories that refuse at ``level`` (the term list says
    which) together score above the level's threshold. Never at ``off`` (no
    category the classifier knows refuses there).
    """

    def __init__(
        self,
        terms: TermList,
        *,
        model: Callable[[], TextClassifier] = classifier,
        limits: Mapping[Level, float] | None = None,
    ) -> None:
        self._model = model
        self._limits = limits
        self.levels = {
            level: tuple(c for c in CATEGORIES if level in terms.categories.get(c, frozenset())) for level in Level
        }
        self._terms = terms
        self._unread: PromptChecker | None = None
        self._ready = False
        self._lock = threading.Lock()

    @property
    def limits(self) -> Mapping[Level, float]:
        """Threshold per level."""
        return self._limits if self._limits is not None else thresholds()

    def hits(self, text: str, level: Level, known: Iterable[Hit] = ()) -> list[Hit]:
        """The classifier's hits that refuse the description ``text`` at ``level``; none when it passes.

        ``known``: what the list found in it; the words it puts in a category
        of its own (whatever the level) are its to judge, and are not read
        ("sexy" at ``standard``); words for the body or for children are.
        """
        refusing = self.levels.get(level, ())
        if not refusing or not text.strip():
            return []
        try:
            limit = self.limits.get(level)
            model = self._model() if limit is not None else None
        except OSError as error:  # a data file missing from the install: the list still checks
            _unavailable(str(error))
            return []
        if limit is None or model is None:
            return []
        assessment = model.assess(self.readable(text, known))
        if sum(assessment.probabilities[c] for c in refusing) <= limit:
            return []
        category = max(refusing, key=lambda c: assessment.probabilities[c])
        return [
            Hit(category, TERM, text[window.start : window.end], window.start, window.end)
            for window in _weighty(assessment, refusing, limit)
        ]

    def readable(self, text: str, known: Iterable[Hit] = ()) -> str:
        """What the classifier reads of ``text``: it without what it negates, the list's words (``known``), the
        exceptions and the terms the operator removed, each character blanked to a space."""
        if not self._ready:
            with self._lock:  # built on first use: the matcher is a PromptChecker, which makes a SecondCheck
                if not self._ready:
                    self._unread = _unread_matcher(self._terms)
                    self._ready = True
        chars = list(unnegated(text))
        spans = [(hit.start, hit.end) for hit in known if hit.source == "text" and hit.category in CATEGORIES]
        if self._unread is not None:
            spans += [(hit.start, hit.end) for hit in self._unread.scan(text)]
        for start, end in spans:
            chars[start:end] = " " * (end - start)
        return "".join(chars)


@lru_cache(maxsize=8)
def _unavailable(reason: str) -> None:
    """Tell the operator, once per reason, that the second check is off."""
    log.error("policy classifier: its data cannot be read (%s); descriptions are checked against the term list only", reason)


def _weighty(assessment: Assessment, refusing: Sequence[str], limit: float) -> list[Window]:
    """The windows to name: those that would refuse alone (words before pairs, short Chinese stretches before long
    ones, worst first; none overlapping), else the worst one."""
    solo = [sum(assessment.solo(i)[c] for c in refusing) for i in range(len(assessment.windows))]
    def rank(index: int) -> tuple[bool, int, float]:
        core = assessment.windows[index].key.split("|")[1]
        return " " in core, len(core) if CJK_RE.match(core) else 0, -solo[index]

    ranked = sorted(range(len(solo)), key=rank)
    chosen: list[Window] = []
    for index in ranked:
        window = assessment.windows[index]
        if solo[index] <= limit or len(chosen) >= MAX_FOUND:
            continue
        if any(window.start < other.end and other.start < window.end for other in chosen):
            continue
        chosen.append(window)
    if not chosen:
        chosen.append(assessment.windows[max(range(len(solo)), key=solo.__getitem__)])
    return sorted(chosen, key=lambda window: window.start)


@lru_cache(maxsize=1)
def _shipped_terms() -> TermList:
    return TermList.load()


#: The category the phrases the classifier does not read are found as.
_UNREAD = "unread"


def _unread_matcher(terms: TermList) -> PromptChecker | None:
    """A matcher for what the classifier does not read: the list's exceptions ("a murder of crows", 杀人鲸), its own
    (``allow`` in ``exemplars.tsv``: "a blood orange") and the shipped terms an operator removed (``-term``:
    they allow it, so the classifier does too)."""
    shipped = _shipped_terms()
    removed = [
        term for category in CATEGORIES for term in shipped.terms.get(category, ()) if term not in set(terms.terms.get(category, ()))
    ]
    unread = [*terms.allow, *_allowed(), *removed]
    if not unread:
        return None
    return PromptChecker(TermList.parse(f"[{_UNREAD}: strict]\n" + "\n".join(unread) + "\n", f"{TERMS_FILE.name} (not read)"))


@lru_cache(maxsize=1)
def _allowed() -> tuple[str, ...]:
    return Exemplars.load().allow
