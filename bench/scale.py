"""Throughput and queue latency: the distributed engine on 1, 2, 4 workers vs the local engine.

Run by hand from the repository root (needs ``redis-server`` on PATH)::

    python -m bench.scale                                # 40 jobs of 0.2 s, then 40 jobs of 0 s
    python -m bench.scale --jobs 100 --job-seconds 1 --workers 1 2 4 8

Every configuration runs the same model-free pipeline
(:class:`tests.support.workers.FakePipeline`: a job sleeps ``--job-seconds``
in 4 steps, like a GPU would be busy), so the numbers are about the queue,
not the models: a throwaway password-protected redis-server on loopback,
real ``voice2anime worker`` processes, the bot-side
:class:`engine.jobs.distributed.RedisJobQueue`, jobs from 8 users submitted at
once. "queue" is submit -> JobStarted, "total" is submit -> JobFinished (both
as seen by the bot); ``0 s`` jobs measure the engine's own overhead.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from engine.api import JobFinished, JobHandle, JobSpec, JobStarted
from engine.jobs.distributed import RedisConfig, RedisJobQueue
from engine.jobs.local import LocalJobQueue
from tests.support.redis_server import RedisServer
from tests.support.workers import FakePipeline, start_workers, worker_env

STEPS = 4
USERS = 8


def _spec(n: int) -> JobSpec:
    return JobSpec(f"job-{n}", f"user-{n % USERS}", "text", "face_paint_512_v2", positive="anime, cat", negative="lowres")


async def _follow(handle: JobHandle, submitted: float) -> tuple[float, float]:
    started = submitted
    async for event in handle.events():
        if isinstance(event, JobStarted):
            started = time.perf_counter()
    assert isinstance(event, JobFinished), f"{handle.job_id}: {event}"
    return started - submitted, time.perf_counter() - submitted


async def _run(engine: LocalJobQueue | RedisJobQueue, jobs: int) -> dict[str, float]:
    await engine.start()
    try:
        began = time.perf_counter()
        follows = []
        for n in range(jobs):
            submitted = time.perf_counter()
            follows.append(asyncio.create_task(_follow(await engine.submit(_spec(n)), submitted)))
        timings = await asyncio.gather(*follows)
        wall = time.perf_counter() - began
    finally:
        await engine.close()
    queue = sorted(q for q, _ in timings)
    total = sorted(t for _, t in timings)
    return {
        "jobs/s": jobs / wall,
        "queue p50": statistics.median(queue),
        "queue p99": queue[min(len(queue) - 1, int(0.99 * len(queue)))],
        "total p50": statistics.median(total),
    }


async def _local(jobs: int, job_seconds: float) -> dict[str, float]:
    pipeline = FakePipeline(STEPS, job_seconds / STEPS, None)
    return await _run(LocalJobQueue(pipeline), jobs)


async def _distributed(server: RedisServer, workers: int, jobs: int, job_seconds: float, log_dir: Path) -> dict[str, float]:
    prefix = f"bench-{workers}-{job_seconds}"
    env = worker_env(server.url, prefix, lease=30.0, VOICE2ANIME_FAKE_STEPS=str(STEPS), VOICE2ANIME_FAKE_STEP_SECONDS=str(job_seconds / STEPS))
    (log_dir / prefix).mkdir()
    processes = await asyncio.to_thread(start_workers, workers, env, log_dir / prefix)
    await asyncio.sleep(2.0)  # let the new processes settle (2 shared cores)
    try:
        return await _run(RedisJobQueue(RedisConfig(server.url, prefix=prefix)), jobs)
    finally:
        for process in processes:
            process.stop()


def _print(rows: list[tuple[str, dict[str, float]]], baseline: float) -> None:
    print(f"{'engine':<22}{'jobs/s':>9}{'vs local':>10}{'queue p50':>11}{'queue p99':>11}{'total p50':>11}")
    for name, row in rows:
        print(
            f"{name:<22}{row['jobs/s']:>9.2f}{row['jobs/s'] / baseline:>9.2f}x"
            f"{row['queue p50'] * 1000:>9.0f}ms{row['queue p99'] * 1000:>9.0f}ms{row['total p50'] * 1000:>9.0f}ms"
        )


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="voice2anime-bench-") as tmp:
        server = RedisServer(Path(tmp) / "redis")
        server.start()
        try:
            for job_seconds in args.job_seconds:
                print(f"\n{args.jobs} jobs of {job_seconds:g} s from {USERS} users, submitted at once")
                local = await _local(args.jobs, job_seconds)
                rows = [("local (1 model thread)", local)]
                for workers in args.workers:
                    rows.append((f"redis, {workers} worker(s)", await _distributed(server, workers, args.jobs, job_seconds, Path(tmp))))
                _print(rows, local["jobs/s"])
        finally:
            server.kill()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--job-seconds", type=float, nargs="+", default=[0.2, 0.0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    asyncio.run(main(parser.parse_args()))
