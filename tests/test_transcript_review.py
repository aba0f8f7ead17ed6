"""Issue 13 on the speech side, through ``voice2anime transcribe --json``: script per reader, corrections shown, unsure marks."""

from __future__ import annotations

import json

import pytest

from bot.cli import main
from engine.api import Word
from engine.language.chinese import script_for, to_script
from engine.speech.correction import review
from tests.support.speech import zh_clips


def transcribe_json(capsys, monkeypatch, whisper_model_dir, path, *args: str) -> dict:
    for name, value in {"WHISPER_MODEL": str(whisper_model_dir), "WHISPER_BEAM_SIZE": "2", "WHISPER_CPU_THREADS": "1",
                        "WHISPER_TRANSLATE": "false", "WHISPER_DEVICE": "cpu"}.items():
        monkeypatch.setenv(name, value)
    assert main(["transcribe", str(path), "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_mandarin_in_simplified_with_corrections_flagged(capsys, monkeypatch, whisper_model_dir):
    clip = next(c for c in zh_clips("dev") if c.path.stem == "long_hair_umbrella")  # Whisper: 一個掌頭發的女孩在一中撐著紅散
    heard = transcribe_json(capsys, monkeypatch, whisper_model_dir, clip.path, "--script", "zh-Hans")
    assert heard["script"] == "zh-Hans" and to_script(heard["text"], "zh-Hans") == heard["text"]
    corrected = {w["text"]: w["corrected_from"] for w in heard["words"] if w["corrected_from"]}
    assert corrected.get("伞") == "散" and corrected.get("雨中") == "一中"
    assert all(w["unsure"] for w in heard["words"] if w["corrected_from"])


def test_traditional_for_a_zh_hant_reader_and_as_heard_without_a_script(capsys, monkeypatch, whisper_model_dir):
    clip = next(c for c in zh_clips("dev") if c.path.stem == "blue_hair_girl")
    hant = transcribe_json(capsys, monkeypatch, whisper_model_dir, clip.path, "--script", "zh-Hant")
    assert hant["text"] == "一個藍色頭髮的女孩在櫻花樹下" and hant["script"] == "zh-Hant"
    raw = transcribe_json(capsys, monkeypatch, whisper_model_dir, clip.path)
    assert raw["script"] is None


@pytest.mark.parametrize(
    ("tag", "spoken", "script"),
    [("zh-CN", None, "zh-Hans"), ("zh", None, "zh-Hans"), ("zh-TW", None, "zh-Hant"), ("zh-HK", None, "zh-Hant"),
     ("zh-Hant", None, "zh-Hant"), ("zh", "yue", "zh-Hant"), ("yue", None, "zh-Hant"), ("en", None, None), (None, None, None)],
)
def test_script_follows_the_user(tag, spoken, script):
    assert script_for(tag, spoken=spoken) == script


def test_english_near_miss_is_corrected_and_marked():
    words = [Word(" a", 0, 0, 0.18), Word("fuck", 0, 0, 0.48), Word("spirit", 0, 0, 0.94), Word("forest.", 0, 0, 1.0)]
    reviewed = review(words, "en")
    assert [w.text for w in reviewed] == [" a", "fox", "spirit", "forest."]
    assert reviewed[1].corrected_from == "fuck" and reviewed[1].unsure
    assert not reviewed[2].unsure and not reviewed[3].unsure


def test_sure_words_are_never_corrected():
    words = [Word("fuck", 0, 0, 0.97), Word("spirit", 0, 0, 0.94)]
    assert [w.corrected_from for w in review(words, "en")] == [None, None]


def test_without_a_reader_script_a_correction_is_written_like_the_transcript():
    """A one-character correction (散 -> 伞) in a Traditional transcript comes out Traditional (傘), for an English-UI reader."""
    traditional = [Word("撐著", 0, 0, 0.9), Word("紅", 0, 0, 0.9), Word("散", 0, 0, 0.3)]
    simplified = [Word("撑着", 0, 0, 0.9), Word("红", 0, 0, 0.9), Word("散", 0, 0, 0.3)]
    assert [(w.text, w.corrected_from) for w in review(traditional, "zh")][-1] == ("傘", "散")
    assert [(w.text, w.corrected_from) for w in review(simplified, "zh")][-1] == ("伞", "散")


def test_an_article_is_unsure_only_when_whisper_barely_heard_it():
    """Whisper is often unsure of a sentence's first "A"; an article changes little in a picture, so 0.36 is not a mark."""
    words = [Word("A", 0, 0, 0.36), Word(" girl", 0, 0, 0.36), Word(" at", 0, 0, 0.9), Word(" the", 0, 0, 0.2), Word(" lake.", 0, 0, 0.9)]
    assert [w.unsure for w in review(words, "en")] == [False, True, False, True, False]
