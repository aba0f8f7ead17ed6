"""Choosing where torch work runs: CUDA when present, CPU otherwise."""

from __future__ import annotations

import torch


def resolve_device(setting: str = "auto") -> torch.device:
    """Map a device setting (``auto``, ``cpu``, ``cuda``, ``cuda:1``) to a torch device.

    ``auto`` picks CUDA when a GPU is visible, else CPU.
    """
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


def dtype_for(device: torch.device) -> torch.dtype:
    """fp16 on CUDA; always fp32 on CPU (half precision is ~190x slower on AVX2 CPUs)."""
    return torch.float16 if device.type == "cuda" else torch.float32
