"""``voice2anime run`` says at start which models are here, which download on first use, and about how big they are.

Through the real process (the studio, no token): some models are put in
place first, the rest are the defaults a newcomer gets; the hub endpoint is
a local socket that records any connection, so the report is shown to be
made without the network.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import Settings
from engine.jobs.models_report import Model, report, size_text
from tests.support import fake_vits
from tests.support.animegan_weights import write_checkpoint

#: The revision a hand-made hub cache entry claims.
REVISION = "0123456789abcdef0123456789abcdef01234567"


def cache_hub_file(models_dir: Path, repo_id: str, filename: str) -> None:
    """Put ``filename`` of ``repo_id`` into the Hugging Face cache layout in ``models_dir``, as a download would."""
    repo = models_dir / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(REVISION)
    snapshot = repo / "snapshots" / REVISION
    snapshot.mkdir(parents=True)
    (snapshot / filename).write_bytes(b"weights")


def model_lines(stderr: str) -> list[str]:
    """The report's block: the ``voice2anime`` log records from its first line on, message text only."""
    messages = [m[1] for m in re.finditer(r"^\S+ \S+ INFO voice2anime: (.*)$", stderr, re.MULTILINE)]
    start = next(i for i, line in enumerate(messages) if line.startswith("models: "))
    return messages[start:]


def run_report(tmp_path: Path, whisper_model_dir: Path, **settings: str) -> list[str]:
    """Start ``voice2anime run`` (the studio) with a newcomer's defaults plus ``settings``, stop it, return its report.

    The hub endpoint is a local socket: the test fails if anything connected to it.
    """
    names = {name.upper() for name in Settings.model_fields}
    with socket.socket() as hub:
        hub.bind(("127.0.0.1", 0))
        hub.listen(8)
        env = {k: v for k, v in os.environ.items() if k not in names and not k.startswith("HF_")} | {
            "HF_ENDPOINT": f"http://127.0.0.1:{hub.getsockname()[1]}",  # any hub request would connect here
            "HF_HOME": str(tmp_path / "hf-home"),
            "OMP_NUM_THREADS": "1",
            "MODELS_DIR": str(tmp_path / "models"),
            "CHECKPOINTS_DIR": str(tmp_path / "checkpoints"),
            "WHISPER_MODEL": str(whisper_model_dir),
            "TORCH_DEVICE": "cpu",  # no GPU: the default model draws with the LCM-LoRA
            "WEB_PORT": "0",
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
            "DATA_DIR": str(tmp_path / "data"),
        } | settings
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "run"], env=env, cwd=tmp_path,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            assert process.stdout is not None
            started = process.stdout.readline()  # the studio's address, once everything has started
            assert started.startswith("voice2anime studio: open http://127.0.0.1:"), started
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        hub.setblocking(False)
        with pytest.raises(BlockingIOError):
            hub.accept()  # nobody connected to the hub
    assert process.returncode == 0, stderr
    assert "styles.json" not in stderr  # no registry of the operator's: the shipped styles, without a word
    return model_lines(stderr)


@pytest.mark.slow  # a `voice2anime run` process
def test_run_logs_which_models_are_here_and_what_the_first_picture_downloads(
    tmp_path: Path, whisper_model_dir: Path
) -> None:
    models, checkpoints = tmp_path / "models", tmp_path / "checkpoints"
    cache_hub_file(models, "latent-consistency/lcm-lora-sdv1-5", "pytorch_lora_weights.safetensors")
    checkpoints.mkdir()
    write_checkpoint(checkpoints / "face_paint_512_v2.pt")  # one of the six bundled styles is here
    cantonese = fake_vits.build(tmp_path / "cantonese-voice")
    assert run_report(tmp_path, whisper_model_dir, TTS_MODEL_YUE=str(cantonese)) == [
        "models: 5 here, 17 downloaded on first use (about 4.9 GB for the first pictures, "
        "7.7 GB more only when composition or upscaling is first used); nothing is fetched now",
        f"  speech: Whisper {whisper_model_dir}: here ({whisper_model_dir})",
        f"  voice replies: vits-melo-tts-zh_en: downloaded on first use into {models}/tts (about 163 MB, MIT)",
        f"  voice replies in Cantonese: {cantonese}: here ({cantonese})",
        f"  drawing: stablediffusionapi/anything-v5: downloaded on first use into {models} (about 4.3 GB)",
        "  drawing: LoRA latent-consistency/lcm-lora-sdv1-5: here "
        f"({models}/models--latent-consistency--lcm-lora-sdv1-5/snapshots/{REVISION}, about 135 MB)",
        f"  drawing: tiny decoder madebyollin/taesd: downloaded on first use into {models} (about 10 MB)",
        f"  style: AnimeGANv2 face_paint_512_v2: here ({checkpoints}, about 8.6 MB)",
        "  style: 5 AnimeGANv2 styles (face_paint_512_v1, celeba_distill, paprika, hayao, shinkai): "
        f"downloaded on first use into {checkpoints} (about 8.6 MB each)",
        f"  picture check of drawings: SmilingWolf/wd-vit-tagger-v3: downloaded on first use into {models} (about 379 MB)",
        "  picture check of photos: NudeNet 320n: here (inside the nudenet package, about 12 MB)",
        *(
            f"  composition ({kind}): lllyasviel/control_v11{version}_sd15{suffix}: downloaded on first use into {models} (about 1.4 GB)"
            for kind, version, suffix in (
                ("lineart", "p", "s2_lineart_anime"),
                ("canny", "p", "_canny"),
                ("pose", "p", "_openpose"),
                ("scribble", "p", "_scribble"),
                ("depth", "f1p", "_depth"),
            )
        ),
        "  composition (depth from a photo): depth-anything/Depth-Anything-V2-Small-hf: "
        f"downloaded on first use into {models} (about 99 MB, Apache-2.0)",
        f"  composition (pose from a photo): yzd-v/DWPose: downloaded on first use into {models} (about 351 MB, Apache-2.0)",
        f"  upscale: realesr-animevideov3: downloaded on first use into {models} (about 2.4 MB, BSD-3-Clause)",
    ]


