"""The distributed engine against a real redis-server and real ``voice2anime worker`` processes.

Most scenarios use model-free workers (:mod:`tests.support.workers`) so they
are about delivery, not drawing: many jobs from many users, a worker killed
mid-job, cancel, a Redis crash. One worker process runs the real pipeline on
the tiny test models, and a conversation runs over it on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import io
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio
import yaml
from PIL import Image, ImageDraw

from db import RequestState
from db.migrate import upgrade_async
from engine.api import (
    TERMINAL_EVENTS,
    JobCancelled,
    JobEvent,
    JobFailed,
    JobFinished,
    JobHandle,
    JobProgress,
    JobQueued,
    JobSpec,
    JobStarted,
)
from engine.jobs.distributed import Keys, RedisConfig, RedisJobQueue
from engine.jobs.job_stream import JobStream
from handlers.actions import Action
from tests.support.conversation import button
from tests.support.redis_server import RedisServer
from tests.support.workers import FAKE, WorkerProcess, start_workers, tiny_pipeline_env, worker_env

pytestmark = pytest.mark.slow  # real Redis servers and worker processes

PREFIX = "v2a-test"
LEASE = 1.5
ROOT = Path(__file__).resolve().parents[1]


def text_job(job_id: str, user: str = "u1") -> JobSpec:
    """A text job whose prompt is its id (the fake pipeline logs runs by it)."""
    return JobSpec(job_id, user, "text", "face_paint_512_v2", positive=job_id, negative="lowres", seed=7)


async def drain(handle: JobHandle, timeout: float = 90.0) -> list[JobEvent]:
    async with asyncio.timeout(timeout):
        return [event async for event in handle.events()]


def runs(log: Path) -> list[tuple[str, str, int]]:
    """(what, label, pid) of every fake-pipeline run note."""
    if not log.exists():
        return []
    return [(what, label, int(pid)) for what, label, pid in (line.split() for line in log.read_text().splitlines())]


def terminal(events: list[JobEvent]) -> list[JobEvent]:
    return [event for event in events if isinstance(event, TERMINAL_EVENTS)]


@pytest.fixture
async def engine(redis_server: RedisServer) -> AsyncIterator[RedisJobQueue]:
    """A started bot-side engine (no speech recognizer) on the test's Redis."""
    engine = RedisJobQueue(RedisConfig(redis_server.url, prefix=PREFIX, lease=LEASE))
    await engine.start()
    yield engine
    await engine.close()


@pytest.fixture
def fake_workers(redis_server: RedisServer, tmp_path: Path) -> Iterator[object]:
    """``start(count, step_seconds, steps=4)`` -> workers whose runs are noted in ``tmp_path/runs.log``; killed afterwards."""
    started: list[WorkerProcess] = []

    def start(count: int, step_seconds: float, steps: int = 4) -> list[WorkerProcess]:
        env = worker_env(
            redis_server.url,
            PREFIX,
            lease=LEASE,
            VOICE2ANIME_FAKE_STEPS=str(steps),
            VOICE2ANIME_FAKE_STEP_SECONDS=str(step_seconds),
            VOICE2ANIME_FAKE_LOG=str(tmp_path / "runs.log"),
        )
        workers = start_workers(count, env, tmp_path)
        started.extend(workers)
        return workers

    yield start
    for worker in started:
        worker.kill()


# --- delivery -------------------------------------------------------------------------------


