"""The content policy's prompt check: refusals in English and Chinese, obfuscations, harmless words, levels, term files, CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench.prompt import CASES
from bot.cli import main
from engine.errors import UserError
from engine.language.lexicon import EN_INDEX, ZH_INDEX
from engine.language.prompt import build_prompt
from engine.policy.levels import LEVELS, Level, effective_level, off_allowed
from engine.policy.text import ChatPolicy, PromptChecker, TermList, TermListError, prompt_checker

FIXTURES = Path(__file__).parent / "fixtures" / "zh"


@pytest.fixture(scope="module")
def checker() -> PromptChecker:
    return prompt_checker()


def verdict(checker: PromptChecker, text: str, level: str = "strict"):
    """The verdict on ``text`` as the conversation asks for it (the built prompt), or on the bare text when nothing parses."""
    try:
        return checker.check_prompt(build_prompt(text), level)
    except UserError:
        return checker.check_text(text, level)


# --- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "category", "found"),
    [
        ("a nude girl on the beach", "sexual", "nude"),
        ("NAKED elf in a forest", "sexual", "NAKED"),
        ("hentai catgirl", "sexual", "hentai"),
        ("a girl taking off her clothes, topless", "sexual", "topless"),
        ("a decapitated knight", "gore", "decapitated"),
        ("a samurai covered in blood", "gore", "covered in blood"),
        ("a swastika flag", "hate", "swastika"),
        ("fuck spirit in the forest", "sexual", "fuck"),  # the misheard "fox spirit" of our own clips
        ("一个裸体的女孩", "sexual", "裸体"),
        ("色情图片", "sexual", "色情"),
        ("血腥的战场", "gore", "血腥"),
        ("強姦", "sexual", "強姦"),  # Traditional script, matched as Simplified
        ("裸體少女", "sexual", "裸體"),
        ("发一张色图", "sexual", "色图"),
        ("纳粹士兵", "hate", "纳粹"),
    ],
)
def test_plain_refusals_in_english_and_chinese(checker: PromptChecker, text: str, category: str, found: str) -> None:
    result = verdict(checker, text)
    assert not result.allowed
    assert (category, found) in {(hit.category, hit.found) for hit in result.hits}, result.hits


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("a girl, n.s.f.w", "n.s.f.w"),
        ("n s f w anime girl", "n s f w"),
        ("n_s_f_w", "n_s_f_w"),
        ("p0rn star", "p0rn"),
        ("s3x", "s3x"),
        ("a nud3 elf", "nud3"),
        ("ｎｕｄｅ girl", "ｎｕｄｅ"),  # full width
        ("Ｎａｋｅｄ", "Ｎａｋｅｄ"),
        ("a nu-de girl", "nu-de"),
        ("p.o.r.n", "p.o.r.n"),
        ("nuuuude", "nuuuude"),
        ("pоrn", "pоrn"),  # a Cyrillic о
        ("nu\u200bde", "nu\u200bde"),  # a zero-width space
        ("nudé", "nudé"),
        ("色 情", "色 情"),
        ("色.情图", "色.情"),
        ("裸 体", "裸 体"),
        ("ｈｅｎｔａｉ", "ｈｅｎｔａｉ"),
    ],
)
def test_obfuscations_are_seen_through_and_reported_as_written(checker: PromptChecker, text: str, found: str) -> None:
    result = verdict(checker, text)
    assert not result.allowed, text
    assert found in result.words, result.hits


def test_leaving_clothes_out_is_nudity(checker: PromptChecker) -> None:
    """The prompt builder moves negated words to the negative prompt: "without clothes" would draw her nude."""
    for text in ("a girl with no clothes on", "a girl without any clothes", "不要衣服的女孩"):
        result = verdict(checker, text)
        assert not result.allowed, text
    assert any(hit.source == "negated" for hit in verdict(checker, "不要衣服的女孩").hits)


def test_children_with_sexual_words_are_refused_at_every_level(checker: PromptChecker) -> None:
    for text in ("a little girl in lingerie", "性感的小女孩", "loli"):
        for level in LEVELS:
            result = verdict(checker, text, level)
            assert not result.allowed, (text, level)
            assert "sexual_minors" in result.categories
    assert verdict(checker, "a little girl with a kite", "strict").allowed


def test_levels_refuse_what_they_say(checker: PromptChecker) -> None:
    """strict: suggestive and graphic violence too; standard: explicit, gore and hate only; off: nothing but children."""
    cases = {
        "a sexy nurse": {"strict": False, "standard": True, "off": True},
        "a murder mystery in a manor": {"strict": False, "standard": True, "off": True},
        "a nude model": {"strict": False, "standard": False, "off": True},
        "gore": {"strict": False, "standard": False, "off": True},
        "性感的护士": {"strict": False, "standard": True, "off": True},
    }
    for text, expected in cases.items():
        assert {level: verdict(checker, text, level).allowed for level in expected} == expected, text


# --- harmless words ------------------------------------------------------------------------------

SCUNTHORPE = (
    "Scunthorpe", "a sextant on a ship", "Essex", "Sussex", "Middlesex", "unisex hoodie", "analysis of a painting",
    "a canal in Venice", "a cocktail bar", "a peacock", "an assassin's creed costume", "a classic car", "a bass guitar",
    "the therapist's office", "grapes on a table", "a rapeseed field", "drapes", "a document", "a cucumber",
    "accumulate snow", "a blue tit on a branch", "a blue-footed booby", "Moby Dick", "a cockatoo", "a zebra", "Libra",
    "abracadabra", "a cobra", "a Gore-Tex jacket", "a sperm whale", "a naked mole rat", "seen with the naked eye",
    "a pussy willow", "a murder of crows", "a killer whale", "a strangler fig", "a corpse flower", "a stable",
    "a shooting star", "summa cum laude", "a circumstance", "a cumulus cloud", "Titicaca lake", "a hanger",
    "nude lipstick", "a blood moon", "a blood orange", "a bloodhound", "a sausage", "shiitake mushrooms",
    "a gorgeous gorge", "a massive mass", "a kitten", "skinny jeans",
    "蓝色图书馆", "彩色图案", "橙黄图案", "杀人鲸", "血腥玛丽鸡尾酒", "露点温度计", "红色，情人节", "赤裸裸的真相",
)


@pytest.mark.parametrize("text", SCUNTHORPE)
def test_words_that_hide_a_term_are_not_refused(checker: PromptChecker, text: str) -> None:
    result = verdict(checker, text)
    assert result.allowed, result.reasons


def harmless_descriptions() -> dict[str, list[str]]:
    """Every description of our own we know to be harmless: benchmark, voice fixtures, the lexicon, the tests' /anime texts."""
    literals = set()
    for path in Path(__file__).parent.glob("test_*.py"):
        if path.name.startswith("test_policy"):
            continue
        for match in re.finditer(r'"anime",\s*"((?:[^"\\]|\\.)+)"', path.read_text(encoding="utf-8")):
            literals.add(match.group(1))
    return {
        "bench/prompt.py": [case.text for case in CASES],
        "voice fixtures": list(json.loads((FIXTURES / "texts.json").read_text(encoding="utf-8")).values()),
        "test /anime texts": sorted(literals),
        "lexicon (zh)": sorted(ZH_INDEX),
        "lexicon (en)": sorted(" ".join(words) for words in EN_INDEX),
        "lexicon renderings": sorted({entry.english for entry in ZH_INDEX.values()} | {e.english for e in EN_INDEX.values()}),
    }


