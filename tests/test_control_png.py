"""A picture drawn with a ControlNet says so in its PNG (A1111's ``ControlNet 0`` infotext), and ``generate --from`` uses it."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from bot.cli import main
from engine.image import png_info
from engine.image.control import A1111_MODULES, CONTROL_KINDS
from engine.image.png_info import PictureParameters
from engine.jobs.runner import run_job
from tests.support.images import assert_images_close
from tests.test_control import sketch
from tests.test_control_cli import control_env  # noqa: F401  # the fixture
from tests.test_control_previews import control_spec, pipeline

DRAWN = PictureParameters(prompt="a cat", negative="lowres", steps=4, scheduler="lcm", guidance=1.0, seed=7, width=80, height=64, model="m")


@pytest.mark.parametrize("kind", CONTROL_KINDS)
def test_every_kind_of_controlnet_goes_round_the_png(kind: str) -> None:
    module = A1111_MODULES[kind]
    kept = replace(DRAWN, control=kind, control_module=module, control_model=f"control_{kind}", control_weight=0.8, control_resize="Just Resize")
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG", pnginfo=png_info.png_info(kept))
    assert png_info.read(buffer.getvalue()) == kept
    assert ("Clip skip: 2" in kept.infotext()) == (kind == "lineart")


def test_the_unit_is_written_as_a1111s_controlnet_extension_writes_it() -> None:
    kept = replace(DRAWN, control="canny", control_module="canny", control_model="control_v11p_sd15_canny", control_weight=1.0, control_resize="Just Resize")
    assert kept.infotext().splitlines()[-1] == (
        "Steps: 4, Sampler: LCM, CFG scale: 1.0, Seed: 7, Size: 80x64, Model: m, ControlNet 0: \"Module: canny, "
        "Model: control_v11p_sd15_canny, Weight: 1.0, Resize Mode: Just Resize, Threshold A: 100.0, Threshold B: 200.0, Guidance Start: 0.0, "
        "Guidance End: 1.0, Control Mode: Balanced\""
    )
    assert not DRAWN.controlled and "ControlNet" not in DRAWN.infotext()


def test_a1111s_own_infotext_is_read() -> None:
    written = (
        "1girl, cherry blossoms\nNegative prompt: lowres\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, "
        'Seed: 1, Size: 512x768, Model hash: 6ce0161689, Model: anything-v5, ControlNet 0: "Module: openpose_full, '
        "Model: control_v11p_sd15_openpose [cab727d4], Weight: 0.75, Resize Mode: Crop and Resize, Processor Res: 512, "
        'Threshold A: 0.5, Threshold B: 0.5, Guidance Start: 0.0, Guidance End: 1.0, Pixel Perfect: False, Control Mode: Balanced", '
        "Version: v1.10.1"
    )
    read = png_info.parse(written)
    assert (read.control, read.control_model, read.control_weight) == ("pose", "control_v11p_sd15_openpose [cab727d4]", 0.75)
    assert read.control_cropped
    assert read.seed == 1 and (read.width, read.height) == (512, 768)
    other = png_info.parse(written.replace("control_v11p_sd15_openpose [cab727d4]", "control_v11p_sd15_seg").replace("openpose_full", "seg_ofade20k"))
    assert other.controlled and other.control is None


def test_a_control_jobs_pngs_carry_its_controlnet(tiny_sd_dir: Path, tiny_controlnet_dir: Path, animegan_checkpoints_dir: Path) -> None:
    result = run_job(pipeline(tiny_sd_dir, tiny_controlnet_dir, animegan_checkpoints_dir, previews=False), control_spec("c1"), lambda _: None, lambda: False)
    assert result.base_png is not None
    for png in (result.anime_png, result.base_png):
        read = png_info.read(png)
        assert read is not None and (read.control, read.control_model, read.control_weight, read.seed) == ("scribble", tiny_controlnet_dir.name, 1.0, 2)


def test_generate_from_a_controlled_picture_needs_its_control_image(
    control_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    sketch().save(tmp_path / "sketch.png")
    kept = ["--control", "scribble", "--control-image", str(tmp_path / "sketch.png")]
    assert main(["generate", "--text", "a cat", "--seed", "4", *kept, "-o", str(tmp_path / "kept.png"), "--base-output", str(tmp_path / "kept_base.png")]) == 0
    infotext = Image.open(tmp_path / "kept.png").info["parameters"]
    assert 'ControlNet 0: "Module: invert (from white bg & black line), Model: controlnet, Weight: 1.0, Resize Mode: Just Resize' in infotext
    capsys.readouterr()

    assert main(["generate", "--from", str(tmp_path / "kept.png"), "-o", str(tmp_path / "again.png")]) == 2
    err = capsys.readouterr().err
    assert "scribble ControlNet" in err and "--control-image" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "again.png").exists()

    again = ["--from", str(tmp_path / "kept.png"), "--control-image", str(tmp_path / "sketch.png")]
    assert main(["generate", *again, "-o", str(tmp_path / "again.png"), "--base-output", str(tmp_path / "again_base.png")]) == 0
    assert_images_close(Image.open(tmp_path / "kept_base.png"), Image.open(tmp_path / "again_base.png"))
    assert png_info.read(Image.open(tmp_path / "again.png")) == png_info.read(Image.open(tmp_path / "kept.png"))


def test_generate_from_a_plain_picture_may_keep_a_new_composition(
    control_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    sketch().save(tmp_path / "sketch.png")
    assert main(["generate", "--text", "a cat", "--seed", "4", "-o", str(tmp_path / "plain.png")]) == 0
    assert main(["generate", "--from", str(tmp_path / "plain.png"), "--control-image", str(tmp_path / "sketch.png"), "-o", str(tmp_path / "x.png")]) == 2
    assert "go together" in capsys.readouterr().err
    argv = ["--from", str(tmp_path / "plain.png"), "--control", "scribble", "--control-image", str(tmp_path / "sketch.png")]
    assert main(["generate", *argv, "-o", str(tmp_path / "kept.png")]) == 0
    read = png_info.read(Image.open(tmp_path / "kept.png"))
    assert read is not None and read.control == "scribble" and read.seed == 4
