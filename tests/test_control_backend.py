"""ControlNets and where the UNet runs: the CPU default (torch) draws with them; ``SD_BACKEND=onnx`` says plainly that it cannot."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from PIL import Image

from bot import factory
from bot.settings import Settings
from engine.api import JobFinished, JobSpec
from engine.image import device, diffusion
from engine.image.control import ControlConfig, ControlNets
from engine.image.diffusion import DiffusionConfig, TextToImage
from engine.image.onnx_unet import OnnxUNet
from engine.image.pipeline import AnimePipeline
from engine.jobs.local import LocalJobQueue
from engine.speech.asr import SpeechRecognizer
from engine.speech.transcriber import WhisperTranscriber
from handlers.actions import Action
from handlers.events import PhotoMessage, fetched
from handlers.i18n import t
from tests.support.conversation import button
from tests.support.scripted_engine import SpeechAndJobs
from tests.test_control import drained, png_of, sketch


@pytest.fixture(autouse=True)
def _fresh_cache():
    diffusion.clear_cache()
    yield
    diffusion.clear_cache()


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def cpu_default_settings(tiny_sd_dir: Path, tiny_lora_dir: Path, tiny_taesd_dir: Path, controlnet: Path, tmp_path: Path, **extra: str) -> Settings:
    """What an operator without a GPU runs: the few-step preset (LCM-LoRA), SD_VAE/SD_BACKEND/SD_CPU_DTYPE auto, on tiny models."""
    return Settings(
        torch_device="cpu",
        sd_model=str(tiny_sd_dir),
        sd_few_steps="lcm",
        sd_lora=str(tiny_lora_dir),
        sd_tiny_vae=str(tiny_taesd_dir),
        sd_width=64,
        sd_height=64,
        sd_steps=2,
        controlnet_scribble=str(controlnet),
        models_dir=tmp_path / "models",
        **extra,  # type: ignore[arg-type]
    )


async def test_a_controlnet_job_draws_under_the_cpu_defaults_without_bfloat16(
    tiny_sd_dir: Path, tiny_lora_dir: Path, tiny_taesd_dir: Path, tiny_controlnet_dir: Path,
    animegan_checkpoints_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(device, "cpu_computes_bf16", lambda: False)
    settings = cpu_default_settings(tiny_sd_dir, tiny_lora_dir, tiny_taesd_dir, tiny_controlnet_dir, tmp_path)
    assert settings.sd_backend == "auto" and settings.sd_cpu_dtype == "auto"
    text_to_image = factory.text_to_image(settings)
    animegan = factory.animegan(settings.model_copy(update={"checkpoints_dir": animegan_checkpoints_dir, "anime_download": False}))
    pipeline = AnimePipeline(text_to_image, animegan, default_style="paprika", control=factory.control_nets(settings))
    spec = JobSpec("c1", "u1", "text", "paprika", positive="a cat", seed=3, control="scribble", control_png=png_of(sketch()))
    finished = (await drained(pipeline, spec))[-1]
    assert isinstance(finished, JobFinished), finished
    assert finished.result.base_png is not None
    assert Image.open(io.BytesIO(finished.result.base_png)).size == (80, 64)  # the sketch's proportions
    unet = text_to_image.pipeline.unet
    assert not isinstance(unet, OnnxUNet) and unet.dtype == torch.float32
    assert not (tmp_path / "models" / "onnx").exists(), "no ONNX export on the default path"


async def test_with_the_onnx_backend_the_card_says_what_the_operator_should_set(
    recognizer: SpeechRecognizer, tiny_sd_dir: Path, tiny_controlnet_dir: Path, animegan_checkpoints_dir: Path,
    sqlite_url: str, make_harness, tmp_path: Path,
) -> None:
    config = DiffusionConfig(model=str(tiny_sd_dir), width=64, height=64, steps=2, backend="onnx", cache_dir=tmp_path / "models")
    animegan = factory.animegan(Settings(checkpoints_dir=animegan_checkpoints_dir, anime_download=False, anime_backend="torch"))
    nets = ControlNets(ControlConfig(models={"lineart": str(tiny_controlnet_dir)}))
    pipeline = AnimePipeline(TextToImage(config), animegan, default_style="paprika", control=nets)
    engine = SpeechAndJobs(WhisperTranscriber(recognizer), LocalJobQueue(pipeline))
    await engine.start()
    try:
        h = await make_harness(sqlite_url, engine)
        photo = Image.linear_gradient("L").convert("RGB").resize((96, 64))
        buffer = io.BytesIO()
        photo.save(buffer, "JPEG")
        await h.send(PhotoMessage(h.origin("alice"), fetched(buffer.getvalue()), caption="a cat"))
        ref, card = h.messenger.last("card", "alice")
        await h.press("alice", button(card, Action.CONFIRM), ref)
        await h.settle()
        _, card = h.messenger.last("card", "alice")
        assert t("model.unavailable.control_backend", "en") in card.text
        assert "SD_BACKEND=torch" in card.text and t("model.unavailable.control", "en") not in card.text
        assert "SD_BACKEND=torch" in card.fix  # the operator's fix, which the studio shows
        button(card, Action.RETRY_MISSING)
    finally:
        await engine.close()