def test_no_harmless_description_of_ours_is_refused(checker: PromptChecker) -> None:
    """The false-positive check: at strict, none of our own harmless descriptions is refused."""
    refused = {
        group: [(text, verdict(checker, text).reasons) for text in texts if not verdict(checker, text).allowed]
        for group, texts in harmless_descriptions().items()
    }
    assert sum(len(texts) for texts in harmless_descriptions().values()) > 2000
    assert refused == {group: [] for group in refused}


def test_a_negated_word_does_not_count(checker: PromptChecker) -> None:
    assert verdict(checker, "a knight, no gore").allowed
    assert verdict(checker, "不要血腥的战士").allowed
    assert not verdict(checker, "a knight, gore").allowed


# --- levels per chat -------------------------------------------------------------------------------


def test_off_only_in_age_restricted_discord_channels_and_listed_telegram_chats() -> None:
    policy = ChatPolicy(level=Level.OFF, off_chats=frozenset({"-1001"}))
    assert policy.level_for("discord", "42", age_restricted=True) is Level.OFF
    assert policy.level_for("discord", "42", age_restricted=False) is Level.STANDARD
    assert policy.level_for("telegram", "-1001") is Level.OFF
    assert policy.level_for("telegram", "-1002") is Level.STANDARD
    assert policy.level_for("web", "me") is Level.STANDARD
    assert policy.level_for("telegram", "-1001", override="strict") is Level.STRICT
    strict = ChatPolicy()
    assert strict.level_for("discord", "42", age_restricted=True) is Level.STRICT
    assert strict.level_for("discord", "42", age_restricted=True, override="off") is Level.OFF
    assert strict.level_for("discord", "42", age_restricted=False, override="off") is Level.STANDARD
    assert effective_level("standard") is Level.STANDARD
    assert not off_allowed("telegram", "5", age_restricted=True, off_chats=())


