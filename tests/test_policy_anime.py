"""Drawn pictures are judged by their anime rating (the WD tagger v3), a user's picture by that and NudeNet.

The tagger is a stand-in of the real one's signature (``tests/support/onnx_tagger.py``,
ratings known in closed form from the picture's mean colour); NudeNet is the
real one from the ``nudenet`` wheel. Through the job runner, the conversation
and ``voice2anime generate``, as a user sees it; the tagger's preprocessing and
its download rules on their own.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from bot.cli import main
from engine.api import JobFailed, JobFinished, JobSpec
from engine.errors import ImageCheckUnavailableError
from engine.image.pipeline import AnimeResult
from engine.jobs.local import LocalJobQueue
from engine.jobs.runner import run_job_event
from engine.policy.image_check import (
    PHOTO_THRESHOLDS,
    PINNED_TAGGERS,
    AnimeRatingCheck,
    ContentCheck,
    PinnedTagger,
    TaggerSource,
    tagger_input,
    tagger_source,
)
from engine.policy.levels import Level
from engine.policy.photo_check import DEFAULT_THRESHOLDS, ImageCheck, nudenet_model, resolve_model
from engine.policy.text import ChatPolicy
from handlers.actions import Action
from tests.support.conversation import button
from tests.support.onnx_tagger import SIDE, expected_ratings, write_tagger

RED, GREEN, BLUE, MAGENTA, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 0, 255), (255, 255, 255)
#: explicit = sigmoid(20 * 148/255 - 12) = 0.40: at least questionable for strict (0.35), not for standard (0.5).
DIM_RED = (148, 0, 0)
SKIN = (255, 224, 196)

needs_nudenet = pytest.mark.skipif(nudenet_model() is None, reason="the nudenet wheel (its 320n.onnx detector) is not installed")


def picture(colour: tuple[int, int, int], size: tuple[int, int] = (64, 64)) -> Image.Image:
    return Image.new("RGB", size, colour)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def cartoon_face(size: int = 256) -> Image.Image:
    """The picture of the report: a flat skin-coloured oval with two dots (NudeNet: exposed buttocks 0.76 at 256 px)."""
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    draw.ellipse([0.05 * size, 0.05 * size, 0.95 * size, 0.95 * size], fill=SKIN)
    r = 0.04 * size
    for x in (0.4, 0.6):
        draw.ellipse([x * size - r, 0.5 * size - r, x * size + r, 0.5 * size + r], fill="black")
    return image


@pytest.fixture(scope="module")
def tagger(tagger_dir: Path) -> AnimeRatingCheck:
    return AnimeRatingCheck(tagger_source(tagger_dir, Path("unused")))


@pytest.fixture(scope="module")
def content_check(tagger: AnimeRatingCheck) -> ContentCheck:
    """What the bot builds from its default settings: the tagger for drawings, NudeNet at the photo thresholds too."""
    return ContentCheck(tagger, ImageCheck(resolve_model(None), thresholds=PHOTO_THRESHOLDS))


# --- what the tagger is given ---------------------------------------------------------------------


def test_a_picture_goes_in_padded_to_a_white_square_as_bgr_0_to_255() -> None:
    wide = tagger_input(picture(RED, (448, 224)))
    assert wide.shape == (1, 448, 448, 3) and wide.dtype == np.float32
    assert wide[0, 224, 0].tolist() == wide[0, 224, 447].tolist() == [0.0, 0.0, 255.0]  # red, in B, G, R order
    assert wide[0, 0, 224].tolist() == wide[0, 447, 224].tolist() == [255.0, 255.0, 255.0]  # white above and below
    assert (wide[0, :112] == 255).all() and (wide[0, 112:336, :, 2] == 255).all() and (wide[0, 336:] == 255).all()

    tall = tagger_input(picture(BLUE, (20, 40)), side=8)  # centred, then resized to the model's side
    assert tall.shape == (1, 8, 8, 3)
    assert tall[0, 4, 0].tolist() == [255.0, 255.0, 255.0] and tall[0, 4, 4].tolist() == [255.0, 0.0, 0.0]

    clear = Image.new("RGBA", (16, 16), (255, 0, 0, 0))  # transparency is white, not black or the hidden colour
    assert (tagger_input(clear, side=16) == 255).all()


def test_the_ratings_are_the_models_for_what_it_is_given(tagger: AnimeRatingCheck) -> None:
    assert tagger.ratings(picture(RED)) == pytest.approx(expected_ratings(RED), abs=1e-4)
    assert tagger.ratings(picture(GREEN)) == pytest.approx(expected_ratings(GREEN), abs=1e-4)
    # Half red, half the white padding: what the model saw was that mix.
    assert tagger.ratings(picture(RED, (SIDE, SIDE // 2))) == pytest.approx(expected_ratings((255, 127.5, 127.5)), abs=1e-4)


def test_each_level_has_its_own_thresholds(tagger: AnimeRatingCheck) -> None:
    dim = tagger.check(picture(DIM_RED), "strict")
    assert not dim.allowed and dim.reasons == ("image: rating:explicit 0.40",)
    assert tagger.check(picture(DIM_RED), "standard") == tagger.check(picture(GREEN), "standard")  # allowed, no spoiler

    blue = tagger.check(picture(BLUE), "standard")
    assert blue.allowed and blue.spoiler and blue.reasons == ("image: rating:questionable 1.00",)
    assert not tagger.check(picture(RED), "strict").allowed

    magenta = tagger.check(picture(MAGENTA), "strict")  # surely "sensitive": suggestive, refused at strict only
    assert not magenta.allowed and magenta.reasons == ("image: rating:sensitive 1.00",)
    standard = tagger.check(picture(MAGENTA), "standard")
    assert standard.allowed and not standard.spoiler
    assert tagger.check(picture(RED), "off").allowed and not tagger.check(picture(RED), "off").spoiler


# --- where the tagger comes from ------------------------------------------------------------------


def test_a_local_directory_needs_both_files(tmp_path: Path) -> None:
    write_tagger(tmp_path / "tagger")
    assert tagger_source(tmp_path / "tagger", tmp_path).local == tmp_path / "tagger"
    (tmp_path / "tagger" / "selected_tags.csv").unlink()
    with pytest.raises(ImageCheckUnavailableError, match="selected_tags.csv missing there"):
        tagger_source(tmp_path / "tagger", tmp_path)
    with pytest.raises(ImageCheckUnavailableError, match="POLICY_ANIME_MODEL=someone/else: no such directory"):
        tagger_source("someone/else", tmp_path)  # an unpinned hub id is never downloaded


def test_offline_the_pinned_model_says_what_to_put_where(tmp_path: Path) -> None:
    source = tagger_source("SmilingWolf/wd-vit-tagger-v3", tmp_path)
    assert source.pinned is PINNED_TAGGERS["SmilingWolf/wd-vit-tagger-v3"]
    with pytest.raises(ImageCheckUnavailableError) as error:
        AnimeRatingCheck(source).load()  # HF_HUB_OFFLINE=1 in the tests
    assert error.value.model == "image_check"
    assert str(error.value).startswith(
        "cannot download SmilingWolf/wd-vit-tagger-v3 for the anime image check: on a machine with internet run "
        "`hf download SmilingWolf/wd-vit-tagger-v3 model.onnx selected_tags.csv --revision 7f6b584d0bd3f55c4531f14ba3d4761b2bccdc0f "
        f"--local-dir {tmp_path / 'wd-vit-tagger-v3'}` (379 MB), put {tmp_path / 'wd-vit-tagger-v3'} here "
        "and set POLICY_ANIME_MODEL to it (or POLICY_IMAGE_CHECK=false: pictures unchecked); "
    )


def hub_cache(models_dir: Path, pinned: PinnedTagger, files: Path) -> None:
    """Lay ``files`` out as huggingface_hub's cache in ``models_dir`` has a downloaded revision."""
    snapshot = models_dir / f"models--{pinned.repo_id.replace('/', '--')}" / "snapshots" / pinned.revision
    snapshot.mkdir(parents=True)
    for name in ("model.onnx", "selected_tags.csv"):
        (snapshot / name).write_bytes((files / name).read_bytes())


