"""Drawing on a CPU from settings: SD_VAE (and the CPU defaults) through the factory and `voice2anime generate`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from bot import factory
from bot.cli import main
from bot.settings import Settings
from engine.image import device, diffusion
from engine.image.onnx_unet import OnnxUNet


@pytest.fixture(autouse=True)
def _fresh_cache():
    diffusion.clear_cache()
    yield
    diffusion.clear_cache()


@pytest.fixture
def drawing_env(monkeypatch: pytest.MonkeyPatch, tiny_sd_dir: Path, animegan_checkpoints_dir: Path, tmp_path: Path) -> None:
    """Settings pointing at the tiny drawing model and the test styles, on the CPU."""
    for name, value in {
        "SD_MODEL": str(tiny_sd_dir),
        "SD_WIDTH": "64",
        "SD_HEIGHT": "64",
        "SD_STEPS": "2",
        "CHECKPOINTS_DIR": str(animegan_checkpoints_dir),
        "ANIME_DOWNLOAD": "false",
        "TORCH_THREADS": "1",
        "TORCH_DEVICE": "cpu",
        "MODELS_DIR": str(tmp_path / "models"),
    }.items():
        monkeypatch.setenv(name, value)


def test_the_cpu_default_decodes_with_the_tiny_decoder_and_a_chosen_model_keeps_its_vae() -> None:
    cpu_default = factory.text_to_image(Settings(torch_device="cpu")).config
    assert (cpu_default.vae, cpu_default.tiny_vae) == ("auto", "madebyollin/taesd")
    assert factory.text_to_image(Settings(torch_device="cpu", sd_model="models/mine")).config.vae == "full"
    assert factory.text_to_image(Settings(torch_device="cpu", sd_model="models/mine", sd_vae="tiny")).config.vae == "tiny"
    assert factory.text_to_image(Settings(torch_device="cpu", sd_vae="full")).config.vae == "full"
    assert factory.text_to_image(Settings(torch_device="cuda")).config.vae == "full"


def test_generate_draws_with_the_tiny_decoder(
    drawing_env: None, monkeypatch: pytest.MonkeyPatch, tiny_taesd_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SD_VAE", "tiny")
    monkeypatch.setenv("SD_TINY_VAE", str(tiny_taesd_dir))
    assert main(["generate", "--text", "a cat", "--seed", "7", "-o", str(tmp_path / "a.png"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["seed"] == 7
    assert Image.open(tmp_path / "a.png").size == (64, 64)


def test_generate_without_the_tiny_decoder_says_what_to_put_where(
    drawing_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SD_VAE", "tiny")
    monkeypatch.setenv("SD_TINY_VAE", str(tmp_path / "taesd"))
    assert main(["generate", "--text", "a cat", "-o", str(tmp_path / "x.png")]) == 3
    err = capsys.readouterr().err
    assert "Tiny decoder" in err and "SD_TINY_VAE" in err and "SD_VAE=full" in err


def test_the_cpu_default_runs_the_unet_on_torch_and_onnx_runtime_only_when_asked(
    drawing_env: None, monkeypatch: pytest.MonkeyPatch, tiny_lora_dir: Path, tiny_taesd_dir: Path, tmp_path: Path
) -> None:
    monkeypatch.setattr(device, "cpu_computes_bf16", lambda: False)  # a CPU without bfloat16: float32
    cpu_default = Settings(sd_few_steps="lcm", sd_lora=str(tiny_lora_dir), sd_tiny_vae=str(tiny_taesd_dir))
    pipe = factory.text_to_image(cpu_default).pipeline
    assert not isinstance(pipe.unet, OnnxUNet) and pipe.unet.dtype == torch.float32
    assert not (tmp_path / "models" / "onnx").exists(), "nothing exported"
    assert factory.text_to_image(Settings(torch_device="cpu", sd_backend="onnx")).config.backend == "onnx"
    assert factory.text_to_image(Settings(torch_device="cuda")).config.backend == "auto"


def test_generate_draws_with_the_onnx_unet_and_caches_it_in_models_dir(
    drawing_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SD_BACKEND", "onnx")
    assert main(["generate", "--text", "a cat", "--seed", "7", "-o", str(tmp_path / "a.png"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["seed"] == 7
    assert [p.name for p in (tmp_path / "models" / "onnx").iterdir()][0].startswith("unet-")


def test_the_cpu_default_may_use_bfloat16_and_a_chosen_model_keeps_float32() -> None:
    assert factory.text_to_image(Settings(torch_device="cpu")).config.cpu_dtype == "auto"
    assert factory.text_to_image(Settings(torch_device="cpu", sd_model="models/mine")).config.cpu_dtype == "float32"
    chosen = Settings(torch_device="cpu", sd_model="models/mine", sd_cpu_dtype="bfloat16")
    assert factory.text_to_image(chosen).config.cpu_dtype == "bfloat16"


def test_fast_speed_draws_lcm_in_two_steps_unless_the_steps_are_set() -> None:
    assert factory.text_to_image(Settings(torch_device="cpu")).config.resolved_steps == 4
    assert factory.text_to_image(Settings(torch_device="cpu", sd_speed="fast")).config.resolved_steps == factory.FAST_LCM_STEPS == 2
    assert factory.text_to_image(Settings(torch_device="cpu", sd_speed="fast", sd_steps=3)).config.resolved_steps == 3
    assert factory.text_to_image(Settings(torch_device="cuda", sd_speed="fast")).config.resolved_steps == 25  # not LCM


def test_generate_in_fast_mode_takes_two_steps(
    drawing_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SD_STEPS")
    monkeypatch.setenv("SD_SCHEDULER", "lcm")
    monkeypatch.setenv("SD_SPEED", "fast")
    drawn: list[int] = []
    real = diffusion.TextToImage.generate_each

    def recording(self, requests, **kwargs):  # type: ignore[no-untyped-def]
        outcomes = real(self, requests, **kwargs)
        drawn.extend(outcome.steps for outcome in outcomes)
        return outcomes

    monkeypatch.setattr(diffusion.TextToImage, "generate_each", recording)
    assert main(["generate", "--text", "a cat", "--seed", "7", "-o", str(tmp_path / "a.png"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["seed"] == 7
    assert drawn == [2]
