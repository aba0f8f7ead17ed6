"""Dynamic batching: several text jobs drawn in one diffusion call, each as it would be alone.

On the tiny test models (64x64, CPU): the diffusion engine's batches
(:meth:`engine.image.diffusion.TextToImage.generate_each`), the fair queue's batch
pick, the local engine, and a ``voice2anime worker`` process over a real
redis-server (marked slow). Pictures are compared with
:func:`tests.support.images.assert_images_close`: a batch of 4 and a batch of 1
may round a few values the other way. No assertion is about time.
"""

from __future__ import annotations

import asyncio
import io
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from engine.api import (
    TERMINAL_EVENTS,
    JobCancelled,
    JobEvent,
    JobFailed,
    JobFinished,
    JobHandle,
    JobProgress,
    JobSpec,
    JobStarted,
)
from engine.errors import Cancelled
from engine.image.diffusion import DiffusionConfig, DrawRequest, GeneratedImage, TextToImage
from engine.image.pipeline import AnimePipeline, PromptJob
from engine.jobs.local import FairQueue, LocalJobQueue, _Job
from tests.support.images import assert_images_close, assert_images_differ

SIZE = 64
STEPS = 4


def make(model: Path, **kw: Any) -> TextToImage:
    kw.setdefault("width", SIZE)
    kw.setdefault("height", SIZE)
    kw.setdefault("steps", STEPS)
    return TextToImage(DiffusionConfig(model=str(model), device="cpu", **kw))


def alone(t2i: TextToImage, request: DrawRequest) -> GeneratedImage:
    (image,) = t2i.generate(request.prompt, negative=request.negative, seed=request.seed)
    return image


def png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# --- the diffusion engine ----------------------------------------------------------------------


def test_a_batch_draws_each_request_as_it_would_alone(tiny_sd_dir):
    t2i = make(tiny_sd_dir)  # DPM-Solver++, guidance 7: the negative prompt counts
    progress: dict[int, list[float]] = {0: [], 1: [], 2: []}
    previews: dict[int, list[bytes]] = {0: [], 1: [], 2: []}
    requests = [
        DrawRequest(
            prompt,
            negative,
            seed,
            progress=lambda s, f, i=i: s != "loading" and progress[i].append(f),  # a first picture's "loading" aside
            preview=lambda _s, jpeg, i=i: previews[i].append(jpeg),
        )
        for i, (prompt, negative, seed) in enumerate(
            [("a girl with blue hair", "blurry", 11), ("a castle at night", "", 12), ("a girl with blue hair", "lowres", 13)]
        )
    ]
    batch = t2i.generate_each(requests)

    assert [(r.prompt, r.negative, r.seed) for r in batch] == [(q.prompt, q.negative, q.seed) for q in requests]
    for result, request in zip(batch, requests, strict=True):
        assert isinstance(result, GeneratedImage) and result.image.size == (SIZE, SIZE) and result.steps == STEPS
        assert_images_close(result, alone(t2i, request))  # reproducible from its own seed
    assert_images_differ(batch[0], batch[2])  # same prompt, another negative prompt and seed: another picture
    assert all(fractions == [0.25, 0.5, 0.75, 1.0] for fractions in progress.values()), progress
    # every request sees its own picture forming
    alone_previews: list[bytes] = []
    t2i.generate(requests[1].prompt, seed=requests[1].seed, preview=lambda _s, jpeg: alone_previews.append(jpeg))
    assert [len(p) for p in previews.values()] == [3, 3, 3]
    for mine, reference in zip(previews[1], alone_previews, strict=True):
        assert_images_close(png(mine), png(reference), max_abs=8, mean_abs=0.5)
    assert_images_differ(png(previews[0][-1]), png(previews[1][-1]))


