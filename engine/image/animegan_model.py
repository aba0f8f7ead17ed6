"""The AnimeGANv2 generator network and its checkpoint format.

Written for this project from the architecture of the AnimeGANv2 paper
(Chen et al.) as laid out by the widely used PyTorch port
(bryandlee/animegan2-pytorch). Only the *parameter layout* has to match that
port, so its published ``.pt`` files (plain ``state_dict`` pickles made with
``torch.save``) load with ``strict=True``. The key names come from the module
nesting:

* ``ConvNormLReLU`` = ``[pad, conv, groupnorm, leaky_relu]`` -> keys ``<i>.1.weight``
  (+ ``<i>.1.bias`` for the depthwise conv), ``<i>.2.weight``, ``<i>.2.bias``;
* ``InvertedResBlock.layers`` = ``[expand ConvNormLReLU, depthwise
  ConvNormLReLU, pointwise conv, groupnorm]``;
* ``block_a`` .. ``block_e`` and ``out_layer = [conv 1x1, tanh]``.

Shapes: input ``N x 3 x H x W`` in ``[-1, 1]``, output the same size in
``[-1, 1]`` (tanh). The two stride-2 convolutions pad right/bottom by one, so
any ``H, W >= 8`` runs; multiples of 4 keep every stage an exact half/quarter
of the input (see :data:`SIZE_MULTIPLE`). The decoder resizes back to the
encoder's recorded sizes with bilinear ``align_corners=True`` (the port's
default ``forward``), which also makes the graph size-agnostic for ONNX export
with dynamic height/width.
"""

from __future__ import annotations

import io
import pickle
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from engine.errors import StyleUnavailableError

#: Smallest input side: after two stride-2 convs the 1/4-scale feature map must
#: be >= 2 pixels for the reflection padding of ``block_c``.
MIN_SIDE = 8
#: Input sides that are multiples of this keep the 1/2 and 1/4 scale stages exact.
SIZE_MULTIPLE = 4
#: Bumped whenever the exported ONNX graph would change for the same weights.
GRAPH_VERSION = "1"
#: Opset used for the ONNX export (ONNX Runtime >= 1.14 runs it).
ONNX_OPSET = 17


class ConvNormLReLU(nn.Sequential):
    """Padding -> conv (no padding of its own) -> GroupNorm(1 group) -> LeakyReLU(0.2)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | tuple[int, int, int, int] = 1,
        groups: int = 1,
        bias: bool = False,
    ) -> None:
        super().__init__(
            nn.ReflectionPad2d(padding),
            nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=0, groups=groups, bias=bias),
            nn.GroupNorm(1, out_ch, affine=True),
            nn.LeakyReLU(0.2, inplace=True),
        )


class InvertedResBlock(nn.Module):
    """MobileNetV2-style block: 1x1 expand, 3x3 depthwise, 1x1 project (+ residual when shapes match)."""

    def __init__(self, in_ch: int, out_ch: int, expansion_ratio: float = 2) -> None:
        super().__init__()
        self.use_res_connect = in_ch == out_ch
        hidden = round(in_ch * expansion_ratio)
        layers: list[nn.Module] = []
        if expansion_ratio != 1:
            layers.append(ConvNormLReLU(in_ch, hidden, kernel_size=1, padding=0))
        layers.append(ConvNormLReLU(hidden, hidden, groups=hidden, bias=True))
        layers.append(nn.Conv2d(hidden, out_ch, kernel_size=1, bias=False))
        layers.append(nn.GroupNorm(1, out_ch, affine=True))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(x)
        return x + out if self.use_res_connect else out


class Generator(nn.Module):
    """The AnimeGANv2 generator (about 2.2 M parameters, fully convolutional)."""

    def __init__(self) -> None:
        super().__init__()
        down = (0, 1, 0, 1)  # pad right/bottom only before each stride-2 conv
        self.block_a = nn.Sequential(
            ConvNormLReLU(3, 32, kernel_size=7, padding=3),
            ConvNormLReLU(32, 64, stride=2, padding=down),
            ConvNormLReLU(64, 64),
        )
        self.block_b = nn.Sequential(
            ConvNormLReLU(64, 128, stride=2, padding=down),
            ConvNormLReLU(128, 128),
        )
        self.block_c = nn.Sequential(
            ConvNormLReLU(128, 128),
            InvertedResBlock(128, 256, 2),
            InvertedResBlock(256, 256, 2),
            InvertedResBlock(256, 256, 2),
            InvertedResBlock(256, 256, 2),
            ConvNormLReLU(256, 128),
        )
        self.block_d = nn.Sequential(ConvNormLReLU(128, 128), ConvNormLReLU(128, 128))
        self.block_e = nn.Sequential(
            ConvNormLReLU(128, 64),
            ConvNormLReLU(64, 64),
            ConvNormLReLU(64, 32, kernel_size=7, padding=3),
        )
        self.out_layer = nn.Sequential(nn.Conv2d(32, 3, kernel_size=1, bias=False), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = self.block_a(x)
        out = self.block_c(self.block_b(half))
        out = F.interpolate(out, size=half.shape[-2:], mode="bilinear", align_corners=True)
        out = self.block_d(out)
        out = F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=True)
        return self.out_layer(self.block_e(out))


def expected_keys() -> dict[str, tuple[int, ...]]:
    """Every ``state_dict`` key of :class:`Generator` with its tensor shape."""
    return {k: tuple(v.shape) for k, v in Generator().state_dict().items()}


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file as a plain ``state_dict`` without running pickled code.

    ``torch.load(weights_only=True)`` only rebuilds tensors and containers, so a
    hostile or corrupt file fails here instead of executing anything.
    Raises :class:`ModelUnavailableError` when the file is not a tensor mapping.
    """
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError, ValueError, OSError) as exc:
        raise StyleUnavailableError(
            f"{path} is not a readable PyTorch state_dict ({type(exc).__name__}: {_first_line(exc)})"
        ) from exc
    if not isinstance(obj, Mapping) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise StyleUnavailableError(
            f"{path} does not hold a plain state_dict (a mapping of parameter names to tensors); got {type(obj).__name__}"
        )
    return dict(obj)


