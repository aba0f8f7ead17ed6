"""ControlNet drawing (engine.image.control) on the tiny Stable Diffusion: composition kept from a picture."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from engine.api import JobEvent, JobFailed, JobFinished, JobSpec
from engine.errors import Cancelled, ControlModelUnavailableError
from engine.image.animegan import AnimeGAN
from engine.image.control import ControlConfig, ControlNets, control_image, drawing_size, is_sketch
from engine.image.diffusion import DiffusionConfig, TextToImage
from engine.image.pipeline import AnimePipeline
from engine.jobs.local import LocalJobQueue
from engine.policy.levels import Finding, Level, Verdict
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


async def drained(pipeline: AnimePipeline, spec: JobSpec) -> list[JobEvent]:
    engine = LocalJobQueue(pipeline)
    await engine.start()
    try:
        handle = await engine.submit(spec)
        return [event async for event in handle.events()]
    finally:
        await engine.close()


def png_of(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()


async def test_a_job_with_a_control_image_draws_keeping_it(
    text_to_image: TextToImage, nets: ControlNets, animegan_checkpoints_dir: Path
) -> None:
    pipeline = AnimePipeline(
        text_to_image, AnimeGAN(animegan_checkpoints_dir, backend="torch", download=False), default_style="paprika", control=nets
    )
    spec = JobSpec("c1", "u1", "text", "paprika", positive="a cat", seed=3, control="scribble", control_png=png_of(sketch()))
    events = await drained(pipeline, spec)
    finished = events[-1]
    assert isinstance(finished, JobFinished), events
    assert finished.result.seed == 3 and finished.result.base_png is not None
    assert Image.open(io.BytesIO(finished.result.base_png)).size == (80, 64)
    plain = await drained(pipeline, JobSpec("t1", "u1", "text", "paprika", positive="a cat", seed=3))
    assert isinstance(plain[-1], JobFinished) and plain[-1].result.base_png is not None
    assert_images_differ(Image.open(io.BytesIO(plain[-1].result.base_png)).resize((80, 64)), Image.open(io.BytesIO(finished.result.base_png)))


async def test_a_job_whose_controlnet_is_missing_fails_as_a_missing_model(
    text_to_image: TextToImage, animegan_checkpoints_dir: Path, tmp_path: Path
) -> None:
    nets = ControlNets(ControlConfig(models={"lineart": str(tmp_path / "none")}))
    pipeline = AnimePipeline(
        text_to_image, AnimeGAN(animegan_checkpoints_dir, backend="torch", download=False), default_style="paprika", control=nets
    )
    spec = JobSpec("c2", "u1", "text", "paprika", positive="a cat", control="lineart", control_png=png_of(sketch()))
    failed = (await drained(pipeline, spec))[-1]
    assert isinstance(failed, JobFailed) and failed.error_key == "model.unavailable.control"
    assert "CONTROLNET_LINEART" in failed.detail


def test_the_tiny_decoder_and_bfloat16_draw_with_a_controlnet(
    tiny_sd_dir: Path, tiny_taesd_dir: Path, nets: ControlNets
) -> None:
    text_to_image = TextToImage(
        DiffusionConfig(model=str(tiny_sd_dir), width=64, height=64, steps=2, vae="tiny", tiny_vae=str(tiny_taesd_dir), cpu_dtype="bfloat16")
    )
    result = nets.draw(text_to_image, "scribble", sketch(), "a cat", seed=1)
    assert result.image.size == (80, 64)


def test_an_onnx_unet_says_a_controlnet_needs_torch(tiny_sd_dir: Path, nets: ControlNets, tmp_path: Path) -> None:
    text_to_image = TextToImage(DiffusionConfig(model=str(tiny_sd_dir), width=64, height=64, steps=2, backend="onnx", cache_dir=tmp_path))
    with pytest.raises(ControlModelUnavailableError) as raised:
        nets.draw(text_to_image, "scribble", sketch(), "a cat", seed=1)
    assert "SD_BACKEND=torch" in raised.value.fix


class FlagsDarkPictures:
    """A picture check that flags a picture whose top-left pixel is dark (the test photo), counting what it saw."""

    def __init__(self) -> None:
        self.seen = 0

    def check(self, image: Image.Image, level: Level | str) -> Verdict:
        self.seen += 1
        dark = sum(image.convert("RGB").getpixel((0, 0))) < 100  # type: ignore[arg-type]
        findings = (Finding("EXPOSED", 0.9),) if dark else ()
        return Verdict(allowed=not dark, level=Level(level), findings=findings)


async def test_a_flagged_photo_is_refused_before_anything_is_drawn(
    text_to_image: TextToImage, nets: ControlNets, animegan_checkpoints_dir: Path
) -> None:
    check = FlagsDarkPictures()
    pipeline = AnimePipeline(
        text_to_image,
        AnimeGAN(animegan_checkpoints_dir, backend="torch", download=False),
        default_style="paprika",
        control=nets,
        image_check=check,
        previews=False,
    )
    dark = Image.new("RGB", (64, 64), "black")
    spec = JobSpec("c3", "u1", "text", "paprika", positive="a cat", control="canny", control_png=png_of(dark))
    failed = (await drained(pipeline, spec))[-1]
    assert isinstance(failed, JobFailed) and failed.error_key == "policy.photo_flagged"
    assert check.seen == 1, "checked once, as a photo, and nothing drawn"
    allowed = JobSpec("c4", "u1", "text", "paprika", positive="a cat", seed=1, control="scribble", control_png=png_of(sketch()))
    finished = (await drained(pipeline, allowed))[-1]
    assert isinstance(finished, JobFinished)
    assert check.seen == 4, "the photo, the drawing and the styled picture"
