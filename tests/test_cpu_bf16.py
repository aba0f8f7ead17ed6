"""bfloat16 on a CPU that computes it: chosen from the CPU's flags, drawn through generate like float32."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.errors import Cancelled
from engine.image import device, diffusion
from engine.image.diffusion import DiffusionConfig, TextToImage
from engine.image.onnx_unet import OnnxUNet
from tests.support.images import assert_images_close

SIZE = 64


@pytest.fixture(autouse=True)
def _fresh_cache():
    diffusion.clear_cache()
    yield
    diffusion.clear_cache()


def make(model: Path, models: Path, **kw) -> TextToImage:
    kw = {"width": SIZE, "height": SIZE, "device": "cpu", "steps": 4, "scheduler": "lcm", "cache_dir": models, **kw}
    return TextToImage(DiffusionConfig(model=str(model), **kw))


@pytest.mark.parametrize(
    ("flags", "expected"),
    [("fpu avx2 avx512f amx_bf16 amx_tile", True), ("fpu avx2 avx512_bf16", True), ("fpu sse4_2 avx2 fma", False)],
)
def test_the_cpu_flags_say_whether_bfloat16_is_in_hardware(tmp_path, flags, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    assert device.cpu_computes_bf16(cpuinfo) is expected
    assert not device.cpu_computes_bf16(tmp_path / "missing")


def test_bfloat16_draws_the_float32_picture_with_progress_previews_and_cancel(tiny_sd_dir, tiny_taesd_dir, tmp_path):
    reference = make(tiny_sd_dir, tmp_path, cpu_dtype="float32", vae="tiny", tiny_vae=str(tiny_taesd_dir))
    expected = reference.generate("a cat", seed=4)[0].image
    diffusion.clear_cache()
    t2i = make(tiny_sd_dir, tmp_path, cpu_dtype="bfloat16", vae="tiny", tiny_vae=str(tiny_taesd_dir))
    progress: list[float] = []
    previews: list[bytes] = []
    image = t2i.generate(
        "a cat", seed=4, progress=lambda s, f: progress.append(f) if s == "diffusion" else None, preview=lambda s, j: previews.append(j)
    )[0].image
    assert t2i.pipeline.unet.dtype == torch.bfloat16 and t2i.pipeline.vae.dtype == torch.bfloat16
    assert progress == [0.25, 0.5, 0.75, 1.0] and len(previews) == 3
    assert_images_close(expected, image, max_abs=48, mean_abs=6.0)  # bfloat16 keeps 8 bits of mantissa: the same picture, roughly
    with pytest.raises(Cancelled):
        t2i.generate("a cat", seed=4, cancelled=lambda: len(progress) >= 5, progress=lambda s, f: progress.append(f))


def test_auto_is_bfloat16_on_a_cpu_that_computes_it_and_float32_on_torch_elsewhere(tiny_sd_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(device, "cpu_computes_bf16", lambda: True)
    native = make(tiny_sd_dir, tmp_path, cpu_dtype="auto", backend="auto")
    assert native.pipeline.unet.dtype == torch.bfloat16 and not isinstance(native.pipeline.unet, OnnxUNet)
    diffusion.clear_cache()
    monkeypatch.setattr(device, "cpu_computes_bf16", lambda: False)
    emulated = make(tiny_sd_dir, tmp_path, cpu_dtype="auto", backend="auto")
    assert not isinstance(emulated.pipeline.unet, OnnxUNet) and emulated.pipeline.unet.dtype == torch.float32
    diffusion.clear_cache()
    monkeypatch.setattr(device, "cpu_computes_bf16", lambda: True)
    onnx = make(tiny_sd_dir, tmp_path, cpu_dtype="auto", backend="onnx")  # the ONNX UNet is float32, and so is the rest
    assert isinstance(onnx.pipeline.unet, OnnxUNet) and onnx.pipeline.text_encoder.dtype == torch.float32
    with pytest.raises(ValueError, match="cpu_dtype"):
        DiffusionConfig(cpu_dtype="float16")
