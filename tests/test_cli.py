"""`voice2anime transcribe | prompt | generate` end to end on the test models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from bot.cli import main
from tests.support.images import assert_images_close, assert_images_differ
from tests.support.speech import SpokenClip, wer


@pytest.fixture
def engine_env(
    monkeypatch: pytest.MonkeyPatch, whisper_model_dir: Path, tiny_sd_dir: Path, animegan_checkpoints_dir: Path
) -> None:
    """Settings pointing at the tiny/test models, as an operator would set them."""
    for name, value in {
        "WHISPER_MODEL": str(whisper_model_dir),
        "WHISPER_CPU_THREADS": "1",
        "WHISPER_BEAM_SIZE": "1",
        "SD_MODEL": str(tiny_sd_dir),
        "SD_WIDTH": "64",
        "SD_HEIGHT": "64",
        "SD_STEPS": "2",
        "CHECKPOINTS_DIR": str(animegan_checkpoints_dir),
        "ANIME_DOWNLOAD": "false",
        "TORCH_THREADS": "1",
    }.items():
        monkeypatch.setenv(name, value)


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_prompt_command_parses_chinese(capsys: pytest.CaptureFixture[str]) -> None:
    payload = run_json(capsys, "prompt", "戴眼镜的男孩看书")
    assert payload["parsed"]["subject"] == "boy"
    assert payload["parsed"]["attributes"] == ["wearing glasses"]
    assert payload["parsed"]["action"] == "reading a book"
    assert payload["positive"].startswith("a boy wearing glasses reading a book, anime style")
    assert "lowres" in payload["negative"]


def test_prompt_command_plain_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prompt", "a girl with blue hair under cherry blossoms at night"]) == 0
    out = capsys.readouterr().out
    assert "subject:    girl" in out and "blue hair" in out and "night" in out


def test_prompt_command_rejects_empty_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prompt", "   ！！ "]) == 2
    assert "describe the picture" in capsys.readouterr().err


def test_a_translation_model_that_cannot_be_had_stops_prompt_saying_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """MT_MODEL is fetched before any description is read: offline, the command stops (exit 3) saying where to put it."""
    monkeypatch.setenv("MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("MT_MODEL", "http://127.0.0.1:9/translate-zh_en-1_9.argosmodel")  # nothing listens on port 9
    assert main(["prompt", "宇航员在月球上骑马"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: cannot fetch the translation model from http://127.0.0.1:9/translate-zh_en-1_9.argosmodel")
    assert f"at {tmp_path / 'translate' / 'translate-zh_en-1_9.argosmodel'} or set MT_MODEL to its path" in err

    monkeypatch.setenv("MT_MODEL", str(tmp_path / "nowhere.argosmodel"))
    assert main(["prompt", "宇航员在月球上骑马"]) == 3
    assert f"at {tmp_path / 'nowhere.argosmodel'} or set MT_MODEL" in capsys.readouterr().err


def test_transcribe_command(engine_env: None, english_voice_notes: dict[str, SpokenClip], capsys: pytest.CaptureFixture[str]) -> None:
    clip = english_voice_notes["ogg"]
    payload = run_json(capsys, "transcribe", str(clip.path))
    assert payload["language"] == "en"
    assert wer(clip.text, payload["text"]) < 0.25
    assert payload["words"] and all(0 < w["probability"] <= 1 for w in payload["words"])


@pytest.mark.parametrize("case", ["truncated_ogg", "garbage", "png"])
def test_transcribe_command_rejects_bad_audio(
    engine_env: None, bad_audio_files: dict[str, Path], capsys: pytest.CaptureFixture[str], case: str
) -> None:
    assert main(["transcribe", str(bad_audio_files[case])]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


def test_generate_from_text_is_reproducible(engine_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = run_json(capsys, "generate", "--text", "a cat on the beach", "--seed", "7", "-o", str(tmp_path / "a.png"),
                     "--base-output", str(tmp_path / "a_base.png"))
    second = run_json(capsys, "generate", "--text", "a cat on the beach", "--seed", "7", "-o", str(tmp_path / "b.png"))
    assert first["seed"] == second["seed"] == 7
    assert first["style"] == "face_paint_512_v2"
    assert set(first["timings"]) == {"diffusion", "style"}
    a, b = Image.open(tmp_path / "a.png"), Image.open(tmp_path / "b.png")
    assert a.size == (64, 64)
    assert_images_close(a, b)  # the same picture (not necessarily the same bits: tests/support/images.py)
    assert_images_differ(Image.open(tmp_path / "a_base.png"), a)  # styled differs from the base


def test_generate_from_voice(
    engine_env: None, english_voice_notes: dict[str, SpokenClip], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    payload = run_json(capsys, "generate", "--voice", str(english_voice_notes["ogg"].path), "--style", "paprika",
                       "-o", str(tmp_path / "v.png"))
    assert payload["style"] == "paprika"
    assert wer(english_voice_notes["ogg"].text, payload["transcript"]) < 0.25
    assert "anime style" in payload["prompt"]["positive"] and payload["prompt"]["description"] == payload["transcript"]
    assert Image.open(tmp_path / "v.png").size == (64, 64)


def test_generate_from_photo_keeps_size_and_skips_diffusion(
    engine_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (90, 50), (200, 120, 40)).save(photo)
    payload = run_json(capsys, "generate", "--photo", str(photo), "-o", str(tmp_path / "p.png"))
    assert payload["seed"] is None and payload["prompt"] is None
    assert list(payload["timings"]) == ["style"]
    assert Image.open(tmp_path / "p.png").size == (90, 50)


def test_generate_refuses_a_decompression_bomb_at_once(tmp_path: Path) -> None:
    """A 9000x9000 single-colour PNG (a few KB) used to cost ~50 s and 2 GB; its header is enough to refuse it."""
    bomb = tmp_path / "bomb.png"
    Image.new("1", (9000, 9000), 1).save(bomb, optimize=True)
    assert bomb.stat().st_size < 50_000
    env = {k: v for k, v in os.environ.items() if k not in ("PHOTO_MAX_PIXELS", "ANIME_MAX_SIDE")} | {"OMP_NUM_THREADS": "1"}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bot", "generate", "--photo", str(bomb), "-o", str(tmp_path / "out.png")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == ["error: That picture is too large (9000×9000 px). Send one up to 40 megapixels."]
    assert time.monotonic() - started < 30
    assert not (tmp_path / "out.png").exists()


def test_generate_photo_pixel_limit_is_a_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PHOTO_MAX_PIXELS", "1000000")
    photo = tmp_path / "photo.png"
    Image.new("RGB", (1200, 1000)).save(photo)
    assert main(["generate", "--photo", str(photo), "-o", str(tmp_path / "out.png")]) == 2
    assert capsys.readouterr().err == "error: That picture is too large (1200×1000 px). Send one up to 1 megapixels.\n"


def test_generate_from_a_big_photo_restyles_it_at_anime_max_side(
    engine_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ANIME_MAX_SIDE", "64")
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (900, 500), (200, 120, 40)).save(photo)
    assert main(["generate", "--photo", str(photo), "-o", str(tmp_path / "p.png"), "--base-output", str(tmp_path / "b.png")]) == 0
    assert Image.open(tmp_path / "p.png").size == Image.open(tmp_path / "b.png").size == (64, 36)


def test_generate_rejects_unknown_style(engine_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--text", "a cat", "--style", "nope", "-o", str(tmp_path / "x.png")]) == 2
    assert "paprika" in capsys.readouterr().err  # lists the valid styles
    assert not (tmp_path / "x.png").exists()


def test_generate_reports_missing_model(
    engine_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SD_MODEL", str(tmp_path / "no-such-model"))
    assert main(["generate", "--text", "a cat", "-o", str(tmp_path / "x.png")]) == 3
    assert "no-such-model" in capsys.readouterr().err


def test_console_entry_point_runs_as_a_process() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot", "prompt", "一个蓝色头发的女孩在樱花树下", "--json"],
        capture_output=True, text=True, timeout=120, check=True,
    )
    assert json.loads(done.stdout)["parsed"]["subject"] == "girl"
