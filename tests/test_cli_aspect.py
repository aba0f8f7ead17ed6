"""`voice2anime generate --aspect` with --variations, --control and --from; and the one combination it refuses (--photo)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from bot.cli import main
from engine.image import png_info
from tests.support.images import assert_images_close
from tests.test_control import sketch
from tests.test_control_cli import control_env  # noqa: F401  # the fixture

LANDSCAPE, PORTRAIT = (768, 512), (512, 768)


def test_variations_take_the_shape_asked_for_or_said(control_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    grid = tmp_path / "grid.png"
    assert main(["generate", "--text", "a cat", "--seed", "3", "--aspect", "landscape", "--variations", "2", "-o", str(grid), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    for variation in summary["variations"]:
        picture = Image.open(variation["output"])
        assert picture.size == LANDSCAPE
        read = png_info.read(picture)
        assert read is not None and (read.width, read.height) == LANDSCAPE
    said = tmp_path / "said.png"
    assert main(["generate", "--text", "a tower, portrait", "--variations", "2", "-o", str(said)]) == 0
    assert Image.open(tmp_path / "said-v1.png").size == PORTRAIT


def test_a_kept_composition_is_cut_to_the_shape_and_drawn_again_so(
    control_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    sketch().save(tmp_path / "sketch.png")
    kept = ["--control", "scribble", "--control-image", str(tmp_path / "sketch.png")]
    argv = ["generate", "--text", "a cat", "--seed", "5", "--aspect", "portrait", *kept, "--json"]
    assert main([*argv, "-o", str(tmp_path / "tall.png"), "--base-output", str(tmp_path / "tall_base.png")]) == 0
    assert json.loads(capsys.readouterr().out)["size"] == list(PORTRAIT)  # not the sketch's 3:2
    read = png_info.read(Image.open(tmp_path / "tall.png"))
    assert read is not None and read.control == "scribble" and read.control_resize == "Crop and Resize"
    again = ["--from", str(tmp_path / "tall.png"), "--control-image", str(tmp_path / "sketch.png")]
    assert main(["generate", *again, "-o", str(tmp_path / "again.png"), "--base-output", str(tmp_path / "again_base.png")]) == 0
    assert_images_close(Image.open(tmp_path / "tall_base.png"), Image.open(tmp_path / "again_base.png"))


def test_a_picture_is_drawn_again_in_another_shape(control_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    assert main(["generate", "--text", "a cat", "--seed", "8", "-o", str(tmp_path / "square.png")]) == 0
    capsys.readouterr()
    assert main(["generate", "--from", str(tmp_path / "square.png"), "--aspect", "landscape", "-o", str(tmp_path / "wide.png"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["size"] == list(LANDSCAPE) and summary["seed"] == 8


def test_combinations_that_make_no_sense_are_refused_in_one_line(control_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    sketch().save(tmp_path / "photo.png")
    assert main(["generate", "--photo", str(tmp_path / "photo.png"), "--aspect", "portrait", "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "--aspect" in err and "--photo" in err and len(err.strip().splitlines()) == 1
    kept = ["--control", "scribble", "--control-image", str(tmp_path / "photo.png")]
    assert main(["generate", "--text", "a cat", "--aspect", "portrait", "--variations", "2", *kept, "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "--variations" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()
