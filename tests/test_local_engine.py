"""LocalJobQueue scheduling with a model-free pipeline: fairness, positions, cancel, failures, the result cache."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from PIL import Image

from engine.api import (
    JobCancelled,
    JobEvent,
    JobFailed,
    JobFinished,
    JobHandle,
    JobQueued,
    JobSpec,
    JobStarted,
)
from engine.errors import Cancelled, ImageError, UnknownStyleError
from engine.image.pipeline import AnimeResult
from engine.jobs.local import FairQueue, LocalJobQueue, _Job

PNG_SOURCE = b"\x89PNG fake source"


class SlowPipeline:
    """Stands in for AnimePipeline: each photo job's ``style`` is its label; ``gate`` holds every run."""

    previews = False  # what engine.jobs.runner.ImagePipeline asks of a pipeline: no previews, no picture check, one job at a time
    image_check = None
    draws_batches = False

    def __init__(self) -> None:
        self.order: list[str] = []
        self.gate = threading.Event()
        self.started = threading.Event()

    def from_photo(self, photo: Any, *, style: str, progress: Any, cancelled: Any) -> AnimeResult:
        self.order.append(style)
        self.started.set()
        while not self.gate.wait(0.01):
            if cancelled():
                raise Cancelled
        if style == "bad-photo":
            raise ImageError()
        if style == "crash":
            raise RuntimeError("model exploded")
        if style == "no-such-style":
            raise UnknownStyleError(style=style, styles="paprika, hayao")
        progress("style", 1.0)
        image = Image.new("RGB", (4, 4))
        return AnimeResult(image, image, style, None, None, (("style", 0.0),))


def spec(user: str, label: str) -> JobSpec:
    return JobSpec(label, user, "photo", label, source_png=PNG_SOURCE)


async def drain(handle: JobHandle) -> list[JobEvent]:
    async with asyncio.timeout(30):
        return [event async for event in handle.events()]


@pytest.fixture
async def engine_and_pipeline() -> Any:
    pipeline = SlowPipeline()
    engine = LocalJobQueue(pipeline)
    await engine.start()
    yield engine, pipeline
    pipeline.gate.set()
    await engine.close()


async def hold_first(engine: LocalJobQueue, pipeline: SlowPipeline, job: JobSpec) -> JobHandle:
    """Submit ``job`` and wait until it runs (and blocks on the gate)."""
    handle = await engine.submit(job)
    assert await asyncio.to_thread(pipeline.started.wait, 10)
    return handle


async def test_round_robin_puts_a_new_user_before_the_busy_one(engine_and_pipeline):
    engine, pipeline = engine_and_pipeline
    handles = [await hold_first(engine, pipeline, spec("A", "a1"))]
    for user, label in [("A", "a2"), ("A", "a3"), ("B", "b1"), ("B", "b2"), ("C", "c1")]:
        handles.append(await engine.submit(spec(user, label)))
    pipeline.gate.set()
    streams = await asyncio.gather(*(drain(h) for h in handles))
    assert pipeline.order == ["a1", "b1", "c1", "a2", "b2", "a3"]
    assert all(isinstance(events[-1], JobFinished) for events in streams)
    positions = {h.job_id: [e.position for e in events if isinstance(e, JobQueued)] for h, events in zip(handles, streams)}
    assert set(positions["b1"]) == {1}, "a newcomer goes straight to the front"
    assert max(positions["a3"]) == 5 and positions["a3"][-1] == 1, "the busy user moves back when others arrive"


def test_fair_queue_order_matches_pops():
    queue = FairQueue()
    loop = asyncio.new_event_loop()
    try:
        for user, label in [("A", "a1"), ("A", "a2"), ("B", "b1"), ("A", "a3"), ("C", "c1"), ("B", "b2")]:
            queue.push(_Job(spec(user, label), JobHandle(label, loop)))
        assert queue.pop().spec.job_id == "a1"
        predicted = [job.spec.job_id for job in queue.in_order()]
        popped = []
        while (job := queue.pop()) is not None:
            popped.append(job.spec.job_id)
        assert predicted == popped == ["b1", "c1", "a2", "b2", "a3"]
    finally:
        loop.close()


