"""Keeping a photo's depth: Depth Anything's map (engine.image.depth) drives the depth ControlNet, on tiny models."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from bot.cli import main
from engine.api import JobFailed, JobFinished, JobSpec
from engine.errors import ControlModelUnavailableError, DepthModelUnavailableError
from engine.image.animegan import AnimeGAN
from engine.image.control import ControlConfig, ControlNets, control_image
from engine.image.depth import DepthEstimator, grey
from engine.image.diffusion import DiffusionConfig, TextToImage
from engine.image.pipeline import AnimePipeline
from engine.jobs.wire import pack_spec, unpack_spec
from tests.support.images import assert_images_close, assert_images_differ
from tests.test_control import drained, png_of
from tests.test_control_chat import photo_jpeg
from tests.test_control_cli import control_env  # noqa: F401  (a fixture)


def photo() -> Image.Image:
    return Image.open(io.BytesIO(photo_jpeg())).convert("RGB")


@pytest.fixture
def text_to_image(tiny_sd_dir: Path) -> TextToImage:
    return TextToImage(DiffusionConfig(model=str(tiny_sd_dir), width=64, height=64, steps=2))


@pytest.fixture
def nets(tiny_controlnet_dir: Path, tiny_depth_dir: Path) -> ControlNets:
    return ControlNets(ControlConfig(models={"depth": str(tiny_controlnet_dir)}, depth_estimator=str(tiny_depth_dir)))


def test_the_depth_map_is_grey_at_the_photos_size_and_spans_the_range(tiny_depth_dir: Path) -> None:
    depth = DepthEstimator(str(tiny_depth_dir)).depth_map(photo())
    assert depth.size == (96, 64) and depth.mode == "RGB"
    red, green, blue = depth.split()
    assert red.tobytes() == green.tobytes() == blue.tobytes()
    assert red.getextrema() == (0, 255)


def test_near_is_light_for_relative_and_metric_models() -> None:
    import numpy as np

    disparity = np.array([[1.0, 2.0, 3.0]])  # relative inverse depth: the last is nearest
    distance = np.array([[3.0, 2.0, 1.0]])  # metres: the last is nearest
    assert grey(disparity).tolist() == grey(distance, metric=True).tolist() == [[0, 128, 255]]
    assert grey(np.ones((2, 2))).tolist() == [[0, 0], [0, 0]]


def test_the_depth_controlnet_draws_from_the_map(text_to_image: TextToImage, nets: ControlNets) -> None:
    off = nets.draw(text_to_image, "depth", photo(), "a cat", seed=5, scale=0.0)
    on = nets.draw(text_to_image, "depth", photo(), "a cat", seed=5, scale=1.0)
    again = nets.draw(text_to_image, "depth", photo(), "a cat", seed=5, scale=1.0)
    assert_images_differ(off.image, on.image)
    assert_images_close(on.image, again.image)
    assert on.image.size == (80, 64)  # the photo's proportions


def test_a_depth_map_needs_the_model() -> None:
    with pytest.raises(ValueError, match="ControlNets.condition"):
        control_image("depth", photo())


def test_a_missing_estimator_says_what_to_put_where(text_to_image: TextToImage, tiny_controlnet_dir: Path, tmp_path: Path) -> None:
    nets = ControlNets(ControlConfig(models={"depth": str(tiny_controlnet_dir)}, depth_estimator=str(tmp_path / "no-depth")))
    with pytest.raises(DepthModelUnavailableError) as raised:
        nets.draw(text_to_image, "depth", photo(), "a cat")
    assert "CONTROLNET_DEPTH_ESTIMATOR" in raised.value.fix and "no-depth" in raised.value.fix
    assert isinstance(raised.value, ControlModelUnavailableError) and raised.value.model == "control"
    hub = ControlNets(ControlConfig(depth_estimator="depth-anything/Depth-Anything-V2-Small-hf", cache_dir=tmp_path))
    with pytest.raises(DepthModelUnavailableError) as offline:
        hub.condition("depth", photo())
    assert "hf download depth-anything/Depth-Anything-V2-Small-hf" in offline.value.fix


async def test_a_depth_job_draws_and_a_missing_estimator_fails_as_a_missing_model(
    text_to_image: TextToImage, nets: ControlNets, animegan_checkpoints_dir: Path, tiny_controlnet_dir: Path, tmp_path: Path
) -> None:
    animegan = AnimeGAN(animegan_checkpoints_dir, backend="torch", download=False)
    pipeline = AnimePipeline(text_to_image, animegan, default_style="paprika", control=nets)
    spec = JobSpec("d1", "u1", "text", "paprika", positive="a cat", seed=3, control="depth", control_png=photo_jpeg())
    finished = (await drained(pipeline, spec))[-1]
    assert isinstance(finished, JobFinished) and finished.result.base_png is not None
    assert Image.open(io.BytesIO(finished.result.base_png)).size == (80, 64)
    lacking = ControlNets(ControlConfig(models={"depth": str(tiny_controlnet_dir)}, depth_estimator=str(tmp_path / "none")))
    pipeline = AnimePipeline(text_to_image, animegan, default_style="paprika", control=lacking)
    failed = (await drained(pipeline, JobSpec("d2", "u1", "text", "paprika", positive="a cat", control="depth", control_png=png_of(photo()))))[-1]
    assert isinstance(failed, JobFailed) and failed.error_key == "model.unavailable.control"
    assert "CONTROLNET_DEPTH_ESTIMATOR" in failed.detail


@pytest.mark.usefixtures("control_env")
def test_generate_keeps_a_photos_depth(
    monkeypatch: pytest.MonkeyPatch, tiny_controlnet_dir: Path, tiny_depth_dir: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CONTROLNET_DEPTH", str(tiny_controlnet_dir))
    monkeypatch.setenv("CONTROLNET_DEPTH_ESTIMATOR", str(tiny_depth_dir))
    photo().save(tmp_path / "photo.png")
    argv = ["generate", "--text", "a cat", "--seed", "4", "--json", "--control", "depth", "--control-image", str(tmp_path / "photo.png")]
    assert main([*argv, "-o", str(tmp_path / "kept.png")]) == 0
    assert json.loads(capsys.readouterr().out)["size"] == [80, 64]
    monkeypatch.setenv("CONTROLNET_DEPTH_ESTIMATOR", str(tmp_path / "no-depth"))
    assert main([*argv, "-o", str(tmp_path / "x.png")]) == 3
    err = capsys.readouterr().err
    assert "no-depth" in err and "CONTROLNET_DEPTH_ESTIMATOR" in err and "Traceback" not in err


def test_a_depth_job_crosses_the_wire() -> None:
    spec = JobSpec("d3", "u1", "text", "paprika", positive="a cat", control="depth", control_png=photo_jpeg())
    assert unpack_spec(pack_spec(spec)) == spec
    assert {"control", "depth"} <= set(spec.needs), "a worker that does not know depth refuses it"
    posed = JobSpec("p1", "u1", "text", "paprika", positive="a cat", control="pose", control_png=photo_jpeg())
    assert "pose_detection" in posed.needs, "an older worker would take the photo as a skeleton"
