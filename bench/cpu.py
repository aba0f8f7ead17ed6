"""One picture on the CPU: the eager path beside the tiny decoder, the ONNX Runtime UNet, bfloat16 and the fast mode.

Run by hand from the repository root::

    python -m bench.cpu --quick          # one round of every path (the full SD 1.5 size: minutes, ~8 GB RAM)
    python -m bench.cpu --rounds 3       # three interleaved rounds, medians
    python -m bench.cpu --size 256       # a quicker look at a smaller picture

Nothing is downloaded: a Stable Diffusion 1.5-sized model with random weights
(UNet2DConditionModel, CLIPTextModel, AutoencoderKL from the SD 1.5 configs
written below, the TAESD-sized AutoencoderTiny, a byte-level CLIP tokenizer)
is built once into ``--workdir`` and drawn through
:class:`engine.image.diffusion.TextToImage` like the bot draws. Random weights
do the same arithmetic as real ones, so the times are what a real picture
costs; the pictures are noise.

Paths (all LCM, guidance 1 = no classifier-free guidance, the CPU default's sampler):

* ``eager`` — the previous CPU default: 4 steps, torch UNet in float32, the model's full VAE.
* ``tiny`` — the same with the tiny decoder (``SD_VAE=tiny``): the default on a CPU without bfloat16 arithmetic.
* ``onnx`` — 4 steps, ONNX Runtime UNet, tiny decoder: ``SD_BACKEND=onnx`` (no ControlNet; never the default).
* ``bf16`` — 4 steps, torch in bfloat16, tiny decoder: the default on a CPU with it (AMX, AVX-512 BF16).
* ``fast`` — ``SD_SPEED=fast``: this CPU's default in 2 steps.

The last line compares this CPU's default (``bf16`` or ``tiny``, as
``SD_CPU_DTYPE=auto`` decides here) and ``fast`` with ``eager``.

Each path runs in its own process (so its peak RSS, ``ru_maxrss``, is its
own, loading included), rounds interleave the paths, and the ONNX export is
made once beforehand in a process of its own (its time and peak are shown on
their own line: a first start pays it once). A process draws two pictures:
the first one after loading pays one-time costs (weights paged in, first-run
allocations; ``1st``), the second is what every later picture of a running
bot costs and is the one broken down: text encoder, each UNet step, decode,
its wall time, the CPU seconds it used; then the peak RSS of the process.
The ratios are of the second pictures' wall times (medians over the rounds).
Threads: ``--threads`` for torch and ONNX Runtime alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: name -> (SD backend, decoder, steps, CPU dtype); ``auto`` is the engine's choice on this CPU.
PATHS: dict[str, tuple[str, str, int, str]] = {
    "eager": ("torch", "full", 4, "float32"),
    "tiny": ("torch", "tiny", 4, "float32"),
    "onnx": ("onnx", "tiny", 4, "float32"),
    "bf16": ("torch", "tiny", 4, "bfloat16"),
    "fast": ("auto", "tiny", 2, "auto"),
}
FAST_PATH = "fast"


def default_path() -> str:
    """The path that is the default on this CPU: ``bf16`` where it computes bfloat16, else ``tiny`` (torch in float32)."""
    from engine.image.device import cpu_computes_bf16

    return "bf16" if cpu_computes_bf16() else "tiny"
PROMPT = "a girl with blue hair under cherry blossoms at night, anime style"


def build_model(workdir: Path) -> None:
    """Write the SD 1.5-sized random model (``sd/``) and a TAESD-sized decoder (``taesd/``) into ``workdir``."""
    import torch
    from diffusers import AutoencoderKL, AutoencoderTiny, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from tests.support.tiny_sd import MAX_LENGTH, _write_tokenizer

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tok_dir:
        _write_tokenizer(Path(tok_dir))
        tokenizer = CLIPTokenizer.from_pretrained(tok_dir, model_max_length=MAX_LENGTH)
    unet = UNet2DConditionModel(  # runwayml/stable-diffusion-v1-5 unet/config.json
        sample_size=64,
        in_channels=4,
        out_channels=4,
        layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=768,
        attention_head_dim=8,
        norm_num_groups=32,
    )
    text_encoder = CLIPTextModel(  # openai/clip-vit-large-patch14 text model
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            max_position_embeddings=MAX_LENGTH,
            hidden_act="quick_gelu",
            projection_dim=768,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    vae = AutoencoderKL(  # SD 1.5 vae/config.json
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=512,
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False, steps_offset=1
    )
    pipe = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(str(workdir / "sd"))
    AutoencoderTiny().save_pretrained(str(workdir / "taesd"))  # madebyollin/taesd's config is the class default


def _text_to_image(workdir: Path, path: str, size: int) -> Any:
    from engine.image.diffusion import DiffusionConfig, TextToImage

    backend, vae, steps, cpu_dtype = PATHS[path]
    return TextToImage(
        DiffusionConfig(
            model=str(workdir / "sd"),
            scheduler="lcm",
            steps=steps,
            guidance=1.0,
            width=size,
            height=size,
            device="cpu",
            cache_dir=workdir / "models",
            vae=vae,
            tiny_vae=str(workdir / "taesd"),
            backend=backend,
            cpu_dtype=cpu_dtype,
        )
    )


def _peak_rss_gb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux


def child_prepare(workdir: Path, size: int) -> dict[str, Any]:
    """Load the ONNX path once (exporting when the cache is empty); its time and peak RSS."""
    started = time.perf_counter()
    _text_to_image(workdir, "onnx", size).load()
    return {"seconds": time.perf_counter() - started, "rss_gb": _peak_rss_gb()}


def child_draw(workdir: Path, path: str, size: int) -> dict[str, Any]:
    """Load ``path``'s engine, draw a first picture (timed whole), then one with every stage timed."""
    t2i = _text_to_image(workdir, path, size)
    pipe = t2i.load()
    started = time.perf_counter()
    t2i.generate(PROMPT, seed=0)
    first = time.perf_counter() - started
    marks: dict[str, float] = {}

    def mark(name: str) -> Any:
        def hook(*_: Any) -> None:  # returns None: the hooks leave the encoder's inputs and outputs alone
            marks[name] = time.perf_counter()

        return hook

    pipe.text_encoder.register_forward_pre_hook(mark("text_start"))
    pipe.text_encoder.register_forward_hook(mark("text_end"))
    steps: list[float] = []
    cpu_started, started = time.process_time(), time.perf_counter()
    t2i.generate(PROMPT, seed=1, progress=lambda stage, _f: steps.append(time.perf_counter()) if stage == "diffusion" else None)
    ended, cpu = time.perf_counter(), time.process_time() - cpu_started
    edges = [marks["text_end"], *steps]
    return {
        "text": marks["text_end"] - marks["text_start"],
        "steps": [b - a for a, b in zip(edges, edges[1:])],
        "decode": ended - steps[-1],
        "wall": ended - started,
        "first": first,
        "cpu": cpu,
        "rss_gb": _peak_rss_gb(),
    }