# --- the term list -------------------------------------------------------------------------------


def test_the_shipped_list_is_read_and_sized() -> None:
    terms = TermList.load()
    assert terms.size > 300
    assert {"sexual", "suggestive", "gore", "violence", "hate", "sexual_minors"} <= set(terms.categories)
    assert terms.categories["sexual_minors"] == frozenset(LEVELS)
    assert terms.categories["suggestive"] == frozenset({Level.STRICT})
    assert "nsfw" in terms.negative[Level.STRICT]
    assert Level.OFF not in terms.negative


def test_an_operator_file_adds_and_removes_terms(tmp_path: Path) -> None:
    extra = tmp_path / "terms.txt"
    extra.write_text("[sexual]\nbikini\n-nude\n[brands: strict]\nacme\n[allow]\nacme road runner\n", encoding="utf-8")
    checker = PromptChecker(TermList.load(extra))
    assert not checker.check_text("a bikini", "standard").allowed
    assert checker.check_text("a nude girl", "strict").allowed  # removed
    assert not checker.check_text("an ACME anvil", "strict").allowed
    assert checker.check_text("an ACME anvil", "standard").allowed
    assert checker.check_text("acme road runner", "strict").allowed
    assert not checker.check_text("naked", "strict").allowed


def test_a_bad_term_file_says_where(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("nude\n", encoding="utf-8")
    with pytest.raises(TermListError, match=r"bad.txt:1"):
        TermList.load(bad)
    bad.write_text("[x: lenient]\nfoo\n", encoding="utf-8")
    with pytest.raises(TermListError, match=r"bad.txt:1: levels"):
        TermList.load(bad)
    with pytest.raises(TermListError, match="cannot be read"):
        TermList.load(tmp_path / "missing.txt")


def test_negative_terms_go_first(checker: PromptChecker) -> None:
    assert checker.with_negative("lowres, hat", "strict").startswith("nsfw, nude")
    assert checker.with_negative("lowres, hat", "strict").endswith("lowres, hat")
    assert checker.with_negative("lowres", "off") == "lowres"
    assert "cleavage" not in checker.negative_terms("standard")


# --- CLI ---------------------------------------------------------------------------------------------


def test_cli_prompt_json_carries_the_verdict(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONTENT_POLICY", raising=False)
    assert main(["prompt", "a girl with blue hair", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["policy"] == {"level": "strict", "allowed": True, "reasons": []}
    assert main(["prompt", "a sexy n.s.f.w nurse", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["policy"]["allowed"] is False
    assert payload["policy"]["reasons"] == ['suggestive: "sexy"', 'sexual: "n.s.f.w"']  # in the order written
    monkeypatch.setenv("CONTENT_POLICY", "standard")
    assert main(["prompt", "a sexy nurse", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["policy"] == {"level": "standard", "allowed": True, "reasons": []}


def test_cli_generate_refuses_before_any_model_loads(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CONTENT_POLICY", raising=False)
    monkeypatch.setenv("SD_MODEL", str(tmp_path / "no-such-model"))  # never reached
    assert main(["generate", "--text", "a nude elf", "-o", str(tmp_path / "out.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: The content policy (strict) does not allow this description: ")
    assert 'sexual: "nude"' in err
    assert not (tmp_path / "out.png").exists()
