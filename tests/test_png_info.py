"""How a picture was made, in its PNG: A1111's ``parameters`` infotext and our own chunk, written and read back."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from bot.cli import main
from engine.api import JobSpec
from engine.image.imageio import png_bytes
from engine.image.png_info import OWN_CHUNK, PARAMETERS_CHUNK, PictureParameters, parse, png_info, read
from engine.jobs.runner import run_job
from tests.support.images import assert_images_close
from tests.test_cli import engine_env  # noqa: F401  (a fixture)

DRAWN = PictureParameters(
    prompt="a girl, cherry blossoms: at night\nsecond line, with commas",
    negative="lowres, bad anatomy\nblurry",
    steps=25,
    scheduler="dpmpp",
    guidance=7.0,
    seed=4294967295,
    width=512,
    height=768,
    model="stablediffusionapi/anything-v5",
    lora="latent-consistency/lcm-lora-sdv1-5",
    lora_scale=1.0,
    style="paprika",
    transcript="樱花树下的女孩, 晚上: 下雨",
    language="zh",
)


def saved(image: Image.Image, parameters: PictureParameters) -> Image.Image:
    return Image.open(io.BytesIO(png_bytes(image, parameters)))


def test_a1111_infotext_layout() -> None:
    text = DRAWN.infotext()
    prompt, second, negative, blurry, line = text.split("\n")
    assert (prompt, second) == ("a girl, cherry blossoms: at night", "second line, with commas")
    assert (negative, blurry) == ("Negative prompt: lowres, bad anatomy", "blurry")
    assert line == (
        "Steps: 25, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.0, Seed: 4294967295, Size: 512x768, "
        'Model: stablediffusionapi/anything-v5, Lora: latent-consistency/lcm-lora-sdv1-5, Lora weight: 1.0, Style: paprika'
    )


def test_round_trip_through_a_png_keeps_chinese_commas_and_newlines() -> None:
    image = saved(Image.new("RGB", (8, 8)), DRAWN)
    assert read(image) == DRAWN
    assert image.info[OWN_CHUNK] == '{"transcript": "樱花树下的女孩, 晚上: 下雨", "language": "zh"}'


@pytest.mark.parametrize("scheduler", ["dpmpp", "euler_a", "lcm", "turbo", "hyper"])
def test_every_scheduler_round_trips(scheduler: str) -> None:
    parameters = PictureParameters(prompt="a cat", steps=4, scheduler=scheduler, guidance=1.0, seed=1, width=64, height=64)
    parsed = parse(parameters.infotext())
    assert parsed.scheduler == scheduler and parsed.sampler is None  # the A1111 name is kept only when it is none of ours


def test_values_with_commas_are_quoted_as_a1111_does() -> None:
    parameters = PictureParameters(prompt="x", seed=1, steps=1, model="C:\\models\\a, b.safetensors", style="paprika")
    assert 'Model: "C:\\\\models\\\\a, b.safetensors"' in parameters.infotext()
    assert parse(parameters.infotext()).model == "C:\\models\\a, b.safetensors"


def test_an_upscaled_picture_says_so_in_a1111_keys() -> None:
    text = DRAWN.upscaled(4, "realesr-animevideov3").infotext()
    assert text.endswith("Style: paprika, Postprocess upscale by: 4, Postprocess upscaler: realesr-animevideov3")
    assert parse(text).upscale == 4


def test_reads_an_infotext_written_by_a1111() -> None:
    text = (
        "masterpiece, 1girl\nNegative prompt: worst quality\n"
        "Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 123, Size: 512x512, Model hash: abc, Model: anything, "
        'Lora hashes: "x: 1234", Version: v1.6.0'
    )
    parsed = parse(text)
    assert (parsed.prompt, parsed.negative) == ("masterpiece, 1girl", "worst quality")
    assert (parsed.scheduler, parsed.steps, parsed.guidance, parsed.seed) == ("dpmpp", 20, 7.0, 123)
    assert (parsed.width, parsed.height, parsed.model) == (512, 512, "anything")
    theirs = parse(text.replace("DPM++ 2M Karras", "DPM++ SDE"))
    assert (theirs.scheduler, theirs.sampler) == (None, "DPM++ SDE")


def test_a_png_without_parameters_reads_as_none() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="PNG")
    assert read(Image.open(buffer)) is None
    assert read(b"not a picture") is None


def test_ours_only_ignores_a_picture_another_tool_wrote() -> None:
    info = png_info(DRAWN)
    foreign = PictureParameters(prompt="a dog", seed=1, steps=1)
    buffer = io.BytesIO()
    from PIL import PngImagePlugin

    theirs = PngImagePlugin.PngInfo()
    theirs.add_text(PARAMETERS_CHUNK, foreign.infotext())
    Image.new("RGB", (4, 4)).save(buffer, format="PNG", pnginfo=theirs)
    assert read(buffer.getvalue()) == foreign
    assert read(buffer.getvalue(), ours_only=True) is None
    assert info.chunks  # ours carries both chunks


class _Pipeline:
    """A stand-in that reports parameters the way AnimePipeline does."""

    previews = False
    image_check = None
    draws_batches = False

    def __init__(self) -> None:
        from engine.image.pipeline import AnimeResult

        self.result = AnimeResult(
            anime_image=Image.new("RGB", (8, 8), "red"),
            base_image=Image.new("RGB", (8, 8), "blue"),
            style="paprika",
            seed=5,
            model="m",
            timings=(),
            parameters=PictureParameters(prompt="a cat", steps=2, scheduler="lcm", guidance=1.0, seed=5, width=8, height=8,
                                         model="m", style="paprika"),
        )

    def from_prompt(self, *args, **kwargs):
        return self.result

    def from_photo(self, *args, **kwargs):
        from dataclasses import replace

        return replace(self.result, style="hayao", parameters=PictureParameters(width=8, height=8, style="hayao"))


def test_a_job_writes_its_parameters_and_transcript_into_both_pngs() -> None:
    pipeline = _Pipeline()
    spec = JobSpec("j", "u", "text", "paprika", positive="a cat", seed=5, transcript="一只猫", language="zh")
    result = run_job(pipeline, spec, lambda _: None, lambda: False)  # type: ignore[arg-type]
    anime = read(result.anime_png)
    assert anime is not None and anime.prompt == "a cat" and anime.style == "paprika" and anime.seed == 5
    assert (anime.transcript, anime.language) == ("一只猫", "zh")
    base = read(result.base_png or b"")
    assert base is not None and base.style is None and base.transcript == "一只猫"

    restyle = JobSpec("k", "u", "restyle", "hayao", source_png=result.base_png, policy="off")
    restyled = read(run_job(pipeline, restyle, lambda _: None, lambda: False).anime_png)  # type: ignore[arg-type]
    assert restyled is not None and restyled.style == "hayao" and restyled.prompt == "a cat" and restyled.seed == 5

    photo = JobSpec("p", "u", "photo", "hayao", source_png=png_bytes(Image.new("RGB", (8, 8))), policy="off")
    made = read(run_job(pipeline, photo, lambda _: None, lambda: False).anime_png)  # type: ignore[arg-type]
    assert made == PictureParameters(width=8, height=8, style="hayao")


def test_generate_from_a_picture_draws_it_again(engine_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    first = tmp_path / "first.png"
    assert main(["generate", "--text", "一只猫在海边", "--style", "paprika", "--seed", "11", "-o", str(first)]) == 0
    made = read(Image.open(first))
    assert made is not None and made.drawn and (made.style, made.seed, made.steps) == ("paprika", 11, 2)
    assert (made.transcript, made.language, made.width) == ("一只猫在海边", "zh", 64)

    again = tmp_path / "again.png"
    assert main(["generate", "--from", str(first), "-o", str(again)]) == 0
    assert read(Image.open(again)) == made
    assert_images_close(Image.open(first), Image.open(again))
    capsys.readouterr()


def test_generate_from_a_picture_without_parameters_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    assert main(["generate", "--from", str(plain), "-o", str(tmp_path / "x.png")]) == 2
    assert capsys.readouterr().err == f"error: --from {plain}: this picture carries no drawing parameters (no 'parameters' text in the PNG)\n"


def test_generate_from_a_picture_keeps_the_content_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    refused = tmp_path / "refused.png"
    Image.new("RGB", (8, 8)).save(refused, pnginfo=png_info(PictureParameters(prompt="a nude girl", seed=1, steps=2, scheduler="lcm")))
    assert main(["generate", "--from", str(refused), "-o", str(tmp_path / "x.png")]) == 2
    assert "does not allow" in capsys.readouterr().err
