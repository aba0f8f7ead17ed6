"""The msgpack wire format of job events: failures keep their message parameters."""

from __future__ import annotations

import msgpack
import pytest

from engine.api import JobFailed
from engine.errors import UnknownStyleError
from engine.wire import pack_event, unpack_event


def test_a_failure_crosses_the_wire_with_its_params() -> None:
    error = UnknownStyleError(style="hayao", styles="paprika, face_paint_512_v2")
    event = JobFailed(error.key, str(error), error.params)
    back = unpack_event(pack_event(event))
    assert back == event and back.params == {"style": "hayao", "styles": "paprika, face_paint_512_v2"}


def test_an_event_from_a_worker_without_params_still_reads() -> None:
    old = msgpack.packb({"type": "failed", "error_key": "image.unreadable", "detail": "x"}, use_bin_type=True)
    assert unpack_event(old) == JobFailed("image.unreadable", "x")


def test_failure_params_are_frozen_plain_values() -> None:
    event = JobFailed("audio.too_long", params={"seconds": 75.0, "limit": 60, "where": object})
    assert event.params["where"] == str(object) and unpack_event(pack_event(event)) == event
    with pytest.raises(TypeError):
        event.params["limit"] = 1  # type: ignore[index]
    assert hash(event) == hash(JobFailed("audio.too_long", params={"seconds": 1.0}))  # params do not take part in hashing