def _child(args: argparse.Namespace, *extra: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.cpu", "--workdir", str(args.workdir), "--size", str(args.size), *extra]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), TORCH_THREADS=str(args.threads), HF_HUB_OFFLINE="1")
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(f"{' '.join(extra)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _row(name: str, runs: list[dict[str, Any]]) -> str:
    def med(key: str) -> float:
        return statistics.median(run[key] for run in runs)

    per_step = [statistics.median(step) for step in zip(*(run["steps"] for run in runs))]
    steps = " ".join(f"{s:5.1f}" for s in per_step)
    return (
        f"{name:<6} {med('text'):5.1f} {steps:<24} {med('decode'):6.1f} {med('wall'):6.1f} {med('cpu'):6.1f} "
        f"{med('rss_gb'):6.2f} {med('first'):6.1f}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round (the same as --rounds 1)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="threads for torch and ONNX Runtime (default 2)")
    parser.add_argument("--size", type=int, default=512, help="picture side in pixels, a multiple of 64 (default 512)")
    parser.add_argument("--paths", nargs="+", choices=list(PATHS), default=list(PATHS))
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "voice2anime-bench-cpu")
    parser.add_argument("--child", choices=["build", "prepare", *PATHS], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        import torch

        torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "1")))
        if args.child == "build":
            build_model(args.workdir)
            print(json.dumps({}))
        elif args.child == "prepare":
            print(json.dumps(child_prepare(args.workdir, args.size)))
        else:
            print(json.dumps(child_draw(args.workdir, args.child, args.size)))
        return

    rounds = 1 if args.quick else args.rounds
    print(
        f"# {args.size}x{args.size}, {args.threads} threads, {rounds} round(s), model in {args.workdir}; "
        f"this CPU's default: {default_path()}",
        flush=True,
    )
    if not (args.workdir / "sd" / "model_index.json").is_file():
        started = time.perf_counter()
        _child(args, "--child", "build")
        print(f"# built the random SD 1.5-sized model in {time.perf_counter() - started:.0f} s", flush=True)
    default = default_path()
    if "onnx" in args.paths:
        prepared = _child(args, "--child", "prepare")
        print(f"# ONNX path load (export when not cached): {prepared['seconds']:.0f} s, peak RSS {prepared['rss_gb']:.2f} GB", flush=True)
    runs: dict[str, list[dict[str, Any]]] = {p: [] for p in args.paths}
    for _ in range(rounds):
        for path in args.paths:
            runs[path].append(_child(args, "--child", path))
            print(f"#   {path}: {runs[path][-1]['first']:.1f} s, then {runs[path][-1]['wall']:.1f} s", flush=True)

    print(f"{'path':<6} {'text':>5} {'UNet steps (s)':<24} {'decode':>6} {'wall':>6} {'cpu s':>6} {'RSS GB':>6} {'1st':>6}")
    for path in args.paths:
        print(_row(path, runs[path]))
    if {"eager", default, FAST_PATH} <= set(args.paths):
        eager, picture, fast = (statistics.median(r["wall"] for r in runs[p]) for p in ("eager", default, FAST_PATH))
        print(
            f"default CPU picture: {picture:.1f} s vs eager {eager:.1f} s (ratio {picture / eager:.2f}); "
            f"fast mode: {fast:.1f} s (ratio {fast / eager:.2f})"
        )


if __name__ == "__main__":
    main()
