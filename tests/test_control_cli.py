"""`voice2anime generate --control KIND --control-image FILE`: a description drawn keeping a picture's composition."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from bot.cli import main
from tests.support.images import assert_images_differ
from tests.test_control import sketch


@pytest.fixture
def control_env(
    monkeypatch: pytest.MonkeyPatch, tiny_sd_dir: Path, tiny_controlnet_dir: Path, animegan_checkpoints_dir: Path
) -> None:
    """The tiny drawing model and ControlNets, as an operator would set them."""
    for name, value in {
        "SD_MODEL": str(tiny_sd_dir),
        "SD_WIDTH": "64",
        "SD_HEIGHT": "64",
        "SD_STEPS": "2",
        "CHECKPOINTS_DIR": str(animegan_checkpoints_dir),
        "ANIME_DOWNLOAD": "false",
        "TORCH_THREADS": "1",
        "CONTROLNET_SCRIBBLE": str(tiny_controlnet_dir),
        "CONTROLNET_LINEART": str(tiny_controlnet_dir),
    }.items():
        monkeypatch.setenv(name, value)


def test_generate_keeps_the_sketch(control_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sketch().save(tmp_path / "sketch.png")
    common = ["--text", "a cat", "--seed", "4", "--json"]
    assert main(["generate", *common, "-o", str(tmp_path / "plain.png"), "--base-output", str(tmp_path / "plain_base.png")]) == 0
    capsys.readouterr()
    assert main([
        "generate", *common, "--control", "scribble", "--control-image", str(tmp_path / "sketch.png"),
        "-o", str(tmp_path / "kept.png"), "--base-output", str(tmp_path / "kept_base.png"),
    ]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["seed"] == 4 and summary["size"] == [80, 64]  # the sketch's proportions
    assert_images_differ(Image.open(tmp_path / "plain_base.png").resize((80, 64)), Image.open(tmp_path / "kept_base.png"))


def test_a_missing_controlnet_stops_saying_what_to_put_where(
    control_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CONTROLNET_LINEART", str(tmp_path / "no-controlnet"))
    sketch().save(tmp_path / "photo.png")
    argv = ["generate", "--text", "a cat", "--control", "lineart", "--control-image", str(tmp_path / "photo.png")]
    assert main([*argv, "-o", str(tmp_path / "x.png")]) == 3
    err = capsys.readouterr().err
    assert "no-controlnet" in err and "CONTROLNET_LINEART" in err and "Traceback" not in err


def test_control_needs_its_picture_and_a_description(control_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--text", "a cat", "--control", "canny", "-o", str(tmp_path / "x.png")]) == 2
    assert "--control-image" in capsys.readouterr().err
    sketch().save(tmp_path / "photo.png")
    argv = ["--control", "canny", "--control-image", str(tmp_path / "photo.png"), "-o", str(tmp_path / "x.png")]
    assert main(["generate", "--photo", str(tmp_path / "photo.png"), *argv]) == 2
    assert "--text or --voice" in capsys.readouterr().err
