"""The msgpack wire format of job specs and events: round trips, plain values only, garbage rejected."""

from __future__ import annotations

import pickle

import msgpack
import pytest

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
)
from engine.errors import UnknownStyleError
from engine.jobs.wire import WireError, pack_event, pack_spec, unpack_event, unpack_spec

PNG = b"\x89PNG\r\n\x1a\n\x00\xff"
TEXT = JobSpec("t1", "u1", "text", "paprika", positive="anime, a cat", negative="lowres", seed=7)
PHOTO = JobSpec("p1", "u1", "photo", "paprika", source_png=PNG)
RESTYLE = JobSpec("r1", "u2", "restyle", "hayao", source_png=PNG)
DRAWN = JobResult(
    "t1", b"\x89anime", "paprika", base_png=b"\x89base", seed=7, model="tiny-sd", timings=(("diffusion", 1.5), ("style", 0.25))
)
STYLED = JobResult("p1", b"\x89anime", "paprika", timings=(("style", 0.25),))
EVENTS: list[JobEvent] = [
    JobQueued(2),
    JobStarted(),
    JobProgress(0.5, "diffusion"),
    JobProgress(0.5, "diffusion", preview=b"\xff\xd8\xff\xe0jpeg"),
    JobFinished(DRAWN),
    JobFinished(STYLED),
    JobFailed("style.unknown", "x", {"style": "hayao", "styles": "paprika"}),
    JobCancelled(),
]


def plain(data: bytes) -> object:
    """What a peer of any language reads from ``data``."""
    return msgpack.unpackb(data, raw=False)


CONTROLLED = JobSpec("c1", "u1", "text", "paprika", positive="anime, a cat", control="lineart", control_png=PNG)


@pytest.mark.parametrize(
    "spec",
    [
        TEXT,
        PHOTO,
        RESTYLE,
        CONTROLLED,
        JobSpec("t2", "u1", "text", "paprika", positive="anime"),
        JobSpec("v1", "u1", "text", "paprika", positive="anime", seeds=(7, 8, 9, 10)),
        JobSpec("x1", "u1", "upscale", "paprika", source_png=PNG, scale=4),
    ],
)
def test_specs_round_trip(spec: JobSpec) -> None:
    assert unpack_spec(pack_spec(spec)) == spec


def test_events_round_trip() -> None:
    assert [unpack_event(pack_event(event)) for event in EVENTS] == EVENTS


def test_the_wire_holds_plain_maps_of_only_what_the_worker_needs() -> None:
    assert plain(pack_spec(TEXT)) == {
        "job_id": "t1", "user_key": "u1", "kind": "text", "style": "paprika",
        "positive": "anime, a cat", "negative": "lowres", "seed": 7, "source_png": None, "policy": "strict",
        "transcript": "", "language": "", "seeds": [], "scale": 0, "control": "", "control_png": None, "width": None,
        "height": None, "init_png": None, "strength": None, "steps": None, "guidance": None, "needs": [],
    }
    older = {k: v for k, v in plain(pack_spec(TEXT)).items() if k not in ("width", "height", "init_png", "strength", "steps", "guidance")}
    assert unpack_spec(msgpack.packb(older, use_bin_type=True)) == TEXT  # a bot from before sizes and remixes
    assert plain(pack_spec(PHOTO))["source_png"] == PNG
    assert plain(pack_event(JobFinished(STYLED))) == {
        "type": "finished",
        "result": {"job_id": "p1", "anime_png": b"\x89anime", "style": "paprika", "base_png": None, "seed": None,
                   "model": None, "timings": [["style", 0.25]], "flagged": [], "variations": []},
    }
    assert plain(pack_event(JobQueued(3))) == {"type": "queued", "position": 3}
    for event in EVENTS:
        assert b"\x80\x04" not in pack_event(event) and b"\x80\x05" not in pack_event(event)  # no pickle protocol header


def test_a_failure_crosses_the_wire_with_its_params() -> None:
    error = UnknownStyleError(style="hayao", styles="paprika, face_paint_512_v2")
    event = JobFailed(error.key, str(error), error.params)
    back = unpack_event(pack_event(event))
    assert back == event and back.params == {"style": "hayao", "styles": "paprika, face_paint_512_v2"}


def test_an_event_from_a_worker_without_params_still_reads() -> None:
    old = msgpack.packb({"type": "failed", "error_key": "image.unreadable", "detail": "x"}, use_bin_type=True)
    assert unpack_event(old) == JobFailed("image.unreadable", "x")


def test_fields_the_declarations_do_not_know_are_ignored() -> None:
    """E.g. a result stored by an older worker, which still sent the prompt back."""
    older = {"type": "finished", "result": {"job_id": "t1", "anime_png": b"a", "base_png": b"b", "style": "paprika",
                                            "seed": 7, "model": "m", "prompt": {"positive": "x"}, "timings": []}}
    assert unpack_event(msgpack.packb(older)) == JobFinished(JobResult("t1", b"a", "paprika", base_png=b"b", seed=7, model="m"))


def test_failure_params_are_frozen_plain_values() -> None:
    event = JobFailed("audio.too_long", params={"seconds": 75.0, "limit": 60, "where": object})
    assert event.params["where"] == str(object) and unpack_event(pack_event(event)) == event
    with pytest.raises(TypeError):
        event.params["limit"] = 1  # type: ignore[index]
    assert hash(event) == hash(JobFailed("audio.too_long", params={"seconds": 1.0}))  # params do not take part in hashing
    back = unpack_event(pack_event(JobFailed("k", params={"flag": True, "n": 1, "x": 0.5, "none": None})))
    assert isinstance(back, JobFailed) and [type(v) for v in back.params.values()] == [bool, int, float, type(None)]