def build_generator(state_dict: Mapping[str, torch.Tensor], *, source: str = "checkpoint") -> Generator:
    """A :class:`Generator` in eval mode with ``state_dict`` loaded strictly.

    Missing or unexpected keys and shape mismatches raise
    :class:`ModelUnavailableError` naming the offending keys.
    """
    model = Generator()
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        missing = sorted(set(want) - set(state_dict))
        extra = sorted(set(state_dict) - set(want))
        wrong = sorted(
            f"{k} {tuple(state_dict[k].shape)} != {want[k]}"
            for k in set(want) & set(state_dict)
            if tuple(state_dict[k].shape) != want[k]
        )
        parts = []
        if missing:
            parts.append(f"missing keys {_abbrev(missing)}")
        if extra:
            parts.append(f"unexpected keys {_abbrev(extra)}")
        if wrong:
            parts.append(f"size mismatch {_abbrev(wrong)}")
        if not parts:
            parts.append(_first_line(exc))
        raise StyleUnavailableError(
            f"{source} is not an AnimeGANv2 generator in the animegan2-pytorch layout: {'; '.join(parts)}"
        ) from exc
    return model.eval().requires_grad_(False)


def export_onnx(model: Generator, metadata: Mapping[str, str] | None = None) -> bytes:
    """Serialize ``model`` as ONNX bytes with dynamic batch/height/width axes.

    ``model`` is exported as given (traced in eval mode) when it is on the CPU
    in fp32, as :func:`build_generator` returns it; otherwise a CPU fp32 copy
    is exported and ``model`` is left alone. ``metadata`` is stored in the model's
    ``metadata_props`` so a cached file can be matched to the checkpoint it
    came from.
    """
    import onnx  # local: only the ONNX backend needs it

    cpu = model
    if any(t.device.type != "cpu" or t.dtype != torch.float32 for t in (*model.parameters(), *model.buffers())):
        cpu = Generator()
        cpu.load_state_dict({k: v.detach().to("cpu", torch.float32) for k, v in model.state_dict().items()})
        cpu.eval()
    buffer = io.BytesIO()
    example = torch.zeros(1, 3, 64, 64)
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # legacy-exporter deprecation and tracer notes
        torch.onnx.export(
            cpu,
            (example,),
            buffer,  # type: ignore[arg-type]  # annotated as a path; the TorchScript exporter (dynamo=False) writes a BytesIO
            dynamo=False,  # the torch.export path needs onnxscript, which the project does not depend on
            input_names=["image"],
            output_names=["anime"],
            dynamic_axes={"image": axes, "anime": axes},
            opset_version=ONNX_OPSET,
            do_constant_folding=True,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()


def _abbrev(keys: list[str], limit: int = 6) -> str:
    shown = ", ".join(keys[:limit])
    return f"[{shown}{', ...' if len(keys) > limit else ''}] ({len(keys)})"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
