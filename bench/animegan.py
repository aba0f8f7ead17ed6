"""AnimeGANv2 generator on CPU: eager vs channels_last vs ONNX Runtime, side by side.

Run by hand from the repository root::

    python -m bench.animegan                 # 256 and 512 px, 1 and 2 threads
    python -m bench.animegan --sizes 256 512 1024 --threads 1 2 4 --repeats 7
    python -m bench.animegan --backends eager onnx onnx-arena

Backends: ``eager`` (torch, NCHW: the reference), ``channels_last`` (what the
engine's torch backend runs), ``onnx`` (the engine's session options,
``engine.image.animegan.onnx_session_options``), ``onnx-spin`` (the same with pool
threads spinning: the engine's earlier options, i.e. the "before"
beside ``onnx``'s "after") and, only when asked for, ``onnx-arena`` (the
engine's options with the CPU memory arena on: faster, but see "kept RSS").

Timing: one subprocess per (size, threads) builds all backends and runs them
*interleaved* (eager, channels_last, onnx-spin, onnx, eager, ...), so load from
other processes on a shared machine hits every backend alike; the median of
``--repeats`` rounds after two warm-up rounds is reported, with the ratio to
eager at the same size and thread count and the 1-minute load average when the
rounds ended (on a busy machine compare ratios, not seconds).

Memory: one more subprocess per (backend, size, threads) loads only that
backend and runs it twice; "model RSS" is the resident size after loading
(for onnx: after the export and session creation, torch model freed), "peak
RSS" the process peak (``ru_maxrss``), so "peak - model" is roughly the
working memory of a forward pass, and "kept RSS" the resident size after the
passes (what the process holds on to between images). Weights are random
(timing does not depend on their values).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

#: Run by default, in this order (the timing rounds interleave them in this order too).
BACKENDS = ("eager", "channels_last", "onnx-spin", "onnx")
#: Run only when named with --backends.
EXTRA_BACKENDS = ("onnx-arena",)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _build(backend: str, size: int, threads: int):
    """A zero-argument callable running one forward pass of ``backend`` on a random size x size image."""
    import torch

    from engine.image.animegan_model import build_generator, export_onnx
    from tests.support.animegan_weights import random_state_dict

    model = build_generator(random_state_dict(0))
    x = torch.rand(1, 3, size, size) * 2 - 1
    if backend.startswith("onnx"):
        import onnxruntime as ort

        from engine.image.animegan import ORT_ALLOW_SPINNING, onnx_session_options

        options = onnx_session_options(threads)
        if backend == "onnx-spin":
            options.add_session_config_entry(ORT_ALLOW_SPINNING, "1")
        elif backend == "onnx-arena":
            options.enable_cpu_mem_arena = True
        session = ort.InferenceSession(export_onnx(model), options, providers=["CPUExecutionProvider"])
        del model
        gc.collect()
        feed = {session.get_inputs()[0].name: x.numpy()}
        return lambda: session.run(None, feed)
    if backend == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def step() -> None:
        with torch.inference_mode():
            model(x)

    return step


def time_backends(backends: list[str], size: int, threads: int, repeats: int) -> dict[str, float]:
    """Median seconds per forward pass for each backend, measured interleaved."""
    import torch

    torch.set_num_threads(threads)
    steps = {b: _build(b, size, threads) for b in backends}
    times: dict[str, list[float]] = {b: [] for b in backends}
    for round_ in range(2 + repeats):
        for backend, step in steps.items():
            started = time.perf_counter()
            step()
            if round_ >= 2:
                times[backend].append(time.perf_counter() - started)
    return {"load": os.getloadavg()[0], **{b: statistics.median(t) for b, t in times.items()}}


def memory_of(backend: str, size: int, threads: int) -> dict[str, float]:
    """Resident memory after loading ``backend``, the peak over two forward passes, and what is resident after them."""
    import torch

    torch.set_num_threads(threads)
    step = _build(backend, size, threads)
    model_rss = _rss_mb()
    step()
    step()
    gc.collect()
    return {
        "model_rss_mb": model_rss,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "kept_rss_mb": _rss_mb(),
    }


def _child(root: Path, threads: int, *args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.animegan", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": str(threads)},
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS + EXTRA_BACKENDS)
    parser.add_argument("--child-time", nargs=2, type=int, metavar=("SIZE", "THREADS"), help=argparse.SUPPRESS)
    parser.add_argument("--child-memory", nargs=3, metavar=("BACKEND", "SIZE", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child_time:
        size, threads = args.child_time
        print(json.dumps(time_backends(args.backends, size, threads, args.repeats)))
        return
    if args.child_memory:
        backend, size, threads = args.child_memory
        print(json.dumps(memory_of(backend, int(size), int(threads))))
        return

    root = Path(__file__).resolve().parent.parent
    load_before = os.getloadavg()[0]
    rows = []
    for threads in args.threads:
        for size in args.sizes:
            seconds = _child(
                root,
                threads,
                "--repeats",
                str(args.repeats),
                "--backends",
                *args.backends,
                "--child-time",
                str(size),
                str(threads),
            )
            for backend in args.backends:
                memory = _child(root, threads, "--child-memory", backend, str(size), str(threads))
                rows.append(
                    {
                        "backend": backend,
                        "size": size,
                        "threads": threads,
                        "seconds": seconds[backend],
                        "load": seconds["load"],
                        **memory,
                    }
                )
            print(".", end="", flush=True, file=sys.stderr)
    print(file=sys.stderr)

    import onnxruntime
    import torch

    print(
        f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, {os.cpu_count()} CPUs, "
        f"load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, "
        f"median of {args.repeats} interleaved rounds, random weights"
    )
    header = (
        f"{'size':>5} {'thr':>3} {'backend':<14} {'seconds':>8} {'vs eager':>9} {'load':>5} "
        f"{'model RSS':>10} {'peak RSS':>9} {'kept RSS':>9}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        base = next(
            (r for r in rows if r["backend"] == "eager" and r["size"] == row["size"] and r["threads"] == row["threads"]), row
        )
        print(
            f"{row['size']:>5} {row['threads']:>3} {row['backend']:<14} {row['seconds']:>8.3f} "
            f"{row['seconds'] / base['seconds']:>8.2f}x {row['load']:>5.1f} "
            f"{row['model_rss_mb']:>8.0f}MB {row['peak_rss_mb']:>7.0f}MB {row['kept_rss_mb']:>7.0f}MB"
        )


if __name__ == "__main__":
    main()