async def test_twenty_jobs_from_four_users_on_two_workers_are_each_delivered_once(engine, fake_workers, redis_server, tmp_path):
    workers = fake_workers(2, step_seconds=0.03)
    users = ["ann", "bob", "cho", "dev"]
    handles = [await engine.submit(text_job(f"{user}-{n}", user)) for n in range(5) for user in users]
    streams = await asyncio.gather(*(drain(handle) for handle in handles))

    for handle, events in zip(handles, streams):
        assert terminal(events) == events[-1:], f"{handle.job_id}: {events}"
        assert isinstance(events[-1], JobFinished) and events[-1].result.job_id == handle.job_id
        assert Image.open(io.BytesIO(events[-1].result.anime_png)).size == (8, 8)
    noted = runs(tmp_path / "runs.log")
    done = Counter(label for what, label, _ in noted if what == "done")
    assert done == Counter(handle.job_id for handle in handles), "every job ran to the end exactly once"
    assert {pid for _, _, pid in noted} == {worker.pid for worker in workers}, "both workers took jobs"

    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        keys = Keys(PREFIX)
        assert await client.zrange(keys.waiting, 0, -1) == []
        assert 0 < await client.ttl(keys.job("ann-0")) <= engine.config.job_ttl
        assert 0 < await client.ttl(keys.events("ann-0")) <= engine.config.job_ttl
        assert await client.xpending(keys.stream, keys.group) == {"pending": 0, "min": None, "max": None, "consumers": []}
    finally:
        await client.aclose()


async def test_a_job_submitted_again_is_followed_not_run_again(engine, fake_workers, tmp_path):
    fake_workers(1, step_seconds=0.02)
    first = await drain(await engine.submit(text_job("again")))
    replay = await drain(await engine.submit(text_job("again")))  # what a restarted bot's recovery does
    assert isinstance(first[-1], JobFinished) and replay[-1] == first[-1]
    assert [what for what, label, _ in runs(tmp_path / "runs.log")] == ["start", "done"]


async def test_a_worker_killed_mid_job_is_replaced_and_the_job_delivered_once(engine, fake_workers, tmp_path):
    workers = fake_workers(2, step_seconds=0.25, steps=8)
    handle = await engine.submit(text_job("crash"))
    events: list[JobEvent] = []
    async with asyncio.timeout(60):
        async for event in handle.events():
            events.append(event)
            if isinstance(event, JobStarted):
                break
    await asyncio.sleep(0.5)  # really mid-job
    (victim_pid,) = [pid for what, _, pid in runs(tmp_path / "runs.log") if what == "start"]
    victim = next(worker for worker in workers if worker.pid == victim_pid)
    victim.kill()

    events += await drain(handle)
    assert terminal(events) == events[-1:] and isinstance(events[-1], JobFinished)
    noted = runs(tmp_path / "runs.log")
    starts = [pid for what, _, pid in noted if what == "start"]
    assert starts[0] == victim_pid and len(starts) == 2 and starts[1] != victim_pid, noted
    assert [pid for what, _, pid in noted if what == "done"] == [starts[1]]


async def test_cancel_while_queued_and_while_running(engine, fake_workers, tmp_path):
    fake_workers(1, step_seconds=0.1, steps=100)
    running = await engine.submit(text_job("long"))
    async with asyncio.timeout(30):
        async for event in running.events():
            if isinstance(event, JobStarted):
                break
    waiting = await engine.submit(text_job("waiting"))

    assert await engine.cancel("waiting")
    assert await drain(waiting, timeout=10) == [JobQueued(1), JobCancelled()]
    assert await engine.cancel("long")
    rest = await drain(running, timeout=10)
    assert isinstance(rest[-1], JobCancelled) and terminal(rest) == rest[-1:]
    assert not await engine.cancel("long") and not await engine.cancel("no-such-job")

    after = await drain(await engine.submit(text_job("after")))
    assert isinstance(after[-1], JobFinished), "the worker goes on after a cancel"
    assert [(what, label) for what, label, _ in runs(tmp_path / "runs.log")] == [
        ("start", "long"), ("cancelled", "long"), ("start", "after"), ("done", "after"),
    ], "the cancelled waiting job never ran"


