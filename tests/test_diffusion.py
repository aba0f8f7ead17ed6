"""engine/image/diffusion.py against a tiny random Stable Diffusion pipeline built on disk (no network)."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
import torch

from engine.errors import Cancelled, ModelUnavailableError
from engine.image import diffusion
from engine.image.diffusion import SCHEDULERS, DiffusionConfig, GeneratedImage, TextToImage
from tests.support.images import assert_images_close, assert_images_differ

SIZE = 64
FAST = 4  # steps for tests that do not care about the scheduler's default


@pytest.fixture(autouse=True)
def _fresh_cache():
    diffusion.clear_cache()
    yield
    diffusion.clear_cache()


def make(model: Path | str, **kw) -> TextToImage:
    kw.setdefault("width", SIZE)
    kw.setdefault("height", SIZE)
    kw.setdefault("device", "cpu")
    return TextToImage(DiffusionConfig(model=str(model), **kw))


# Same seed -> the same picture up to floating-point rounding (tests/support/images.py):
# no test may depend on bit-exact results across batch shapes, thread counts or CPUs.


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize("field", ["width", "height"])
@pytest.mark.parametrize("value", [60, 100, 0, 4096])
def test_config_rejects_bad_sizes(field, value):
    with pytest.raises(ValueError, match=field):
        DiffusionConfig(model="x/y", **{field: value})


def test_config_rejects_unknown_scheduler_and_bad_numbers():
    with pytest.raises(ValueError, match="scheduler"):
        DiffusionConfig(scheduler="ddim")
    with pytest.raises(ValueError, match="steps"):
        DiffusionConfig(steps=0)
    with pytest.raises(ValueError, match="guidance"):
        DiffusionConfig(guidance=-1)
    with pytest.raises(ValueError, match="model"):
        DiffusionConfig(model=" ")
    with pytest.raises(ValueError, match="device"):
        DiffusionConfig(device="gpu")
    assert DiffusionConfig(device="cuda:1").device == "cuda:1"


def test_config_scheduler_defaults_and_overrides():
    assert (DiffusionConfig().resolved_steps, DiffusionConfig().resolved_guidance) == (25, 7.0)
    assert (DiffusionConfig(scheduler="lcm").resolved_steps, DiffusionConfig(scheduler="lcm").resolved_guidance) == (4, 1.0)
    turbo = DiffusionConfig(scheduler="turbo")
    assert (turbo.resolved_steps, turbo.resolved_guidance) == (1, 0.0)
    assert DiffusionConfig(scheduler="turbo", steps=2, guidance=0.5).resolved_steps == 2


def test_construction_is_lazy(tmp_path):
    # A model that does not exist: nothing happens until the first use.
    t2i = make(tmp_path / "missing")
    assert t2i._pipe is None


# --------------------------------------------------------------------------- generation


def test_same_seed_gives_the_same_picture(tiny_sd_dir):
    t2i = make(tiny_sd_dir)
    a = t2i.generate("a girl with blue hair", seed=1234, steps=FAST)
    b = t2i.generate("a girl with blue hair", seed=1234, steps=FAST)
    assert len(a) == len(b) == 1
    assert_images_close(a[0], b[0])
    r = a[0]
    assert r.image.size == (SIZE, SIZE) and r.image.mode == "RGB"
    assert (r.prompt, r.negative, r.seed, r.steps, r.scheduler) == ("a girl with blue hair", "", 1234, FAST, "dpmpp")
    assert (r.width, r.height, r.guidance, r.model) == (SIZE, SIZE, 7.0, str(tiny_sd_dir))
    assert r.seconds > 0


def test_different_seeds_differ(tiny_sd_dir):
    t2i = make(tiny_sd_dir)
    a = t2i.generate("a cat", seed=1, steps=FAST)[0]
    b = t2i.generate("a cat", seed=2, steps=FAST)[0]
    assert_images_differ(a, b)


def test_negative_prompt_changes_output_and_is_reported(tiny_sd_dir):
    t2i = make(tiny_sd_dir)
    plain = t2i.generate("a cat", seed=3, steps=FAST)[0]
    neg = t2i.generate("a cat", negative="blurry", seed=3, steps=FAST)[0]
    assert neg.negative == "blurry"
    assert_images_differ(plain, neg)


def test_random_seed_is_reported_and_reproduces(tiny_sd_dir):
    t2i = make(tiny_sd_dir)
    first = t2i.generate("a red fox", steps=FAST)[0]
    assert isinstance(first.seed, int) and 0 <= first.seed < 2**32
    again = t2i.generate("a red fox", seed=first.seed, steps=FAST)[0]
    assert_images_close(first, again)


def test_batch_one_image_per_prompt_with_consecutive_seeds(tiny_sd_dir):
    t2i = make(tiny_sd_dir)
    prompts = ["a girl", "a castle", "a dragon"]
    batch = t2i.generate(prompts, seed=40, steps=FAST)
    assert [r.prompt for r in batch] == prompts
    assert [r.seed for r in batch] == [40, 41, 42]
    assert all(r.image.size == (SIZE, SIZE) for r in batch)
    # Each image is reproducible on its own from its reported seed: the same picture, though not
    # bit for bit (a batch of 3 and a batch of 1 may round a few values the other way).
    for result in batch:
        assert_images_close(result, t2i.generate(result.prompt, seed=result.seed, steps=FAST)[0])
    # ... and that tolerance still tells seeds apart: the neighbouring seed is another picture.
    assert_images_differ(batch[1], t2i.generate("a castle", seed=40, steps=FAST)[0])


def test_non_square_size_override(tiny_sd_dir):
    t2i = make(tiny_sd_dir)
    r = t2i.generate("a tree", seed=0, steps=2, width=96, height=64)[0]
    assert r.image.size == (96, 64) and (r.width, r.height) == (96, 64)
    with pytest.raises(ValueError, match="width"):
        t2i.generate("a tree", width=100)


@pytest.mark.parametrize("bad", [[], [1], -1, 2**64])
def test_generate_rejects_bad_input(tiny_sd_dir, bad):
    t2i = make(tiny_sd_dir)
    with pytest.raises(ValueError):
        if isinstance(bad, list):
            t2i.generate(bad)
        else:
            t2i.generate("x", seed=bad)


def test_progress_is_monotonic_and_ends_at_one(tiny_sd_dir):
    t2i = make(tiny_sd_dir)
    events: list[tuple[str, float]] = []
    t2i.generate("a bird", seed=5, steps=6, progress=lambda stage, f: events.append((stage, f)))
    assert events[0] == ("loading", 0.0)  # the first picture: the model loads first
    events = events[1:]
    assert len(events) == 6
    assert {stage for stage, _ in events} == {"diffusion"}
    fractions = [f for _, f in events]
    assert all(0 < a < b for a, b in zip(fractions, fractions[1:]))
    assert fractions[-1] == 1.0


def test_cancel_mid_run_raises_and_pipeline_stays_usable(tiny_sd_dir, monkeypatch):
    t2i = make(tiny_sd_dir)
    reference = t2i.generate("a ship", seed=9, steps=8)[0]
    vae = t2i.pipeline.vae
    decoded: list[tuple[int, ...]] = []
    real_decode = vae.decode
    monkeypatch.setattr(vae, "decode", lambda z, *a, **kw: decoded.append(tuple(z.shape)) or real_decode(z, *a, **kw))
    events: list[float] = []
    with pytest.raises(Cancelled):
        t2i.generate(
            "a ship",
            seed=9,
            steps=8,
            progress=lambda _s, f: events.append(f),
            cancelled=lambda: len(events) >= 2,
        )
    assert len(events) == 2  # no further steps ran after the cancel request
    assert decoded == []  # the discarded result is not decoded at all
    after = t2i.generate("a ship", seed=9, steps=8)[0]
    assert_images_close(reference, after)


def test_cancel_before_start_runs_nothing(tiny_sd_dir):
    t2i = make(tiny_sd_dir)
    events: list[float] = []
    with pytest.raises(Cancelled):
        t2i.generate("a ship", steps=FAST, progress=lambda _s, f: events.append(f), cancelled=lambda: True)
    assert events == []


@pytest.mark.parametrize("name", SCHEDULERS)
def test_each_scheduler_constructs_and_runs(tiny_sd_dir, name):
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler, LCMScheduler

    t2i = make(tiny_sd_dir, scheduler=name)
    sched = t2i.pipeline.scheduler
    if name == "dpmpp":
        assert isinstance(sched, DPMSolverMultistepScheduler)
        assert sched.config.algorithm_type == "dpmsolver++" and sched.config.use_karras_sigmas
    elif name == "euler_a":
        assert isinstance(sched, EulerAncestralDiscreteScheduler)
    elif name == "lcm":
        assert isinstance(sched, LCMScheduler)
    elif name == "hyper":
        assert isinstance(sched, DDIMScheduler) and sched.config.timestep_spacing == "trailing"
    else:
        assert isinstance(sched, EulerAncestralDiscreteScheduler)
        assert sched.config.timestep_spacing == "trailing"
    # The few-step samplers run at their own defaults; the others with few steps to keep this fast.
    steps = None if name in ("lcm", "turbo", "hyper") else FAST
    events: list[float] = []
    a = t2i.generate("a girl", seed=11, steps=steps, progress=lambda _s, f: events.append(f))[0]
    b = t2i.generate("a girl", seed=11, steps=steps)[0]
    expected_steps = {"lcm": 4, "turbo": 1, "hyper": 8}.get(name, FAST)
    assert a.steps == expected_steps and len(events) == expected_steps and events[-1] == 1.0
    assert a.scheduler == name and a.image.size == (SIZE, SIZE)
    if name in ("turbo", "hyper"):
        assert a.guidance == 0.0
    assert_images_close(a, b)  # ancestral samplers are seeded too


def test_pipeline_loaded_once_and_shared(tiny_sd_dir, monkeypatch):
    calls = []
    real = diffusion._load_pipeline

    def counting(config):
        calls.append(config.model)
        return real(config)

    monkeypatch.setattr(diffusion, "_load_pipeline", counting)
    t2i = make(tiny_sd_dir)
    assert calls == []  # lazy
    pipe = t2i.pipeline
    t2i.generate("a", seed=0, steps=2)
    t2i.generate("b", seed=0, steps=2)
    assert t2i.pipeline is pipe
    # Another instance (other scheduler) reuses the same weights.
    other = make(tiny_sd_dir, scheduler="euler_a")
    other.generate("c", seed=0, steps=2)
    assert other.pipeline.unet is pipe.unet and other.pipeline.scheduler is not pipe.scheduler
    assert len(calls) == 1
    # CPU always runs in fp32.
    assert pipe.unet.dtype == torch.float32 and pipe.vae.dtype == torch.float32
    assert pipe.safety_checker is None


def test_concurrent_first_use_loads_once(tiny_sd_dir, monkeypatch):
    calls = []
    real = diffusion._load_pipeline

    def counting(config):
        calls.append(1)
        return real(config)

    monkeypatch.setattr(diffusion, "_load_pipeline", counting)
    t2i = make(tiny_sd_dir)
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(t2i.pipeline)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert all(p is results[0] for p in results)


def test_concurrent_generate_is_serialised_and_deterministic(tiny_sd_dir):
    t2i = make(tiny_sd_dir)
    expected = t2i.generate("a lake", seed=21, steps=FAST)[0]
    out: list[GeneratedImage] = []
    threads = [threading.Thread(target=lambda: out.append(t2i.generate("a lake", seed=21, steps=FAST)[0])) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 3
    for o in out:
        assert_images_close(expected, o)


# --------------------------------------------------------------------------- errors


def test_missing_local_dir(tmp_path):
    missing = tmp_path / "models" / "anything-v5"
    with pytest.raises(ModelUnavailableError) as info:
        make(missing).generate("x")
    msg = str(info.value)
    assert str(missing) in msg and "does not exist" in msg
    assert f"hf download <hub-id> --local-dir {missing}" in msg


def test_dir_without_model_index(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelUnavailableError) as info:
        make(tmp_path / "empty").load()
    assert "no model_index.json" in str(info.value) and str(tmp_path / "empty") in str(info.value)


def test_incomplete_dir(tiny_sd_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_sd_dir, broken)
    for f in (broken / "unet").glob("diffusion_pytorch_model.*"):
        f.unlink()
    with pytest.raises(ModelUnavailableError) as info:
        make(broken).generate("x")
    msg = str(info.value)
    assert str(broken) in msg and "incomplete" in msg and "download the whole model again" in msg


def test_truncated_weights(tiny_sd_dir, tmp_path):
    broken = tmp_path / "truncated"
    shutil.copytree(tiny_sd_dir, broken)
    weights = broken / "vae" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ModelUnavailableError) as info:
        make(broken).load()
    assert "incomplete or damaged" in str(info.value) and "vae" in str(info.value)


def test_unreachable_hub_id_offline(tmp_path):
    model = "voice2anime-tests/not-a-cached-model"
    with pytest.raises(ModelUnavailableError) as info:
        make(model, cache_dir=tmp_path / "hf-cache").generate("x")
    msg = str(info.value)
    assert repr(model) in msg and "Hugging Face hub" in msg
    assert f"hf download {model} --local-dir models/not-a-cached-model" in msg
    assert "SD_MODEL=models/not-a-cached-model" in msg


def test_missing_single_file(tmp_path):
    ckpt = tmp_path / "anything.safetensors"
    with pytest.raises(ModelUnavailableError) as info:
        make(ckpt).load()
    assert str(ckpt) in str(info.value) and "does not exist" in str(info.value)


def test_failed_load_is_not_cached(tiny_sd_dir, tmp_path):
    target = tmp_path / "later"
    with pytest.raises(ModelUnavailableError):
        make(target).load()
    shutil.copytree(tiny_sd_dir, target)  # the operator fixes it; the next attempt works
    assert make(target).generate("x", seed=1, steps=2)[0].image.size == (SIZE, SIZE)


def test_error_messages_never_contain_tokens():
    exc = OSError("401 for https://user:pa55@huggingface.co/x?token=abc Authorization: Bearer hf_abcdefghijklmnopqrstuvwxyz")
    msg = diffusion._model_message("org/model", exc)
    assert "hf_abcdefghijklmnopqrstuvwxyz" not in msg and "pa55" not in msg and "token=abc" not in msg
    assert "<redacted>" in msg


# --------------------------------------------------------------------------- LoRA


def test_lora_loads_and_changes_output(tiny_sd_dir, tiny_lora_dir):
    base = make(tiny_sd_dir).generate("a girl", seed=7, steps=FAST)[0]
    lora = make(tiny_sd_dir, lora=str(tiny_lora_dir), lora_scale=1.0)
    with_lora = lora.generate("a girl", seed=7, steps=FAST)[0]
    assert_images_differ(base, with_lora)
    # Deterministic with the LoRA too, and a file path works like the directory.
    assert_images_close(with_lora, lora.generate("a girl", seed=7, steps=FAST)[0])
    as_file = make(tiny_sd_dir, lora=str(tiny_lora_dir / "pytorch_lora_weights.safetensors"), lora_scale=1.0)
    assert_images_close(with_lora, as_file.generate("a girl", seed=7, steps=FAST)[0])
    # The LoRA was fused into its own copy of the weights; the plain model is untouched.
    assert lora.pipeline.unet is not make(tiny_sd_dir).pipeline.unet
    assert_images_close(base, make(tiny_sd_dir).generate("a girl", seed=7, steps=FAST)[0])


def test_lora_scale_zero_is_a_no_op(tiny_sd_dir, tiny_lora_dir):
    base = make(tiny_sd_dir).generate("a girl", seed=7, steps=FAST)[0]
    off = make(tiny_sd_dir, lora=str(tiny_lora_dir), lora_scale=0.0).generate("a girl", seed=7, steps=FAST)[0]
    assert_images_close(base, off)


def test_missing_lora(tiny_sd_dir, tmp_path):
    missing = tmp_path / "style.safetensors"
    with pytest.raises(ModelUnavailableError) as info:
        make(tiny_sd_dir, lora=str(missing)).load()
    assert str(missing) in str(info.value) and "LoRA" in str(info.value)


def test_not_a_lora(tiny_sd_dir):
    weights = tiny_sd_dir / "unet" / "diffusion_pytorch_model.safetensors"
    with pytest.raises(ModelUnavailableError) as info:
        make(tiny_sd_dir, lora=str(weights)).load()
    assert "not a LoRA" in str(info.value)


def test_unreachable_hub_lora_file_offline(tiny_sd_dir, tmp_path):
    lora = "ByteDance/Hyper-SD/Hyper-SD15-8steps-lora.safetensors"  # one file of a repository (SD_FEW_STEPS=hyper)
    with pytest.raises(ModelUnavailableError) as info:
        make(tiny_sd_dir, lora=lora, cache_dir=tmp_path).load()
    msg = str(info.value)
    assert repr(lora) in msg and "hf download ByteDance/Hyper-SD Hyper-SD15-8steps-lora.safetensors" in msg
    assert "SD_LORA=models/lora/Hyper-SD15-8steps-lora.safetensors" in msg


def test_unreachable_hub_lora_offline(tiny_sd_dir, tmp_path):
    with pytest.raises(ModelUnavailableError) as info:
        make(tiny_sd_dir, lora="voice2anime-tests/no-such-lora", cache_dir=tmp_path).load()
    assert "'voice2anime-tests/no-such-lora'" in str(info.value) and "SD_LORA=models/no-such-lora" in str(info.value)


# --------------------------------------------------------------------------- live previews


def _jpeg(data: bytes):
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_previews_every_few_steps_are_small_jpegs_and_change_nothing(tiny_sd_dir):
    t2i = make(tiny_sd_dir)
    events: list[tuple[str, object]] = []
    with_previews = t2i.generate(
        "a bird",
        seed=5,
        steps=8,
        progress=lambda stage, f: stage != "loading" and events.append((stage, f)),  # the first picture's "loading" aside
        preview=lambda stage, image: events.append((f"preview:{stage}", image)),
    )[0]
    # one preview every ceil(8 / PREVIEWS_PER_RUN) = 2 steps, right after that step's progress, none after the last
    assert [e if e[0] == "diffusion" else e[0] for e in events] == [
        ("diffusion", 0.125), ("diffusion", 0.25), "preview:diffusion", ("diffusion", 0.375), ("diffusion", 0.5),
        "preview:diffusion", ("diffusion", 0.625), ("diffusion", 0.75), "preview:diffusion", ("diffusion", 0.875),
        ("diffusion", 1.0),
    ]
    previews = [image for stage, image in events if stage == "preview:diffusion"]
    for data in previews:
        image = _jpeg(data)
        assert image.format == "JPEG" and image.mode == "RGB" and image.size == (SIZE, SIZE)  # never past the picture
        assert len(data) < 4096
    without = t2i.generate("a bird", seed=5, steps=8)[0]
    assert_images_close(with_previews, without)  # previews only read the latents


def test_previews_of_a_big_picture_are_thumbnails(tiny_sd_dir):
    t2i = make(tiny_sd_dir, width=256, height=192)
    previews: list[bytes] = []
    t2i.generate("a bird", seed=5, steps=4, preview=lambda _stage, image: previews.append(image))
    assert len(previews) == 3  # every step but the last
    assert {_jpeg(p).size for p in previews} == {(diffusion.PREVIEW_SIDE, 96)}  # longest side 128, aspect kept
    assert max(len(p) for p in previews) < 8192


def test_latent_preview_is_the_linear_sd15_map():
    # one latent channel at 1: that channel's row of the factors, mapped from [-1, 1] to 0..255
    for channel in range(4):
        latents = torch.zeros(1, 4, 8, 8)
        latents[0, channel] = 1.0
        pixel = _jpeg(diffusion.latent_preview(latents, 64, 64)).getpixel((32, 32))
        expected = [min(255, max(0, (v + 1) * 127.5)) for v in diffusion.SD15_LATENT_RGB[channel]]
        assert all(abs(a - b) <= 6 for a, b in zip(pixel, expected, strict=True)), (channel, pixel, expected)
    grey = _jpeg(diffusion.latent_preview(torch.zeros(2, 4, 8, 12), 96, 64))
    assert grey.size == (96, 64) and all(abs(v - 127) <= 2 for v in grey.getpixel((10, 10)))


def test_previews_show_what_dpm_solver_predicts_else_the_latents():
    from types import SimpleNamespace

    latents, predicted = torch.zeros(1, 4, 8, 8), torch.ones(1, 4, 8, 8)

    def pipe(algorithm: str | None, outputs: list) -> SimpleNamespace:
        return SimpleNamespace(scheduler=SimpleNamespace(config=SimpleNamespace(algorithm_type=algorithm), model_outputs=outputs))

    assert diffusion._denoised(pipe("dpmsolver++", [None, predicted]), latents) is predicted
    assert diffusion._denoised(pipe("dpmsolver++", [None, None]), latents) is latents  # before its first step
    assert diffusion._denoised(pipe("dpmsolver", [None, predicted]), latents) is latents  # predicts noise, not x0
    assert diffusion._denoised(pipe(None, []), latents) is latents  # Euler, LCM: no prediction kept


def test_a_failing_preview_is_skipped_and_the_picture_still_comes(tiny_sd_dir, monkeypatch, caplog):
    t2i = make(tiny_sd_dir)
    monkeypatch.setattr(diffusion, "latent_preview", lambda *a: (_ for _ in ()).throw(RuntimeError("boom")))
    previews: list[bytes] = []
    (image,) = t2i.generate("a bird", seed=5, steps=FAST, preview=lambda _s, p: previews.append(p))
    assert previews == [] and image.image.size == (SIZE, SIZE)
    assert "could not make a preview" in caplog.text


@pytest.fixture
def preview_pipeline(tiny_sd_dir, animegan_checkpoints_dir):
    from engine.image.animegan import AnimeGAN
    from engine.image.pipeline import AnimePipeline

    def build(previews: bool) -> AnimePipeline:
        animegan = AnimeGAN(animegan_checkpoints_dir, device="cpu", backend="torch", download=False)
        return AnimePipeline(make(tiny_sd_dir, steps=FAST), animegan, default_style="face_paint_512_v2", previews=previews)

    return build


def test_a_text_job_reports_previews_then_the_sketch_with_monotonic_progress(preview_pipeline):
    from engine.api import JobProgress, JobSpec
    from engine.jobs.runner import DIFFUSION_SHARE, run_job

    reports: list[JobProgress] = []
    spec = JobSpec("j1", "u1", "text", "face_paint_512_v2", positive="anime, a bird", seed=5)
    result = run_job(preview_pipeline(True), spec, reports.append, lambda: False)
    fractions = [r.fraction for r in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    with_previews = [r for r in reports if r.preview is not None]
    assert [r.stage for r in with_previews] == ["diffusion"] * 3 + ["style"]
    *drawing, sketch = with_previews
    assert [r.fraction for r in drawing] == pytest.approx([f * DIFFUSION_SHARE for f in (0.25, 0.5, 0.75)])
    assert sketch.fraction == DIFFUSION_SHARE and _jpeg(sketch.preview).size == (SIZE, SIZE)  # the drawing, at most 256 px
    assert result.base_png is not None
    assert max(len(r.preview) for r in with_previews) < 8192, "previews stay a few KB (they cross Redis)"
    # the styled picture follows the sketch: every report after it is the style stage
    after = reports[reports.index(sketch) + 1 :]
    assert after and {r.stage for r in after} == {"style"} and all(r.preview is None for r in after)


def test_previews_turned_off_make_none(preview_pipeline, monkeypatch):
    from engine.api import JobProgress, JobSpec
    from engine.jobs.runner import run_job

    decoded: list[int] = []
    real = diffusion.latent_preview
    monkeypatch.setattr(diffusion, "latent_preview", lambda *a: decoded.append(1) or real(*a))
    reports: list[JobProgress] = []
    spec = JobSpec("j2", "u1", "text", "face_paint_512_v2", positive="anime, a bird", seed=5)
    run_job(preview_pipeline(False), spec, reports.append, lambda: False)
    assert reports and all(r.preview is None for r in reports) and decoded == []  # not even decoded


# --------------------------------------------------------------------------- fast paths


def test_fast_paths_sdpa_everywhere_channels_last_on_cuda_compile_on_request(tiny_sd_dir, caplog):
    import logging

    from diffusers.models.attention_processor import AttnProcessor2_0

    caplog.set_level(logging.INFO, logger="engine.image.diffusion")
    pipe = make(tiny_sd_dir).pipeline
    for module in (pipe.unet, pipe.vae):
        assert all(isinstance(p, AttnProcessor2_0) for p in module.attn_processors.values())
    assert pipe.unet._compiled_call_impl is None and "(torch.float32; sdpa)" in caplog.text
    compiled = make(tiny_sd_dir, compile=True).pipeline  # compiled lazily: nothing runs here
    assert compiled.unet._compiled_call_impl is not None and compiled.unet is not pipe.unet, "its own load"
    assert "sdpa, torch.compile" in caplog.text
    # What CUDA gets besides fp16 (tried on the CPU copy: the memory format is the same operation there).
    assert diffusion._fast_paths(pipe, torch.device("cuda"), compile=False) == ["fp16", "sdpa", "channels_last"]
    conv = pipe.unet.conv_in.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()


def test_large_pictures_decode_in_tiles(tiny_sd_dir, monkeypatch):
    t2i = make(tiny_sd_dir, vae_tiling_above=SIZE)
    vae = t2i.pipeline.vae
    tiled: list[tuple[int, ...]] = []
    real = vae.tiled_decode
    monkeypatch.setattr(vae, "tiled_decode", lambda z, *a, **kw: tiled.append(tuple(z.shape)) or real(z, *a, **kw))
    assert t2i.generate("a tree", seed=0, steps=2)[0].image.size == (SIZE, SIZE)
    assert tiled == [], "not above the threshold: decoded whole"
    assert t2i.generate("a tree", seed=0, steps=2, width=2 * SIZE, height=SIZE + 32)[0].image.size == (2 * SIZE, SIZE + 32)
    assert tiled == [(1, 4, 12, 16)]
    make(tiny_sd_dir).generate("a tree", seed=0, steps=2, width=2 * SIZE, height=SIZE)
    assert len(tiled) == 1, "the default threshold is 1024"
    with pytest.raises(ValueError, match="vae_tiling_above"):
        DiffusionConfig(vae_tiling_above=-1)
