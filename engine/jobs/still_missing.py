"""The rest of what pictures need that is not on this machine yet, told with the first missing model's fix.

Without its models, an engine meets them one at a time: the picture check,
then the drawing model, then the styles, each after a request failed for it.
When one is missing, the operator's fix (the studio shows it; the log has it)
also names the engine's other models that are not here yet, so that they can
all be fetched at once. Nothing here touches the network (see
:mod:`engine.jobs.models_report`).
"""

from __future__ import annotations

import logging
from typing import Any

from engine.api import JobSpec
from engine.errors import ModelUnavailableError
from engine.jobs.models_report import Model, pipeline_models, size_text

log = logging.getLogger(__name__)


def fix_with_the_rest(pipeline: Any, error: ModelUnavailableError, spec: JobSpec) -> str:
    """``error``'s fix, followed by the pipeline's other models that are not here yet (when it is the image engine's).

    Models fetched only when asked for are named when ``spec`` needs them (its ControlNet and detector, the upscaler).
    """
    try:
        rest = [model for model in _models(pipeline, spec) if model.state != "here" and model.name not in error.fix]
    except Exception:  # a report that cannot be made must not hide the fix itself
        log.debug("could not list the other models", exc_info=True)
        return error.fix
    if not rest:
        return error.fix
    return "\n".join([error.fix, "", "Also not on this machine yet (each is fetched on first use when it can be):", *map(_line, rest)])


def _models(pipeline: Any, spec: JobSpec) -> list[Model]:
    from engine.image.pipeline import AnimePipeline

    if not isinstance(pipeline, AnimePipeline):
        return []
    wanted = {"upscale"} if spec.kind == "upscale" else set()
    if spec.control:
        wanted |= {f"composition ({spec.control})", f"composition ({spec.control} from a photo)"}
    return [model for model in pipeline_models(pipeline) if not model.on_demand or model.part in wanted]


def _line(model: Model) -> str:
    """``• drawing: stablediffusionapi/anything-v5 (about 4.3 GB) → /models``."""
    what = f"{model.count} AnimeGANv2 styles ({model.name})" if model.count > 1 else model.name
    size = f" (about {size_text(model.megabytes)}{' each' if model.count > 1 else ''})" if model.megabytes else ""
    where = f" → {model.where}" if model.state == "download" else f": {model.where}"
    return f"• {model.part}: {what}{size}{where}"