async def test_a_redis_crash_mid_queue_loses_no_accepted_job(engine, fake_workers, redis_server, tmp_path):
    fake_workers(2, step_seconds=0.1, steps=5)
    handles = [await engine.submit(text_job(f"r{n}-{user}", user)) for n in range(4) for user in ("ann", "bob")]
    drains = [asyncio.create_task(drain(handle, timeout=120)) for handle in handles]
    async with asyncio.timeout(30):
        while not runs(tmp_path / "runs.log"):
            await asyncio.sleep(0.02)
    redis_server.kill()  # SIGKILL: what is not in the append-only file is gone
    await asyncio.sleep(1.0)
    redis_server.start()

    streams = await asyncio.gather(*drains)
    for handle, events in zip(handles, streams):
        assert terminal(events) == events[-1:] and isinstance(events[-1], JobFinished), f"{handle.job_id}: {events}"
    done = {label for what, label, _ in runs(tmp_path / "runs.log") if what == "done"}
    assert done == {handle.job_id for handle in handles}


async def test_a_job_whose_state_expired_is_reported_lost_and_frees_its_place(engine, fake_workers, redis_server, tmp_path):
    keys = Keys(PREFIX)
    lost = [await engine.submit(text_job(f"lost-{n}", "ann")) for n in range(5)]  # no workers yet: they wait
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        await client.delete(*(keys.job(f"lost-{n}") for n in range(5)))  # what job_ttl does to a job left waiting too long
        fresh = await engine.submit(text_job("fresh", "ann"))
        fake_workers(1, step_seconds=0.01)
        for handle in lost:
            events = await drain(handle, timeout=30)
            assert terminal(events) == events[-1:] and isinstance(events[-1], JobFailed), events
            assert events[-1].error_key == "job.lost"
        assert isinstance((await drain(fresh))[-1], JobFinished)
        assert await client.zrange(keys.waiting, 0, -1) == [], "lost jobs left the queue"
        assert [label for what, label, _ in runs(tmp_path / "runs.log")] == ["fresh", "fresh"], "lost jobs never ran"
        assert await client.xpending(keys.stream, keys.group) == {"pending": 0, "min": None, "max": None, "consumers": []}
        again = await drain(await engine.submit(text_job("lost-0", "ann")), timeout=30)  # a restarted bot's recovery
        assert terminal(again) == again[-1:] and isinstance(again[-1], JobFinished), "a failed job submitted again runs again"
    finally:
        await client.aclose()


async def test_a_job_whose_spec_cannot_be_read_fails_once_and_the_worker_goes_on(engine, fake_workers, redis_server, tmp_path):
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        garbled = await engine.submit(text_job("garbled"))  # no workers yet
        await client.hset(Keys(PREFIX).job("garbled"), "spec", b"\x81\xa4kind\xa4exec")  # e.g. from an incompatible bot
        fake_workers(1, step_seconds=0.01)
        events = await drain(garbled, timeout=30)
        assert terminal(events) == events[-1:] and isinstance(events[-1], JobFailed)
        assert events[-1].error_key == "worker.outdated" and events[-1].detail.startswith("unreadable job spec: ")
        assert isinstance((await drain(await engine.submit(text_job("next"))))[-1], JobFinished)
        assert [label for _, label, _ in runs(tmp_path / "runs.log")] == ["next", "next"], "the garbled job never ran"
        nothing_pending = {"pending": 0, "min": None, "max": None, "consumers": []}
        async with asyncio.timeout(10):  # a worker acknowledges right after it publishes the result
            while (pending := await client.xpending(Keys(PREFIX).stream, Keys(PREFIX).group)) != nothing_pending:
                await asyncio.sleep(0.05)
        assert pending == nothing_pending, "acknowledged, not re-claimed forever"
    finally:
        await client.aclose()


