"""Remix in the engine: img2img on the text-to-image weights (every CPU path), through a job, and the aspect sizes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from engine.api import JobSpec
from engine.errors import Cancelled
from engine.image import diffusion
from engine.image.animegan import AnimeGAN
from engine.image.diffusion import DiffusionConfig, TextToImage
from engine.image.imageio import png_bytes
from engine.image.img2img import ImageToImage, RedrawRequest
from engine.image.pipeline import AnimePipeline
from engine.jobs.runner import run_job
from engine.jobs.wire import pack_spec, unpack_spec
from tests.support.images import assert_images_differ

SIZE = 64


def _t2i(model: Path, **config: object) -> TextToImage:
    return TextToImage(DiffusionConfig(model=str(model), width=SIZE, height=SIZE, device="cpu", steps=4, **config))  # type: ignore[arg-type]


def _base(t2i: TextToImage) -> Image.Image:
    return t2i.generate("a cat", seed=5)[0].image


@pytest.mark.parametrize(
    "config",
    [{}, {"vae": "tiny"}, {"cpu_dtype": "bfloat16", "vae": "tiny"}, {"backend": "onnx"}],
    ids=["torch", "tiny-decoder", "bfloat16", "onnx"],
)
def test_a_remix_shares_the_loaded_modules_and_moves_further_with_strength(
    tiny_sd_dir: Path, tiny_taesd_dir: Path, tmp_path: Path, config: dict[str, object]
) -> None:
    diffusion.clear_cache()
    extra = {"tiny_vae": str(tiny_taesd_dir)} if config.get("vae") == "tiny" else {}
    t2i = _t2i(tiny_sd_dir, cache_dir=tmp_path, **config, **extra)
    base = _base(t2i)
    remix = ImageToImage(t2i)
    progress: list[float] = []
    subtle = remix.redraw(RedrawRequest(base, "a dog", seed=5, strength=0.35, progress=lambda s, f: progress.append(f)))
    assert remix.pipeline().unet is t2i.pipeline.unet and remix.pipeline().vae is t2i.pipeline.vae
    assert subtle.image.size == base.size and subtle.seed == 5 and progress[-1] == 1.0
    assert_images_differ(base, subtle.image)
    again = remix.redraw(RedrawRequest(base, "a dog", seed=5, strength=0.35))
    assert list(again.image.tobytes()) == list(subtle.image.tobytes())  # the same seed: the same remix
    flat = Image.new("RGB", base.size, (200, 40, 40))
    near = remix.redraw(RedrawRequest(flat, "a dog", seed=5, strength=0.35)).image
    far = remix.redraw(RedrawRequest(flat, "a dog", seed=5, strength=1.0)).image
    assert_images_differ(near, far)  # the strength picked changes the picture (random tiny weights: no nearer/farther)
    with pytest.raises(Cancelled):
        remix.redraw(RedrawRequest(base, "a dog", seed=5, strength=0.65, cancelled=lambda: len(progress) > 3, progress=lambda s, f: progress.append(f)))


def test_a_remix_job_crosses_the_wire_and_draws_over_its_picture(tiny_sd_dir: Path, animegan_checkpoints_dir: Path) -> None:
    diffusion.clear_cache()
    t2i = _t2i(tiny_sd_dir)
    pipeline = AnimePipeline(t2i, AnimeGAN(animegan_checkpoints_dir, backend="torch", download=False), default_style="face_paint_512_v2")
    init = png_bytes(Image.new("RGB", (64, 96), (200, 40, 40)))
    spec = JobSpec("j1", "1", "text", "face_paint_512_v2", positive="a dog", seed=9, init_png=init, strength=0.35)
    assert unpack_spec(pack_spec(spec)) == spec
    assert unpack_spec(pack_spec(JobSpec("j2", "1", "text", "x", positive="a"))).init_png is None
    fractions: list[float] = []
    result = run_job(pipeline, spec, lambda event: fractions.append(event.fraction), lambda: False)
    assert Image.open(io.BytesIO(result.anime_png)).size == (64, 96)
    assert result.seed == 9 and fractions[-1] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        JobSpec("j3", "1", "text", "x", positive="a", init_png=init)  # a remix needs its strength


def test_a_text_job_draws_at_its_own_size(tiny_sd_dir: Path, animegan_checkpoints_dir: Path) -> None:
    diffusion.clear_cache()
    pipeline = AnimePipeline(_t2i(tiny_sd_dir), AnimeGAN(animegan_checkpoints_dir, backend="torch", download=False), default_style="face_paint_512_v2")
    spec = JobSpec("j1", "1", "text", "face_paint_512_v2", positive="a dog", seed=9, width=64, height=96)
    result = run_job(pipeline, spec, lambda event: None, lambda: False)
    assert Image.open(io.BytesIO(result.anime_png)).size == (64, 96)


@pytest.fixture
def drawing_env(monkeypatch: pytest.MonkeyPatch, tiny_sd_dir: Path, animegan_checkpoints_dir: Path, tmp_path: Path) -> None:
    """Settings pointing at the tiny drawing model and the test styles, on the CPU."""
    for name, value in {
        "SD_MODEL": str(tiny_sd_dir), "SD_WIDTH": "64", "SD_HEIGHT": "64", "SD_STEPS": "2", "SD_BACKEND": "torch",
        "CHECKPOINTS_DIR": str(animegan_checkpoints_dir), "ANIME_DOWNLOAD": "false", "TORCH_THREADS": "1",
        "TORCH_DEVICE": "cpu", "MODELS_DIR": str(tmp_path / "models"),
    }.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize(("args", "size"), [(["--aspect", "portrait"], [512, 768]), (["--aspect", "square"], [512, 512]), ([], [64, 64])])
def test_the_cli_draws_the_shape_asked_for(drawing_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], size: list[int]) -> None:
    from bot.cli import main

    assert main(["generate", "--text", "a cat", "--seed", "3", "-o", str(tmp_path / "a.png"), "--json", *args]) == 0
    assert json.loads(capsys.readouterr().out)["size"] == size


def test_the_cli_takes_a_shape_word_from_the_description(drawing_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    assert main(["generate", "--text", "a castle, landscape", "-o", str(tmp_path / "a.png"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["size"] == [768, 512] and "landscape" not in summary["prompt"]["positive"]
