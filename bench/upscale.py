"""Real-ESRGAN upscaling on CPU: time and peak memory of a picture upscaled in tiles, side by side per tile size.

Run by hand from the repository root::

    python -m bench.upscale                            # 512 px -> 2048 px (×4), tiles 128 / 256 / 512 / untiled
    python -m bench.upscale --size 1024 --scale 2 --tiles 256 --threads 2

Each (tile size) runs in its own subprocess: it builds a random-weight
SRVGGNetCompact of ``realesr-animevideov3``'s shape (64 features, 16
convolutions, ×4; timing and memory do not depend on the weights), saves it
as a checkpoint and upscales through :class:`engine.image.upscale.Upscaler`,
as ``voice2anime generate --upscale`` does. "base RSS" is the resident size
after torch and the model are loaded, "peak RSS" the process peak
(``ru_maxrss``), so "peak - base" is what upscaling one picture costs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

#: Stands for "no tiles": one tile as large as the picture.
UNTILED = 4096


def _measure(size: int, scale: int, tile: int, threads: int) -> dict[str, float]:
    """In this process: load, upscale once, report seconds and memory (MB)."""
    import resource
    import time

    import numpy as np
    import torch
    from PIL import Image

    from engine.image.upscale import UpscaleConfig, Upscaler
    from engine.image.upscale_model import SRVGGNetCompact

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "compact.pth"
        torch.save({"params": SRVGGNetCompact().state_dict()}, path)
        upscaler = Upscaler(UpscaleConfig(model=str(path), device="cpu", tile=tile))
        upscaler.load()
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8), "RGB")
    base = _rss_mb()
    started = time.perf_counter()
    result = upscaler.upscale(picture, scale)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux
    assert result.size == (size * scale, size * scale)
    return {"seconds": seconds, "base": base, "peak": peak}


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    """Run every tile size in its own process and print one table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512, help="side of the square input picture")
    parser.add_argument("--scale", type=int, choices=(2, 4), default=4)
    parser.add_argument("--tiles", type=int, nargs="+", default=[128, 256, 512, UNTILED])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the subprocess: measure this tile size
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(_measure(args.size, args.scale, args.one, args.threads)))
        return
    out = args.size * args.scale
    print(f"{args.size}² -> {out}² (×{args.scale}), {args.threads} thread(s)")
    print(f"{'tile':>8} {'seconds':>8} {'base RSS':>9} {'peak RSS':>9} {'peak-base':>10}")
    for tile in args.tiles:
        command = [sys.executable, "-m", "bench.upscale", "--size", str(args.size), "--scale", str(args.scale),
                   "--threads", str(args.threads), "--one", str(tile)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        row = json.loads(done.stdout.splitlines()[-1])
        name = "untiled" if tile >= UNTILED else str(tile)
        print(f"{name:>8} {row['seconds']:>8.1f} {row['base']:>8.0f}M {row['peak']:>8.0f}M {row['peak'] - row['base']:>9.0f}M")


if __name__ == "__main__":
    main()
