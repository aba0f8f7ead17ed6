"""Variations in the engine: one job, four seeds drawn in one batch, four pictures and their grid.

On the tiny test models (64x64, CPU), through the local engine and a Redis
worker process (slow), and across the wire: a variations job draws each
picture as a job with that seed would alone, reports one progress bar that
never falls, shows previews and can be cancelled.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from engine.api import JobCancelled, JobFinished, JobProgress, JobResult, JobSpec, Variation
from engine.image.diffusion import DrawRequest
from engine.jobs import wire
from engine.jobs.local import LocalJobQueue
from tests import test_batching
from tests.support.images import assert_images_close, assert_images_differ
from tests.test_batching import SIZE, alone, drain, png

# The batching tests' fixtures: the tiny pipeline, and a Redis worker process on the tiny models.
tiny_pipeline = test_batching.tiny_pipeline
batch_redis = test_batching.batch_redis
batch_worker = test_batching.batch_worker
batch_engine = test_batching.batch_engine
worker_t2i = test_batching.worker_t2i

SEEDS = (11, 12, 13, 14)


def variations(job_id: str, *, seeds: tuple[int, ...] = SEEDS) -> JobSpec:
    return JobSpec(job_id, "ann", "text", "face_paint_512_v2", positive="a girl with blue hair", negative="blurry", seeds=seeds)


def check_variations(result: JobResult, reference) -> None:
    assert [v.seed for v in result.variations] == list(SEEDS)
    grid = png(result.anime_png)
    assert grid.size == (2 * SIZE, 2 * SIZE), "four pictures in a 2x2 grid"
    for index, variation in enumerate(result.variations):
        assert_images_close(png(variation.base_png), reference(variation.seed))
        cell = grid.crop(((index % 2) * SIZE, (index // 2) * SIZE, (index % 2 + 1) * SIZE, (index // 2 + 1) * SIZE))
        assert_images_close(cell, png(variation.anime_png).convert("RGB"))
    assert_images_differ(png(result.variations[0].anime_png), png(result.variations[1].anime_png))


def test_a_variations_spec_is_two_or_more_seeds_of_a_text_job():
    with pytest.raises(ValueError):
        JobSpec("x", "u", "text", "s", positive="p", seeds=(1,))
    with pytest.raises(ValueError):
        JobSpec("x", "u", "photo", "s", source_png=b"png", seeds=(1, 2))


def test_variations_cross_the_wire_and_an_older_peer_reads_them_as_one_picture():
    spec = variations("w1")
    assert wire.unpack_spec(wire.pack_spec(spec)) == spec
    old = wire.unpack_spec(wire.pack_spec(replace(spec, seeds=())))
    assert old.seeds == ()
    result = JobResult("w1", b"grid", "paprika", seed=11, variations=(Variation(b"a", b"b", 11), Variation(b"c", b"d", 12)))
    assert wire.unpack_event(wire.pack_event(JobFinished(result))) == JobFinished(result)


async def test_the_local_engine_draws_four_variations_in_one_batch(tiny_pipeline, caplog):
    caplog.set_level("INFO", "engine.jobs.variations")
    engine = LocalJobQueue(tiny_pipeline)
    await engine.start()
    try:
        events = await drain(await engine.submit(variations("v1")))
    finally:
        await engine.close()
    finished = events[-1]
    assert isinstance(finished, JobFinished), events[-1]
    assert "job v1: drawing 4 variations in one batch" in caplog.text
    reports = [e for e in events if isinstance(e, JobProgress)]
    fractions = [r.fraction for r in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any(r.preview is not None and r.stage == "diffusion" for r in reports), "the picture forming is shown"
    t2i = tiny_pipeline.text_to_image
    check_variations(finished.result, lambda seed: alone(t2i, DrawRequest("a girl with blue hair", "blurry", seed)))


async def test_a_variations_job_can_be_cancelled_while_it_draws(tiny_pipeline):
    engine = LocalJobQueue(tiny_pipeline)
    await engine.start()
    try:
        handle = await engine.submit(variations("c1"))
        async with asyncio.timeout(120):
            async for event in handle.events():
                if isinstance(event, JobProgress) and event.stage == "diffusion":
                    assert await engine.cancel("c1")
                    break
            rest = [event async for event in handle.events()]
    finally:
        await engine.close()
    assert isinstance(rest[-1], JobCancelled)


@pytest.mark.slow  # a redis-server and a worker process
async def test_a_redis_worker_draws_a_variations_job(batch_engine, worker_t2i):
    events = await drain(await batch_engine.submit(variations("rv1")))
    finished = events[-1]
    assert isinstance(finished, JobFinished), finished
    check_variations(finished.result, lambda seed: alone(worker_t2i, DrawRequest("a girl with blue hair", "blurry", seed)))
