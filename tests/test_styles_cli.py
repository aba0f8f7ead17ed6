"""`voice2anime styles` and `voice2anime generate --style hayao` (an onnx-nhwc style) end to end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot import factory
from bot.cli import main
from tests.support.onnx_style import expected_pixels

BUNDLED_IDS = ["face_paint_512_v2", "face_paint_512_v1", "celeba_distill", "paprika", "hayao", "shinkai"]


@pytest.fixture
def onnx_env(monkeypatch: pytest.MonkeyPatch, tiny_sd_dir: Path, animegan_onnx_checkpoints_dir: Path) -> Path:
    """Settings pointing at the tiny SD model and the checkpoints with the stand-in ``hayao``; returns that directory."""
    for name, value in {
        "SD_MODEL": str(tiny_sd_dir),
        "SD_WIDTH": "64",
        "SD_HEIGHT": "64",
        "SD_STEPS": "2",
        "CHECKPOINTS_DIR": str(animegan_onnx_checkpoints_dir),
        "ANIME_DOWNLOAD": "false",
        "TORCH_THREADS": "1",
    }.items():
        monkeypatch.setenv(name, value)
    return animegan_onnx_checkpoints_dir


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


# ----- voice2anime styles ---------------------------------------------------------------------


def test_styles_json_lists_display_names_format_and_presence(onnx_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    payload = run_json(capsys, "styles")
    assert payload["default"] == "face_paint_512_v2"
    assert payload["registry"] == str(onnx_env / "styles.json")
    styles = {s["id"]: s for s in payload["styles"]}
    assert list(styles) == ["face_paint_512_v2", "paprika", "hayao"]
    hayao = styles["hayao"]
    assert hayao["names"] == {"en": "Hayao", "zh": "宫崎骏 Hayao"}
    assert hayao["format"] == "onnx-nhwc" and hayao["present"] is True
    assert hayao["file"] == str(onnx_env / "AnimeGANv2_Hayao.onnx")
    assert len(hayao["sha256"]) == 64 and hayao["default"] is False
    paprika = styles["paprika"]
    assert paprika["format"] == "torch-state-dict" and paprika["present"] is True
    assert paprika["names"] == {"en": "paprika", "zh": "paprika"}  # test registry without names: the id
    assert styles["face_paint_512_v2"]["default"] is True


def test_styles_of_the_bundled_registry_in_both_languages(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CHECKPOINTS_DIR", str(tmp_path))  # no styles.json there: the repository's registry
    monkeypatch.setenv("ANIME_DOWNLOAD", "true")
    payload = run_json(capsys, "styles")
    styles = {s["id"]: s for s in payload["styles"]}
    assert list(styles) == BUNDLED_IDS
    assert not any(s["present"] for s in styles.values())
    assert styles["hayao"]["names"] == {"en": "Hayao", "zh": "宫崎骏 Hayao"}
    assert styles["shinkai"]["names"] == {"en": "Shinkai", "zh": "新海诚 Shinkai"}
    assert styles["paprika"]["names"] == {"en": "Paprika", "zh": "红辣椒 Paprika"}
    assert styles["face_paint_512_v2"]["names"]["en"] == "Portrait (face paint v2)"
    assert all(s["blurbs"]["en"] and s["blurbs"]["zh"] for s in styles.values())
    assert {s["format"] for s in styles.values()} == {"torch-state-dict", "onnx-nhwc"}

    assert main(["styles"]) == 0
    out = capsys.readouterr().out
    assert "hayao: Hayao / 宫崎骏 Hayao" in out and "shinkai: Shinkai / 新海诚 Shinkai" in out
    assert "face_paint_512_v2 (default): Portrait (face paint v2) / 人像（face paint v2）" in out
    assert f"onnx-nhwc, weights missing, downloaded on first use from {styles['hayao']['url']}" in out


def test_styles_say_where_to_put_missing_weights_when_downloads_are_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CHECKPOINTS_DIR", str(tmp_path))
    monkeypatch.setenv("ANIME_DOWNLOAD", "false")
    monkeypatch.setenv("ANIME_STYLE", "ghibli_deluxe")  # not a style: still listed, and said so
    assert main(["styles"]) == 0
    out = capsys.readouterr().out
    assert f"missing: put the file at {tmp_path / 'AnimeGANv2_Shinkai.onnx'} (from https://huggingface.co/" in out
    assert "ANIME_STYLE='ghibli_deluxe' is not one of them" in out and "(default)" not in out


def test_styles_command_needs_no_torch(tmp_path: Path) -> None:
    """The slim bot image (no torch, no onnxruntime) can list the styles."""
    code = "import sys; from bot.cli import main; rc = main(['styles']); assert 'torch' not in sys.modules; sys.exit(rc)"
    env = {**os.environ, "CHECKPOINTS_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "hayao: Hayao / 宫崎骏 Hayao" in done.stdout and "Traceback" not in done.stderr


@pytest.mark.parametrize("argv", [["styles"], ["styles", "--json"]], ids=["plain", "json"])
def test_styles_into_a_pipe_whose_reader_went_away_end_quietly(tmp_path: Path, argv: list[str]) -> None:
    """``voice2anime styles | head -1`` when head has gone: no BrokenPipeError, no traceback; exit 141, as for SIGPIPE."""
    env = {**os.environ, "CHECKPOINTS_DIR": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", *argv], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone before the command writes anything
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141, stderr
    assert stderr == ""


def test_styles_piped_into_head(tmp_path: Path) -> None:
    """The shell's own pipe: the first line, and nothing on stderr (the shipped styles are no news)."""
    env = {**os.environ, "CHECKPOINTS_DIR": str(tmp_path)}
    done = subprocess.run(
        ["bash", "-c", f"{sys.executable} -m bot styles | head -1"], env=env, cwd=tmp_path,
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0 and done.stdout.startswith("styles from ") and done.stdout.endswith(f"; weights in {tmp_path}\n")
    assert done.stderr == ""


def test_an_operators_broken_styles_json_is_one_error_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CHECKPOINTS_DIR", str(tmp_path))
    (tmp_path / "styles.json").write_text('{"styles": ', encoding="utf-8")
    assert main(["styles"]) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"error: AnimeGANv2 style registry {tmp_path / 'styles.json'} is unreadable: ")
    assert captured.err.count("\n") == 1


