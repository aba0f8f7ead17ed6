"""The UNet on ONNX Runtime: exported once per model, LoRA and library versions, then loaded from the models directory.

Only the UNet moves: the diffusers pipeline keeps its own denoising loop
(schedulers, guidance, ``callback_on_step_end`` for progress, previews and
cancel) and calls an :class:`OnnxUNet`, a module with the UNet's call
signature that hands each call to an ONNX Runtime session.

* The export is ``torch.onnx.export`` (the TorchScript exporter) of the UNet
  after the LoRA is fused into it, with batch, latent height/width and
  prompt length dynamic; an SD 1.5 UNet takes a few minutes and is written as
  ``unet.onnx`` plus its weights as external data (over the 2 GB protobuf limit).
* The cache is a directory per :func:`export_key` (model, LoRA and scale,
  local weights' sizes and times, UNet config, torch/diffusers/onnx versions,
  the exported signature), made
  under a temporary name and renamed when complete, so a crash leaves no
  half-written cache. A second start loads it without exporting.
* After the switch the torch UNet is dropped: its weights live in the session.
* UNets with extra conditioning inputs (LCM-distilled ``timestep_cond``,
  class or added embeddings) are not exported: :func:`exportable` says so and
  they stay on torch. Latent sides must be multiples of 8 (pictures: of 64),
  the only shapes the traced up-sampling handles.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import onnxruntime as ort
    import torch

log = logging.getLogger(__name__)

#: Bump when the exported graph's inputs, outputs or dynamic axes change: old caches are then not used.
EXPORT_VERSION = 1
#: ONNX opset of the export (scaled-dot-product attention has a symbolic from 14).
ONNX_OPSET = 17
#: Pictures drawn with the ONNX UNet have sides that are multiples of this (latents: of 8).
SIDE_MULTIPLE = 64
_INPUTS = ("sample", "timestep", "encoder_hidden_states")
_OUTPUT = "noise"
_GRAPH = "unet.onnx"
_KEY_FILE = "key.json"


def exportable(unet_config: Mapping[str, Any]) -> bool:
    """Whether a UNet with this config takes only (sample, timestep, encoder_hidden_states): what the export covers."""
    return (
        unet_config.get("time_cond_proj_dim") is None
        and unet_config.get("class_embed_type") is None
        and unet_config.get("addition_embed_type") is None
        and unet_config.get("num_class_embeds") is None
    )


def export_key(model: str, lora: str | None, lora_scale: float | None, unet_config: Mapping[str, Any]) -> dict[str, Any]:
    """What an export depends on: the same key means the cached graph can be used as it is.

    Local weights count by their files' sizes and modification times, so a model
    or LoRA replaced at the same path is exported again.
    """
    import diffusers
    import onnx
    import torch

    return {
        "export": EXPORT_VERSION,
        "opset": ONNX_OPSET,
        "inputs": list(_INPUTS),
        "model": model,
        "model_files": _local_files(Path(model).expanduser() / "unet", Path(model).expanduser()),
        "lora": lora,
        "lora_files": _local_files(Path(lora).expanduser()) if lora else None,
        "lora_scale": lora_scale if lora else None,
        "unet": {k: v for k, v in unet_config.items() if not k.startswith("_")},
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "onnx": onnx.__version__,
    }


def _local_files(*candidates: Path) -> list[tuple[str, int, int]] | None:
    """(name, size, mtime_ns) of the weights at the first candidate that exists locally (a file or a directory's files)."""
    for candidate in candidates:
        if candidate.is_file():
            stat = candidate.stat()
            return [(candidate.name, stat.st_size, stat.st_mtime_ns)]
        if candidate.is_dir():
            files = sorted(f for f in candidate.iterdir() if f.is_file())
            return [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    return None


def cache_path(root: Path, key: Mapping[str, Any]) -> Path:
    """The directory of the export for ``key`` under ``root``."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return root / "onnx" / f"unet-{digest}"


def _session_options(threads: int) -> ort.SessionOptions:
    """The project's ONNX Runtime options (see :func:`engine.image.animegan.onnx_session_options`)."""
    from engine.image.animegan import onnx_session_options

    return onnx_session_options(threads)


class OnnxUNet:
    """Stands in for ``UNet2DConditionModel`` in a diffusers pipeline: same call, same ``config``, run by ONNX Runtime.

    A plain object, not a ``torch.nn.Module``: the pipeline then neither moves
    nor offloads it, and takes its device and dtype from the other modules.
    """

    def __init__(self, session: ort.InferenceSession, config: Any, path: Path) -> None:
        self.session = session
        self.config = config
        self.path = path

    @property
    def dtype(self) -> torch.dtype:
        """Always float32 (the CPU's dtype)."""
        import torch

        return torch.float32

    @property
    def device(self) -> torch.device:
        """Always the CPU."""
        import torch

        return torch.device("cpu")

    def __call__(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        timestep_cond: torch.Tensor | None = None,
        cross_attention_kwargs: dict[str, Any] | None = None,
        added_cond_kwargs: dict[str, Any] | None = None,
        return_dict: bool = True,
    ) -> Any:
        """The predicted noise for ``sample`` at ``timestep``: ``(noise,)``, or an output object with ``return_dict``."""
        import torch

        if timestep_cond is not None or cross_attention_kwargs or added_cond_kwargs:
            raise ValueError("the ONNX UNet takes only sample, timestep and encoder_hidden_states")
        batch = sample.shape[0]
        timesteps = torch.as_tensor(timestep, dtype=torch.float32).reshape(-1).expand(batch).contiguous()
        feeds = {
            "sample": sample.detach().to(torch.float32).contiguous().numpy(),
            "timestep": timesteps.numpy(),
            "encoder_hidden_states": encoder_hidden_states.detach().to(torch.float32).contiguous().numpy(),
        }
        noise = torch.from_numpy(self.session.run([_OUTPUT], feeds)[0])
        if not return_dict:
            return (noise,)
        from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

        return UNet2DConditionOutput(sample=noise)


def load_or_export(
    unet: torch.nn.Module,
    root: Path,
    key: Mapping[str, Any],
    *,
    threads: int,
    preparing: Callable[[], None] | None = None,
) -> OnnxUNet:
    """An :class:`OnnxUNet` for ``unet`` from the cache under ``root``, exporting it first when the cache has no ``key``.

    ``preparing()`` is called just before an export starts.
    """
    import onnxruntime as ort

    directory = cache_path(root, key)
    graph = directory / _GRAPH
    if not graph.is_file():
        if preparing is not None:
            preparing()
        _export(unet, directory, key)
    started = time.perf_counter()
    session = ort.InferenceSession(str(graph), _session_options(threads), providers=["CPUExecutionProvider"])
    log.info("ONNX Runtime UNet from %s ready in %.1f s", directory, time.perf_counter() - started)
    return OnnxUNet(session, unet.config, graph)


def _export(unet: torch.nn.Module, directory: Path, key: Mapping[str, Any]) -> None:
    """Export ``unet`` into ``directory`` (made whole under a temporary name, then renamed)."""
    import torch

    log.warning("preparing the drawing model for this CPU: exporting its UNet to ONNX at %s (once; minutes)", directory)
    started = time.perf_counter()
    temporary = directory.with_name(f"{directory.name}.tmp-{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)

    class Call(torch.nn.Module):
        """The UNet as a function of exactly the exported inputs (what the exporter traces)."""

        def __init__(self) -> None:
            super().__init__()
            self.unet = unet

        def forward(self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor) -> torch.Tensor:
            return self.unet(sample, timestep, encoder_hidden_states, return_dict=False)[0]

    config: Any = unet.config
    sample = torch.randn(2, int(config.in_channels), 64, 64)  # a 512x512 picture's latents; the sides stay dynamic
    timestep = torch.tensor([999.0, 999.0])
    context = torch.randn(2, 77, int(config.cross_attention_dim))
    spatial = {0: "batch", 2: "height", 3: "width"}
    try:
        with torch.no_grad():
            torch.onnx.export(
                Call(),
                (sample, timestep, context),
                str(temporary / _GRAPH),
                dynamo=False,  # the torch.export path needs onnxscript, which the project does not depend on
                input_names=list(_INPUTS),
                output_names=[_OUTPUT],
                dynamic_axes={
                    "sample": spatial,
                    "timestep": {0: "batch"},
                    "encoder_hidden_states": {0: "batch", 1: "tokens"},
                    _OUTPUT: spatial,
                },
                opset_version=ONNX_OPSET,
                do_constant_folding=True,
            )
        (temporary / _KEY_FILE).write_text(json.dumps(key, indent=1, sort_keys=True, default=str), encoding="utf-8")
        shutil.rmtree(directory, ignore_errors=True)
        temporary.rename(directory)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    log.info("exported the UNet to ONNX at %s in %.0f s", directory, time.perf_counter() - started)
