"""``voice2anime generate --variations N``: N pictures of one description, consecutive seeds, drawn in one batch.

``-o out.png`` gets the grid of them; each picture goes beside it as
``out-v1.png`` .. ``out-vN.png``, its PNG carrying its own parameters (seed
included). It is the engine's variations job (:mod:`engine.jobs.variations`)
run in this process: the same batch, image check and PNG chunks as in a chat.
"""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.api import JobResult, JobSpec, ProgressCallback

if TYPE_CHECKING:
    from engine.jobs.runner import ImagePipeline
    from engine.policy.levels import Level

#: The most pictures one --variations run draws (one batch: memory grows with it).
MOST = 8


def outputs(output: Path, count: int) -> list[Path]:
    """Where the pictures of ``-o output`` go: ``<stem>-v1<suffix>`` .. ``<stem>-v<count><suffix>`` beside it."""
    return [output.with_name(f"{output.stem}-v{number}{output.suffix}") for number in range(1, count + 1)]


@dataclass(frozen=True)
class Asked:
    """What to draw: the prompt, its words and their language (for the PNG), the style, the first seed and the size."""

    positive: str
    negative: str
    style: str | None
    seed: int | None
    transcript: str | None
    language: str | None
    #: Each picture's size (``--aspect``); ``None``: the drawing settings'.
    width: int | None = None
    height: int | None = None


def draw(pipeline: ImagePipeline, asked: Asked, count: int, level: Level, progress: ProgressCallback) -> JobResult:
    """The variations job of ``asked`` with ``count`` consecutive seeds (from ``asked.seed``, random without one)."""
    from engine.jobs.variations import run_variations

    first = asked.seed if asked.seed is not None else secrets.randbelow(2**32)
    spec = JobSpec(
        "cli",
        "cli",
        "text",
        asked.style or "",
        positive=asked.positive,
        negative=asked.negative,
        seeds=tuple((first + offset) % 2**32 for offset in range(count)),
        policy=level.value,
        transcript=asked.transcript or "",
        language=asked.language or "",
        width=asked.width,
        height=asked.height,
    )
    return run_variations(pipeline, spec, lambda event: progress(event.stage, event.fraction), lambda: False)


def write(result: JobResult, output: Path) -> list[Path]:
    """The grid to ``output`` and each picture beside it (:func:`outputs`); the pictures' paths. Raises OSError."""
    paths = outputs(output, len(result.variations))
    for path, png in ((output, result.anime_png), *zip(paths, (v.anime_png for v in result.variations), strict=True)):
        _write(png, path)
    return paths


def _write(png: bytes, path: Path) -> None:
    """``png`` to ``path`` as it is, or converted when the name asks for another format (``.jpg``)."""
    if path.suffix.lower() == ".png":
        path.write_bytes(png)
        return
    from PIL import Image

    Image.open(io.BytesIO(png)).convert("RGB").save(path)


def summary(result: JobResult, output: Path, paths: list[Path]) -> dict[str, Any]:
    """The ``--json`` account of a variations run."""
    return {
        "output": str(output),
        "variations": [{"output": str(path), "seed": v.seed} for path, v in zip(paths, result.variations, strict=True)],
        "style": result.style,
        "model": result.model,
        "timings": dict(result.timings),
        "flagged": list(result.flagged),
    }
