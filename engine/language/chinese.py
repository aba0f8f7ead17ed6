"""Chinese text helpers: the script a reader expects (OpenCC) and toneless pinyin (pypinyin).

* :func:`to_script` writes Chinese text in the reader's script: ``"zh-Hans"``
  (Simplified: mainland, Singapore) or ``"zh-Hant"`` (Traditional: Taiwan
  forms, or Hong Kong forms for Cantonese). Whisper writes Mandarin in
  whichever script it likes (base: mostly Traditional), so every transcript
  is converted once the reader's script is known. ``None`` leaves text as it is.
* :func:`simplified` is the form the analysis works on (the lexicon, jieba and
  CC-CEDICT are all looked up in Simplified; the lexicon keeps its Traditional
  and Cantonese forms too).
* :func:`syllables` gives toneless pinyin, for homophone matching.
* :func:`taiwan_phrasing` turns Simplified UI text into Traditional with Taiwan wording (the zh-Hant UI).

OpenCC's configuration files ship inside the ``opencc`` wheel (Apache-2.0).
"""

from __future__ import annotations

import re
import threading
from functools import cache, lru_cache
from typing import Any, Literal

Script = Literal["zh-Hans", "zh-Hant"]
SCRIPTS: tuple[Script, ...] = ("zh-Hans", "zh-Hant")

#: CJK ideographs (the blocks Whisper and users write in).
CJK_CLASS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
CJK_RE = re.compile(f"[{CJK_CLASS}]")

#: Locale/script tags that mean Traditional characters (BCP 47 region or script subtags).
_TRADITIONAL_TAGS = ("hant", "tw", "hk", "mo")
#: 著 is the Simplified form of the verb "to write/show" (著名, 显著); as the aspect particle after a verb it is 着.
_ZHU_WORDS = re.compile("著(?=名|作|称|述|者|录|书|有)|(?<=[显卓土原名编巨论专])著")


def script_for(tag: str | None, *, spoken: str | None = None) -> Script | None:
    """The script a user with locale/language ``tag`` reads, or ``None`` for a non-Chinese tag.

    ``zh-Hant``, ``zh-TW``, ``zh-HK``, ``zh-MO`` and ``yue`` are Traditional;
    ``zh``, ``zh-Hans``, ``zh-CN``, ``zh-SG`` Simplified. ``spoken`` (the
    recognised language) only decides for a bare ``zh`` tag: Cantonese speech
    is written in Traditional characters unless the user said otherwise.
    """
    if not tag:
        return None
    parts = tag.replace("_", "-").lower().split("-")
    if parts[0] == "yue":
        return "zh-Hant" if "hans" not in parts else "zh-Hans"
    if parts[0] != "zh":
        return None
    if "hans" in parts[1:]:
        return "zh-Hans"
    if any(part in _TRADITIONAL_TAGS for part in parts[1:]):
        return "zh-Hant"
    if len(parts) == 1 and spoken == "yue":
        return "zh-Hant"
    return "zh-Hans"


_LOCK = threading.Lock()


@cache
def _converter(config: str):  # -> opencc.OpenCC (untyped library)
    import opencc

    with _LOCK:
        return opencc.OpenCC(config)


def to_script(text: str, script: Script | None, *, cantonese: bool = False) -> str:
    """``text`` with its Chinese characters in ``script`` (``None``: unchanged).

    Traditional uses Taiwan forms, or Hong Kong forms when ``cantonese``;
    Simplified fixes OpenCC's one systematic slip on speech (撐著 -> 撑着, not 撑著).
    The number of characters never changes, so word boundaries survive.
    """
    if script is None or not CJK_RE.search(text):
        return text
    if script == "zh-Hans":
        converted = _converter("tw2s").convert(text)
        converted = "".join("著" if _ZHU_WORDS.match(converted, i) else ("着" if c == "著" else c) for i, c in enumerate(converted))
    else:
        converted = _converter("s2hk" if cantonese else "s2tw").convert(text)
    return converted if len(converted) == len(text) else text


def taiwan_phrasing(text: str) -> str:
    """Simplified ``text`` in Traditional characters with Taiwan forms *and* phrasing (OpenCC ``s2twp``).

    Whole words are replaced (设置 -> 設定, 默认 -> 預設, 视频 -> 影片), so the length may change:
    for texts written for people (the UI strings), not for transcripts whose word boundaries matter
    (those go through :func:`to_script`).
    """
    if not CJK_RE.search(text):
        return text
    return str(_converter("s2twp").convert(text))


def simplified(text: str) -> str:
    """``text`` in Simplified characters (what the lexicon, jieba and CC-CEDICT are looked up in)."""
    return to_script(text, "zh-Hans")


def script_of(text: str) -> Script | None:
    """The script ``text`` is written in: ``None`` without Chinese characters (or when nothing tells them apart)."""
    if not CJK_RE.search(text):
        return None
    as_simplified = simplified(text)
    as_traditional = to_script(text, "zh-Hant")
    traditional = sum(a != b for a, b in zip(text, as_simplified, strict=True))
    simple = sum(a != b for a, b in zip(text, as_traditional, strict=True))
    if traditional == simple:
        return None
    return "zh-Hant" if traditional > simple else "zh-Hans"


@lru_cache(maxsize=65536)
def syllables(text: str) -> tuple[str, ...]:
    """Toneless pinyin of each character of ``text`` (``ü`` as ``v``; non-Chinese characters as themselves)."""
    from pypinyin import Style, lazy_pinyin

    return tuple(lazy_pinyin(text, style=Style.NORMAL, v_to_u=False, errors=_each_character))


def _each_character(chars: str) -> Any:
    """pypinyin's ``errors=``: one item per non-Chinese character (a list; its stubs only allow a str, hence Any)."""
    return list(chars)
