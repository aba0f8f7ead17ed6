"""Tests for engine.language.prompt: description (zh / yue / en) -> Stable Diffusion prompt."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.api import ParsedDescription, Prompt
from engine.errors import EmptyTextError
from engine.language.lexicon import EN_INDEX, ZH_INDEX
from engine.language.prompt import (
    CLIP_CONTENT_TOKENS,
    MAX_INPUT_CHARS,
    MAX_USER_CHARS,
    NEGATIVE_PROMPT,
    STYLE_TAGS,
    build_prompt,
    estimate_clip_tokens,
    parse_description,
)


def user_part(prompt: Prompt) -> str:
    assert prompt.positive.endswith(STYLE_TAGS)
    return prompt.positive[: -len(STYLE_TAGS)].removesuffix(", ")


# --------------------------------------------------------------------------
# Chinese / Cantonese
# --------------------------------------------------------------------------


def test_glasses_boy_reading() -> None:
    prompt = build_prompt("戴眼镜的男孩看书")
    assert prompt.parsed == ParsedDescription(
        subject="boy", attributes=("wearing glasses",), action="reading a book"
    )
    assert prompt.positive.startswith(
        "a boy wearing glasses reading a book, anime style"
    )
    assert prompt.language == "zh"
    assert prompt.description == "戴眼镜的男孩看书"


def test_blue_haired_girl_under_cherry_blossoms() -> None:
    parsed = build_prompt("一个蓝色头发的女孩在樱花树下").parsed
    assert parsed == ParsedDescription(
        subject="girl", attributes=("blue hair",), scene=("cherry blossom trees",)
    )


def test_scenery_without_subject() -> None:
    prompt = build_prompt("下雨的晚上城市街道")
    assert prompt.parsed.subject == ""
    assert set(prompt.parsed.scene) == {"rain", "night", "city street"}
    assert user_part(prompt).startswith("scenery, ")


def test_cantonese() -> None:
    prompt = build_prompt("一個戴帽嘅女仔喺海邊")
    assert prompt.parsed == ParsedDescription(
        subject="girl", attributes=("wearing a hat",), scene=("beach",)
    )
    assert user_part(prompt) == "a girl wearing a hat, beach"


def test_cantonese_reading_and_traditional_hair() -> None:
    parsed = build_prompt("睇書嘅細路仔，藍色頭髮，喺公園").parsed
    assert parsed.subject == "child"
    assert parsed.action == "reading a book"
    assert parsed.attributes == ("blue hair",)
    assert parsed.scene == ("park",)


def test_colour_number_and_golden_hair() -> None:
    assert build_prompt("两只白猫在屋顶上睡觉").positive.startswith(
        "two white cats sleeping, rooftop, "
    )
    parsed = build_prompt("穿红色裙子的金发少女拿着伞").parsed
    assert parsed.subject == "girl"
    assert parsed.attributes == ("wearing a red dress", "blonde hair")
    assert parsed.action == "holding an umbrella"


def test_negation_goes_to_negative_prompt() -> None:
    prompt = build_prompt("不戴眼镜的女孩")
    assert "glasses" not in prompt.positive
    assert prompt.negative == f"{NEGATIVE_PROMPT}, glasses"
    assert build_prompt("a girl without glasses").negative.endswith(", glasses")


def test_an_untranslatable_name_is_reported_never_drawn() -> None:
    prompt = build_prompt("小明的猫在草地上")
    assert prompt.parsed.subject == "cat" and prompt.parsed.scene == ("meadow",)
    assert prompt.untranslated == ("小明",)
    assert "小明" not in prompt.positive and not any("\u4e00" <= c <= "\u9fff" for c in prompt.positive)


def test_words_outside_the_lexicon_are_translated() -> None:
    pikachu = build_prompt("皮卡丘在海边吃拉面")  # not in CC-CEDICT: reported for the user to rephrase
    assert pikachu.parsed == ParsedDescription(subject="", action="eating ramen", scene=("beach",))
    assert pikachu.untranslated == ("皮卡丘",) and pikachu.positive.startswith("eating ramen, beach, ")
    assert build_prompt("女孩在长椅上").parsed.scene == ("bench",)
    astronaut = build_prompt("宇航员在月球上骑马")
    assert astronaut.positive.startswith("an astronaut riding a horse, moon, ")
    assert astronaut.untranslated == ()


def test_compounds_are_not_split_into_known_words() -> None:
    assert build_prompt("一只猫头鹰在月光下").parsed.subject == "owl"
    assert build_prompt("雪人站在雪地里").parsed.subject == "snowman"
    assert build_prompt("熊猫在竹林里吃竹子").positive.startswith("a panda eating bamboo, bamboo forest, ")


def test_counts_with_any_measure_word() -> None:
    assert build_prompt("三匹马在草原上奔跑").positive.startswith("three horses running, meadow, ")
    assert build_prompt("两只白猫在屋顶上").positive.startswith("two white cats, rooftop, ")
    assert build_prompt("四个男孩在踢足球").parsed.subject == "four boys"


def test_negation_outside_the_lexicon() -> None:
    prompt = build_prompt("没有胡子的男人")
    assert prompt.parsed.subject == "man"
    assert prompt.negative.endswith(", beard") and "beard" not in prompt.positive
    assert build_prompt("a dragon without scales").negative.endswith(", scales")


def test_cantonese_words() -> None:
    assert build_prompt("一個靚仔喺海邊踩單車").parsed.subject == "handsome young man"
    assert build_prompt("佢啲貓喺度瞓覺").positive.startswith("some cats sleeping, ")
    girl = build_prompt("我想要一個細路女拎住氣球")
    assert (girl.parsed.subject, girl.parsed.action) == ("little girl", "holding a balloon")
    no_glasses = build_prompt("冇戴眼鏡嘅女仔食緊雪糕")
    assert no_glasses.negative.endswith(", glasses") and no_glasses.parsed.action == "eating ice cream"


def test_modifiers_stay_with_their_own_noun() -> None:
    assert build_prompt("a white cat and a black dog on a sofa").positive.startswith("a white cat and a black dog, sofa, ")
    assert build_prompt("蓝眼睛的白猫和黑色的狗").positive.startswith("a white cat and a black dog with blue eyes, ")


def test_english_filler_words_and_typos() -> None:
    prompt = build_prompt("um a gril with like bleu hair basically kinda sitting in a forrest, you know")
    assert prompt.positive.startswith("a girl with blue hair sitting, forest, anime style")
    assert build_prompt("a fox spirit kinda floating over a lake").positive.startswith("a fox spirit floating, lake, ")


# --------------------------------------------------------------------------
# English
# --------------------------------------------------------------------------


def test_english_phrase_matching() -> None:
    prompt = build_prompt("a girl with blue hair under cherry blossoms at night")
    assert prompt.parsed == ParsedDescription(
        subject="girl", attributes=("blue hair",), scene=("cherry blossoms", "night")
    )
    assert prompt.language == "en"
    assert user_part(prompt) == "a girl with blue hair, cherry blossoms, night"


def test_english_actions_objects_and_plurals() -> None:
    parsed = build_prompt(
        "Two girls and a dog eating ice cream on the beach at sunset!"
    ).parsed
    assert parsed == ParsedDescription(
        subject="two girls and a dog",
        action="eating ice cream",
        scene=("beach", "sunset"),
    )
    assert build_prompt(
        "an old man holding an umbrella in the rain"
    ).positive.startswith("an old man holding an umbrella, rain, ")


def test_unknown_english_words_pass_through() -> None:
    prompt = build_prompt("a girl in a sparkly dress reading the newspaper, steampunk")
    assert prompt.parsed.subject == "girl"
    assert prompt.parsed.attributes == ("wearing a sparkly dress", "steampunk")
    assert prompt.parsed.action == "reading the newspaper"
    assert (
        user_part(prompt)
        == "a girl wearing a sparkly dress reading the newspaper, steampunk"
    )
    assert build_prompt("pikachu eating ramen").parsed.subject == "pikachu"


def test_long_blue_hair_and_full_width_input() -> None:
    assert build_prompt("ａ ｇｉｒｌ ｗｉｔｈ long blue hair").parsed.attributes == (
        "long blue hair",
    )


# --------------------------------------------------------------------------
# Mixed, translation, language, errors
# --------------------------------------------------------------------------


def test_mixed_chinese_and_english() -> None:
    prompt = build_prompt("我想要一个可爱的猫耳女孩 wearing a hoodie 在咖啡厅喝咖啡")
    assert prompt.parsed == ParsedDescription(
        subject="girl",
        attributes=("cute", "cat ears", "wearing a hoodie"),
        action="drinking coffee",
        scene=("cafe",),
    )
    assert (
        user_part(prompt)
        == "a cute girl with cat ears wearing a hoodie drinking coffee, cafe"
    )
    assert prompt.language == "zh"


def test_translation_is_preferred() -> None:
    prompt = build_prompt(
        "一个女孩在海边",
        translation="A girl with red hair on the beach at sunset.",
        language="zh",
    )
    assert prompt.description == "一个女孩在海边"
    assert prompt.language == "zh"
    assert prompt.parsed == ParsedDescription(
        subject="girl", attributes=("red hair",), scene=("beach", "sunset")
    )


def test_translation_without_content_falls_back_to_lexicon() -> None:
    for translation in ("", "   ", "...", "Please draw."):
        prompt = build_prompt("戴眼镜的男孩看书", translation=translation)
        assert prompt.parsed.subject == "boy"


def test_language_hint() -> None:
    assert build_prompt("一個戴帽嘅女仔", language="YUE").language == "yue"
    assert build_prompt("a cat", language=" ").language == "en"


@pytest.mark.parametrize(
    "text", ["", "   ", "\n\t", "!!!", "。，？！", "🐱🎨", "please draw", "的了吧"]
)
def test_empty_input(text: str) -> None:
    with pytest.raises(EmptyTextError):
        build_prompt(text)
    with pytest.raises(EmptyTextError):
        parse_description(text, "zh")


def test_empty_description_even_with_translation() -> None:
    with pytest.raises(EmptyTextError):
        build_prompt("  ", translation="a cat")


def test_parse_description_matches_build_prompt() -> None:
    assert (
        parse_description("戴眼镜的男孩看书", "zh")
        == build_prompt("戴眼镜的男孩看书").parsed
    )


def test_negative_prompt() -> None:
    negative = build_prompt("a cat").negative
    for tag in (
        "lowres",
        "bad anatomy",
        "bad hands",
        "extra fingers",
        "blurry",
        "watermark",
        "text",
    ):
        assert tag in negative


# --------------------------------------------------------------------------
# Bounds and fuzzing
# --------------------------------------------------------------------------


def test_long_input_is_bounded() -> None:
    text = "一个蓝色头发的女孩在樱花树下 a girl with pikachu-ish sparkly wings " * 2000
    prompt = build_prompt(text)
    assert estimate_clip_tokens(prompt.positive) <= CLIP_CONTENT_TOKENS
    assert len(user_part(prompt)) <= MAX_USER_CHARS
    assert MAX_INPUT_CHARS - len("sparkly wings") <= len(prompt.description) <= MAX_INPUT_CHARS
    assert text.startswith(prompt.description + " "), "cut between words"


def test_a_dictionary_explanation_never_reaches_the_prompt() -> None:
    """CC-CEDICT explains some words after a colon (亥: "12th earthly branch: 9-11 p.m., ..."): prompt syntax, cut."""
    user = user_part(build_prompt("亥"))
    assert user == "a 12th earthly branch" and not any(ch in user for ch in "()[]{}:")


def test_one_huge_unknown_word_is_cut_not_dropped() -> None:
    prompt = build_prompt("x" * 50_000)
    assert user_part(prompt).startswith("xxxx")
    assert estimate_clip_tokens(prompt.positive) <= CLIP_CONTENT_TOKENS


_LEXICON_WORDS = sorted(ZH_INDEX) + sorted(" ".join(k) for k in EN_INDEX)
_MIXED_TEXT = st.lists(
    st.one_of(
        st.sampled_from(_LEXICON_WORDS),
        st.sampled_from([" ", ",", "。", "！", "…", "\n", "(", ")", ":", "'", "-"]),
        st.text(
            alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),
            max_size=4,
        ),
        st.text(max_size=6),
    ),
    max_size=40,
).map("".join)
_ANY_TEXT = st.one_of(st.text(), _MIXED_TEXT)


def check_prompt(text: str, translation: str | None = None) -> None:
    try:
        prompt = build_prompt(text, translation=translation)
    except EmptyTextError:
        return
    user = user_part(prompt)
    assert len(user) <= MAX_USER_CHARS
    assert estimate_clip_tokens(prompt.positive) <= CLIP_CONTENT_TOKENS
    assert estimate_clip_tokens(prompt.negative) <= CLIP_CONTENT_TOKENS
    assert prompt.negative.startswith(NEGATIVE_PROMPT)
    assert not any(ch in user for ch in "()[]{}:\n")
    assert prompt.language in ("zh", "en")
    assert build_prompt(text, translation=translation) == prompt  # deterministic


@settings(max_examples=400, deadline=None)
@given(_ANY_TEXT)
def test_fuzz_build_prompt(text: str) -> None:
    check_prompt(text)


@settings(max_examples=100, deadline=None)
@given(_ANY_TEXT, st.one_of(st.none(), _ANY_TEXT))
def test_fuzz_build_prompt_with_translation(text: str, translation: str | None) -> None:
    check_prompt(text, translation)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_ANY_TEXT.filter(bool))
def test_fuzz_100k_input_is_bounded(chunk: str) -> None:
    check_prompt((chunk * (100_000 // len(chunk) + 1))[:100_000])


def test_translation_that_contradicts_the_lexicon_is_ignored() -> None:
    # What Whisper base really produced for these Mandarin voice notes (task="translate").
    boy = build_prompt("戴眼镜的男孩看书", translation="The man in the eyes is still looking at the book.", language="zh")
    assert (boy.parsed.subject, boy.parsed.attributes, boy.parsed.action) == ("boy", ("wearing glasses",), "reading a book")
    night = build_prompt("下雨的晚上城市街道", translation="See you in the next episode.", language="zh")
    assert set(night.parsed.scene) == {"rain", "night", "city street"}
    # A half-right translation loses what the lexicon understood: the lexicon reading wins.
    girl = build_prompt("一个蓝色头发的女孩在樱花树下", translation="A blue hair-like still girl.", language="zh")
    assert (girl.parsed.subject, girl.parsed.attributes) == ("girl", ("blue hair",))
    assert girl.parsed.scene == ("cherry blossom trees",)


def test_translation_for_words_the_lexicon_does_not_know_is_used() -> None:
    prompt = build_prompt("一只柯基在冲浪", translation="A corgi is surfing.", language="zh")
    assert "corgi" in prompt.positive


def test_a_description_over_the_input_cap_is_cut_between_words(capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    text = "a small girl with long silver hair " * 70  # 2,450 characters; cut at 2,000 ("…a small gir|l")
    assert main(["prompt", text, "--json"]) == 0
    description = json.loads(capsys.readouterr().out)["description"]
    assert len(description) <= 2000
    assert set(description.split()) <= set(text.split()), "every word whole"


def test_warm_up_loads_what_a_first_description_would_wait_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bot warms up in a thread at start, so the first Chinese message does not hold up everyone's events."""
    import engine.language.prompt
    from engine.language.translate import ChineseReader

    fresh = ChineseReader()
    monkeypatch.setattr(engine.language.prompt, "reader", lambda: fresh)
    engine.language.prompt.warm_up()
    assert fresh._posseg is not None and fresh.cedict._vocabulary is not None and fresh.cedict._entries is not None