def test_cancelling_one_request_mid_batch_drops_it_and_the_others_go_on(tiny_sd_dir, monkeypatch):
    t2i = make(tiny_sd_dir, steps=8)
    steps: dict[int, int] = {0: 0, 1: 0, 2: 0}
    requests = [
        DrawRequest(
            f"picture {i}",
            seed=20 + i,
            progress=lambda _s, _f, i=i: steps.__setitem__(i, steps[i] + 1),
            cancelled=lambda i=i: i == 1 and steps[1] >= 2,
        )
        for i in range(3)
    ]
    vae = t2i.pipeline.vae
    decoded: list[tuple[int, ...]] = []
    real_decode = vae.decode
    monkeypatch.setattr(vae, "decode", lambda z, *a, **kw: decoded.append(tuple(z.shape)) or real_decode(z, *a, **kw))
    first, cancelled, third = t2i.generate_each(requests)

    assert isinstance(cancelled, Cancelled)
    assert steps == {0: 8, 1: 2, 2: 8}, "no progress for the cancelled request after its cancel; the others run to the end"
    assert len(decoded) == 2, "the cancelled picture is not decoded"
    monkeypatch.setattr(vae, "decode", real_decode)
    for result, request in [(first, requests[0]), (third, requests[2])]:
        assert_images_close(result, alone(t2i, replace(request, progress=None, cancelled=None)))


def test_cancelling_every_request_stops_the_run(tiny_sd_dir):
    t2i = make(tiny_sd_dir, steps=8)
    steps = [0, 0]
    requests = [
        DrawRequest(
            f"p{i}", seed=i, progress=lambda _s, _f, i=i: steps.__setitem__(i, steps[i] + 1), cancelled=lambda: steps[0] >= 3
        )
        for i in range(2)
    ]
    assert [type(r) for r in t2i.generate_each(requests)] == [Cancelled, Cancelled]
    assert steps == [3, 3], "the run stopped at the step where the last request was cancelled"
    assert [type(r) for r in t2i.generate_each([DrawRequest("x", cancelled=lambda: True)])] == [Cancelled]


def test_a_request_whose_callback_fails_fails_alone(tiny_sd_dir, caplog):
    t2i = make(tiny_sd_dir)

    def broken(_stage: str, fraction: float) -> None:
        if fraction > 0.5:
            raise ConnectionError("the user's chat is gone")

    requests = [DrawRequest("a broken one", seed=1, progress=broken), DrawRequest("a fine one", "dark", seed=2)]
    failed, fine = t2i.generate_each(requests)
    assert isinstance(failed, ConnectionError)
    assert_images_close(fine, alone(t2i, requests[1]))
    assert "a callback of picture 1 of 2 failed" in caplog.text


def test_a_batch_that_fails_as_a_whole_is_drawn_one_at_a_time(tiny_sd_dir, monkeypatch, caplog):
    t2i = make(tiny_sd_dir)
    real_run = TextToImage._run
    sizes: list[int] = []

    def out_of_memory_above_one(self, pipe, live, *args):  # type: ignore[no-untyped-def]
        sizes.append(len(live))
        if len(live) > 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_run(self, pipe, live, *args)

    monkeypatch.setattr(TextToImage, "_run", out_of_memory_above_one)
    requests = [DrawRequest(f"picture {i}", seed=30 + i) for i in range(3)]
    batch = t2i.generate_each(requests)
    assert sizes == [3, 1, 1, 1] and "drawing each on its own" in caplog.text
    monkeypatch.setattr(TextToImage, "_run", real_run)
    for result, request in zip(batch, requests, strict=True):
        assert isinstance(result, GeneratedImage)
        assert_images_close(result, alone(t2i, request))


def test_generate_each_rejects_bad_requests(tiny_sd_dir):
    t2i = make(tiny_sd_dir)
    for bad in ([], ["a cat"], [DrawRequest("a cat", seed=-1)], [DrawRequest("a cat", seed=2**64)]):
        with pytest.raises(ValueError):
            t2i.generate_each(bad)


# --- the fair queue's pick -----------------------------------------------------------------------


