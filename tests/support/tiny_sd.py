"""A tiny Stable Diffusion pipeline for tests and benchmarks (pytest plugin module).

Nothing is downloaded: the UNet, VAE, CLIP text encoder and a byte-level CLIP
BPE tokenizer are built from configs with fixed seeds and written with
``save_pretrained``, so the result is a real diffusers directory that the
project's own loader (``engine.image.diffusion.TextToImage``) reads like any model.

The VAE has four blocks (scale factor 8, like SD 1.5), so a 64x64 request is an
8x8 latent and the decoded image is 64x64. The weights are random: images are
noise, but deterministic noise, which is what the tests need.

Fixtures:

* ``tiny_sd_dir`` (session) — path of the saved pipeline directory.
* ``tiny_lora_dir`` (session) — a diffusers-format LoRA for that UNet
  (``pytorch_lora_weights.safetensors``) whose weights are non-zero, so loading
  it changes the output.
* ``tiny_taesd_dir`` (session) — a tiny ``AutoencoderTiny`` (the TAESD
  architecture, scale factor 8) that decodes the same latents.

Plain functions ``build_tiny_sd(dest)``, ``build_tiny_lora(dest)`` and
``build_tiny_taesd(dest)`` do the same for other tests and ``bench/``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

#: Image size the tiny pipeline is meant to run at (fast on one CPU thread).
TINY_SIZE = 64
#: CLIP context length (the SD pipeline pads every prompt to this).
MAX_LENGTH = 77


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte -> printable unicode mapping (same table CLIPTokenizer uses)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def _write_tokenizer(dest: Path) -> None:
    """Write a minimal but complete CLIP BPE vocabulary (every byte, plain and word-final)."""
    chars = list(_bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars]
    # A handful of merges so common words are not purely per-character.
    merges = [("a", "n"), ("i", "n"), ("t", "h"), ("e", "r"), ("o", "n</w>")]
    tokens += ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (dest / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")


def _tiny_unet():
    """The tiny UNet (fixed seed): two blocks, 32-dim cross-attention, 8x8 latents."""
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    return UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=TINY_SIZE // 8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=(2, 4),
        norm_num_groups=32,
    )


def build_tiny_sd(dest: Path) -> Path:
    """Build a tiny, deterministic StableDiffusionPipeline and save it to ``dest``; returns ``dest``.

    Same weights on every call (fixed seeds). Takes well under a second (after
    the imports) and about 4.5 MB on disk.
    """
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    dest = Path(dest)
    with tempfile.TemporaryDirectory() as tok_dir:
        _write_tokenizer(Path(tok_dir))
        # transformers 5 silently ignores vocab_file/merges_file arguments; from_pretrained(dir) reads them.
        tokenizer = CLIPTokenizer.from_pretrained(tok_dir, model_max_length=MAX_LENGTH)

    unet = _tiny_unet()
    torch.manual_seed(0)
    vae = AutoencoderKL(
        block_out_channels=(16, 16, 16, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=TINY_SIZE,
    )
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=MAX_LENGTH,
            projection_dim=32,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
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
    pipe.save_pretrained(str(dest))
    return dest


def build_tiny_lora(dest: Path, *, rank: int = 4) -> Path:
    """Save a random (non-zero) diffusers-format LoRA for the tiny UNet into ``dest``; returns ``dest``.

    The file is ``dest/pytorch_lora_weights.safetensors``, loadable with
    ``pipe.load_lora_weights(dest)``.
    """
    import torch
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    dest = Path(dest)
    unet = _tiny_unet()
    torch.manual_seed(1)
    # init_lora_weights=False: B is random too (default init makes B zero = a no-op LoRA).
    unet.add_adapter(
        LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False, target_modules=["to_q", "to_k", "to_v", "to_out.0"])
    )
    state = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    StableDiffusionPipeline.save_lora_weights(save_directory=str(dest), unet_lora_layers=state, safe_serialization=True)
    return dest


def build_tiny_taesd(dest: Path) -> Path:
    """Save a tiny, deterministic ``AutoencoderTiny`` (four blocks, 16 channels) to ``dest``; returns ``dest``."""
    import torch
    from diffusers import AutoencoderTiny

    dest = Path(dest)
    torch.manual_seed(0)
    AutoencoderTiny(
        encoder_block_out_channels=(16,) * 4,
        decoder_block_out_channels=(16,) * 4,
        num_encoder_blocks=(1,) * 4,
        num_decoder_blocks=(1,) * 4,
        latent_channels=4,
    ).save_pretrained(str(dest))
    return dest


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny diffusers Stable Diffusion directory, built once per test session."""
    return build_tiny_sd(tmp_path_factory.mktemp("tiny-sd") / "sd")


@pytest.fixture(scope="session")
def tiny_lora_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny LoRA (diffusers format) matching ``tiny_sd_dir``'s UNet."""
    return build_tiny_lora(tmp_path_factory.mktemp("tiny-lora") / "lora")


@pytest.fixture(scope="session")
def tiny_taesd_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny TAESD-architecture decoder (``AutoencoderTiny``) for ``tiny_sd_dir``'s latents."""
    return build_tiny_taesd(tmp_path_factory.mktemp("tiny-taesd") / "taesd")
