"""An upscale job's own status: "⬆️ Making it bigger… n%" over its tiles, and Cancel between tiles.

The real conversation, repository and local engine on the tiny models (64x64
pictures) with a random-weight Real-ESRGAN SRVGGNetCompact cutting each
picture into four 32-pixel tiles, so the status goes 0 → 25 → 50 → 75 → 100%.
The studio gets the same status over its WebSocket (the page draws the bar from its percentage).
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image

from db import RequestState
from engine.image.upscale import UpscaleConfig, Upscaler
from handlers.actions import Action
from handlers.i18n import t
from handlers.replies import Button
from tests import test_web
from tests.support.conversation import Harness, button
from tests.support.web import browsers
from tests.test_upscale import random_compact

TEXT = "a fox spirit with a red umbrella in the rain"

studio = test_web.studio  # the studio's own fixture


@pytest.fixture
def upscaler(anime_pipeline, tmp_path: Path) -> Iterator[Upscaler]:
    """The session's pipeline with a random-weight upscaler of 32-pixel tiles, for this test only."""
    torch.set_num_threads(1)
    upscaler = Upscaler(UpscaleConfig(model=str(random_compact(tmp_path / "compact.pth")), device="cpu", tile=32))
    anime_pipeline.upscaler = upscaler
    yield upscaler
    anime_pipeline.upscaler = None


class SecondTileHeld:
    """Holds the upscaler's network as its second tile starts, until :meth:`release` (a forward pre-hook, removed on exit)."""

    def __init__(self, upscaler: Upscaler) -> None:
        self.network = upscaler.load()
        self.started = 0
        self.reached, self.go_on = threading.Event(), threading.Event()

    def __enter__(self) -> SecondTileHeld:
        self.hook = self.network.register_forward_pre_hook(self._tile)
        return self

    def __exit__(self, *_: object) -> None:
        self.release()
        self.hook.remove()

    def _tile(self, *_: object) -> None:  # on the model thread, as each tile starts
        self.started += 1
        if self.started == 2:
            self.reached.set()
            self.go_on.wait(30)

    async def wait(self) -> None:
        assert await asyncio.to_thread(self.reached.wait, 30), "the second tile never started"

    def release(self) -> None:
        self.go_on.set()


async def delivered_picture(h: Harness, user: str):
    await h.command(user, "anime", TEXT)
    ref, card = h.messenger.last("card", user)
    await h.press(user, button(card, Action.CONFIRM), ref)
    await h.settle()
    return h.messenger.images(user)[-1].reply


def statuses(h: Harness, mark: int, user: str) -> list[str]:
    return [c.reply.text for c in h.messenger.since(mark, user) if c.reply and c.reply.kind == "progress"]


async def test_the_status_says_it_is_making_the_picture_bigger_with_the_share_of_tiles_done(
    sqlite_url, local_engine, make_harness, upscaler
):
    h = await make_harness(sqlite_url, local_engine)
    picture = await delivered_picture(h, "alice")
    mark = h.messenger.mark()
    await h.press("alice", Button("×2", Action.UPSCALE, picture.request_id, "2"))
    await h.settle()

    shown = statuses(h, mark, "alice")
    growing = [t("progress.upscaling", "en", percent=p) for p in (0, 25, 50, 75, 100)]
    assert growing[1] == "⬆️ Making it bigger… 25%"
    assert [s for s in shown if s in growing] == growing, shown
    assert t("styling", "en") not in shown, "an upscale applies no style"
    upscaled = h.messenger.images("alice")[-1].reply
    assert Image.open(io.BytesIO(upscaled.image_png)).size == (128, 128)
    assert upscaled.text == t("upscaled", "en", scale=2, width=128, height=128)


async def test_cancel_while_it_grows_stops_between_tiles_and_says_cancelled(sqlite_url, local_engine, make_harness, upscaler):
    h = await make_harness(sqlite_url, local_engine)
    picture = await delivered_picture(h, "bob")
    with SecondTileHeld(upscaler) as held:
        mark = h.messenger.mark()
        await h.press("bob", Button("×4", Action.UPSCALE, picture.request_id, "4"))
        await held.wait()
        quarter = t("progress.upscaling", "en", percent=25)
        async with asyncio.timeout(30):
            while quarter not in statuses(h, mark, "bob"):
                await asyncio.sleep(0.01)
        ref, status = h.messenger.last("progress", "bob")
        assert status.text == quarter
        await h.press("bob", button(status, Action.CANCEL), ref)
        held.release()
        await h.settle()

    assert h.messenger.messages[ref].text == t("cancelled", "en")
    assert held.started == 2, "no tile after the cancel"
    assert len(h.messenger.images("bob")) == 1, "only the picture, nothing upscaled"
    record = await h.request(status.request_id)
    assert record.state is RequestState.CANCELLED


async def test_the_studio_shows_the_upscale_status_with_its_percentage(studio, upscaler) -> None:
    quarter = t("progress.upscaling", "en", percent=25)
    async with browsers(studio) as (alice,):
        card = await test_web.card_for(alice, TEXT)
        await alice.press(card, Action.CONFIRM)
        finished = await test_web.picture(alice)
        with SecondTileHeld(upscaler) as held:
            await alice.press(finished, Action.UPSCALE)
            picker = await alice.wait_message(lambda m: m["kind"] == "picker" and m["request_id"] == finished["request_id"])
            await alice.press(picker, Action.UPSCALE, "2")
            await held.wait()
            status = await alice.wait_message(lambda m: m["kind"] == "progress" and m["text"] == quarter)
            assert [b["label"] for row in status["buttons"] for b in row] == [t("button.cancel", "en")]
        upscaled = await alice.wait_message(lambda m: m["kind"] == "image" and m["text"].startswith("Upscaled"))
        assert upscaled["request_id"] == status["request_id"]
