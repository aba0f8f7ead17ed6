"""A bot and workers of different versions: a job a worker cannot read or cannot make as asked is refused, not guessed.

The wire (``needs``, what a newer or an older bot sends), the conversation
(what the user is told, and Try again) and, marked slow, a real redis-server
with real worker processes: a job queued by a "newer bot" is refused by the
worker with one log line for the operator, and Try again runs it.
"""

from __future__ import annotations

import logging

import msgpack
import pytest
import redis.asyncio

from db import RequestState
from engine.api import JobFailed, JobFinished, JobSpec, JobStarted
from engine.jobs.compat import LEGACY_UNREADABLE, WORKER_OUTDATED, is_outdated, refusal, unreadable, unsupported
from engine.jobs.distributed import Keys
from engine.jobs.wire import WireError, pack_spec, unpack_spec
from handlers.actions import Action
from handlers.i18n import t
from tests.support.conversation import Harness, button
from tests.support.scripted_engine import ScriptedEngine
from tests.test_distributed import PREFIX, drain, engine, fake_workers, runs, terminal, text_job  # noqa: F401  (fixtures)

PNG = b"\x89PNG\r\n\x1a\n\x00\xff"
TEXT = "a girl with blue hair under cherry blossoms"


# --- the wire --------------------------------------------------------------------------------


def test_a_spec_lists_the_features_it_uses() -> None:
    assert JobSpec("t", "u", "text", "paprika", positive="a cat").needs == ()
    assert JobSpec("x", "u", "upscale", "paprika", source_png=PNG, scale=2).needs == ("upscale",)
    assert JobSpec("v", "u", "text", "paprika", positive="a cat", seeds=(1, 2)).needs == ("variations",)
    assert JobSpec("c", "u", "text", "paprika", positive="a cat", control="canny", control_png=PNG).needs == ("control",)
    remix = JobSpec("r", "u", "text", "paprika", positive="a cat", init_png=PNG, strength=0.5, width=64, height=96, steps=9)
    assert remix.needs == ("remix", "size", "steps")
    assert unsupported(remix) == () and refusal(remix) is None, "this version knows all it sends"


def test_an_older_bots_spec_gets_its_needs_from_its_fields() -> None:
    older = {"job_id": "t", "user_key": "u", "kind": "text", "style": "paprika", "positive": "a cat", "width": 64, "height": 96}
    assert unpack_spec(msgpack.packb(older)).needs == ("size",)


def test_a_newer_bots_spec_is_read_but_refused_for_what_it_needs_that_this_worker_does_not_know() -> None:
    newer = {**msgpack.unpackb(pack_spec(JobSpec("t", "u", "text", "paprika", positive="a cat", seeds=(1, 2)))), "mirror": True}
    newer["needs"] = ["mirror", "variations"]
    spec = unpack_spec(msgpack.packb(newer))  # the unknown field is ignored: drawn as is, it would not be mirrored
    assert spec.needs == ("mirror", "variations") and unsupported(spec) == ("mirror",)
    assert refusal(spec) == JobFailed(WORKER_OUTDATED, "needs mirror", {"missing": "mirror"})


def test_an_unreadable_spec_fails_as_an_outdated_worker_with_its_reason_on_one_line() -> None:
    upscale = msgpack.unpackb(pack_spec(JobSpec("x", "u", "upscale", "paprika", source_png=PNG, scale=4)))
    with pytest.raises(WireError) as raised:  # what a worker from before upscaling makes of an upscale job
        unpack_spec(msgpack.packb({**upscale, "kind": "outpaint"}))
    event = unreadable(raised.value)
    assert event.error_key == WORKER_OUTDATED and event.detail.startswith("unreadable job spec: ")
    assert "\n" not in event.detail and "kind" in event.detail and len(event.detail) <= 300
    assert is_outdated(event) and is_outdated(JobFailed(*LEGACY_UNREADABLE)), "also what older workers send"
    assert not is_outdated(JobFailed("error.generic", "RuntimeError"))


# --- what the user sees ----------------------------------------------------------------------


