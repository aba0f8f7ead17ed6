"""Wire format of jobs between the bot and the workers: msgpack maps, never pickle.

The format is generated from the declarations in :mod:`engine.api` by pydantic
``TypeAdapter``s: a :class:`~engine.api.JobSpec` is a map of its fields, an
event is a map of its fields tagged with its ``type`` (``queued``, ``started``,
``progress``, ``finished`` with the whole result, ``failed``, ``cancelled``).
Only plain values cross the wire (str, int, float, bool, nil, bytes, arrays,
maps), so a worker or bot of another version can read them and a compromised
Redis cannot make a process run code.

Reading validates against the same declarations: a message that is not
msgpack, not a map, lacks a field, holds a value of the wrong type or names an
unknown event type raises :class:`WireError` saying what is wrong. Fields the
declarations do not know are ignored (a newer peer may send more).
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import msgpack
from pydantic import Field, TypeAdapter, ValidationError

from engine.api import JobEvent, JobSpec

T = TypeVar("T")

_SPEC: TypeAdapter[JobSpec] = TypeAdapter(JobSpec)
_EVENT: TypeAdapter[JobEvent] = TypeAdapter(Annotated[JobEvent, Field(discriminator="type")])


class WireError(ValueError):
    """Bytes that are not a valid job spec or job event."""


def _pack(adapter: TypeAdapter[T], value: T) -> bytes:
    return msgpack.packb(adapter.dump_python(value, warnings="error"), use_bin_type=True)


def _unpack(adapter: TypeAdapter[T], data: bytes, what: str) -> T:
    try:
        value: Any = msgpack.unpackb(data, raw=False)
    except Exception as error:  # msgpack raises ExtraData, FormatError, StackError, ValueError, TypeError...
        raise WireError(f"not a msgpack {what}: {str(error) or type(error).__name__}") from error
    if not isinstance(value, dict):
        raise WireError(f"a {what} must be a msgpack map, not {type(value).__name__}")
    try:
        return adapter.validate_python(value)
    except ValidationError as error:
        raise WireError(f"malformed {what}: {error}") from error


def pack_spec(spec: JobSpec) -> bytes:
    """msgpack bytes of ``spec``."""
    return _pack(_SPEC, spec)


def unpack_spec(data: bytes) -> JobSpec:
    """Inverse of :func:`pack_spec`; raises :class:`WireError`."""
    return _unpack(_SPEC, data, "job spec")


def pack_event(event: JobEvent) -> bytes:
    """msgpack bytes of ``event`` (a finished event carries the whole result)."""
    return _pack(_EVENT, event)


def unpack_event(data: bytes) -> JobEvent:
    """Inverse of :func:`pack_event`; raises :class:`WireError`."""
    return _unpack(_EVENT, data, "job event")
