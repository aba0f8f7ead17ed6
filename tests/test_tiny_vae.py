"""The tiny decoder (TAESD) on a tiny random pipeline: chosen on a CPU, drawn through, and a clear error when missing."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from engine.errors import ModelUnavailableError
from engine.image import diffusion
from engine.image.diffusion import DiffusionConfig, TextToImage
from engine.image.tiny_vae import uses_tiny_vae
from tests.support.images import assert_images_close, assert_images_differ

SIZE = 64


@pytest.fixture(autouse=True)
def _fresh_cache():
    diffusion.clear_cache()
    yield
    diffusion.clear_cache()


def make(model: Path, **kw) -> TextToImage:
    return TextToImage(DiffusionConfig(model=str(model), width=SIZE, height=SIZE, device="cpu", steps=2, **kw))


def test_auto_is_tiny_on_a_cpu_and_full_on_a_gpu():
    assert uses_tiny_vae("auto", torch.device("cpu"))
    assert not uses_tiny_vae("auto", torch.device("cuda"))
    assert uses_tiny_vae("tiny", torch.device("cuda"))
    assert not uses_tiny_vae("full", torch.device("cpu"))
    with pytest.raises(ValueError, match="vae"):
        DiffusionConfig(vae="small")


def test_the_tiny_decoder_draws_instead_of_the_models_vae(tiny_sd_dir, tiny_taesd_dir, caplog):
    from diffusers import AutoencoderTiny

    tiny = make(tiny_sd_dir, vae="auto", tiny_vae=str(tiny_taesd_dir))
    with caplog.at_level("INFO", logger="engine.image.diffusion"):
        first = tiny.generate("a cat", seed=3)[0]
    assert isinstance(tiny.pipeline.vae, AutoencoderTiny)
    assert "tiny decoder" in caplog.text
    assert first.image.size == (SIZE, SIZE)
    assert_images_close(first.image, tiny.generate("a cat", seed=3)[0].image)
    # The same latents through the model's own VAE: another picture (the decoders differ), same size.
    full = make(tiny_sd_dir, vae="full").generate("a cat", seed=3)[0]
    assert full.image.size == first.image.size
    assert_images_differ(first.image, full.image)


def test_previews_progress_and_cancel_work_with_the_tiny_decoder(tiny_sd_dir, tiny_taesd_dir):
    from engine.errors import Cancelled

    t2i = TextToImage(
        DiffusionConfig(model=str(tiny_sd_dir), width=SIZE, height=SIZE, device="cpu", steps=4, vae="tiny", tiny_vae=str(tiny_taesd_dir))
    )
    seen: list[tuple[str, float]] = []
    previews: list[bytes] = []
    t2i.generate("a cat", seed=1, progress=lambda s, f: seen.append((s, f)), preview=lambda s, j: previews.append(j))
    assert [f for s, f in seen if s == "diffusion"][-1] == 1.0
    assert previews and all(p.startswith(b"\xff\xd8") for p in previews)
    steps = 0

    def cancelled() -> bool:
        return steps >= 2

    def progress(stage: str, fraction: float) -> None:
        nonlocal steps
        steps += stage == "diffusion"

    with pytest.raises(Cancelled):
        t2i.generate("a cat", seed=1, progress=progress, cancelled=cancelled)
    assert steps == 2


def test_a_missing_local_tiny_decoder_says_what_to_put_where(tiny_sd_dir, tmp_path):
    t2i = make(tiny_sd_dir, vae="tiny", tiny_vae=str(tmp_path / "taesd"))
    with pytest.raises(ModelUnavailableError) as caught:
        t2i.generate("a cat", seed=1)
    message = str(caught.value)
    assert "SD_TINY_VAE" in message and "SD_VAE=full" in message
    assert "hf download madebyollin/taesd" in message


def test_an_unreachable_hub_tiny_decoder_offline_says_how_to_get_it_and_draws_with_the_full_vae(
    tiny_sd_dir, tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t2i = TextToImage(
        DiffusionConfig(model=str(tiny_sd_dir), width=SIZE, height=SIZE, device="cpu", vae="auto", cache_dir=tmp_path)
    )
    with caplog.at_level(logging.WARNING, logger="engine.image.diffusion"):
        (picture,) = t2i.generate("a cat", seed=1)
    assert picture.image.size == (SIZE, SIZE)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "'madebyollin/taesd'" in warning and "the model's own VAE decodes" in warning
    assert "hf download madebyollin/taesd --local-dir models/taesd" in warning and "SD_TINY_VAE=models/taesd" in warning


def test_a_missing_model_is_named_before_a_missing_tiny_decoder(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t2i = TextToImage(
        DiffusionConfig(model=str(tmp_path / "no-model"), width=SIZE, height=SIZE, device="cpu", vae="tiny", cache_dir=tmp_path)
    )
    with pytest.raises(ModelUnavailableError) as caught:
        t2i.generate("a cat", seed=1)
    assert "no-model" in str(caught.value) and "taesd" not in str(caught.value)
