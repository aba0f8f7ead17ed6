"""🧍 Pose on a photo's card (the conversation harness, tiny models, DWPose stand-ins): the skeleton is drawn from.

What the user sees: Pose ticked and "Keeps: the pose" on the card, the picture
at the photo's proportions, Reroll keeping the pose; a photo with nobody in it
is answered with what to do instead; a missing detector keeps the card with Retry.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image

from db import RequestState
from engine.image.pose import PoseDetector
from handlers.actions import Action
from handlers.events import PhotoMessage, fetched
from handlers.i18n import t
from tests.support.conversation import button
from tests.support.tiny_pose import PHOTO
from tests.test_control_chat import engine_with, png_of
from tests.test_depth_chat import choice, depth_nets, keeps_line

S = RequestState


def photo_png() -> bytes:
    return png_of(Image.linear_gradient("L").convert("RGB").resize(PHOTO))


class CountingPose(PoseDetector):
    """The pose detector, counting the skeletons it draws."""

    made = 0

    def skeleton(self, picture: Image.Image, *, device: Any = "cpu") -> Image.Image:
        CountingPose.made += 1
        return super().skeleton(picture, device=device)


async def pose_engine(recognizer: Any, anime_pipeline: Any, controlnet: Path, detector: Path, tmp_path: Path) -> Any:
    nets = depth_nets(controlnet, str(tmp_path / "no-depth"), str(detector))
    nets.pose = CountingPose(str(detector))
    return await engine_with(recognizer, anime_pipeline, nets)


async def test_pose_chosen_on_the_card_is_drawn_and_kept_by_reroll(  # type: ignore[no-untyped-def]
    sqlite_url, recognizer, anime_pipeline, tiny_controlnet_dir, tiny_pose_dir, tmp_path, make_harness
):
    engine = await pose_engine(recognizer, anime_pipeline, tiny_controlnet_dir, tiny_pose_dir, tmp_path)
    try:
        h = await make_harness(sqlite_url, engine)
        await h.send(PhotoMessage(h.origin("alice"), fetched(photo_png()), "a dancer on a stage"))
        ref, card = h.messenger.last("card", "alice")
        await h.press("alice", button(card, Action.KEEPS, "pose"), ref)
        card = h.messenger.messages[ref]
        assert keeps_line("pose") in card.text
        assert choice(card) == ["✏️ Outline", "🏔 Depth", t("button.on", "en", label="🧍 Pose")]
        made = CountingPose.made
        await h.press("alice", button(card, Action.CONFIRM), ref)
        await h.settle()
        picture = h.messenger.images("alice")[-1].reply
        width, height = Image.open(io.BytesIO(picture.image_png)).size
        assert width > height  # the photo's landscape proportions
        assert CountingPose.made == made + 1
        await h.press("alice", button(picture, Action.REROLL))
        await h.settle()
        rerolled = await h.request(h.messenger.images("alice")[-1].reply.request_id)
        assert rerolled.state is S.DELIVERED and rerolled.control == "pose" and CountingPose.made == made + 2
    finally:
        await engine.close()


async def test_a_photo_without_a_person_says_what_to_do(  # type: ignore[no-untyped-def]
    sqlite_url, recognizer, anime_pipeline, tiny_controlnet_dir, empty_pose_dir, tmp_path, make_harness
):
    engine = await pose_engine(recognizer, anime_pipeline, tiny_controlnet_dir, empty_pose_dir, tmp_path)
    try:
        h = await make_harness(sqlite_url, engine)
        await h.send(PhotoMessage(h.origin("bob"), fetched(photo_png()), "a dancer"))
        ref, card = h.messenger.last("card", "bob")
        await h.press("bob", button(card, Action.KEEPS, "pose"), ref)
        mark = h.messenger.mark()
        await h.press("bob", button(h.messenger.messages[ref], Action.CONFIRM), ref)
        await h.settle()
        assert any(t("control.no_pose", "en") in c.shown for c in h.messenger.since(mark)), [c.shown for c in h.messenger.since(mark)]
        assert (await h.request(card.request_id)).state is S.FAILED
    finally:
        await engine.close()


async def test_a_missing_pose_detector_keeps_the_card_with_retry(  # type: ignore[no-untyped-def]
    sqlite_url, recognizer, anime_pipeline, tiny_controlnet_dir, tmp_path, make_harness
):
    engine = await pose_engine(recognizer, anime_pipeline, tiny_controlnet_dir, tmp_path / "no-pose", tmp_path)
    try:
        h = await make_harness(sqlite_url, engine)
        await h.send(PhotoMessage(h.origin("carol"), fetched(photo_png()), "a dancer"))
        ref, card = h.messenger.last("card", "carol")
        await h.press("carol", button(card, Action.KEEPS, "pose"), ref)
        await h.press("carol", button(h.messenger.messages[ref], Action.CONFIRM), ref)
        await h.settle()
        _, card = h.messenger.last("card", "carol")
        assert t("model.unavailable.control", "en") in card.text and button(card, Action.RETRY_MISSING)
        assert (await h.request(card.request_id)).state is S.AWAITING_CONFIRMATION
    finally:
        await engine.close()
