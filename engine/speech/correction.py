"""Reviewing what Whisper heard: homophone correction and unsure marks (:func:`review`).

**Correction** (上下文纠错). A Chinese span is replaced by a lexicon word, or a
wearing/holding phrase built from it (戴眼镜, 撑伞), or a CC-CEDICT word of
three or more characters, when its toneless pinyin matches — exactly, or
through the common confusions (zh/z ch/c sh/s, n/l, an/ang en/eng in/ing,
ü/i, and for longer words unaspirated/aspirated zh/ch) — and the span itself
is not a dictionary word (帶眼睛 -> 戴眼镜, 與航員 -> 宇航员), or the span is
unsure and sits where a noun belongs (红散 -> 红伞 after a colour). An English
word that is not a lexicon word and was heard unsurely is replaced by the
lexicon word that sounds the same ("fuck spirit" -> "fox spirit") — unless it
is a real English word the content list does not flag ("height" stays). Never
silent: a corrected word keeps the original in ``Word.corrected_from`` and is
marked unsure.

**Unsure marks** combine the recogniser's probability with what the text
says: a word is unsure when its probability is low (< :data:`LOW`; an
English article only below :data:`ARTICLE_LOW`), or
middling (< :data:`MIDDLING`) and also outside every dictionary, a lone
character that is not a function word, or in the wrong script; corrected
words are always unsure. Thresholds were chosen on the dev clips only
(``tests/fixtures/zh/splits.json``); ``bench/asr.py`` reports recall and
false-mark rate on the held-out ones.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache

from engine.api import Word
from engine.language.chinese import CJK_RE, Script, simplified, syllables, to_script
from engine.language.lexicon import EN_INDEX, ZH_INDEX, Kind
from engine.language.translate import reader
from engine.policy.text import prompt_checker

#: Below this probability a word is unsure whatever else is known.
LOW = 0.5
#: Below this probability a word is unsure when another signal says so too.
MIDDLING = 0.8
#: An English article changes little in a picture and Whisper is often unsure of a sentence's first "A":
#: unsure only below this (dev clips: false marks 0.17 -> 0.13 at the same recall).
ARTICLE_LOW = 0.3
_ARTICLES = frozenset({"a", "an", "the"})

_CONTENT = frozenset(
    {Kind.SUBJECT, Kind.HAIR, Kind.EYES, Kind.CLOTHING, Kind.FEATURE, Kind.OBJECT, Kind.ACTION, Kind.PLACE, Kind.WEATHER, Kind.TIME}
)
_NOUNISH = frozenset({Kind.SUBJECT, Kind.CLOTHING, Kind.OBJECT, Kind.FEATURE, Kind.PLACE})
_FUNCTION_CHARS = frozenset("的了着在是有和与也很就都上下里中一个只把被吗呢吧啊")
_INITIALS = ("zh", "ch", "sh", "b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h", "j", "q", "x", "r", "z", "c", "s", "y", "w")


def _fuzzy(syllable: str, *, aspiration: bool) -> str:
    """A syllable folded through common confusions (so near-homophones share a key)."""
    initial = next((i for i in _INITIALS if syllable.startswith(i)), "")
    final = syllable[len(initial) :]
    initial = {"zh": "z", "ch": "c", "sh": "s", "n": "l", "r": "l"}.get(initial, initial)
    if aspiration:
        initial = {"c": "z", "p": "b", "t": "d", "k": "g", "q": "j"}.get(initial, initial)
    if initial == "y" and final.startswith("u"):
        final = "i" + final[1:]  # yu ~ yi
    final = final.replace("v", "i")
    for long, short in (("iang", "ian"), ("uang", "uan"), ("ang", "an"), ("eng", "en"), ("ing", "in")):
        if final.endswith(long):
            final = final[: -len(long)] + short
            break
    return initial + final


@lru_cache(maxsize=1)
def _candidates() -> dict[tuple[str, ...], tuple[tuple[str, Kind], ...]]:
    """Lexicon content words (Simplified, two characters or more) and wearing/holding phrases, by exact toneless pinyin."""
    words: dict[str, Kind] = {}
    for form, entry in ZH_INDEX.items():
        form = simplified(form)
        if entry.kind in _CONTENT and len(form) >= 2:
            words.setdefault(form, entry.kind)
        if entry.kind in (Kind.CLOTHING,) and len(form) >= 1:
            for verb in ("戴", "穿"):
                words.setdefault(verb + form, Kind.ACTION)
        if entry.english == "an umbrella":
            for verb in ("撑", "打"):
                words.setdefault(verb + form, Kind.ACTION)
    index: dict[tuple[str, ...], list[tuple[str, Kind]]] = {}
    for word, kind in words.items():
        index.setdefault(syllables(word), []).append((word, kind))
    return {key: tuple(value) for key, value in index.items()}


@lru_cache(maxsize=2)
def _fuzzy_index(aspiration: bool) -> dict[tuple[str, ...], tuple[tuple[str, Kind], ...]]:
    index: dict[tuple[str, ...], list[tuple[str, Kind]]] = {}
    for key, words in _candidates().items():
        index.setdefault(tuple(_fuzzy(s, aspiration=aspiration) for s in key), []).extend(words)
    return {key: tuple(value) for key, value in index.items()}


def _is_word(text: str) -> bool:
    """A lexicon form or a CC-CEDICT headword (Simplified)."""
    return text in ZH_INDEX or text in reader().cedict


def _covered(text: str) -> bool:
    """``text`` is one word jieba would keep whole and a dictionary knows, or spelled by lexicon forms."""
    return _is_word(text)


def _correct_zh(chars: str, probs: list[float]) -> dict[tuple[int, int], str]:
    """Replacements (start, end) -> word over the Simplified character string of a transcript."""
    found: dict[tuple[int, int], str] = {}
    taken = [False] * len(chars)
    for size in (4, 3, 2):  # words the lexicon already knows are never corrected, nor parts of them (樱花树 is not 樱 + 花束)
        for start in range(0, len(chars) - size + 1):
            entry = ZH_INDEX.get(chars[start : start + size])
            if entry is not None and entry.kind in _CONTENT and not any(taken[start : start + size]):
                taken[start : start + size] = [True] * size
    keys = syllables(chars)
    for size in (4, 3, 2, 1):
        for start in range(0, len(chars) - size + 1):
            end = start + size
            if any(taken[start:end]) or not all(CJK_RE.match(c) for c in chars[start:end]):
                continue
            span = chars[start:end]
            key = keys[start:end]
            weakest = min(probs[start:end])
            replacement = _best(span, key, weakest, chars[start - 1] if start else "")
            if replacement:
                found[(start, end)] = replacement
                taken[start:end] = [True] * size
    return found


def _best(span: str, key: tuple[str, ...], weakest: float, before: str) -> str | None:
    size = len(span)
    if size > 1 and any(c in "着了的地得过" for c in span):
        return None  # 撑着 is "holding up", not a misheard 撑遮
    if span in ZH_INDEX and ZH_INDEX[span].kind in _CONTENT:
        return None  # already a lexicon word
    is_word = _is_word(span)
    if size == 1:
        # a lone character only after a colour or a count, where a noun belongs (红散 -> 红伞)
        before_entry = ZH_INDEX.get(before)
        if weakest >= MIDDLING or before_entry is None or before_entry.kind not in (Kind.COLOR, Kind.NUMBER):
            return None
        options = [w for w, kind in _single_nouns().get(key[0], ()) if w != span]
        return options[0] if len(options) == 1 else None
    exact = [w for w, _ in _candidates().get(key, ()) if w != span]
    fuzzy = [w for w, _ in _fuzzy_index(size >= 3).get(tuple(_fuzzy(s, aspiration=size >= 3) for s in key), ()) if w != span]
    if not is_word:
        if len(set(exact)) == 1:
            return exact[0]
        if size >= 3:
            homophones = [w for w in reader().cedict.homophones(key) if w != span]
            if len(homophones) == 1:
                return homophones[0]
        if len(set(fuzzy)) == 1 and weakest < MIDDLING:
            return fuzzy[0]
        return None
    if weakest < LOW + 0.1 and len(set(exact)) == 1 and _nounish(exact[0]):
        return exact[0]  # a real word heard unsurely where the exact homophone is a lexicon noun (其实 -> 骑士)
    return None


def _nounish(word: str) -> bool:
    entry = ZH_INDEX.get(word)
    return entry is not None and entry.kind in _NOUNISH


@lru_cache(maxsize=1)
def _single_nouns() -> dict[str, tuple[tuple[str, Kind], ...]]:
    index: dict[str, list[tuple[str, Kind]]] = {}
    for form, entry in ZH_INDEX.items():
        if len(form) == 1 and entry.kind in _NOUNISH and simplified(form) == form:
            index.setdefault(syllables(form)[0], []).append((form, entry.kind))
    return {key: tuple(value) for key, value in index.items()}


# --------------------------------------------------------------------------
# English
# --------------------------------------------------------------------------


def sound_key(word: str) -> str:
    """A rough English sound key: fox / fucks / fuck -> "fk"; knight / night -> "nt" (vowels and silent letters dropped)."""
    w = word.lower()
    for a, b in (("kn", "n"), ("wr", "r"), ("ph", "f"), ("gh", ""), ("ck", "k"), ("x", "ks"), ("qu", "kw"), ("q", "k"),
                 ("wh", "w"), ("c", "k"), ("z", "s"), ("dg", "j")):
        w = w.replace(a, b)
    key = w[:1] + re.sub("[aeiouyhw]", "", w[1:])
    key = re.sub(r"(.)\1+", r"\1", key)
    return key.rstrip("s") or key


@lru_cache(maxsize=1)
def _english_targets() -> dict[str, tuple[str, ...]]:
    index: dict[str, list[str]] = {}
    for words, entry in EN_INDEX.items():
        if len(words) == 1 and entry.kind in _NOUNISH and len(words[0]) >= 3 and not entry.is_plural:
            index.setdefault(sound_key(words[0]), []).append(words[0])
    return {key: tuple(dict.fromkeys(value)) for key, value in index.items()}


def _correct_en(word: Word) -> str | None:
    bare = re.sub(r"[^\w'-]", "", word.text).lower()
    if not bare or (bare,) in EN_INDEX or word.probability >= MIDDLING - 0.2:
        return None
    if bare in reader().cedict.vocabulary and not prompt_checker().scan(bare):
        return None  # a real word ("at the height" is not "hat"); only one the content list flags is worth a guess
    options = [w for w in _english_targets().get(sound_key(bare), ()) if w != bare]
    if len(options) != 1:
        return None
    target = options[0]
    if word.text[:1].isupper():
        target = target.capitalize()
    return re.sub(r"[\w'-]+", target, word.text, count=1)


# --------------------------------------------------------------------------
# Review
# --------------------------------------------------------------------------


def _unsure_zh(word: Word, script: Script | None) -> bool:
    if word.corrected_from is not None or word.probability < LOW:
        return True
    if word.probability >= MIDDLING:
        return False
    text = simplified(word.text.strip("，。！？、,.!? "))
    if not text:
        return False
    lone = len(text) == 1 and text not in _FUNCTION_CHARS and text not in ZH_INDEX
    unknown = len(text) > 1 and not _is_word(text)
    wrong_script = script is not None and to_script(word.text, script) != word.text
    latin = not CJK_RE.search(word.text) and any(c.isalpha() for c in word.text)
    return lone or unknown or wrong_script or latin


def _unsure_en(word: Word) -> bool:
    if word.corrected_from is not None:
        return True
    if re.sub(r"[^\w'-]", "", word.text).lower() in _ARTICLES:
        return word.probability < ARTICLE_LOW
    if word.probability < LOW:
        return True
    if word.probability >= MIDDLING:
        return False
    bare = re.sub(r"[^\w'-]", "", word.text).lower()
    unknown = bool(bare) and (bare,) not in EN_INDEX and bare not in reader().cedict.vocabulary
    return unknown or len(bare) <= 2 or bool(CJK_RE.search(word.text))


def review(words: Sequence[Word], language: str, *, script: Script | None = None, correct: bool = True) -> tuple[Word, ...]:
    """``words`` with homophones corrected (``correct``) and every word's ``unsure`` set (see the module doc).

    Chinese words are compared in Simplified; a corrected Chinese word is
    written back in ``script`` (or the script of the word it replaces).
    """
    if not words:
        return ()
    chinese = language in ("zh", "yue") or any(CJK_RE.search(w.text) for w in words)
    if chinese:
        reviewed = list(_review_zh(words, script) if correct else words)
        return tuple(replace(w, unsure=_unsure_zh(w, script)) for w in reviewed)
    reviewed = []
    for word in words:
        corrected = _correct_en(word) if correct else None
        if corrected is not None and corrected != word.text:
            word = replace(word, text=corrected, corrected_from=word.text)
        reviewed.append(replace(word, unsure=_unsure_en(word)))
    return tuple(reviewed)


def _review_zh(words: Sequence[Word], script: Script | None) -> list[Word]:
    texts = [w.text for w in words]
    chars = simplified("".join(texts))
    if len(chars) != sum(map(len, texts)):
        return list(words)
    probs = [w.probability for w in words for _ in w.text]
    owner = [i for i, w in enumerate(words) for _ in w.text]
    fixes = _correct_zh(chars, probs)
    if not fixes:
        return list(words)
    result: list[tuple[int, Word]] = []
    done: set[int] = set()
    # Without the reader's script, corrections are written like the rest of the transcript (紅散 -> 紅傘, not 紅伞).
    written: Script | None = script or ("zh-Hant" if chars != "".join(texts) else None)
    for (start, end), replacement in sorted(fixes.items()):
        first, last = owner[start], owner[end - 1]
        if any(i in done for i in range(first, last + 1)):
            continue
        span_words = words[first : last + 1]
        joined = "".join(w.text for w in span_words)
        offset = start - sum(len(w.text) for w in words[:first])
        new_span = joined[:offset] + to_script(replacement, written) + joined[offset + end - start :]
        merged = Word(
            text=new_span,
            start=span_words[0].start,
            end=span_words[-1].end,
            probability=min(w.probability for w in span_words),
            corrected_from=joined,
        )
        done.update(range(first, last + 1))
        result.append((first, merged))
    by_index = dict(result)
    out: list[Word] = []
    for i, word in enumerate(words):
        if i in by_index:
            out.append(by_index[i])
        elif i not in done:
            out.append(word)
    return out
