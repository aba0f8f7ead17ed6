"""ControlNet drawing (engine.image.control) on the tiny Stable Diffusion: composition kept from a picture."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from engine.errors import Cancelled, ControlModelUnavailableError
from engine.image.control import ControlConfig, ControlNets, control_image, drawing_size, is_sketch
from engine.image.diffusion import DiffusionConfig, TextToImage
from tests.support.images import assert_images_close, assert_images_differ


def sketch(size: tuple[int, int] = (96, 64)) -> Image.Image:
    """Dark strokes on white: a circle and a line."""
    picture = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(picture)
    draw.ellipse((10, 10, 50, 50), outline="black", width=3)
    draw.line((60, 5, 90, 60), fill="black", width=3)
    return picture


@pytest.fixture
def text_to_image(tiny_sd_dir: Path) -> TextToImage:
    return TextToImage(DiffusionConfig(model=str(tiny_sd_dir), width=64, height=64, steps=2))


@pytest.fixture
def nets(tiny_controlnet_dir: Path) -> ControlNets:
    return ControlNets(ControlConfig(models={kind: str(tiny_controlnet_dir) for kind in ("lineart", "canny", "scribble")}))


def test_conditioning_scale_changes_the_picture(text_to_image: TextToImage, nets: ControlNets) -> None:
    off = nets.draw(text_to_image, "scribble", sketch(), "a cat", seed=5, scale=0.0)
    on = nets.draw(text_to_image, "scribble", sketch(), "a cat", seed=5, scale=1.0)
    again = nets.draw(text_to_image, "scribble", sketch(), "a cat", seed=5, scale=1.0)
    assert_images_differ(off.image, on.image)
    assert_images_close(on.image, again.image)
    assert on.seed == 5 and (on.width, on.height) == off.image.size == (80, 64)  # the sketch's proportions


def test_the_control_pipeline_shares_the_drawing_models_unet(text_to_image: TextToImage, nets: ControlNets) -> None:
    nets.draw(text_to_image, "canny", sketch(), "a cat", seed=1)
    pipe = nets._pipeline(text_to_image.pipeline, "canny")
    assert pipe.unet is text_to_image.pipeline.unet and pipe.vae is text_to_image.pipeline.vae


def test_lineart_runs_with_clip_skip_2_and_reports_progress(text_to_image: TextToImage, nets: ControlNets) -> None:
    stages: list[tuple[str, float]] = []
    result = nets.draw(text_to_image, "lineart", sketch(), "a cat", seed=2, progress=lambda s, f: stages.append((s, f)))
    assert stages[-1] == ("diffusion", 1.0) and result.image.size == (80, 64)


def test_cancel_stops_the_drawing(text_to_image: TextToImage, nets: ControlNets) -> None:
    with pytest.raises(Cancelled):
        nets.draw(text_to_image, "canny", sketch(), "a cat", cancelled=lambda: True)


def test_a_missing_controlnet_says_what_to_put_where(text_to_image: TextToImage, tmp_path: Path) -> None:
    nets = ControlNets(ControlConfig(models={"canny": str(tmp_path / "nowhere")}))
    with pytest.raises(ControlModelUnavailableError) as raised:
        nets.draw(text_to_image, "canny", sketch(), "a cat")
    assert "CONTROLNET_CANNY" in raised.value.fix and raised.value.model == "control"


def test_control_images_are_white_lines_on_black() -> None:
    for kind in ("canny", "lineart", "scribble"):
        lines = control_image(kind, sketch()).convert("L")
        assert lines.size == (96, 64)
        assert lines.getpixel((0, 32)) == 0 and max(lines.getdata()) == 255, kind


def test_a_sketch_is_told_from_a_photo() -> None:
    assert is_sketch(sketch())
    assert not is_sketch(Image.radial_gradient("L").convert("RGB"))
    assert not is_sketch(Image.new("RGB", (64, 64), "white"))


def test_drawing_size_keeps_proportions() -> None:
    assert drawing_size(1024, 512, 512 * 512) == (728, 360)
    assert drawing_size(64, 64, 64 * 64) == (64, 64)
