"""AnimePipeline: text -> base -> anime, photo -> anime, restyle without diffusion."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from engine.errors import Cancelled, UnknownStyleError
from engine.image.animegan import AnimeGAN
from engine.image.diffusion import DiffusionConfig, TextToImage
from engine.image.pipeline import AnimePipeline
from engine.language.prompt import build_prompt
from tests.support.images import assert_images_differ


class CountingTextToImage(TextToImage):
    """The real engine, counting how often diffusion runs."""

    calls = 0

    def generate(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        type(self).calls += 1
        return super().generate(*args, **kwargs)


@pytest.fixture
def pipeline(tiny_sd_dir: Path, animegan_checkpoints_dir: Path) -> AnimePipeline:
    CountingTextToImage.calls = 0
    text_to_image = CountingTextToImage(DiffusionConfig(model=str(tiny_sd_dir), width=64, height=64, steps=2))
    animegan = AnimeGAN(animegan_checkpoints_dir, backend="torch", download=False)
    return AnimePipeline(text_to_image, animegan, default_style="face_paint_512_v2")


def test_text_to_anime_reports_both_images_and_metadata(pipeline: AnimePipeline) -> None:
    stages: list[str] = []
    prompt = build_prompt("戴眼镜的男孩看书")
    result = pipeline.from_prompt(prompt.positive, prompt.negative, seed=3, progress=lambda stage, _: stages.append(stage))
    assert result.seed == 3 and result.style == "face_paint_512_v2" and result.model is not None
    assert result.base_image.size == result.anime_image.size == (64, 64)
    assert [name for name, _ in result.timings] == ["diffusion", "style"]
    assert stages[0] in ("loading", "diffusion") and stages[stages[0] == "loading"] == "diffusion" and "style" in stages


def test_restyle_reuses_the_base_image(pipeline: AnimePipeline) -> None:
    first = pipeline.from_prompt(build_prompt("a girl with blue hair").positive, seed=5)
    restyled = pipeline.restyle(first, "paprika")
    assert CountingTextToImage.calls == 1
    assert restyled.base_image is first.base_image
    assert (restyled.style, restyled.seed, restyled.model) == ("paprika", 5, first.model)
    assert_images_differ(restyled.anime_image, first.anime_image)
    assert [name for name, _ in restyled.timings] == ["style"]


def test_unknown_style_fails_before_diffusion(pipeline: AnimePipeline) -> None:
    with pytest.raises(UnknownStyleError):
        pipeline.from_prompt(build_prompt("a cat").positive, style="hayao-typo")
    assert CountingTextToImage.calls == 0


def test_photo_keeps_orientation_and_size(pipeline: AnimePipeline, tmp_path: Path) -> None:
    photo = Image.new("RGB", (40, 70), "teal")
    exif = photo.getexif()
    exif[0x0112] = 6  # rotated 90°: displayed as 70x40
    path = tmp_path / "rotated.jpg"
    photo.save(path, exif=exif)
    result = pipeline.from_photo(path, style="face_paint")
    assert result.anime_image.size == (70, 40)
    assert result.seed is None and result.model is None and CountingTextToImage.calls == 0


def test_cancel_during_diffusion(pipeline: AnimePipeline) -> None:
    with pytest.raises(Cancelled):
        pipeline.from_prompt(build_prompt("a dog").positive, seed=1, cancelled=lambda: True)