async def test_a_running_job_outlives_its_ttl(engine, fake_workers, redis_server):
    fake_workers(1, step_seconds=0.25, steps=12)
    keys = Keys(PREFIX)
    handle = await engine.submit(text_job("long"))
    async with asyncio.timeout(60):
        async for event in handle.events():
            if isinstance(event, JobStarted):
                break
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        assert await client.ttl(keys.job("long")) > engine.config.job_ttl - 60, "claiming a job renews its TTL"
        await client.expire(keys.job("long"), 1)  # as if the job had waited almost job_ttl
        await client.expire(keys.events("long"), 1)
        await asyncio.sleep(1.5)
        assert await client.hget(keys.job("long"), "state") == b"running", "the lease renewal keeps the job alive"
        assert await client.ttl(keys.job("long")) > engine.config.job_ttl - 60
        assert await client.ttl(keys.events("long")) > engine.config.job_ttl - 60
    finally:
        await client.aclose()
    rest = await drain(handle)
    assert isinstance(rest[-1], JobFinished) and terminal(rest) == rest[-1:]


async def test_cancel_before_start_says_so() -> None:
    engine = RedisJobQueue(RedisConfig("redis://127.0.0.1:1/0"))
    with pytest.raises(RuntimeError, match=r"start\(\) was not called"):
        await engine.cancel("x")


