"""Real-ESRGAN upscaling: the network read from a checkpoint, tiles without seams, the CLI's --upscale and a missing model.

The checkpoint is a random-weight SRVGGNetCompact built here and saved the
way Real-ESRGAN saves its releases (``{"params": state_dict}``): nothing is
downloaded. Peak memory is measured by ``bench/upscale.py``, not asserted here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bot.cli import main
from engine.errors import UpscaleModelUnavailableError
from engine.image import upscale
from engine.image.png_info import read
from engine.image.upscale import KnownModel, UpscaleConfig, Upscaler, upscale_tiled
from engine.image.upscale_model import SRVGGNetCompact, from_state_dict
from tests.test_cli import engine_env  # noqa: F401  (a fixture)


def random_compact(path: Path, *, num_feat: int = 16, num_conv: int = 4) -> Path:
    """A random-weight ×4 SRVGGNetCompact saved as Real-ESRGAN does, at ``path``."""
    torch.manual_seed(0)
    network = SRVGGNetCompact(num_feat=num_feat, num_conv=num_conv, scale=4)
    with torch.no_grad():
        for layer in network.body:
            if isinstance(layer, torch.nn.Conv2d):
                layer.weight.mul_(0.5)  # keep the residual small: the output stays a picture, not saturated noise
    torch.save({"params": network.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def compact_pth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_compact(tmp_path_factory.mktemp("upscale") / "compact.pth")


def noise(width: int, height: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(1).integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def test_the_network_shape_is_read_from_the_checkpoint(compact_pth: Path) -> None:
    network = from_state_dict(torch.load(compact_pth, weights_only=True)["params"])
    assert (network.scale, network.num_conv, network.receptive_radius) == (4, 4, 6)
    with pytest.raises(ValueError, match="convolutions"):
        from_state_dict({"conv_first.weight": torch.zeros(64, 3, 3, 3)})


@pytest.mark.parametrize("scale", [2, 4])
def test_upscale_multiplies_the_size(compact_pth: Path, scale: int) -> None:
    upscaler = Upscaler(UpscaleConfig(model=str(compact_pth), device="cpu", tile=32))
    seen: list[float] = []
    result = upscaler.upscale(noise(50, 30), scale, progress=lambda _, done: seen.append(done))
    assert result.size == (50 * scale, 30 * scale) and result.mode == "RGB"
    assert seen[-1] == 1.0 and seen == sorted(seen)
    assert upscaler.name == "compact"


def test_tiles_give_the_untiled_picture(compact_pth: Path) -> None:
    network = from_state_dict(torch.load(compact_pth, weights_only=True)["params"])
    pixels = np.asarray(noise(70, 45))
    whole = upscale_tiled(network, pixels, tile=4096)
    tiled = upscale_tiled(network, pixels, tile=16)
    assert tiled.shape == whole.shape == (180, 280, 3)
    assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 1  # rounding at most: no seams


def test_a_file_that_is_not_a_checkpoint_says_so(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UpscaleModelUnavailableError, match="is not a Real-ESRGAN SRVGGNetCompact checkpoint"):
        Upscaler(UpscaleConfig(model=str(bad), device="cpu")).load()


def test_a_known_model_is_fetched_and_pinned(compact_pth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    data = compact_pth.read_bytes()
    served = KnownModel("tiny", "tiny.pth", compact_pth.as_uri(), hashlib.sha256(data).hexdigest())
    monkeypatch.setitem(upscale.KNOWN_MODELS, "tiny", served)
    Upscaler(UpscaleConfig(model="tiny", models_dir=tmp_path, device="cpu")).load()
    assert (tmp_path / "tiny.pth").read_bytes() == data

    monkeypatch.setitem(upscale.KNOWN_MODELS, "tiny", KnownModel("tiny", "other.pth", compact_pth.as_uri(), "0" * 64))
    with pytest.raises(UpscaleModelUnavailableError, match="expected 0{64}; it was not kept"):
        Upscaler(UpscaleConfig(model="tiny", models_dir=tmp_path, device="cpu")).load()
    assert not (tmp_path / "other.pth").exists()


def test_generate_upscales_and_notes_it_in_the_png(
    engine_env: None, compact_pth: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    monkeypatch.setenv("UPSCALE_MODEL", str(compact_pth))
    out = tmp_path / "big.png"
    assert main(["generate", "--text", "a cat", "--seed", "3", "--upscale", "2", "-o", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["size"] == [128, 128]
    parameters = read(Image.open(out))
    assert parameters is not None and (parameters.upscale, parameters.upscaler) == (2, "compact")
    assert (parameters.width, parameters.height, parameters.seed) == (64, 64, 3)  # the drawing's size, not the upscaled one


def test_generate_says_what_to_put_where_when_the_model_cannot_be_had(
    engine_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    unreachable = KnownModel("realesr-animevideov3", "realesr-animevideov3.pth", "http://127.0.0.1:9/x.pth", "a" * 64)
    monkeypatch.setitem(upscale.KNOWN_MODELS, "realesr-animevideov3", unreachable)  # nothing listens on port 9
    monkeypatch.setenv("MODELS_DIR", str(tmp_path))
    assert main(["generate", "--text", "a cat", "--upscale", "4", "-o", str(tmp_path / "x.png")]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: the upscaling model realesr-animevideov3 is missing")
    assert f"at {tmp_path / 'realesr-animevideov3.pth'}, or set UPSCALE_MODEL" in err and "a" * 64 in err
    assert not (tmp_path / "x.png").exists()

    monkeypatch.setenv("UPSCALE_MODEL", str(tmp_path / "mine.pth"))
    assert main(["generate", "--text", "a cat", "--upscale", "4", "-o", str(tmp_path / "x.png")]) == 3
    assert f"UPSCALE_MODEL={tmp_path / 'mine.pth'}: no such file" in capsys.readouterr().err