def test_a_downloaded_model_is_used_only_with_its_pinned_hashes(tmp_path: Path, tagger_dir: Path) -> None:
    import hashlib

    digest = {name: hashlib.sha256((tagger_dir / name).read_bytes()).hexdigest() for name in ("model.onnx", "selected_tags.csv")}
    pinned = PinnedTagger("voice2anime/tagger", "0" * 40, digest["model.onnx"], digest["selected_tags.csv"], 1)
    hub_cache(tmp_path / "good", pinned, tagger_dir)
    check = AnimeRatingCheck(TaggerSource(pinned=pinned, models_dir=tmp_path / "good"))
    assert check.ratings(picture(RED)) == pytest.approx(expected_ratings(RED), abs=1e-4)

    tampered = PinnedTagger("voice2anime/tagger", "0" * 40, "f" * 64, digest["selected_tags.csv"], 1)
    hub_cache(tmp_path / "bad", tampered, tagger_dir)
    with pytest.raises(ImageCheckUnavailableError, match=f"has sha256 {digest['model.onnx']}, expected f{{64}}: not used"):
        AnimeRatingCheck(TaggerSource(pinned=tampered, models_dir=tmp_path / "bad")).load()


# --- in the job runner ------------------------------------------------------------------------------


@dataclass
class PicturePipeline:
    """A pipeline that "draws" a given picture and "styles" it unchanged; it restyles a photo likewise."""

    image_check: Any
    drawing: Image.Image
    previews = False
    draws_batches = False

    def from_prompt(self, positive, negative, *, style, seed, progress, cancelled) -> AnimeResult:
        return AnimeResult(self.drawing, self.drawing, style or "s", seed, "m", ())

    def from_photo(self, photo, *, style, progress, cancelled) -> AnimeResult:
        image = Image.open(io.BytesIO(photo)).convert("RGB")
        return AnimeResult(image, photo, style or "s", None, None, ())


