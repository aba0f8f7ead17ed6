"""The UNet on ONNX Runtime (engine.image.onnx_unet) on the tiny random pipeline: same pictures, callbacks, cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.errors import Cancelled
from engine.image import device, diffusion, onnx_unet
from engine.image.diffusion import DiffusionConfig, TextToImage
from engine.image.onnx_unet import OnnxUNet
from tests.support.images import assert_images_close, assert_images_differ

SIZE = 64
STEPS = 4


@pytest.fixture(autouse=True)
def _fresh_cache():
    diffusion.clear_cache()
    yield
    diffusion.clear_cache()


def make(model: Path, models: Path, **kw) -> TextToImage:
    kw = {"width": SIZE, "height": SIZE, "device": "cpu", "steps": STEPS, "scheduler": "lcm", "cache_dir": models, **kw}
    return TextToImage(DiffusionConfig(model=str(model), **kw))


def draw(t2i: TextToImage) -> tuple[list, list[tuple[str, float]], list[bytes]]:
    progress: list[tuple[str, float]] = []
    previews: list[bytes] = []
    images = t2i.generate(
        ["a cat", "a dog"], seed=5, progress=lambda s, f: progress.append((s, f)), preview=lambda s, j: previews.append(j)
    )
    return [image.image for image in images], progress, previews


@pytest.mark.parametrize("vae", ["full", "tiny"])
def test_each_backend_draws_the_same_pictures_with_progress_and_previews(tiny_sd_dir, tiny_taesd_dir, tmp_path, vae):
    drawn = {}
    for backend in ("torch", "onnx"):
        diffusion.clear_cache()
        t2i = make(tiny_sd_dir, tmp_path / "models", backend=backend, vae=vae, tiny_vae=str(tiny_taesd_dir))
        images, progress, previews = draw(t2i)
        assert isinstance(t2i.pipeline.unet, OnnxUNet) == (backend == "onnx")
        assert [f for s, f in progress if s == "diffusion"] == [(i + 1) / STEPS for i in range(STEPS)]
        assert len(previews) == 3 and all(p.startswith(b"\xff\xd8") for p in previews)
        drawn[backend] = (images, previews)
    for torch_image, onnx_image in zip(drawn["torch"][0], drawn["onnx"][0]):
        assert_images_close(torch_image, onnx_image)
    assert_images_differ(*drawn["onnx"][0])  # two prompts, two seeds: two pictures


def test_cancel_stops_the_onnx_backend_between_steps(tiny_sd_dir, tmp_path):
    t2i = make(tiny_sd_dir, tmp_path / "models", backend="onnx")
    steps = 0

    def progress(stage: str, fraction: float) -> None:
        nonlocal steps
        steps += stage == "diffusion"

    with pytest.raises(Cancelled):
        t2i.generate("a cat", seed=1, progress=progress, cancelled=lambda: steps >= 2)
    assert steps == 2
    assert t2i.generate("a cat", seed=1)[0].image.size == (SIZE, SIZE)  # still usable


def test_a_second_start_loads_the_cached_export(tiny_sd_dir, tmp_path, monkeypatch):
    models = tmp_path / "models"
    first = make(tiny_sd_dir, models, backend="onnx").generate("a cat", seed=2)[0].image
    (cached,) = (models / "onnx").iterdir()
    assert (cached / "unet.onnx").is_file() and (cached / "key.json").is_file()

    diffusion.clear_cache()

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_unet, "_export", no_export)
    again = make(tiny_sd_dir, models, backend="onnx")
    assert_images_close(first, again.generate("a cat", seed=2)[0].image)
    assert again.pipeline.unet.path == cached / "unet.onnx"


def test_the_export_is_keyed_by_the_lora_and_its_scale(tiny_sd_dir, tiny_lora_dir, tmp_path):
    models = tmp_path / "models"
    plain = make(tiny_sd_dir, models, backend="onnx").generate("a cat", seed=2)[0].image
    diffusion.clear_cache()
    with_lora = make(tiny_sd_dir, models, backend="onnx", lora=str(tiny_lora_dir), lora_scale=1.0).generate("a cat", seed=2)[0]
    diffusion.clear_cache()
    reference = make(tiny_sd_dir, models, backend="torch", lora=str(tiny_lora_dir), lora_scale=1.0).generate("a cat", seed=2)[0]
    assert len(list((models / "onnx").iterdir())) == 2
    assert_images_differ(plain, with_lora.image)
    assert_images_close(reference.image, with_lora.image)  # fused before the export


def test_a_half_written_export_is_not_a_cache(tiny_sd_dir, tmp_path, monkeypatch):
    models = tmp_path / "models"
    import torch

    def failing(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch.onnx, "export", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        make(tiny_sd_dir, models, backend="onnx").load()
    assert not any((models / "onnx").iterdir())
    monkeypatch.undo()
    diffusion.clear_cache()
    assert isinstance(make(tiny_sd_dir, models, backend="onnx").pipeline.unet, OnnxUNet)


def test_pictures_the_export_cannot_draw_and_unets_it_does_not_cover_stay_on_torch(tiny_sd_dir, tmp_path, caplog):
    with caplog.at_level("WARNING", logger="engine.image.diffusion"):
        odd = make(tiny_sd_dir, tmp_path / "models", backend="onnx", width=96, height=64)
        assert not isinstance(odd.pipeline.unet, OnnxUNet)
    assert "multiple of 64" in caplog.text
    assert not onnx_unet.exportable({"time_cond_proj_dim": 256})
    assert onnx_unet.exportable({"time_cond_proj_dim": None, "cross_attention_dim": 768})


def test_auto_is_torch_on_a_cpu_without_bfloat16_and_onnx_only_when_asked(tiny_sd_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(device, "cpu_computes_bf16", lambda: False)
    auto = make(tiny_sd_dir, tmp_path / "models", backend="auto", cpu_dtype="auto")
    assert not isinstance(auto.pipeline.unet, OnnxUNet) and auto.pipeline.unet.dtype == torch.float32
    assert not (tmp_path / "models" / "onnx").exists(), "nothing exported"
    diffusion.clear_cache()
    assert isinstance(make(tiny_sd_dir, tmp_path / "models", backend="onnx").pipeline.unet, OnnxUNet)
    with pytest.raises(ValueError, match="backend"):
        DiffusionConfig(backend="tensorrt")


def test_weights_replaced_at_the_same_path_are_exported_again(tiny_sd_dir, tmp_path):
    import os
    import shutil

    model = tmp_path / "sd"
    shutil.copytree(tiny_sd_dir, model)
    models = tmp_path / "models"
    make(model, models, backend="onnx").load()
    diffusion.clear_cache()
    weights = next((model / "unet").glob("*.safetensors"))
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    make(model, models, backend="onnx").load()
    assert len(list((models / "onnx").iterdir())) == 2