async def confirmed(h: Harness, user: str) -> str:
    await h.command(user, "anime", TEXT)
    ref, card = h.messenger.last("card", user)
    await h.press(user, button(card, Action.CONFIRM), ref)
    return card.request_id


@pytest.mark.parametrize("failure", [JobFailed(*LEGACY_UNREADABLE), JobFailed(WORKER_OUTDATED, "needs mirror")], ids=["older", "this"])
async def test_a_worker_too_old_for_the_job_is_told_as_an_update_and_try_again_draws_it(
    sqlite_url, make_harness, caplog, failure: JobFailed
):
    scripted = ScriptedEngine()
    h = await make_harness(sqlite_url, scripted)
    request_id = await confirmed(h, "ann")
    handle = scripted.handles.pop(request_id)
    with caplog.at_level(logging.WARNING, logger="handlers.jobs"):
        handle.publish(JobStarted())
        handle.publish(failure)
        await h.settle()

    ref, told = h.messenger.last("error", "ann")
    assert told.text == t("worker.outdated", "en") and "being updated" in told.text
    assert [b.action for b in told.buttons[0]] == [Action.TRY_AGAIN, Action.CANCEL]
    assert (await h.request(request_id)).state is RequestState.QUEUED, "retryable"
    (line,) = [r.getMessage() for r in caplog.records if request_id in r.getMessage()]
    assert "update the workers" in line and failure.detail in line

    await h.press("ann", button(told, Action.TRY_AGAIN), ref)
    assert [spec.job_id for spec in scripted.specs] == [request_id, request_id]
    scripted.finish(request_id)
    await h.settle()
    assert h.messenger.images("ann") and (await h.request(request_id)).state is RequestState.DELIVERED


# --- across Redis, with real worker processes -------------------------------------------------


@pytest.mark.slow
async def test_a_worker_refuses_a_job_needing_what_it_does_not_know_and_a_retry_runs_it(engine, fake_workers, tmp_path):  # noqa: F811
    (worker,) = fake_workers(1, step_seconds=0.01)
    newer = JobSpec("from-newer-bot", "u1", "text", "paprika", positive="from-newer-bot", seed=7, needs=("mirror",))
    events = await drain(await engine.submit(newer), timeout=30)
    assert terminal(events) == events[-1:] and events[-1] == JobFailed(WORKER_OUTDATED, "needs mirror", {"missing": "mirror"})
    assert runs(tmp_path / "runs.log") == [], "nothing drawn that was not asked"
    (line,) = [line for line in worker.log().splitlines() if "from-newer-bot" in line and "update the workers" in line]
    assert "needs mirror" in line

    again = await drain(await engine.submit(text_job("from-newer-bot")), timeout=30)  # Try again, the workers updated
    assert isinstance(again[-1], JobFinished) and terminal(again) == again[-1:], "a failed job submitted again runs again"
    assert [label for what, label, _ in runs(tmp_path / "runs.log") if what == "done"] == ["from-newer-bot"]


@pytest.mark.slow
async def test_a_job_the_worker_cannot_read_reaches_the_user_as_an_update_and_try_again_delivers_it(
    sqlite_url, make_harness, engine, fake_workers, redis_server  # noqa: F811
):
    h = await make_harness(sqlite_url, engine)
    request_id = await confirmed(h, "bea")  # no workers yet: it waits
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        spec = msgpack.unpackb(await client.hget(Keys(PREFIX).job(request_id), "spec"))
        # As a worker from before some kind of job sees it: a kind it does not know.
        await client.hset(Keys(PREFIX).job(request_id), "spec", msgpack.packb({**spec, "kind": "outpaint"}))
    finally:
        await client.aclose()
    (worker,) = fake_workers(1, step_seconds=0.01)
    await h.settle()
    ref, told = h.messenger.last("error", "bea")
    assert told.text == t("worker.outdated", "en") and (await h.request(request_id)).state is RequestState.QUEUED
    assert any(request_id in line and "cannot be read" in line and "update the workers" in line for line in worker.log().splitlines())

    await h.press("bea", button(told, Action.TRY_AGAIN), ref)  # the bot sends the job again, as it reads today
    await h.settle()
    assert h.messenger.images("bea") and (await h.request(request_id)).state is RequestState.DELIVERED