@needs_nudenet
def test_the_cartoon_face_is_drawn_and_delivered_at_strict(content_check: ContentCheck) -> None:
    nudenet = ImageCheck(resolve_model(None)).scores(cartoon_face())
    assert nudenet["BUTTOCKS_EXPOSED"] > DEFAULT_THRESHOLDS["BUTTOCKS_EXPOSED"]  # what refused it before
    event = run_job_event(PicturePipeline(content_check, cartoon_face()), text_job(), lambda r: None, lambda: False)
    assert isinstance(event, JobFinished) and event.result.flagged == ()


@needs_nudenet
def test_a_users_picture_goes_through_both_checks(content_check: ContentCheck, caplog: pytest.LogCaptureFixture) -> None:
    pipeline = PicturePipeline(content_check, cartoon_face())
    face = JobSpec("p1", "u1", "photo", "s", source_png=png(cartoon_face()))
    assert isinstance(run_job_event(pipeline, face, lambda r: None, lambda: False), JobFinished)
    with caplog.at_level(logging.WARNING, logger="engine.jobs.runner"):
        red = run_job_event(pipeline, JobSpec("p2", "u1", "photo", "s", source_png=png(picture(RED))), lambda r: None, lambda: False)
    assert isinstance(red, JobFailed) and red.error_key == "policy.photo_flagged"
    assert "job p2: the image check flagged the photo (rating:explicit 1.00) at the strict content policy" in caplog.text


def text_job(policy: str = "strict") -> JobSpec:
    return JobSpec("job1", "u1", "text", "s", positive="a smiling face", policy=policy)  # type: ignore[arg-type]


# --- in the conversation ----------------------------------------------------------------------------


@pytest.fixture
async def engine_drawing(content_check: ContentCheck) -> Any:
    """A started LocalJobQueue whose pipeline draws ``engine.image.pipeline.drawing`` (the cartoon face unless changed)."""
    engine = LocalJobQueue(PicturePipeline(content_check, cartoon_face()))
    await engine.start()
    yield engine
    await engine.close()


async def draw(h: Any, user: str, text: str) -> None:
    await h.command(user, "anime", text)
    _, card = h.messenger.last("card")
    await h.press(user, button(card, Action.CONFIRM))
    await h.settle()


