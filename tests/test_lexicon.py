"""Tests for engine.language.lexicon: the vocabulary file, its checks, and the indexes built from it."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from types import MappingProxyType

import pytest

import engine.language.lexicon as lexicon
from engine.language.chinese import simplified
from engine.language.lexicon import (
    COLUMNS,
    EN_INDEX,
    HAIR_COLOR_NAMES,
    LEXICON_FILE,
    MEANINGS,
    WORD_KINDS,
    ZH_INDEX,
    ZH_NAMES,
    Entry,
    Kind,
    LexiconError,
    en_index,
    in_chinese,
    plural_of,
    read_meanings,
    zh_index,
    zh_names,
)

ROOT = Path(__file__).resolve().parent.parent
HEADER = "\t".join(COLUMNS)


def vocabulary(tmp_path: Path, *rows: str) -> Path:
    """A vocabulary file with a comment, the header row and ``rows`` (cells separated by TAB)."""
    path = tmp_path / "lexicon.tsv"
    path.write_text("\n".join(["# a test vocabulary", "", HEADER, *rows]) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------
# The shipped vocabulary
# --------------------------------------------------------------------------


def test_the_shipped_vocabulary_is_one_row_per_meaning() -> None:
    assert LEXICON_FILE == ROOT / "engine" / "language" / "lexicon.tsv"
    assert read_meanings() == MEANINGS and len(MEANINGS) > 200
    assert len({(m.kind, m.english) for m in MEANINGS}) == len(MEANINGS)
    assert {m.kind for m in MEANINGS} == WORD_KINDS
    assert all(m.where.startswith(f"{LEXICON_FILE}:") for m in MEANINGS)
    header = next(line for line in LEXICON_FILE.read_text(encoding="utf-8").splitlines() if not line.startswith("#"))
    assert header == HEADER


def test_the_file_format_is_documented_where_it_is_read() -> None:
    doc, top = lexicon.__doc__ or "", LEXICON_FILE.read_text(encoding="utf-8").split(HEADER)[0]
    for column in COLUMNS:
        assert f"``{column}``" in doc and f"#   {column}" in top
    for flag in ("transitive", "hair="):
        assert flag in doc and flag in top


def test_the_vocabulary_is_shipped_as_package_data() -> None:
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert LEXICON_FILE.name in package_data["engine.language"]


def test_the_vocabulary_is_read_once_per_process() -> None:
    script = (
        "import sys\n"
        "opened = []\n"
        "sys.addaudithook(lambda event, args: opened.append(args[0]) if event == 'open' and str(args[0]).endswith('lexicon.tsv') else None)\n"
        "import engine.language.lexicon, engine.language.prompt, engine.speech.correction, engine.language.translate\n"
        "print(len(opened))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "1"


def test_a_meaning_is_named_in_simplified_chinese() -> None:
    assert [m.zh[0] for m in MEANINGS if m.zh and simplified(m.zh[0]) != m.zh[0]] == []


def test_indexes_are_read_only_and_consistent() -> None:
    assert isinstance(ZH_INDEX, MappingProxyType) and isinstance(EN_INDEX, MappingProxyType)
    assert ZH_INDEX["頭髮"] == ZH_INDEX["头发"]
    assert ZH_INDEX["嘅"].kind is Kind.STOP and ZH_INDEX["喺"].kind is Kind.LOCATIVE
    assert ZH_INDEX["睇書"].english == "reading a book"
    assert EN_INDEX[("children",)].is_plural
    assert plural_of("old woman") == "old women"


def test_flags_and_colours_of_the_shipped_vocabulary() -> None:
    assert HAIR_COLOR_NAMES == {"golden": "blonde"}
    assert ZH_INDEX["金发"] == Entry("blonde hair", Kind.HAIR) and ZH_INDEX["藍髮"] == Entry("blue hair", Kind.HAIR)
    assert ZH_INDEX["蓝色"] == ZH_INDEX["蓝"] == Entry("blue", Kind.COLOR)
    assert ZH_INDEX["拿着"].transitive and EN_INDEX[("looking", "at")].transitive
    assert not ZH_INDEX["跑步"].transitive and not EN_INDEX[("reading", "a", "book")].transitive
    assert EN_INDEX[("reading",)].transitive  # an English-only row
    assert ZH_INDEX["两只"] == Entry("two", Kind.NUMBER) and ZH_INDEX["一只"].kind is Kind.STOP
    assert ZH_NAMES["girls"] == ZH_NAMES["girl"] == "女孩" and ZH_NAMES["two"] == "两个"
    assert in_chinese("two girls wearing a hat with cat ears") == "两个女孩戴着帽子有猫耳"
    assert in_chinese("deep snow") == "deep snow" and in_chinese("old castle") == "old castle"  # never half translated


# --------------------------------------------------------------------------
# Reading a vocabulary file
# --------------------------------------------------------------------------


def test_a_small_vocabulary_builds_the_same_kinds_of_entries(tmp_path: Path) -> None:
    path = vocabulary(
        tmp_path,
        "subject\told man\t老人, 爷爷\told man, grandpa",
        "color\tgolden\t金\tgolden, gold\thair=blonde",
        "action\tholding\t拿着\tholding\ttransitive",
        "place\thong kong\t香港",  # English form and flags left out
        "adjective\ttall\t\ttall\t",
    )
    meanings = read_meanings(path)
    assert [m.where for m in meanings] == [f"{path}:{line}" for line in (4, 5, 6, 7, 8)]
    zh, en = zh_index(meanings), en_index(meanings)
    assert zh["爷爷"] == Entry("old man", Kind.SUBJECT, plural="old men")
    assert en[("grandpas",)] == Entry("old man", Kind.SUBJECT, plural="old men", is_plural=True)
    assert zh["金髮"] == Entry("blonde hair", Kind.HAIR) and zh["金色"] == en[("gold",)] == Entry("golden", Kind.COLOR)
    assert zh["拿着"].transitive and en[("holding",)].transitive
    assert zh["香港"] == Entry("hong kong", Kind.PLACE) and en[("tall",)].kind is Kind.ADJECTIVE
    assert zh["的"].kind is Kind.STOP and en[("the",)].kind is Kind.ARTICLE  # grammar words come from the code
    names = zh_names(meanings)
    assert (names["old man"], names["old men"], names["golden"], names["long"]) == ("老人", "老人", "金", "长")
    assert "tall" not in names


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("monster\tghost\t鬼\tghost", "kind 'monster' is not one of"),
        ("stop\tplease\t请\tplease", "kind 'stop' is not one of"),  # grammar words stay in code
        ("subject\tcat\t猫\tcat\t\textra", "6 cells"),
        ("subject\tcat", "2 cells"),
        ("subject\tCat\t猫\tcat", "lower case"),
        ("subject\tcat\t猫\tCat, kitty", "English form 'Cat'"),
        ("subject\tcat\t猫, , 貓\tcat", "an empty form"),
        ("subject\tcat\t\t", "no Chinese or English form"),
        ("subject\tcat\t猫, 猫\tcat", "'猫' twice in one row"),
        ("subject\tcat\t猫\tcat\ttransitive", "flag 'transitive'"),
        ("action\trunning\t跑\trunning\thair=blonde", "flag 'hair=blonde'"),
    ],
)
def test_a_bad_row_names_its_file_and_line(tmp_path: Path, row: str, message: str) -> None:
    path = vocabulary(tmp_path, "subject\tdog\t狗\tdog", row)
    with pytest.raises(LexiconError, match=message) as caught:
        read_meanings(path)
    assert str(caught.value).startswith(f"{path}:5: ")


def test_a_meaning_written_twice_is_refused(tmp_path: Path) -> None:
    path = vocabulary(tmp_path, "subject\tcat\t猫\tcat", "subject\tdog\t狗\tdog", "subject\tcat\t貓\tkitty")
    with pytest.raises(LexiconError, match=f"^{re.escape(str(path))}:6: subject 'cat' again \\(first at line 4\\)"):
        read_meanings(path)


def test_the_header_row_is_required(tmp_path: Path) -> None:
    path = tmp_path / "lexicon.tsv"
    path.write_text("subject\tcat\t猫\tcat\n", encoding="utf-8")
    with pytest.raises(LexiconError, match=f"^{re.escape(str(path))}:1: the first row must be the header"):
        read_meanings(path)
    path.write_text("# only a comment\n", encoding="utf-8")
    with pytest.raises(LexiconError, match="no header row"):
        read_meanings(path)


def test_a_form_that_would_mean_two_things_names_both_rows(tmp_path: Path) -> None:
    path = vocabulary(tmp_path, "subject\tcat\t猫\tcat", "subject\tdog\t狗\tdog", "subject\tkitten\t猫\tkitten")
    with pytest.raises(
        LexiconError, match=f"^{re.escape(str(path))}:6: lexicon conflict for '猫': .* at {re.escape(str(path))}:4$"
    ):
        zh_index(read_meanings(path))
    path = vocabulary(tmp_path, "object\ta cake\t蛋糕\tcake", "place\tbakery\t饼店\tcake")
    with pytest.raises(LexiconError, match=f"^{re.escape(str(path))}:5: lexicon conflict for \\('cake',\\): place 'bakery' here"):
        en_index(read_meanings(path))


def test_a_conflict_with_a_grammar_word_names_the_row(tmp_path: Path) -> None:
    path = vocabulary(tmp_path, "subject\tcat\t猫\tcat", "object\ta target\t的\ttarget")
    with pytest.raises(
        LexiconError, match=f"lexicon conflict for '的': a stop word here, object 'a target' at {re.escape(str(path))}:5$"
    ):
        zh_index(read_meanings(path))
    path = vocabulary(tmp_path, "subject\tgirl\t红\tgirl", "color\tred\t红\tred")
    with pytest.raises(
        LexiconError,
        match=f"^{re.escape(str(path))}:5: lexicon conflict for '红': color 'red' here, subject 'girl' at {re.escape(str(path))}:4$",
    ):
        zh_index(read_meanings(path))
