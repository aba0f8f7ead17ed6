"""A tiny ControlNet for the tiny Stable Diffusion of :mod:`tests.support.tiny_sd`, built offline from its UNet."""

from __future__ import annotations

from pathlib import Path

import pytest


def build_tiny_controlnet(sd_dir: Path, dest: Path) -> Path:
    """``ControlNetModel.from_unet`` on the tiny UNet, its zero convolutions given weights so the control image matters.

    A fresh ControlNet adds nothing (its output convolutions start at zero);
    these are filled with small random values (fixed seed) so that drawing
    with conditioning scale 1 differs from scale 0.
    """
    import torch
    from diffusers import ControlNetModel, UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(str(Path(sd_dir) / "unet"))
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16, 16, 32))
    torch.manual_seed(1)
    with torch.no_grad():
        for block in (*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block):
            block.weight.normal_(0, 0.5)
    controlnet.save_pretrained(str(dest))
    return Path(dest)


@pytest.fixture(scope="session")
def tiny_controlnet_dir(tiny_sd_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ControlNet directory matching ``tiny_sd_dir``, built once per test session."""
    return build_tiny_controlnet(tiny_sd_dir, tmp_path_factory.mktemp("tiny-controlnet") / "controlnet")
