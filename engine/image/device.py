"""Choosing where torch work runs: CUDA when present, CPU otherwise; and whether a CPU computes bfloat16."""

from __future__ import annotations

from pathlib import Path

import torch

from engine.errors import DeviceUnavailableError


def resolve_device(setting: str = "auto") -> torch.device:
    """Map a device setting (``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``mps``) to a torch device.

    ``auto`` picks CUDA when a GPU is visible, else CPU. An explicit device
    that this machine does not have raises :class:`DeviceUnavailableError`
    (a one-line reason for the operator) instead of failing later, deep
    inside a model load; a malformed setting raises ``ValueError``.
    """
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(setting)
    except RuntimeError as exc:
        raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps, got {setting!r}") from exc
    if device.type == "cuda":
        if torch.version.cuda is None:
            raise DeviceUnavailableError(
                f"TORCH_DEVICE={setting}, but this torch build ({torch.__version__}) has no CUDA support; "
                "install a CUDA build of torch or set TORCH_DEVICE=cpu (or auto)"
            )
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise DeviceUnavailableError(
                f"TORCH_DEVICE={setting}, but torch sees no CUDA GPU (driver missing, or hidden by CUDA_VISIBLE_DEVICES); "
                "set TORCH_DEVICE=cpu (or auto)"
            )
        if device.index is not None and device.index >= count:
            raise DeviceUnavailableError(
                f"TORCH_DEVICE={setting}, but torch sees only {count} CUDA GPU(s) (cuda:0..cuda:{count - 1})"
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceUnavailableError(
            f"TORCH_DEVICE={setting}, but the Apple MPS backend is not available; set TORCH_DEVICE=cpu (or auto)"
        )
    return device


def dtype_for(device: torch.device) -> torch.dtype:
    """fp16 on CUDA; fp32 on CPU (half precision is ~190x slower on AVX2 CPUs; bfloat16: :func:`cpu_computes_bf16`)."""
    return torch.float16 if device.type == "cuda" else torch.float32


#: ``/proc/cpuinfo`` flags of CPUs with bfloat16 arithmetic in hardware: Intel AMX, AVX-512 BF16 (Intel, AMD Zen 4+).
BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


def cpu_computes_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU does bfloat16 arithmetic in hardware (read from ``cpuinfo``'s flags; False when unknown).

    Only then is bfloat16 faster than fp32 on a CPU; elsewhere it is emulated and slower.
    """
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return not BF16_CPU_FLAGS.isdisjoint(line.partition(":")[2].split())
    return False


#: ``BATCH_MAX`` when unset, on a CUDA GPU: four SD 1.5 512x512 pictures with guidance (a UNet batch of 8)
#: fit an 8 GB card in fp16 and use it far better than one; a batch that does not fit is drawn one by one.
GPU_BATCH_MAX = 4


def auto_batch_max(setting: str = "auto") -> int:
    """How many text jobs to draw in one diffusion call when ``BATCH_MAX`` is unset: :data:`GPU_BATCH_MAX` on CUDA, else 1.

    A CPU (or MPS) is busy with one picture already: a batch there only makes
    everyone in it wait for the slowest.
    """
    return GPU_BATCH_MAX if resolve_device(setting).type == "cuda" else 1