def test_a_batch_takes_the_next_compatible_jobs_in_fair_order():
    loop = asyncio.new_event_loop()
    try:
        queue = FairQueue()
        jobs = [
            ("A", "a1", "text"),
            ("A", "a2", "text"),
            ("B", "b1", "photo"),
            ("B", "b2", "text"),
            ("C", "c1", "text"),
            ("D", "d1", "text"),
        ]
        for user, label, kind in jobs:
            spec = JobSpec(
                label,
                user,
                kind,
                "paprika",
                positive="p" if kind == "text" else "",
                source_png=None if kind == "text" else b"png",
            )
            queue.push(_Job(spec, JobHandle(label, loop)))
        text = lambda job: job.spec.kind == "text"  # noqa: E731
        # fair order: a1 b1 c1 d1 a2 b2; b1 cannot join, and b2 may not overtake it
        assert [job.spec.job_id for job in queue.pop_batch(4, text)] == ["a1", "c1", "d1", "a2"]
        assert [job.spec.job_id for job in queue.in_order()] == ["b1", "b2"]
        assert [job.spec.job_id for job in queue.pop_batch(4, text)] == ["b1"], "a photo job runs alone"
        assert [job.spec.job_id for job in queue.pop_batch(1, text)] == ["b2"]
        assert queue.pop_batch(4, text) == []
    finally:
        loop.close()


# --- the local engine --------------------------------------------------------------------------