def test_a_worker_that_cannot_reach_redis_at_start_stops_naming_redis_url(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # released: nothing listens there
    env = worker_env(f"redis://:sesame-{port}@127.0.0.1:{port}/0", PREFIX)
    done = subprocess.run(
        [sys.executable, "-m", "bot", "worker", "--pipeline", FAKE], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 3, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: cannot reach Redis at ") and "(REDIS_URL)" in line and f"127.0.0.1:{port}" in line, line
    assert "sesame" not in done.stderr and "ready on stream" not in done.stderr


# --- the job stream ---------------------------------------------------------------------------


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


async def test_the_stream_hands_an_entry_to_one_consumer_and_an_abandoned_one_to_another(client):
    keys = Keys(PREFIX)
    stream = JobStream(client, keys.stream, keys.group, maxlen=100)
    await stream.create_group()
    await stream.create_group()  # idempotent
    first = stream.consumer("first", block_ms=100, idle_ms=300)
    second = stream.consumer("second", block_ms=100, idle_ms=300)
    for job_id in ("a", "b", "c"):
        await stream.add(job_id)

    assert await first.peek_new(5) == ["a", "b", "c"] and await first.peek_new(1) == ["a"], "peeking takes nothing"
    taken = await first.take()
    assert taken is not None and taken.job_id == "a"
    assert [d.job_id for d in await second.take_new(5)] == ["b", "c"]
    assert await second.peek_new(5) == [] and await second.take() is None, "nothing new, nothing abandoned yet"

    await asyncio.sleep(0.4)  # "first" died holding "a"; "second" has held "b" and "c" as long
    reclaimed = await second.take()
    assert reclaimed is not None and (reclaimed.entry_id, reclaimed.job_id) == (taken.entry_id, "a"), "the oldest first"
    await second.ack(reclaimed)
    pending = await client.xpending_range(keys.stream, keys.group, min="-", max="+", count=10)
    assert [p["consumer"] for p in pending] == [b"second", b"second"]
    assert taken.entry_id not in [p["message_id"] for p in pending], "acknowledged"


async def test_entries_of_earlier_versions_and_foreign_entries(client, engine, fake_workers, tmp_path):
    keys = Keys(PREFIX)
    old = await engine.submit(text_job("queued-by-taskiq"))  # queued as before, then its entry replaced by the old format
    await client.delete(keys.stream)
    legacy = b'{"task_id":"queued-by-taskiq","task_name":"voice2anime.run_job","labels":{},"labels_types":{},"args":["queued-by-taskiq"],"kwargs":{}}'
    await client.xadd(keys.stream, {"data": legacy})
    await client.xadd(keys.stream, {"something": "else"})
    await client.xadd(keys.stream, {"data": b"not json"})
    await client.xgroup_create(keys.stream, keys.group, id="0")
    fake_workers(1, step_seconds=0.01)

    assert isinstance((await drain(old))[-1], JobFinished)
    assert isinstance((await drain(await engine.submit(text_job("new"))))[-1], JobFinished)
    assert [label for what, label, _ in runs(tmp_path / "runs.log") if what == "done"] == ["queued-by-taskiq", "new"]
    async with asyncio.timeout(10):  # foreign entries are acknowledged, not re-claimed forever
        while (await client.xpending(keys.stream, keys.group))["pending"]:
            await asyncio.sleep(0.05)


async def test_a_lost_consumer_group_is_made_again(client, engine, fake_workers, tmp_path):
    keys = Keys(PREFIX)
    (worker,) = fake_workers(1, step_seconds=0.01)
    assert isinstance((await drain(await engine.submit(text_job("before"))))[-1], JobFinished)
    await client.xgroup_destroy(keys.stream, keys.group)  # what a Redis that lost its data does to the group
    assert isinstance((await drain(await engine.submit(text_job("after"))))[-1], JobFinished)
    assert [label for what, label, _ in runs(tmp_path / "runs.log") if what == "done"] == ["before", "after"], (
        "the entry of the finished job, delivered again, did not run again"
    )
    assert "consumer group was gone; creating it again" in worker.log()


# --- the real pipeline in a worker process ---------------------------------------------------


@pytest.fixture(scope="module")
def real_worker_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis-real"))
    server.start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def real_worker(
    real_worker_redis: RedisServer, tiny_sd_dir: Path, tiny_controlnet_dir: Path, animegan_checkpoints_dir: Path, tmp_path_factory
) -> Iterator[WorkerProcess]:
    """One worker process running the real pipeline on the tiny test models (64x64, 2 steps, CPU)."""
    log_dir = tmp_path_factory.mktemp("real-worker")
    pipeline = tiny_pipeline_env(
        tiny_sd_dir, animegan_checkpoints_dir, log_dir / "models", CONTROLNET_SCRIBBLE=str(tiny_controlnet_dir)
    )
    env = worker_env(real_worker_redis.url, PREFIX, lease=5.0, **pipeline)
    (worker,) = start_workers(1, env, log_dir, pipeline=None)
    yield worker
    assert worker.stop() == 0, worker.log()[-3000:]


@pytest.fixture
async def real_engine(real_worker: WorkerProcess, real_worker_redis: RedisServer) -> AsyncIterator[RedisJobQueue]:
    engine = RedisJobQueue(RedisConfig(real_worker_redis.url, prefix=PREFIX, lease=5.0))
    await engine.start()
    yield engine
    await engine.close()


def png_size(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


async def test_real_tiny_models_run_in_a_worker_process(real_engine):
    cat = JobSpec("real-text", "u1", "text", "paprika", positive="anime, a cat", negative="lowres", seed=3)
    text = await drain(await real_engine.submit(cat))
    result = text[-1].result
    assert (result.seed, result.style) == (3, "paprika")
    assert result.base_png is not None and png_size(result.anime_png) == png_size(result.base_png) == (64, 64)
    assert {e.stage for e in text if isinstance(e, JobProgress)} <= {"diffusion", "style"}

    photo_job = JobSpec("real-photo", "u1", "photo", "face_paint_512_v2", source_png=result.base_png)
    photo = await drain(await real_engine.submit(photo_job))
    assert isinstance(photo[-1], JobFinished) and png_size(photo[-1].result.anime_png) == (64, 64)
    assert photo[-1].result.base_png is None, "the source is not sent back"

    sketch = io.BytesIO()
    drawing = Image.new("RGB", (96, 64), "white")
    ImageDraw.Draw(drawing).ellipse((10, 10, 50, 50), outline="black", width=3)
    drawing.save(sketch, "PNG")
    kept = JobSpec(
        "real-sketch", "u1", "text", "paprika", positive="anime, a cat", seed=3, control="scribble", control_png=sketch.getvalue()
    )
    drawn = await drain(await real_engine.submit(kept))
    assert isinstance(drawn[-1], JobFinished) and drawn[-1].result.base_png is not None
    assert png_size(drawn[-1].result.base_png) == (80, 64), "drawn from the sketch, at its proportions"

    bad = await drain(await real_engine.submit(JobSpec("real-bad", "u1", "photo", "no-such-style", source_png=result.base_png)))
    assert bad[-1] == JobFailed("style.unknown", bad[-1].detail, bad[-1].params)
    assert bad[-1].params["style"] == "no-such-style" and "paprika" in bad[-1].params["styles"]


async def test_a_remix_and_a_shaped_picture_run_in_a_worker_process(real_engine):
    drawn = await drain(await real_engine.submit(JobSpec("real-tall", "u1", "text", "paprika", positive="a fox", seed=5, width=64, height=96)))
    tall = drawn[-1].result
    assert png_size(tall.anime_png) == (64, 96)
    remix = JobSpec("real-remix", "u1", "text", "paprika", positive="a fox in the snow", seed=5, init_png=tall.base_png, strength=0.65)
    events = await drain(await real_engine.submit(remix))
    assert isinstance(events[-1], JobFinished) and png_size(events[-1].result.anime_png) == (64, 96)
    assert events[-1].result.base_png != tall.base_png, "drawn over, not returned"


async def test_conversation_on_postgresql_over_the_distributed_engine(postgres_database_url, real_engine, make_harness):
    await upgrade_async(postgres_database_url)
    h = await make_harness(postgres_database_url, real_engine)
    await h.command("zoe", "settings")
    await h.press("zoe", button(h.messenger.calls[-1].reply, Action.TOGGLE_CONFIRM))
    mark = h.messenger.mark()
    await h.command("zoe", "anime", "a girl with blue hair under cherry blossoms")
    request_id = next(c.reply.request_id for c in h.messenger.since(mark, "zoe") if c.reply and c.reply.request_id)
    await h.settle()

    (picture,) = h.messenger.images("zoe")
    assert png_size(picture.reply.image_png) == (64, 64)
    assert (await h.request(request_id)).state is RequestState.DELIVERED


# --- deployment files -----------------------------------------------------------------------


def test_compose_file_wires_bot_worker_redis_and_postgres() -> None:
    """Docker is not available here: check compose.yaml's wiring by reading it."""
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert set(services) >= {"bot", "worker", "redis", "postgres"}
    bot, worker, redis_service = services["bot"], services["worker"], services["redis"]
    assert bot["environment"]["ENGINE"] == "redis" and bot["environment"]["DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert bot["environment"]["REDIS_URL"] == worker["environment"]["REDIS_URL"]
    assert "${REDIS_PASSWORD" in bot["environment"]["REDIS_URL"] and "--requirepass" in " ".join(redis_service["command"])
    assert "--appendonly" in redis_service["command"]
    assert worker["command"][-1] == "worker"
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    for service in (bot, worker):
        assert set(service["depends_on"]) >= {"redis"}
    assert set(bot["depends_on"]) >= {"postgres"}
    assert {"redis-data", "postgres-data"} <= set(compose["volumes"])
    assert bot["build"]["target"] == "bot" and worker["build"]["target"] == "gpu"
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "nvidia/cuda:" in dockerfile and "python:3.11-slim" in dockerfile
    stages = {stage.split("\n", 1)[0].split(" AS ")[-1]: stage for stage in dockerfile.split("\nFROM ")[1:]}
    assert set(stages) == {"wheel", "bot", "gpu"}
    assert "torch" not in "".join(line for line in stages["bot"].splitlines() if not line.startswith("#")), "the bot image has no torch"
    assert "RUN pip install --no-cache-dir /wheels/*.whl" in stages["bot"], "the bot image is the base install"
    gpu = stages["gpu"]  # torch (CUDA build) first, then the project with the engine extra, which accepts it
    assert gpu.index('"torch==${TORCH_VERSION}" --index-url "${TORCH_CUDA_INDEX}"') < gpu.index('"${wheel}[engine]"')