# ----- voice2anime generate --style hayao -------------------------------------------------------


def test_generate_text_with_the_onnx_style(onnx_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, base = tmp_path / "anime.png", tmp_path / "base.png"
    payload = run_json(
        capsys,
        "generate",
        "--text",
        "a girl with blue hair",
        "--style",
        "hayao",
        "--seed",
        "5",
        "-o",
        str(out),
        "--base-output",
        str(base),
    )
    assert payload["style"] == "hayao" and payload["seed"] == 5
    assert payload["prompt"]["positive"].startswith("a girl with blue hair")
    drawn = np.asarray(Image.open(base).convert("RGB"))
    anime = np.asarray(Image.open(out).convert("RGB"))
    assert anime.shape == drawn.shape == (64, 64, 3)
    # the stand-in's closed form applied to the drawing: every pixel went through the NHWC pre/post-processing
    assert np.array_equal(anime, expected_pixels(drawn))


def test_generate_photo_with_the_onnx_style_by_alias(
    onnx_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpts = tmp_path / "ckpts"
    shutil.copytree(onnx_env, ckpts, ignore=shutil.ignore_patterns("*.*.onnx"))
    registry = json.loads((ckpts / "styles.json").read_text(encoding="utf-8"))
    registry["styles"]["hayao"]["aliases"] = ["宫崎骏"]
    (ckpts / "styles.json").write_text(json.dumps(registry, ensure_ascii=False), encoding="utf-8")
    monkeypatch.setenv("CHECKPOINTS_DIR", str(ckpts))

    photo = tmp_path / "photo.png"
    pixels = np.random.default_rng(11).integers(0, 256, size=(30, 50, 3), dtype=np.uint8)  # not multiples of 32
    Image.fromarray(pixels, "RGB").save(photo)
    out = tmp_path / "anime.png"
    payload = run_json(capsys, "generate", "--photo", str(photo), "--style", "宫崎骏", "-o", str(out))
    assert payload["style"] == "hayao" and payload["seed"] is None and payload["prompt"] is None
    assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), expected_pixels(pixels))


def test_generate_with_an_unknown_style_fails_before_any_model_loads(
    onnx_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_models(*args, **kwargs):
        raise AssertionError("models loaded for an unknown style")

    monkeypatch.setattr(factory, "anime_pipeline", no_models)
    assert main(["generate", "--text", "a cat", "--style", "ghibli_deluxe", "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ghibli_deluxe" in err and "hayao" in err and "Traceback" not in err


def test_generate_with_missing_onnx_weights_says_where_to_put_them(
    onnx_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpts = tmp_path / "ckpts"
    shutil.copytree(onnx_env, ckpts, ignore=shutil.ignore_patterns("*.*.onnx", "AnimeGANv2_Hayao.onnx"))
    monkeypatch.setenv("CHECKPOINTS_DIR", str(ckpts))
    photo = tmp_path / "photo.png"
    Image.new("RGB", (40, 40), (10, 200, 30)).save(photo)
    assert main(["generate", "--photo", str(photo), "--style", "hayao", "-o", str(tmp_path / "x.png")]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"Put the file at {ckpts / 'AnimeGANv2_Hayao.onnx'}" in err
