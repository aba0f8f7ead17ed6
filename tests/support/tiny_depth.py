"""A tiny random-weight Depth Anything (a Dinov2 backbone of a few layers), built offline from its config."""

from __future__ import annotations

from pathlib import Path

import pytest


def build_tiny_depth_anything(dest: Path) -> Path:
    """A Depth Anything directory like ``depth-anything/Depth-Anything-V2-Small-hf``'s, a few hundred kB: config, weights, processor."""
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    backbone = Dinov2Config(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        patch_size=14,
        image_size=56,
        out_indices=[1, 2, 3, 4],
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=32,
        patch_size=14,
        neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16,
        head_hidden_size=8,
        depth_estimation_type="relative",
    )
    torch.manual_seed(0)
    DepthAnythingForDepthEstimation(config).save_pretrained(str(dest))
    processor = DPTImageProcessor(
        size={"height": 56, "width": 56},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    )
    processor.save_pretrained(str(dest))
    return Path(dest)


@pytest.fixture(scope="session")
def tiny_depth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Depth Anything directory, built once per test session."""
    return build_tiny_depth_anything(tmp_path_factory.mktemp("tiny-depth") / "depth-anything")