async def test_cancel_waiting_and_running_jobs(engine_and_pipeline):
    engine, pipeline = engine_and_pipeline
    running = await hold_first(engine, pipeline, spec("A", "a1"))
    first, second = await engine.submit(spec("B", "b1")), await engine.submit(spec("C", "c1"))
    assert await engine.cancel("b1")
    assert await engine.cancel("a1")  # cooperative: the run notices and stops
    assert not await engine.cancel("nope")
    assert isinstance((await drain(first))[-1], JobCancelled)
    assert isinstance((await drain(running))[-1], JobCancelled)
    pipeline.gate.set()
    events = await drain(second)
    assert isinstance(events[-1], JobFinished) and JobQueued(1) in events and JobStarted() in events
    assert not await engine.cancel("c1"), "finished jobs cannot be cancelled"


async def test_failures_are_reported_and_the_worker_survives(engine_and_pipeline):
    engine, pipeline = engine_and_pipeline
    pipeline.gate.set()
    bad, crash, fine = [await engine.submit(spec(u, label)) for u, label in [("A", "bad-photo"), ("B", "crash"), ("C", "ok")]]
    assert (await drain(bad))[-1] == JobFailed("image.unreadable")
    assert (await drain(crash))[-1] == JobFailed("error.generic", "RuntimeError")
    assert isinstance((await drain(fine))[-1], JobFinished)


async def test_a_user_error_keeps_its_params(engine_and_pipeline):
    engine, pipeline = engine_and_pipeline
    pipeline.gate.set()
    failed = (await drain(await engine.submit(spec("A", "no-such-style"))))[-1]
    assert isinstance(failed, JobFailed) and failed.error_key == "style.unknown"
    assert failed.params == {"style": "no-such-style", "styles": "paprika, hayao"}


async def test_a_photo_job_does_not_send_its_source_back(engine_and_pipeline):
    engine, pipeline = engine_and_pipeline
    pipeline.gate.set()
    finished = (await drain(await engine.submit(spec("A", "ok"))))[-1]
    assert isinstance(finished, JobFinished) and finished.result.base_png is None and finished.result.anime_png


class CountingTextPipeline:
    """Draws a text job at once, counting runs; the picture's colour comes from the seed."""

    previews = False  # what engine.jobs.runner.ImagePipeline asks of a pipeline: no previews, no picture check, one job at a time
    image_check = None
    draws_batches = False

    def __init__(self) -> None:
        self.runs: list[tuple[str, int | None, str | None]] = []

    def from_prompt(
        self, positive: str, negative: str, *, style: str | None, seed: int | None, progress: Any, cancelled: Any
    ) -> AnimeResult:
        self.runs.append((positive, seed, style))
        image = Image.new("RGB", (4, 4), (seed or 0, 0, 0))
        return AnimeResult(image, image, style or "default", seed, "tiny-sd", (("diffusion", 0.1), ("style", 0.1)))

    def from_photo(self, photo: Any, *, style: str | None, progress: Any, cancelled: Any) -> AnimeResult:
        raise AssertionError("text jobs only")


def text_spec(job_id: str, *, seed: int | None = 7, style: str = "paprika", user: str = "A") -> JobSpec:
    return JobSpec(job_id, user, "text", style, positive="anime, a cat", negative="lowres", seed=seed)


async def test_identical_text_jobs_are_served_from_the_cache():
    pipeline = CountingTextPipeline()
    engine = LocalJobQueue(pipeline)
    await engine.start()
    try:
        first = await drain(await engine.submit(text_spec("j1")))
        assert isinstance(first[-1], JobFinished) and len(pipeline.runs) == 1

        again = await drain(await engine.submit(text_spec("j2", user="B")))  # same prompt, seed, style: no run
        assert len(pipeline.runs) == 1 and len(again) == 1 and isinstance(again[-1], JobFinished)
        cached, original = again[-1].result, first[-1].result
        assert cached.job_id == "j2" and cached.timings == ()
        assert cached.base_png is not None
        assert (cached.anime_png, cached.base_png, cached.seed, cached.style, cached.model) == (
            original.anime_png, original.base_png, 7, "paprika", "tiny-sd",
        )

        for job_id, other in [("j3", text_spec("j3", seed=8)), ("j4", text_spec("j4", style="hayao"))]:
            missed = await drain(await engine.submit(other))
            assert isinstance(missed[-1], JobFinished) and missed[-1].result.job_id == job_id
        assert pipeline.runs == [("anime, a cat", 7, "paprika"), ("anime, a cat", 8, "paprika"), ("anime, a cat", 7, "hayao")]

        await drain(await engine.submit(text_spec("j5", seed=None)))  # no seed: "surprise me", never cached
        await drain(await engine.submit(text_spec("j6", seed=None)))
        assert len(pipeline.runs) == 5
    finally:
        await engine.close()