@needs_nudenet
async def test_in_the_chat_the_face_arrives_and_a_flagged_drawing_is_refused_neutrally(sqlite_url, make_harness, engine_drawing) -> None:
    h = await make_harness(sqlite_url, engine_drawing)
    await draw(h, "amy", "a smiling face")
    assert len(h.messenger.images("amy")) == 1 and not h.messenger.images("amy")[0].reply.spoiler

    engine_drawing.pipeline.drawing = picture(RED)
    await draw(h, "amy", "a red square")
    assert len(h.messenger.images("amy")) == 1
    assert h.messenger.calls[-1].reply.text == (
        "🚫 I can't use that picture here: the automatic picture check held it back. "
        "Drawing it again or another description may work."
    )


@needs_nudenet
async def test_in_a_standard_chat_a_questionable_drawing_comes_behind_a_spoiler(sqlite_url, make_harness, engine_drawing) -> None:
    h = await make_harness(sqlite_url, engine_drawing, policy=ChatPolicy(level=Level.STANDARD))
    engine_drawing.pipeline.drawing = picture(BLUE)
    await draw(h, "amy", "a blue square")
    (sent,) = h.messenger.images("amy")
    assert sent.reply.spoiler and sent.reply.text.startswith("⚠️ The content check flagged this picture")


@needs_nudenet
async def test_in_the_chat_a_users_picture_is_refused_in_neutral_words(sqlite_url, make_harness, engine_drawing) -> None:
    h = await make_harness(sqlite_url, engine_drawing)
    h.locales["li"] = "zh-CN"
    await h.photo("amy", png(cartoon_face()))
    await h.settle()
    assert len(h.messenger.images("amy")) == 1
    await h.photo("li", png(picture(RED)))
    await h.settle()
    assert h.messenger.images("li") == []
    assert h.messenger.calls[-1].reply.text == "🚫 这张图不能在这里使用：自动图片检查没有放行。可以换一张发给我。"


# --- voice2anime generate ---------------------------------------------------------------------------


@pytest.fixture
def generate_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, animegan_checkpoints_dir: Path) -> None:
    """Settings for restyling a photo: the test styles; the tagger stand-in (the session's POLICY_ANIME_MODEL)."""
    for name, value in {
        "SD_MODEL": str(tmp_path / "no-sd"),  # never loaded for a photo
        "CHECKPOINTS_DIR": str(animegan_checkpoints_dir),
        "ANIME_DOWNLOAD": "false",
        "TORCH_THREADS": "1",
        "MODELS_DIR": str(tmp_path / "models"),
    }.items():
        monkeypatch.setenv(name, value)


@needs_nudenet
def test_generate_restyles_the_face_and_refuses_a_flagged_picture(
    generate_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    face, red = tmp_path / "face.png", tmp_path / "red.png"
    cartoon_face().save(face)
    picture(RED, (128, 128)).save(red)
    assert main(["generate", "--photo", str(face), "-o", str(tmp_path / "out.png"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["image_policy"] == {"level": "strict", "allowed": True, "reasons": []}

    assert main(["generate", "--photo", str(red), "-o", str(tmp_path / "red-out.png")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: 🚫 I can't use that picture here: the automatic picture check held it back. You can send another one."
    assert not (tmp_path / "red-out.png").exists()


def test_generate_without_the_tagger_says_what_to_put_where(
    generate_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POLICY_ANIME_MODEL", "SmilingWolf/wd-vit-tagger-v3")
    monkeypatch.setenv("MODELS_DIR", "models")
    monkeypatch.chdir(tmp_path)
    picture(GREEN).save(tmp_path / "green.png")
    assert main(["generate", "--photo", str(tmp_path / "green.png"), "-o", str(tmp_path / "out.png")]) == 3
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: cannot download SmilingWolf/wd-vit-tagger-v3 for the anime image check: on a machine with ")
    assert "--local-dir models/wd-vit-tagger-v3` (379 MB), put models/wd-vit-tagger-v3 here and set POLICY_ANIME_MODEL to it" in line
    assert not (tmp_path / "out.png").exists()
