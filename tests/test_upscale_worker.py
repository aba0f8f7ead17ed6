"""⬆️ Upscale through Redis: the conversation on a real redis-server and a real ``voice2anime worker`` process.

The worker runs the real pipeline on the tiny test models (64x64 pictures)
with ``UPSCALE_MODEL`` set to a local ``.pth`` path: a random-weight
Real-ESRGAN SRVGGNetCompact (the real architecture) that the test saves there
itself, so nothing is downloaded. Until it does, the worker has no model, and
the user gets the missing-model card with Retry.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from PIL import Image

from db import RequestKind, RequestState
from engine.jobs.distributed import RedisConfig, RedisJobQueue
from handlers.actions import Action
from handlers.i18n import t
from handlers.replies import Button
from tests.support.conversation import Harness, button
from tests.support.redis_server import RedisServer
from tests.support.workers import WorkerProcess, start_workers, tiny_pipeline_env, worker_env
from tests.test_upscale import random_compact

pytestmark = pytest.mark.slow  # a real Redis server and a worker process on the tiny models

PREFIX = "v2a-upscale"
TEXT = "a girl with blue hair under cherry blossoms at night"


@pytest.fixture(scope="module")
def upscale_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the worker's ``UPSCALE_MODEL`` points: nothing there until a test puts the file."""
    return tmp_path_factory.mktemp("upscale-model") / "compact.pth"


@pytest.fixture(scope="module")
def redis_for_upscale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis-upscale"))
    server.start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def upscaling_worker(
    redis_for_upscale: RedisServer, tiny_sd_dir: Path, animegan_checkpoints_dir: Path, upscale_model: Path, tmp_path_factory
) -> Iterator[WorkerProcess]:
    """One worker process with the real pipeline on the tiny models and ``UPSCALE_MODEL`` at :func:`upscale_model`."""
    log_dir = tmp_path_factory.mktemp("upscale-worker")
    pipeline = tiny_pipeline_env(
        tiny_sd_dir, animegan_checkpoints_dir, log_dir / "models", UPSCALE_MODEL=str(upscale_model), UPSCALE_TILE="32"
    )
    env = worker_env(redis_for_upscale.url, PREFIX, lease=5.0, **pipeline)
    (worker,) = start_workers(1, env, log_dir, pipeline=None)
    yield worker
    assert worker.stop() == 0, worker.log()[-3000:]


@pytest.fixture
async def engine(upscaling_worker: WorkerProcess, redis_for_upscale: RedisServer) -> AsyncIterator[RedisJobQueue]:
    engine = RedisJobQueue(RedisConfig(redis_for_upscale.url, prefix=PREFIX, lease=5.0))
    await engine.start()
    yield engine
    await engine.close()


def size(png: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(png)).size


async def delivered_picture(h: Harness, user: str):
    await h.command(user, "anime", TEXT)
    ref, card = h.messenger.last("card", user)
    await h.press(user, button(card, Action.CONFIRM), ref)
    await h.settle()
    return h.messenger.images(user)[-1].reply


async def test_a_missing_model_on_the_worker_has_retry_which_upscales_x2_and_x4_once_the_file_is_there(
    sqlite_url, engine, make_harness, upscale_model, upscaling_worker
):
    h = await make_harness(sqlite_url, engine)
    picture = await delivered_picture(h, "alice")
    assert size(picture.image_png) == (64, 64)

    await h.press("alice", Button("×2", Action.UPSCALE, picture.request_id, "2"))
    await h.settle()
    _, failed = h.messenger.last("error", "alice")
    assert failed.text == t("model.unavailable.upscale", "en") and str(upscale_model) in failed.fix
    retry = button(failed, Action.UPSCALE, "2")
    assert retry.label == t("button.retry_missing", "en") and retry.request_id == picture.request_id
    assert (await h.request(failed.request_id)).state is RequestState.FAILED

    random_compact(upscale_model)  # the operator put the file there
    mark = h.messenger.mark()
    await h.press("alice", retry)
    await h.settle()
    growing = t("progress.upscaling", "en", percent=0)
    shown = [c.reply.text for c in h.messenger.since(mark, "alice") if c.reply and c.reply.kind == "progress"]
    assert growing in shown, shown
    twice = h.messenger.images("alice")[-1].reply
    assert twice.as_file and size(twice.image_png) == (128, 128)
    assert twice.text == t("upscaled", "en", scale=2, width=128, height=128)

    await h.press("alice", Button("×4", Action.UPSCALE, picture.request_id, "4"))
    await h.settle()
    four_times = h.messenger.images("alice")[-1].reply
    assert four_times.as_file and size(four_times.image_png) == (256, 256)
    record = await h.request(four_times.request_id)
    assert (record.kind, record.state, record.upscale, record.parent_id) == (
        RequestKind.UPSCALE, RequestState.DELIVERED, 4, picture.request_id
    )
    told = [line for line in upscaling_worker.log().splitlines() if "upscale model is not available" in line]
    assert len(told) == 1 and str(upscale_model) in told[0], "one line for the operator, with the fix"
