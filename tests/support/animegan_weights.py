"""AnimeGANv2 checkpoints for tests and benchmarks (pytest plugin module).

Nothing is downloaded. The parameter layout of the official animegan2-pytorch
``.pt`` files is spelled out here *independently* of ``engine.image.animegan_model``
(from the port's module nesting: ``ConvNormLReLU = [pad, conv, norm, lrelu]``,
``InvertedResBlock.layers = [expand, depthwise, project conv, norm]``), filled
with seeded random values and written with ``torch.save`` as a plain
``OrderedDict`` state_dict — the same format as the official files — so the
engine's strict loader is checked against a second source of truth.

Fixtures:

* ``animegan_checkpoints_dir`` (session) — a directory with ``styles.json`` and
  two styles whose registry sha256 is correct: ``face_paint_512_v2`` (alias
  ``face_paint``, seed 0) and ``paprika`` (seed 1). No URLs: nothing is fetched.
  Treat it as read-only (copy it to change files); ONNX caches may appear in it.
* ``animegan_onnx_checkpoints_dir`` (session) — the same two styles plus
  ``hayao``: an ``onnx-nhwc`` style whose file is the stand-in model of
  :mod:`tests.support.onnx_style` (the I/O signature of the AnimeGANv2
  authors' ONNX exports), sha256 pinned, no URL. Read-only too.

Plain functions: :func:`official_layout`, :func:`random_state_dict`,
:func:`write_checkpoint`, :func:`write_registry`, :func:`make_checkpoints_dir`.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from pathlib import Path

import pytest
import torch


def official_layout() -> OrderedDict[str, tuple[int, ...]]:
    """Every key of the official generator state_dict with its shape, in the official order."""
    keys: OrderedDict[str, tuple[int, ...]] = OrderedDict()

    def conv_norm(prefix: str, cin: int, cout: int, k: int = 3, groups: int = 1, bias: bool = False) -> None:
        keys[f"{prefix}.1.weight"] = (cout, cin // groups, k, k)
        if bias:
            keys[f"{prefix}.1.bias"] = (cout,)
        keys[f"{prefix}.2.weight"] = (cout,)
        keys[f"{prefix}.2.bias"] = (cout,)

    def inverted(prefix: str, cin: int, cout: int) -> None:
        hidden = cin * 2
        conv_norm(f"{prefix}.layers.0", cin, hidden, k=1)
        conv_norm(f"{prefix}.layers.1", hidden, hidden, groups=hidden, bias=True)
        keys[f"{prefix}.layers.2.weight"] = (cout, hidden, 1, 1)
        keys[f"{prefix}.layers.3.weight"] = (cout,)
        keys[f"{prefix}.layers.3.bias"] = (cout,)

    conv_norm("block_a.0", 3, 32, k=7)
    conv_norm("block_a.1", 32, 64)
    conv_norm("block_a.2", 64, 64)
    conv_norm("block_b.0", 64, 128)
    conv_norm("block_b.1", 128, 128)
    conv_norm("block_c.0", 128, 128)
    inverted("block_c.1", 128, 256)
    for i in (2, 3, 4):
        inverted(f"block_c.{i}", 256, 256)
    conv_norm("block_c.5", 256, 128)
    conv_norm("block_d.0", 128, 128)
    conv_norm("block_d.1", 128, 128)
    conv_norm("block_e.0", 128, 64)
    conv_norm("block_e.1", 64, 64)
    conv_norm("block_e.2", 64, 32, k=7)
    keys["out_layer.0.weight"] = (3, 32, 1, 1)
    return keys


def random_state_dict(seed: int = 0) -> OrderedDict[str, torch.Tensor]:
    """Seeded random weights in the official layout (He-scaled convs, norms near identity)."""
    g = torch.Generator().manual_seed(seed)
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, shape in official_layout().items():
        if len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            out[key] = torch.randn(shape, generator=g) * (2.0 / fan_in) ** 0.5
        elif key.endswith(".1.bias"):  # depthwise conv bias
            out[key] = torch.randn(shape, generator=g) * 0.05
        elif key.endswith("weight"):  # GroupNorm scale
            out[key] = 1.0 + torch.randn(shape, generator=g) * 0.1
        else:  # GroupNorm shift
            out[key] = torch.randn(shape, generator=g) * 0.1
    return out


def write_checkpoint(path: Path, state_dict: dict[str, torch.Tensor] | None = None, *, seed: int = 0) -> str:
    """``torch.save`` a state_dict (default: :func:`random_state_dict`) to ``path``; returns its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state_dict if state_dict is not None else random_state_dict(seed), path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_registry(directory: Path, styles: dict[str, dict]) -> Path:
    """Write ``styles.json`` in ``directory``; entries default to licence/description placeholders."""
    entries = {
        name: {"licence": "test weights", "description": f"random {name}", "aliases": [], "url": None, **entry}
        for name, entry in styles.items()
    }
    path = directory / "styles.json"
    path.write_text(json.dumps({"styles": entries}, indent=2), encoding="utf-8")
    return path


def make_checkpoints_dir(directory: Path) -> Path:
    """The contents of ``animegan_checkpoints_dir`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    v2 = write_checkpoint(directory / "face_paint_512_v2.pt", seed=0)
    paprika = write_checkpoint(directory / "paprika.pt", seed=1)
    write_registry(
        directory,
        {
            "face_paint_512_v2": {"file": "face_paint_512_v2.pt", "sha256": v2, "aliases": ["face_paint"]},
            "paprika": {"file": "paprika.pt", "sha256": paprika},
        },
    )
    return directory


@pytest.fixture(scope="session")
def animegan_checkpoints_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoints directory with two random-weight styles and a matching registry."""
    return make_checkpoints_dir(tmp_path_factory.mktemp("animegan_checkpoints"))


@pytest.fixture(scope="session")
def animegan_onnx_checkpoints_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`animegan_checkpoints_dir`'s styles plus ``hayao`` in the ``onnx-nhwc`` format (a stand-in model)."""
    from tests.support.onnx_style import add_nhwc_style

    directory = make_checkpoints_dir(tmp_path_factory.mktemp("animegan_onnx_checkpoints"))
    add_nhwc_style(directory, "hayao")
    return directory
