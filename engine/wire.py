"""Wire format of jobs between the bot and the workers: msgpack, never pickle.

Only plain values cross the wire (str, int, float, bytes, lists, maps), so a
worker or bot of another version can read them and a compromised Redis cannot
make a process run code. Each dataclass has a ``*_to_wire`` / ``*_from_wire``
pair; :func:`pack_spec`, :func:`pack_event` and friends wrap them in msgpack.
"""

from __future__ import annotations

from typing import Any

import msgpack

from engine.api import (
    JobCancelled,
    JobEvent,
    JobFailed,
    JobFinished,
    JobProgress,
    JobQueued,
    JobResult,
    JobSpec,
    JobStarted,
    ParsedDescription,
    Prompt,
)

Wire = dict[str, Any]


def _pack(value: Wire) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def _unpack(data: bytes) -> Wire:
    value = msgpack.unpackb(data, raw=False)
    if not isinstance(value, dict):
        raise TypeError("not a voice2anime wire message")
    return value


def prompt_to_wire(prompt: Prompt) -> Wire:
    """A :class:`Prompt` as plain values."""
    parsed = prompt.parsed
    return {
        "description": prompt.description,
        "language": prompt.language,
        "parsed": {
            "subject": parsed.subject,
            "attributes": list(parsed.attributes),
            "action": parsed.action,
            "scene": list(parsed.scene),
        },
        "positive": prompt.positive,
        "negative": prompt.negative,
    }


def prompt_from_wire(value: Wire) -> Prompt:
    """Inverse of :func:`prompt_to_wire`."""
    parsed = value["parsed"]
    return Prompt(
        description=value["description"],
        language=value["language"],
        parsed=ParsedDescription(
            subject=parsed["subject"],
            attributes=tuple(parsed["attributes"]),
            action=parsed["action"],
            scene=tuple(parsed["scene"]),
        ),
        positive=value["positive"],
        negative=value["negative"],
    )


def _optional_prompt(value: Wire | None) -> Prompt | None:
    return prompt_from_wire(value) if value is not None else None


def spec_to_wire(spec: JobSpec) -> Wire:
    """A :class:`JobSpec` as plain values."""
    return {
        "job_id": spec.job_id,
        "user_key": spec.user_key,
        "kind": spec.kind,
        "style": spec.style,
        "prompt": prompt_to_wire(spec.prompt) if spec.prompt else None,
        "seed": spec.seed,
        "source_png": spec.source_png,
    }


def spec_from_wire(value: Wire) -> JobSpec:
    """Inverse of :func:`spec_to_wire` (validated by ``JobSpec`` itself)."""
    return JobSpec(
        job_id=value["job_id"],
        user_key=value["user_key"],
        kind=value["kind"],
        style=value["style"],
        prompt=_optional_prompt(value["prompt"]),
        seed=value["seed"],
        source_png=value["source_png"],
    )


def result_to_wire(result: JobResult) -> Wire:
    """A :class:`JobResult` as plain values (the PNGs stay bytes)."""
    return {
        "job_id": result.job_id,
        "anime_png": result.anime_png,
        "base_png": result.base_png,
        "style": result.style,
        "seed": result.seed,
        "model": result.model,
        "prompt": prompt_to_wire(result.prompt) if result.prompt else None,
        "timings": [[stage, seconds] for stage, seconds in result.timings],
    }


def result_from_wire(value: Wire) -> JobResult:
    """Inverse of :func:`result_to_wire`."""
    return JobResult(
        job_id=value["job_id"],
        anime_png=value["anime_png"],
        base_png=value["base_png"],
        style=value["style"],
        seed=value["seed"],
        model=value["model"],
        prompt=_optional_prompt(value["prompt"]),
        timings=tuple((stage, float(seconds)) for stage, seconds in value["timings"]),
    )


def event_to_wire(event: JobEvent) -> Wire:
    """A job event as plain values, tagged with its ``type``."""
    match event:
        case JobQueued(position=position):
            return {"type": "queued", "position": position}
        case JobStarted():
            return {"type": "started"}
        case JobProgress(fraction=fraction, stage=stage):
            return {"type": "progress", "fraction": fraction, "stage": stage}
        case JobFinished(result=result):
            return {"type": "finished", "result": result_to_wire(result)}
        case JobFailed(error_key=error_key, detail=detail, params=params):
            return {"type": "failed", "error_key": error_key, "detail": detail, "params": dict(params)}
        case JobCancelled():
            return {"type": "cancelled"}
    raise TypeError(f"not a job event: {event!r}")


def event_from_wire(value: Wire) -> JobEvent:
    """Inverse of :func:`event_to_wire`."""
    match value["type"]:
        case "queued":
            return JobQueued(value["position"])
        case "started":
            return JobStarted()
        case "progress":
            return JobProgress(value["fraction"], value["stage"])
        case "finished":
            return JobFinished(result_from_wire(value["result"]))
        case "failed":
            # "params" is absent in events stored by workers older than the field
            return JobFailed(value["error_key"], value["detail"], value.get("params") or {})
        case "cancelled":
            return JobCancelled()
    raise ValueError(f"unknown job event type {value['type']!r}")


def pack_spec(spec: JobSpec) -> bytes:
    """msgpack bytes of ``spec``."""
    return _pack(spec_to_wire(spec))


def unpack_spec(data: bytes) -> JobSpec:
    """Inverse of :func:`pack_spec`."""
    return spec_from_wire(_unpack(data))


def pack_event(event: JobEvent) -> bytes:
    """msgpack bytes of ``event`` (a finished event carries the whole result)."""
    return _pack(event_to_wire(event))


def unpack_event(data: bytes) -> JobEvent:
    """Inverse of :func:`pack_event`."""
    return event_from_wire(_unpack(data))