@pytest.mark.slow  # a `voice2anime run` process
def test_a_bot_without_voice_replies_lists_no_voice_and_a_put_archive_counts_as_here(
    tmp_path: Path, whisper_model_dir: Path
) -> None:
    assert not any("voice replies" in line for line in run_report(tmp_path, whisper_model_dir, VOICE_REPLIES="off"))
    archive = tmp_path / "models" / "tts" / "kokoro-int8-multi-lang-v1_1.tar.bz2"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(b"the release archive, put here by hand")  # checked and unpacked by the first reply, not now
    lines = run_report(tmp_path, whisper_model_dir, TTS_MODEL="kokoro-int8-multi-lang-v1_1", TTS_MODEL_YUE=str(tmp_path / "nowhere"))
    assert f"  voice replies: kokoro-int8-multi-lang-v1_1: here ({archive}, unpacked on first use, about 140 MB, Apache-2.0)" in lines
    assert (
        f"  voice replies in Cantonese: {tmp_path / 'nowhere'}: missing — no sherpa-onnx voice (tokens.txt) in "
        f"{tmp_path / 'nowhere'}: set TTS_MODEL_YUE to vits-melo-tts-zh_en, kokoro-int8-multi-lang-v1_1 or a directory"
    ) in lines
    assert archive.read_bytes() == b"the release archive, put here by hand"


def test_a_bot_whose_pictures_are_drawn_by_workers_says_so() -> None:
    lines = report([Model("speech", "Whisper small", "download", "models", 484)], drawn_elsewhere=True)
    assert lines == [
        "models: 0 here, 1 downloaded on first use (about 484 MB in all); nothing is fetched now",
        "  speech: Whisper small: downloaded on first use into models (about 484 MB)",
        "  pictures: drawn by `voice2anime worker` processes (ENGINE=redis), with the models on their machines",
    ]


def test_missing_models_are_counted_and_say_what_to_do() -> None:
    lines = report([Model("drawing", "models/mine", "missing", "no Stable Diffusion model at models/mine (SD_MODEL)")])
    assert lines[0] == "models: 0 here, 0 downloaded on first use, 1 missing; nothing is fetched now"
    assert lines[1] == "  drawing: models/mine: missing — no Stable Diffusion model at models/mine (SD_MODEL)"


@pytest.mark.parametrize(("megabytes", "text"), [(8.6, "8.6 MB"), (135, "135 MB"), (484, "484 MB"), (4300, "4.3 GB"), (4722, "4.7 GB")])
def test_sizes_read_as_people_write_them(megabytes: float, text: str) -> None:
    assert size_text(megabytes) == text


def test_local_models_are_here_or_missing_and_hub_models_download(tmp_path: Path) -> None:
    from engine.jobs.models_report import drawing_models, lora_model

    class Config:
        model, cache_dir, lora = "stablediffusionapi/anything-v5", tmp_path, "latent-consistency/lcm-lora-sdv1-5"
        vae, device, tiny_vae = "auto", "cpu", "madebyollin/taesd"

    assert [(m.name, m.state) for m in drawing_models(Config())] == [
        ("stablediffusionapi/anything-v5", "download"), ("LoRA latent-consistency/lcm-lora-sdv1-5", "download"),
        ("tiny decoder madebyollin/taesd", "download"),
    ]
    Config.vae = "full"
    assert "tiny decoder madebyollin/taesd" not in [m.name for m in drawing_models(Config())]
    Config.vae, Config.tiny_vae = "tiny", str(tmp_path / "taesd")
    assert drawing_models(Config())[-1].state == "missing"
    assert lora_model(str(tmp_path / "nowhere.safetensors"), tmp_path).state == "missing"
    (tmp_path / "mine.safetensors").write_bytes(b"weights")
    assert lora_model(str(tmp_path / "mine.safetensors"), tmp_path).state == "here"