def test_a_spec_states_what_its_kind_needs() -> None:
    with pytest.raises(ValueError, match="positive prompt"):
        JobSpec("t", "u", "text", "paprika")
    with pytest.raises(ValueError, match="no source_png"):
        JobSpec("t", "u", "text", "paprika", positive="anime", source_png=PNG)
    with pytest.raises(ValueError, match="a restyle job needs source_png"):
        JobSpec("r", "u", "restyle", "paprika")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xc1", "not a msgpack job event"),
        (msgpack.packb({"type": "queued", "position": 1}) + b"\x00", "not a msgpack job event"),
        (msgpack.packb([1, 2]), "must be a msgpack map, not list"),
        (pickle.dumps(JobQueued(1)), "not a msgpack job event"),
        (msgpack.packb({"position": 1}), "Unable to extract tag using discriminator 'type'"),
        (msgpack.packb({"type": "exploded"}), "does not match any of the expected tags"),
        (msgpack.packb({"type": "queued"}), "queued.position"),
        (msgpack.packb({"type": "queued", "position": "first"}), "valid integer"),
        (msgpack.packb({"type": "progress", "fraction": msgpack.ExtType(1, b"x"), "stage": "style"}), "valid number"),
        (msgpack.packb({"type": "finished", "result": {"job_id": "x"}}), "finished.result.anime_png"),
        (msgpack.packb({"type": "failed", "error_key": "k", "params": {"a": [1]}}), "failed.params.a"),
    ],
)
def test_a_malformed_event_raises_a_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(WireError, match=message):
        unpack_event(data)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"job_id": "x", "user_key": "u", "kind": "photo", "style": "s"}, "a photo job needs source_png"),
        ({"job_id": "x", "user_key": "u", "kind": "exec", "style": "s", "positive": "a"}, "'text', 'photo', 'restyle' or 'upscale'"),
        ({"job_id": "x", "user_key": "u", "kind": "text", "style": "s", "positive": "a", "seed": [1]}, "seed"),
        ({"job_id": "x", "kind": "text", "style": "s", "positive": "a"}, "user_key"),
    ],
)
def test_a_malformed_spec_raises_a_clear_error(value: dict[str, object], message: str) -> None:
    with pytest.raises(WireError, match=message):
        unpack_spec(msgpack.packb(value, use_bin_type=True))


def test_a_progress_preview_crosses_the_wire_as_bytes_and_older_peers_still_read() -> None:
    jpeg = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8
    event = JobProgress(0.45, "diffusion", preview=jpeg)
    data = pack_event(event)
    assert plain(data) == {"type": "progress", "fraction": 0.45, "stage": "diffusion", "preview": jpeg}
    assert len(data) < len(jpeg) + 64, "the preview is sent as msgpack bin, not as a list of numbers or base64"
    assert unpack_event(data) == event
    assert plain(pack_event(JobProgress(0.5, "style")))["preview"] is None
    # a worker from before previews sends no preview field; a bot from before them ignores it (unknown fields are)
    older = msgpack.packb({"type": "progress", "fraction": 0.5, "stage": "diffusion"}, use_bin_type=True)
    assert unpack_event(older) == JobProgress(0.5, "diffusion")
    with pytest.raises(WireError, match=r"progress\.preview"):
        unpack_event(msgpack.packb({"type": "progress", "fraction": 0.5, "stage": "x", "preview": [1, 2]}))


def test_a_worker_publishing_only_the_newest_progress_never_drops_a_preview() -> None:
    """Between two heartbeats the worker keeps one report: a preview rides along on a later report without one."""
    from engine.jobs.worker import _NewestProgress

    newest = _NewestProgress()
    assert newest.take() is None
    newest.put(JobProgress(0.3, "diffusion"))
    newest.put(JobProgress(0.45, "diffusion", preview=b"p1"))
    newest.put(JobProgress(0.6, "diffusion"))
    assert newest.take() == JobProgress(0.6, "diffusion", preview=b"p1") and newest.take() is None
    newest.put(JobProgress(0.9, "style", preview=b"sketch"))
    newest.put(JobProgress(0.95, "style"))
    taken = newest.take()
    assert taken == JobProgress(0.95, "style", preview=b"sketch")
    newest.put(JobProgress(0.97, "style"))
    newest.restore(taken)  # publishing it failed: its preview is not lost, the newer fraction stays
    assert newest.take() == JobProgress(0.97, "style", preview=b"sketch")


def test_a_spec_from_an_older_bot_draws_without_a_control_image() -> None:
    old = {k: v for k, v in plain(pack_spec(TEXT)).items() if k not in ("control", "control_png")}  # type: ignore[union-attr]
    assert unpack_spec(msgpack.packb(old)) == TEXT


def test_a_control_image_goes_with_what_it_keeps() -> None:
    with pytest.raises(ValueError):
        JobSpec("c2", "u1", "text", "paprika", positive="anime", control="canny")
    with pytest.raises(ValueError):
        JobSpec("c3", "u1", "photo", "paprika", source_png=PNG, control="canny", control_png=PNG)
