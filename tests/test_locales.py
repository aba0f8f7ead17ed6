"""The gettext catalogs of handlers.locales: complete, in step with each other, plural forms, the generated zh_Hant."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from bot.web_i18n import page_strings, page_word
from engine.language.chinese import taiwan_phrasing
from handlers.i18n import LANGUAGES, error_text, message_keys, t, template
from handlers.locales import build
from handlers.locales.catalogs import LOCALES, ROOT, po_path, read_catalog

ROOT_DIR = Path(__file__).resolve().parents[1]


def _texts(locale: str) -> dict[str, str | tuple[str, ...]]:
    return {m.id[0] if m.pluralizable else m.id: m.string for m in read_catalog(po_path(locale), locale) if m.id}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_catalog_has_every_message_of_its_own(lang: str) -> None:
    texts = _texts(LOCALES[lang])
    assert list(texts) == list(message_keys()), "the same messages, in the same order"
    empty = [key for key, text in texts.items() if not text or (isinstance(text, tuple) and not all(text))]
    assert empty == []


def test_the_studio_words_come_from_the_catalogs() -> None:
    strings = page_strings()
    assert set(strings) == set(LANGUAGES)
    assert strings["en"]["mic.idle"] == page_word("mic.idle", "en") == "🎙 Hold to talk"
    assert strings["zh-Hans"]["mic.idle"] == "🎙 按住说话" and strings["zh-Hant"]["mic.idle"] == "🎙 按住說話"
    assert strings["en"]["recorder.limit"].count("{seconds}") == 1, "placeholders are left for the page"
    assert strings["zh-Hans"]["placeholder"] == t("command.anime.text", "zh-Hans")
    assert not any(key.startswith("studio.") for words in strings.values() for key in words)


def test_plural_forms_follow_the_count() -> None:
    assert t("queue.user_full", "en", limit=1).startswith("You already have 1 picture waiting. Please wait for it")
    assert t("queue.user_full", "en", limit=3).startswith("You already have 3 pictures waiting. Please wait for them")
    assert t("queue.full", "en", limit=1) == "I'm very busy right now (1 picture waiting). Please try again in a few minutes."
    assert "(1 character)" in t("text.too_long", "en", length=1, limit=500)
    assert "(501 characters)" in t("text.too_long", "en", length=501, limit=500)
    # Chinese has one form for every count
    assert t("queue.user_full", "zh-Hans", limit=1) == "你已经有 1 张图片在排队了，请先等待（或用 /cancel 取消）。"
    assert t("queue.user_full", "zh-Hant", limit=5) == "你已經有 5 張圖片在排隊了，請先等待（或用 /cancel 取消）。"
    # an error that crossed a process without its count degrades to the generic message
    assert error_text("queue.user_full", "en") == t("error.generic", "en")
    assert template("queue.user_full", "en", 1) != template("queue.user_full", "en")


def test_an_unknown_key_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        t("no.such.key", "en")


def test_the_traditional_catalog_is_regenerated_without_a_diff() -> None:
    assert build.generated() == po_path("zh_Hant").read_text(encoding="utf-8"), "run python -m handlers.locales.build"
    assert build.main(["--check"]) == 0


def test_traditional_texts_are_converted_except_the_overrides() -> None:
    simplified, traditional = _texts("zh_Hans"), _texts("zh_Hant")
    overridden = {m.id for m in read_catalog(build.OVERRIDES, "zh_Hant") if m.id}
    assert {"ui_language.zh-Hans", "help.group"} <= overridden
    for key, text in simplified.items():
        if key in overridden:
            continue
        assert traditional[key] == (taiwan_phrasing(text) if isinstance(text, str) else tuple(map(taiwan_phrasing, text)))
    assert traditional["ui_language.zh-Hans"] == "中文（简体）", "a language's own name is not converted"
    assert t("settings.heading", "zh-Hant") == "設定"
    assert "頻道裡" in t("help.group", "zh-Hant")


def test_a_stale_override_is_refused() -> None:
    source = read_catalog(po_path("zh_Hans"), "zh_Hans")
    overrides = read_catalog(build.OVERRIDES, "zh_Hant")
    overrides.add("no.such.key", "字")
    with pytest.raises(ValueError, match="no.such.key"):
        build.traditional(source, overrides)


def test_the_catalogs_are_package_data() -> None:
    package_data = tomllib.loads((ROOT_DIR / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["package-data"]
    files = {path.relative_to(ROOT.parent).as_posix() for path in ROOT.rglob("*.po")}
    assert files == {f"locales/{locale}/LC_MESSAGES/messages.po" for locale in LOCALES.values()} | {"locales/zh_Hant.overrides.po"}
    patterns = package_data["handlers"]
    assert all(any(Path(file).match(pattern) for pattern in patterns) for file in files)
