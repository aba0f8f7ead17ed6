"""The tiny decoder: TAESD turns the finished latents into the picture in a fraction of the full VAE's time.

`TAESD <https://github.com/madebyollin/taesd>`_ (``madebyollin/taesd``, MIT,
about 10 MB) is a small distilled decoder for the latent space of Stable
Diffusion 1.x/2.x, loaded with diffusers' ``AutoencoderTiny``. It decodes the
same latents as the model's own VAE, a little less crisply, at a tenth of the
cost on a CPU; a GPU decodes with the full VAE in well under a second and keeps it.

Like the drawing model it is a Hugging Face id (downloaded on first use into
the models directory) or a local directory holding ``config.json`` and
``diffusion_pytorch_model.safetensors``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from diffusers import AutoencoderTiny

#: The tiny decoder for SD 1.x/2.x latents (MIT).
TINY_VAE = "madebyollin/taesd"
#: Which decoder to use: ``full`` (the model's VAE), ``tiny`` (:data:`TINY_VAE` or a copy), ``auto`` (tiny on a CPU).
VAE_CHOICES = ("auto", "full", "tiny")


def uses_tiny_vae(choice: str, device: torch.device) -> bool:
    """Whether ``choice`` (one of :data:`VAE_CHOICES`) decodes with the tiny decoder on ``device``."""
    if choice not in VAE_CHOICES:
        raise ValueError(f"vae must be one of {', '.join(VAE_CHOICES)}, got {choice!r}")
    return choice == "tiny" or (choice == "auto" and device.type == "cpu")


def load_tiny_vae(source: str, *, load_kwargs: dict[str, Any]) -> AutoencoderTiny:
    """The tiny decoder from ``source`` (a local directory, else a hub id) with diffusers' ``from_pretrained`` ``load_kwargs``.

    The libraries' errors (missing, offline, damaged) propagate; the caller turns them into an operator message.
    """
    from diffusers import AutoencoderTiny

    local = Path(source).expanduser()
    return AutoencoderTiny.from_pretrained(str(local) if local.is_dir() else source, **load_kwargs)