class Held:
    """The real pipeline with hooks: the first photo job waits for ``gate`` (jobs queue behind it); batches are recorded.

    ``pause``: in a batch, the first job's first diffusion step waits for ``resume`` (after setting ``drawing``),
    its third for ``go_on`` (after setting ``later``). A drawing whose prompt is "explode" fails while being styled.
    """

    def __init__(self, inner: AnimePipeline) -> None:
        self.inner = inner
        self.previews = inner.previews
        self.gate, self.holding = threading.Event(), threading.Event()
        self.pause, self.drawing, self.resume = False, threading.Event(), threading.Event()
        self.later, self.go_on = threading.Event(), threading.Event()
        self.batches: list[list[str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def from_photo(self, photo: Any, **kw: Any) -> Any:
        if not self.holding.is_set():
            self.holding.set()
            assert self.gate.wait(60)
        return self.inner.from_photo(photo, **kw)

    def draw_batch(self, jobs: list[PromptJob]) -> list[Any]:
        self.batches.append([job.positive for job in jobs])
        if self.pause:
            first = jobs[0]

            def paused(stage: str, fraction: float) -> None:
                if not self.drawing.is_set():
                    self.drawing.set()
                    assert self.resume.wait(60)
                elif fraction >= 0.75 and not self.later.is_set():
                    self.later.set()
                    assert self.go_on.wait(60)
                first.progress(stage, fraction)  # type: ignore[misc]

            jobs = [replace(first, progress=paused), *jobs[1:]]
        return self.inner.draw_batch(jobs)

    def from_drawing(self, generated: GeneratedImage, **kw: Any) -> Any:
        if generated.prompt == "explode":
            raise RuntimeError("the style network exploded")
        return self.inner.from_drawing(generated, **kw)


@pytest.fixture(scope="module")
def tiny_pipeline(tiny_sd_dir: Path, animegan_checkpoints_dir: Path) -> AnimePipeline:
    from engine.image.animegan import AnimeGAN

    animegan = AnimeGAN(animegan_checkpoints_dir, device="cpu", backend="torch", download=False)
    return AnimePipeline(make(tiny_sd_dir), animegan, default_style="face_paint_512_v2")


@pytest.fixture
async def held_engine(tiny_pipeline: AnimePipeline) -> AsyncIterator[tuple[LocalJobQueue, Held]]:
    held = Held(tiny_pipeline)
    engine = LocalJobQueue(held, batch_max=4)
    await engine.start()
    yield engine, held
    for event in (held.gate, held.resume, held.go_on):
        event.set()
    await engine.close()


def source_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (SIZE, SIZE), "teal").save(buffer, "PNG")
    return buffer.getvalue()


def text(job_id: str, user: str, positive: str, *, seed: int, negative: str = "", style: str = "face_paint_512_v2") -> JobSpec:
    return JobSpec(job_id, user, "text", style, positive=positive, negative=negative, seed=seed)


async def drain(handle: JobHandle, timeout: float = 120) -> list[JobEvent]:
    async with asyncio.timeout(timeout):
        return [event async for event in handle.events()]


def check_progress(events: list[JobEvent]) -> None:
    """Every job's own stream: fractions never fall and end at 1.0, with previews of its own picture."""
    reports = [e for e in events if isinstance(e, JobProgress)]
    fractions = [r.fraction for r in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0, fractions
    assert [r.stage for r in reports if r.preview is not None][-1] == "style", "the sketch came"
    assert any(r.preview is not None and r.stage == "diffusion" for r in reports)


async def hold(engine: LocalJobQueue, held: Held) -> JobHandle:
    handle = await engine.submit(JobSpec("hold", "zed", "photo", "paprika", source_png=source_png()))
    assert await asyncio.to_thread(held.holding.wait, 60)
    return handle


async def test_the_local_engine_draws_waiting_text_jobs_in_one_batch(held_engine, tiny_pipeline):
    engine, held = held_engine
    holding = await hold(engine, held)
    specs = [
        text("t1", "ann", "a girl with blue hair", seed=1, negative="blurry"),
        text("t2", "bob", "a castle at night", seed=2, style="paprika"),
        text("t3", "cho", "a dog", seed=3, style="no-such-style"),
        text("t4", "ann", "a cat on a roof", seed=4),
        text("t5", "dev", "explode", seed=5),
    ]
    handles = [await engine.submit(spec) for spec in specs]
    held.gate.set()
    streams = dict(zip([s.job_id for s in specs], await asyncio.gather(*(drain(h) for h in handles)), strict=True))
    assert isinstance((await drain(holding))[-1], JobFinished)

    # fair order: t1 (ann), t2 (bob), t3 (cho), t5 (dev), then ann's second job: the first four in one batch
    assert held.batches == [["a girl with blue hair", "a castle at night", "a dog", "explode"]]
    for job_id, events in streams.items():
        assert [e for e in events if isinstance(e, TERMINAL_EVENTS)] == events[-1:], job_id
    assert streams["t3"][-1].error_key == "style.unknown", "an unknown style fails its job alone"
    assert streams["t5"][-1] == JobFailed("error.generic", "RuntimeError"), "a job failing after drawing fails alone"
    for job_id in ("t1", "t2", "t4"):
        finished = streams[job_id][-1]
        assert isinstance(finished, JobFinished) and JobStarted() in streams[job_id], job_id
        check_progress(streams[job_id])
        spec = next(s for s in specs if s.job_id == job_id)
        reference = tiny_pipeline.from_prompt(spec.positive, spec.negative, style=spec.style, seed=spec.seed)
        assert (finished.result.seed, finished.result.style) == (spec.seed, spec.style)
        assert_images_close(png(finished.result.base_png), reference.base_image)
        assert_images_close(png(finished.result.anime_png), reference.anime_image)


async def test_the_local_engine_cancels_one_job_of_a_batch(held_engine, tiny_pipeline):
    engine, held = held_engine
    held.pause = True
    holding = await hold(engine, held)
    specs = [text(f"c{i}", f"user{i}", f"picture number {i}", seed=40 + i) for i in range(3)]
    handles = [await engine.submit(spec) for spec in specs]
    held.gate.set()
    assert await asyncio.to_thread(held.drawing.wait, 60)  # the batch is at its first step
    assert await engine.cancel("c1")
    held.resume.set()
    assert await asyncio.to_thread(held.later.wait, 60)  # ... and now at its third
    cancelled = await drain(handles[1])
    assert cancelled[-1] == JobCancelled() and not held.go_on.is_set(), "it ended at once, while the batch draws on"
    assert [e.fraction for e in cancelled if isinstance(e, JobProgress)][-1] < 0.5
    held.go_on.set()
    others = await asyncio.gather(drain(handles[0]), drain(handles[2]))
    assert held.batches == [[spec.positive for spec in specs]]
    for spec, events in zip((specs[0], specs[2]), others, strict=True):
        assert isinstance(events[-1], JobFinished), events[-1]
        reference = tiny_pipeline.from_prompt(spec.positive, spec.negative, style=spec.style, seed=spec.seed)
        assert_images_close(png(events[-1].result.base_png), reference.base_image)
    assert not await engine.cancel("c1"), "over"
    await drain(holding)


def test_a_batch_shows_only_the_previews_the_image_check_passes(tiny_pipeline):
    from engine.jobs.runner import BatchJob, run_batch
    from engine.policy.levels import Level, Verdict

    class FlagEverything:
        """Stands in for the content policy's nudity check: flags every picture it is shown."""

        seen = 0

        def check(self, image: Image.Image, level: Level) -> Verdict:
            self.seen += 1
            return Verdict(False, Level(level))

    check = FlagEverything()
    pipeline = AnimePipeline(
        tiny_pipeline.text_to_image, tiny_pipeline.animegan, default_style="face_paint_512_v2", image_check=check
    )
    specs = [text(f"v{i}", f"user{i}", f"picture {i}", seed=60 + i) for i in range(2)]
    reports: dict[str, list[JobProgress]] = {spec.job_id: [] for spec in specs}
    ends: dict[str, JobEvent] = {}
    run_batch(
        pipeline,
        [BatchJob(s, reports[s.job_id].append, lambda: False, lambda e, s=s: ends.__setitem__(s.job_id, e)) for s in specs],
    )
    for spec in specs:
        assert [r for r in reports[spec.job_id] if r.preview is not None] == [], "no flagged preview is shown"
        assert isinstance(ends[spec.job_id], JobFailed) and ends[spec.job_id].error_key == "policy.image_flagged"
    assert check.seen >= 2 * (STEPS - 1), "every diffusion preview of every job was checked"


# --- a Redis worker ------------------------------------------------------------------------------

#: Diffusion steps of the worker's pictures, and how long each step of a batch takes (the worker's pipeline sleeps).
WORKER_STEPS = 12
STEP_SECONDS = 0.1


class SlowDrawing:
    """``AnimePipeline`` whose diffusion steps take ``step_seconds`` longer (per job); a batched "explode" fails mid-diffusion.

    ``voice2anime worker --pipeline tests.test_batching:build_slow_pipeline`` (a cancel must land while a batch draws).
    """

    def __init__(self, inner: AnimePipeline, step_seconds: float) -> None:
        self.inner = inner
        self.previews = inner.previews
        self.step_seconds = step_seconds

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def from_prompt(self, positive: str, negative: str, *, progress: Any, **kw: Any) -> Any:
        def slow(stage: str, fraction: float) -> None:
            if stage == "diffusion":
                time.sleep(self.step_seconds)
            progress(stage, fraction)

        return self.inner.from_prompt(positive, negative, progress=slow, **kw)

    def draw_batch(self, jobs: list[PromptJob]) -> list[Any]:
        def slow(job: PromptJob) -> PromptJob:
            def progress(stage: str, fraction: float) -> None:
                if job.positive == "explode" and fraction >= 0.5:
                    raise RuntimeError("exploded mid-diffusion")
                time.sleep(self.step_seconds)
                job.progress(stage, fraction)  # type: ignore[misc]

            return replace(job, progress=progress)

        return self.inner.draw_batch([slow(job) for job in jobs])


def build_slow_pipeline(settings: Any) -> SlowDrawing:
    from bot import factory

    return SlowDrawing(factory.loaded_pipeline(settings), float(os.environ["VOICE2ANIME_TEST_STEP_SECONDS"]))


@pytest.fixture(scope="module")
def batch_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.support.redis_server import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis-batch"))
    server.start()
    yield server
    server.kill()


PREFIX = "v2a-batch"


@pytest.fixture(scope="module")
def batch_worker(batch_redis: Any, tiny_sd_dir: Path, animegan_checkpoints_dir: Path, tmp_path_factory) -> Iterator[Any]:
    """One worker process on the tiny models, drawing up to 3 text jobs at once."""
    from tests.support.workers import start_workers, worker_env

    log_dir = tmp_path_factory.mktemp("batch-worker")
    env = worker_env(
        batch_redis.url,
        PREFIX,
        lease=5.0,
        BATCH_MAX="3",
        SD_MODEL=str(tiny_sd_dir),
        SD_SCHEDULER="dpmpp",
        SD_STEPS=str(WORKER_STEPS),
        SD_GUIDANCE="7.0",
        SD_WIDTH=str(SIZE),
        SD_HEIGHT=str(SIZE),
        TORCH_DEVICE="cpu",
        CHECKPOINTS_DIR=str(animegan_checkpoints_dir),
        ANIME_BACKEND="torch",
        ANIME_DOWNLOAD="false",
        ANIME_STYLE="face_paint_512_v2",
        MODELS_DIR=str(log_dir / "models"),
        VOICE2ANIME_TEST_STEP_SECONDS=str(STEP_SECONDS),
    )
    (worker,) = start_workers(1, env, log_dir, pipeline="tests.test_batching:build_slow_pipeline")
    yield worker
    assert worker.stop() == 0, worker.log()[-3000:]


@pytest.fixture
async def batch_engine(batch_worker: Any, batch_redis: Any) -> AsyncIterator[Any]:
    from engine.jobs.distributed import RedisConfig, RedisJobQueue

    engine = RedisJobQueue(RedisConfig(batch_redis.url, prefix=PREFIX, lease=5.0))
    await engine.start()
    yield engine
    await engine.close()


@pytest.fixture(scope="module")
def worker_t2i(tiny_sd_dir: Path) -> TextToImage:
    """The worker's drawing settings, in this process: what each job's picture must be."""
    return make(tiny_sd_dir, steps=WORKER_STEPS, guidance=7.0)


async def drawing(handle: JobHandle) -> list[JobEvent]:
    """``handle``'s events up to its first progress: it draws, so the worker has made its batch (fails if it ends first)."""
    events: list[JobEvent] = []
    async with asyncio.timeout(120):
        async for event in handle.events():
            events.append(event)
            if isinstance(event, JobProgress):
                return events
    raise AssertionError(f"{handle.job_id} ended before it drew: {events}")


@pytest.mark.slow  # a redis-server and a worker process
async def test_a_redis_worker_draws_the_text_jobs_behind_the_first_in_one_batch(
    batch_engine, batch_worker, batch_redis, worker_t2i
):
    blocker = await batch_engine.submit(text("r-block", "zed", "a long wall", seed=99))
    # Drawing, not just started: a job submitted between its start and its batch being made would join that batch.
    await drawing(blocker)  # the worker is busy: what follows waits in the stream
    specs = [
        text("r1", "ann", "a girl with blue hair", seed=1, negative="blurry"),
        text("r2", "bob", "explode", seed=2),
        text("r3", "cho", "a castle at night", seed=3, style="paprika"),
        JobSpec("r4", "ann", "photo", "paprika", source_png=source_png()),
        text("r5", "dev", "a dog", seed=5, style="no-such-style"),
        text("r6", "eve", "a cat on a roof", seed=6),
    ]
    handles = [await batch_engine.submit(spec) for spec in specs]
    streams = dict(zip([s.job_id for s in specs], await asyncio.gather(*(drain(h) for h in handles)), strict=True))
    assert isinstance((await drain(blocker))[-1], JobFinished)

    log = batch_worker.log()
    assert "drawing 3 jobs in one batch: r1, r2, r3" in log, log[-3000:]
    assert "drawing 2 jobs in one batch: r5, r6" in log, "the photo job ran alone and kept its place"
    for job_id, events in streams.items():
        assert [e for e in events if isinstance(e, TERMINAL_EVENTS)] == events[-1:], (job_id, events)
    assert streams["r2"][-1] == JobFailed("error.generic", "RuntimeError"), "a job failing mid-diffusion fails alone"
    assert streams["r5"][-1].error_key == "style.unknown"
    assert isinstance(streams["r4"][-1], JobFinished) and streams["r4"][-1].result.base_png is None
    for job_id in ("r1", "r3", "r6"):
        finished = streams[job_id][-1]
        assert isinstance(finished, JobFinished), (job_id, finished)
        spec = next(s for s in specs if s.job_id == job_id)
        reference = alone(worker_t2i, DrawRequest(spec.positive, spec.negative, spec.seed))
        assert_images_close(png(finished.result.base_png), reference)
        fractions = [e.fraction for e in streams[job_id] if isinstance(e, JobProgress)]
        assert fractions == sorted(fractions) and fractions[-1] == 1.0

    import redis.asyncio

    from engine.jobs.distributed import Keys

    client = redis.asyncio.Redis.from_url(batch_redis.url)
    try:
        keys = Keys(PREFIX)
        pending = await client.xpending(keys.stream, keys.group)
        assert pending["pending"] == 0, "every batched job's stream entry was acknowledged"
        assert await client.zrange(keys.waiting, 0, -1) == []
    finally:
        await client.aclose()


@pytest.mark.slow  # a redis-server and a worker process
async def test_a_redis_worker_cancels_one_job_of_a_batch(batch_engine, worker_t2i):
    blocker = await batch_engine.submit(text("k-block", "zed", "a long wall", seed=98))
    await drawing(blocker)
    specs = [text(f"k{i}", f"user{i}", f"picture number {i}", seed=50 + i) for i in range(3)]
    handles = [await batch_engine.submit(spec) for spec in specs]
    events = await drawing(handles[1])  # it draws: cancel it
    assert await batch_engine.cancel("k1")
    events += await drain(handles[1])
    assert events[-1] == JobCancelled() and [e for e in events if isinstance(e, TERMINAL_EVENTS)] == events[-1:]
    for spec, handle in ((specs[0], handles[0]), (specs[2], handles[2])):
        finished = (await drain(handle))[-1]
        assert isinstance(finished, JobFinished), finished
        assert_images_close(
            png(finished.result.base_png), alone(worker_t2i, DrawRequest(spec.positive, spec.negative, spec.seed))
        )
    await drain(blocker)


# --- settings ------------------------------------------------------------------------------------


def test_batch_and_fast_path_settings(monkeypatch):
    from bot import factory
    from bot.settings import Settings

    assert factory.batch_max(Settings(batch_max=8)) == 8
    assert factory.batch_max(Settings(torch_device="cpu")) == 1
    assert factory.batch_max(Settings(), resolve=False) == 0, "auto: a bot that only queues jobs does not look for a GPU"
    assert factory.redis_config(Settings(batch_max=2)).batch_max == 2
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setattr("torch.cuda.device_count", lambda: 1)
    monkeypatch.setattr("torch.version.cuda", "12.8")
    assert factory.batch_max(Settings()) == factory.batch_max(Settings(torch_device="cuda")) == 4
    gpu = factory.text_to_image(Settings(torch_compile=True, sd_vae_tiling_above=768)).config
    assert (gpu.compile, gpu.vae_tiling_above, gpu.scheduler, gpu.lora) == (True, 768, "dpmpp", None)
    hyper = factory.text_to_image(Settings(sd_few_steps="hyper")).config
    assert (hyper.scheduler, hyper.resolved_steps, hyper.resolved_guidance, hyper.lora_scale) == ("hyper", 8, 0.0, 1.0)
    assert hyper.lora == "ByteDance/Hyper-SD/Hyper-SD15-8steps-lora.safetensors"
    lcm = factory.text_to_image(Settings(sd_few_steps="lcm", sd_lora="models/lcm-lora", sd_steps=6)).config
    assert (lcm.scheduler, lcm.lora, lcm.resolved_steps, lcm.resolved_guidance) == ("lcm", "models/lcm-lora", 6, 1.0)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    off = factory.text_to_image(Settings(sd_few_steps="off")).config
    assert (off.scheduler, off.lora, off.resolved_steps) == ("dpmpp", None, 25), "off: the full default even without a GPU"
    assert factory.text_to_image(Settings()).config.scheduler == "lcm", "unset: the CPU default stays"
