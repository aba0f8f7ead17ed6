"""The ``voice2anime`` command line: run, worker, migrate, transcribe, say, prompt, generate, styles.

Exit codes: 0 ok, 2 the input or a setting was rejected (the reason is
printed), 3 a model, checkpoint, device or service is unavailable (what to put
where, or what could not be reached, is printed). Either way the reason is one
whole line on stderr (:mod:`bot.startup_errors`); arguments are checked before
any model loads. 141 (as for SIGPIPE): the reader of stdout went away
(``voice2anime styles | head -1``); nothing more is written.

stderr carries this project's lines only — log records, the progress line on
a terminal, the error — unless ``-v`` asks for the libraries' own output too
(:mod:`bot.cli_output`).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import io
import json
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from bot import cli_output
from bot.redact import redacting
from bot.startup_errors import BadInputError, classify, database_location, reaching, settings_message, url_location
from engine.errors import ModelUnavailableError, UnknownStyleError, UserError
from engine.image.control import CONTROL_KINDS

if TYPE_CHECKING:
    from PIL import Image

    from bot.app import BotApp
    from bot.settings import Settings
    from engine.api import Prompt, Transcript
    from engine.image.pipeline import AnimePipeline, AnimeResult
    from engine.image.png_info import PictureParameters
    from engine.image.styles import CheckpointStore, Style
    from engine.policy.levels import Level, Verdict
    from engine.policy.text import ChatPolicy

# Heavier modules (settings, Pillow, numpy, sqlalchemy, the engine) are imported where they are used,
# so `--help` and `prompt` start in well under a second and never load torch.

log = logging.getLogger("voice2anime")

#: UI languages whose style names and descriptions ``voice2anime styles`` shows.
STYLE_LANGUAGES = ("en", "zh")
#: Seeds ``--seed`` accepts: the range the bot draws from (``handlers.conversation.lifecycle.new_seed``) and stores.
SEED_MAX = 2**32 - 1
#: File names ``say`` writes its OGG/Opus voice note as.
VOICE_EXTENSIONS = (".ogg", ".opus", ".oga")


def _print_json(payload: Any) -> None:
    print(json.dumps(payload, ensure_ascii=False, indent=2))


def _transcript_json(transcript: Transcript) -> dict[str, Any]:
    return dataclasses.asdict(transcript) | {"words": [dataclasses.asdict(w) for w in transcript.words]}


def _prompt_json(prompt: Prompt) -> dict[str, Any]:
    return dataclasses.asdict(prompt)


def _print_prompt(prompt: Prompt) -> None:
    parsed = prompt.parsed
    print(f"subject:    {parsed.subject}")
    print(f"attributes: {', '.join(parsed.attributes)}")
    print(f"action:     {parsed.action}")
    print(f"scene:      {', '.join(parsed.scene)}")
    print(f"prompt:     {prompt.positive}")
    print(f"negative:   {prompt.negative}")


def input_file(value: str, what: str) -> Path:
    """``value`` as the path of a readable regular file, else :class:`BadInputError` saying why."""
    path = Path(value)
    try:
        if not path.exists():
            raise BadInputError(f"{what} {value}: no such file")
        if path.is_dir():
            raise BadInputError(f"{what} {value}: is a directory, not a file")
        if not path.is_file():
            raise BadInputError(f"{what} {value}: not a regular file")
        with path.open("rb"):
            pass
    except OSError as exc:
        raise BadInputError(f"{what} {value}: cannot be read ({exc.strerror or exc})") from exc
    return path


def check_seed(seed: int | None) -> None:
    """``--seed`` must fit the 32-bit range every seed of the bot uses."""
    if seed is not None and not 0 <= seed <= SEED_MAX:
        raise BadInputError(f"--seed must be between 0 and {SEED_MAX} (2**32 - 1), got {seed}")


def check_output(path: Path, option: str) -> None:
    """Fail before anything is generated when ``path`` cannot be written as an image.

    Checks: not a directory, an extension Pillow can write RGB images as,
    a parent that is (or can be made) a writable directory, and an existing
    file that may be replaced. The parent directory is created here.
    """
    from PIL import Image

    if path.is_dir():
        raise BadInputError(f"{option} {path}: is a directory; give a file name such as {path / 'anime.png'}")
    Image.init()
    image_format = Image.registered_extensions().get(path.suffix.lower())
    try:
        if image_format is None or image_format not in Image.SAVE:
            raise ValueError(image_format)
        Image.new("RGB", (1, 1)).save(io.BytesIO(), format=image_format)
    except Exception:
        suffix = repr(path.suffix) if path.suffix else "none"
        raise BadInputError(
            f"{option} {path}: unknown image extension ({suffix}); use .png, .jpg or .webp"
        ) from None
    check_writable(path, option)


def check_writable(path: Path, option: str) -> None:
    """Fail unless ``path`` can be written: a parent that is (or can be made) a writable directory, not a read-only file."""
    parent = path.parent
    ancestor = parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise BadInputError(f"{option} {path}: {ancestor} is not a directory")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise BadInputError(f"{option} {path}: cannot write in {parent} ({exc.strerror or exc})") from exc
    if path.exists() and not os.access(path, os.W_OK):
        raise BadInputError(f"{option} {path}: the existing file is read-only")


def check_voice_output(path: Path, option: str) -> None:
    """Fail before anything is read aloud when ``path`` cannot be written as an OGG/Opus voice note."""
    if path.is_dir():
        raise BadInputError(f"{option} {path}: is a directory; give a file name such as {path / 'reply.ogg'}")
    if path.suffix.lower() not in VOICE_EXTENSIONS:
        suffix = repr(path.suffix) if path.suffix else "none"
        raise BadInputError(f"{option} {path}: a voice note is OGG/Opus; use .ogg or .opus (got {suffix})")
    check_writable(path, option)


def save_image(image: Image.Image, path: Path, option: str, parameters: PictureParameters | None = None) -> None:
    """Write ``image`` to ``path`` (a PNG carries ``parameters``); a failure (disk full, ...) is one line, not a traceback."""
    from PIL import Image

    from engine.image.png_info import png_info

    as_png = Image.registered_extensions().get(path.suffix.lower()) == "PNG"
    try:
        image.save(path, pnginfo=png_info(parameters) if as_png and parameters is not None else None)
    except OSError as exc:
        raise BadInputError(f"{option} {path}: cannot be written ({exc.strerror or exc})") from exc


def cmd_transcribe(args: argparse.Namespace, settings: Settings) -> int:
    """Transcribe an audio file and print the transcript."""
    audio = input_file(args.file, "audio file")
    from bot import factory  # torch & co. load only once the arguments are known to be good

    cli_output.status.show(f"listening to {audio.name}")  # on a terminal only
    transcript = factory.speech_recognizer(settings).transcribe(audio, language=args.language, script=args.script)
    cli_output.status.clear()
    if args.json:
        _print_json(_transcript_json(transcript))
    else:
        print(transcript.text)
        print(f"[language {transcript.language} p={transcript.language_probability:.2f}, {transcript.duration:.1f} s]")
        if transcript.translation and transcript.translation != transcript.text:
            print(f"[english] {transcript.translation}")
    return 0


def cmd_say(args: argparse.Namespace, settings: Settings) -> int:
    """Read a text aloud into an OGG/Opus voice note, as the bot's voice replies are."""
    from bot import factory
    from engine.speech.tts import guess_language, language_of

    text = args.text.strip()
    if not text:
        raise BadInputError("say: give a text to read aloud")
    try:
        language = language_of(args.language) if args.language else guess_language(text)
    except ValueError as exc:
        raise BadInputError(f"--language: {exc}") from None
    check_voice_output(args.output, "-o")
    cli_output.status.show("reading aloud")
    note = factory.narrator(settings).voice_note(text, language)
    cli_output.status.clear()
    try:
        args.output.write_bytes(note)
    except OSError as exc:
        raise BadInputError(f"-o {args.output}: cannot be written ({exc.strerror or exc})") from exc
    print(f"saved {args.output} ({language}, {len(note) // 1024} KB)")
    return 0


def cmd_prompt(args: argparse.Namespace, settings: Settings) -> int:
    """Turn a description into a Stable Diffusion prompt and print it, with the content policy's verdict at ``CONTENT_POLICY``."""
    from bot.factory import use_machine_translator
    from engine.language.prompt import build_prompt

    use_machine_translator(settings)
    prompt = build_prompt(args.text)
    verdict = _policy(settings).checker.check_prompt(prompt, settings.content_policy)
    if args.json:
        _print_json(_prompt_json(prompt) | {"policy": verdict.as_json()})
    else:
        _print_prompt(prompt)
        shown = "allowed" if verdict.allowed else "refused: " + "; ".join(verdict.reasons)
        print(f"policy:     {verdict.level.value}, {shown}")
    return 0


def _policy(settings: Settings) -> ChatPolicy:
    from bot.factory import chat_policy

    return chat_policy(settings)


def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    """Voice, text, photo or an earlier picture's parameters -> anime PNG (optionally upscaled, and the base image)."""
    # Every argument is checked before torch is even imported: a typo costs a second, not a model load.
    from engine.image.imageio import open_image
    from engine.image.styles import StyleRegistry
    from engine.language.prompt import build_prompt

    voice = input_file(args.voice, "--voice") if args.voice else None
    photo = input_file(args.photo, "--photo") if args.photo else None
    again = _drawn_before(input_file(args.again, "--from")) if args.again else None
    style = args.style or (again.style if again else None)
    seed = args.seed if args.seed is not None or again is None else again.seed
    check_seed(seed)
    check_output(args.output, "-o")
    if args.base_output:
        check_output(args.base_output, "--base-output")
    if args.variations is not None:
        _check_variations(args)
    _check_aspect(args)
    if style:  # an unknown style fails here, before any model loads (no torch needed to read the registry)
        StyleRegistry.for_directory(settings.checkpoints_dir).get(style)
    if again is not None:
        settings = _drawing_settings(settings, again, args.again)
    policy = _policy(settings)
    level = policy.level
    if photo is None and again is None:
        from bot.factory import use_machine_translator

        use_machine_translator(settings)
    if args.text is not None:  # a refused description costs no model load
        _check_description(policy, build_prompt(args.text))
    if again is not None:
        _check_drawn_prompt(policy, again)
    picture = None
    if photo is not None:  # pixel count checked from the header; big photos decoded at reduced scale
        picture = open_image(photo, max_pixels=settings.photo_max_pixels, max_side=settings.anime_max_side)
    kept = _control_picture(args, settings, _control_kind(args, again))  # (what it keeps, of which picture)
    from bot import factory

    upscaler = factory.upscaler(settings) if args.upscale else None
    if upscaler is not None:  # a missing upscaling model stops the command before minutes of drawing
        cli_output.status.show("loading the upscaling model")
        upscaler.load()
    pipeline = factory.anime_pipeline(settings)
    progress = cli_output.Progress(steps=pipeline.text_to_image.config.resolved_steps)  # on a terminal only
    transcript = None
    prompt: Prompt | None = None
    heard: tuple[str | None, str | None] = (None, None)  # the words asked for, and their language
    if picture is not None:
        result = pipeline.from_photo(picture, style=style, progress=progress)
    elif again is not None:
        heard = (again.transcript, again.language)
        cli_output.status.show("loading the drawing model")
        shape = _shape_size(args.aspect)  # --aspect: drawn again in another shape; else the picture's own size
        if args.variations is not None:
            return _variations(args, pipeline, again.prompt, again.negative, style, seed, heard, level, progress, shape)
        if kept is not None:  # at the picture's size, its control image fitted to it as it was; or cut to --aspect
            size, crop = (shape, True) if args.aspect else ((again.width, again.height), again.control_cropped)
            result = _draw_kept(pipeline, kept, again.prompt, again.negative, style, seed, level, progress, size, crop=crop)
        else:
            width, height = shape
            result = pipeline.from_prompt(again.prompt, again.negative, style=style, seed=seed, progress=progress, width=width, height=height)
    else:
        if voice is not None:
            cli_output.status.show(f"listening to {voice.name}")
            transcript = factory.speech_recognizer(settings).transcribe(voice, language=args.language)
            prompt = build_prompt(transcript.text, translation=transcript.translation, language=transcript.language)
            _check_description(policy, prompt)
        else:
            prompt = build_prompt(args.text)
        heard = (prompt.description, prompt.language)
        negative = policy.checker.with_negative(prompt.negative, level)
        cli_output.status.show("loading the drawing model")
        shape = _shape_size(args.aspect or prompt.aspect)  # --aspect, else a shape word in the description
        if args.variations is not None:
            return _variations(args, pipeline, prompt.positive, negative, style, seed, heard, level, progress, shape)
        if kept is not None:  # a shape asked for: the control image is cut to it; else the picture keeps its proportions
            result = _draw_kept(pipeline, kept, prompt.positive, negative, style, seed, level, progress, shape, crop=True)
        else:
            width, height = shape
            result = pipeline.from_prompt(
                prompt.positive, negative, style=style, seed=seed, progress=progress, width=width, height=height
            )
    if pipeline.image_check is not None:
        cli_output.status.show("checking the picture")
    image_verdict = _check_pictures(pipeline, result, level, drawn=photo is None)
    parameters = dataclasses.replace(result.parameters, transcript=heard[0], language=heard[1]) if result.parameters else None
    anime = result.anime_image
    if upscaler is not None:
        anime = upscaler.upscale(anime, args.upscale, progress=lambda _, done: cli_output.status.show(f"upscaling {done:.0%}"))
        parameters = parameters.upscaled(args.upscale, upscaler.name) if parameters else None
    cli_output.status.clear()
    save_image(anime, args.output, "-o", parameters)
    if args.base_output:
        save_image(result.base_image, args.base_output, "--base-output", _without_style(parameters))
    summary = {
        "output": str(args.output),
        "base_output": str(args.base_output) if args.base_output else None,
        "style": result.style,
        "seed": result.seed,
        "model": result.model,
        "upscale": args.upscale,
        "size": list(anime.size),
        "prompt": _prompt_json(prompt) if prompt else None,
        "transcript": transcript.text if transcript else None,
        "timings": dict(result.timings),
        "policy": policy.checker.check_prompt(prompt, level).as_json() if prompt else None,
        "image_policy": image_verdict.as_json() if image_verdict else None,
    }
    if args.json:
        _print_json(summary)
    else:
        seed_note = f", seed {result.seed}" if result.seed is not None else ""  # a photo is restyled, not drawn: no seed
        print(f"saved {args.output} (style {result.style}{seed_note}, {result.seconds:.1f} s)")
    return 0


def _control_kind(args: argparse.Namespace, again: PictureParameters | None) -> str | None:
    """What ``--control-image`` keeps: ``--control``, else the ControlNet a ``--from`` picture was drawn with.

    A picture drawn with a ControlNet cannot be drawn again without the
    picture whose composition it kept, which its PNG does not hold: it needs
    ``--control-image`` (:class:`BadInputError` saying so).
    """
    if again is None or not again.controlled:
        return args.control
    if args.control_image is None:
        what = f"the {again.control} ControlNet" if again.control else f"the ControlNet {again.control_model}"
        raise BadInputError(
            f"--from {args.again}: drawn keeping the composition of another picture ({what}), which the PNG does not hold: "
            "give that picture with --control-image to draw it again"
        )
    if args.control is None and again.control is None:
        raise BadInputError(
            f"--from {args.again}: drawn with the ControlNet {again.control_model}, which voice2anime does not have: "
            f"say which of ours keeps the composition with --control ({', '.join(CONTROL_KINDS)})"
        )
    return args.control or again.control


def _control_picture(args: argparse.Namespace, settings: Settings, control: str | None) -> tuple[str, Image.Image] | None:
    """``control`` and the picture whose composition it keeps (``--control-image``, read within the photo caps); None without."""
    from engine.image.imageio import open_image

    if (control is None) != (args.control_image is None):
        raise BadInputError("--control and --control-image go together: what to keep, and of which picture")
    if control is None:
        return None
    if args.text is None and args.voice is None and args.again is None:
        raise BadInputError("--control draws a description: give it with --text or --voice (or draw a picture again with --from)")
    if args.variations is not None:
        raise BadInputError("--control draws one picture: not with --variations")
    path = input_file(args.control_image, "--control-image")
    return control, open_image(path, max_pixels=settings.photo_max_pixels, max_side=settings.anime_max_side)


def _draw_kept(
    pipeline: AnimePipeline,
    kept: tuple[str, Image.Image],
    positive: str,
    negative: str,
    style: str | None,
    seed: int | None,
    level: Level,
    progress: Any,
    size: tuple[int | None, int | None],
    *,
    crop: bool,
) -> AnimeResult:
    """Draw keeping ``kept``'s composition (checked first, as a photo), at ``size`` (none: its proportions), ``crop``: cut to it."""
    control, composition = kept
    _check_control_picture(pipeline, composition, level)
    width, height = size
    return pipeline.from_control(
        positive, negative, control=control, control_png=composition, style=style, seed=seed, progress=progress,
        width=width, height=height, crop=crop,
    )


def _check_aspect(args: argparse.Namespace) -> None:
    """``--aspect`` shapes a drawing: a restyled photo keeps its own shape."""
    if args.aspect is not None and args.photo is not None:
        raise BadInputError("--aspect shapes a drawing (--text, --voice, --from): a restyled --photo keeps its own shape")


def _check_control_picture(pipeline: Any, picture: Any, level: Level) -> None:
    """The image check on the picture whose composition is kept, as on a photo a user sends (flagged: exit 2)."""
    from engine.policy.image_check import check_photo
    from engine.policy.levels import PhotoFlaggedError, checks_images

    if pipeline.image_check is None or not checks_images(level):
        return
    verdict = check_photo(pipeline.image_check)(picture, level)
    if not verdict.allowed:
        raise PhotoFlaggedError("; ".join(verdict.reasons))


def _shape_size(aspect: str | None) -> tuple[int | None, int | None]:
    """The picture size (width, height) of a shape (``square``, ``portrait``, ``landscape``); none: the settings' size."""
    from engine.language.aspect import aspects

    if aspect is None:
        return None, None
    shape = aspects()[aspect]
    return shape.width, shape.height


def _drawn_before(path: Path) -> PictureParameters:
    """The drawing parameters a picture carries (``--from``), or :class:`BadInputError` saying why there are none."""
    from PIL import Image

    from engine.image.png_info import SAMPLERS, read

    try:
        with Image.open(path) as image:
            parameters = read(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise BadInputError(f"--from {path}: not a picture voice2anime can read") from None
    if parameters is None:
        raise BadInputError(f"--from {path}: this picture carries no drawing parameters (no 'parameters' text in the PNG)")
    if not parameters.drawn:
        raise BadInputError(f"--from {path}: this picture was restyled from a photo, not drawn: there is nothing to draw again")
    if parameters.scheduler is None:
        ours = ", ".join(" ".join(filter(None, names)) for names in SAMPLERS.values())
        raise BadInputError(f"--from {path}: drawn with the sampler {parameters.sampler!r}, which voice2anime does not have ({ours})")
    return parameters


def _drawing_settings(settings: Settings, again: PictureParameters, source: str) -> Settings:
    """``settings`` drawing as ``again`` was drawn: its model, sampler, steps, guidance, size, LoRA and ControlNet weight."""
    from engine.image.diffusion import DiffusionConfig

    try:  # the values a picture carries are checked as the drawing model checks its settings
        config = DiffusionConfig(
            model=again.model or settings.sd_model,
            scheduler=again.scheduler or settings.sd_scheduler,
            steps=again.steps,
            guidance=again.guidance,
            width=again.width or settings.sd_width,
            height=again.height or settings.sd_height,
            lora=again.lora,
            lora_scale=again.lora_scale if again.lora_scale is not None else settings.sd_lora_scale,
        )
    except ValueError as error:
        raise BadInputError(f"--from {source}: {error}") from None
    drawing = {
        "sd_model": config.model,
        "sd_scheduler": config.scheduler,
        "sd_steps": config.steps,
        "sd_guidance": config.guidance,
        "sd_width": config.width,
        "sd_height": config.height,
        "sd_lora": config.lora,
        "sd_lora_scale": config.lora_scale,
        "sd_few_steps": "off",
    }
    if again.control_weight is not None:  # the strength its ControlNet kept the composition with
        if not 0 <= again.control_weight <= 2:
            raise BadInputError(f"--from {source}: a ControlNet weight of {again.control_weight} (0..2 here)")
        drawing["controlnet_scale"] = again.control_weight
    return settings.model_copy(update=drawing)


def _without_style(parameters: PictureParameters | None) -> PictureParameters | None:
    """The base image's parameters: the drawing's, before any style or upscale."""
    return dataclasses.replace(parameters, style=None, upscale=None, upscaler=None) if parameters else None


def _check_drawn_prompt(policy: ChatPolicy, parameters: PictureParameters) -> None:
    """Refuse (exit 2) drawing again a prompt the content policy (``CONTENT_POLICY``) does not allow."""
    from engine.policy.levels import PromptRefusedError

    verdict = policy.checker.check_text(parameters.transcript or "", policy.level, prompt=parameters.prompt)
    if not verdict.allowed:
        raise PromptRefusedError.of(verdict)


def _check_description(policy: ChatPolicy, prompt: Prompt) -> None:
    """Refuse (exit 2, the reasons on stderr) a description the content policy (``CONTENT_POLICY``) does not allow."""
    from engine.policy.levels import PromptRefusedError

    verdict = policy.checker.check_prompt(prompt, policy.level)
    if not verdict.allowed:
        raise PromptRefusedError.of(verdict)


def _check_variations(args: argparse.Namespace) -> None:
    """``--variations`` draws a description, and every picture it writes can be written."""
    from bot.cli_variations import MOST, outputs

    if not 2 <= args.variations <= MOST:
        raise BadInputError(f"--variations must be between 2 and {MOST}, got {args.variations}")
    if args.photo or args.upscale or args.base_output:
        raise BadInputError("--variations draws a description (--text, --voice, --from): not with --photo, --upscale or --base-output")
    for path in outputs(args.output, args.variations):
        check_output(path, "-o")


def _variations(
    args: argparse.Namespace,
    pipeline: Any,
    positive: str,
    negative: str,
    style: str | None,
    seed: int | None,
    heard: tuple[str | None, str | None],
    level: Level,
    progress: Any,
    shape: tuple[int | None, int | None],
) -> int:
    """``generate --variations N``: the grid to ``-o`` and each picture beside it (:mod:`bot.cli_variations`), ``shape`` (width,
    height; none: the drawing settings' size) each."""
    from bot import cli_variations

    asked = cli_variations.Asked(positive, negative, style, seed, heard[0], heard[1], *shape)
    result = cli_variations.draw(pipeline, asked, args.variations, level, progress)
    cli_output.status.clear()
    try:
        paths = cli_variations.write(result, args.output)
    except OSError as exc:
        raise BadInputError(f"-o {args.output}: cannot be written ({exc.strerror or exc})") from exc
    if args.json:
        _print_json(cli_variations.summary(result, args.output, paths))
    else:
        seeds = ", ".join(str(v.seed) for v in result.variations)
        print(f"saved {args.output} (a grid) and {', '.join(str(p) for p in paths)} (style {result.style}, seeds {seeds})")
    return 0


def _check_pictures(pipeline: Any, result: Any, level: Level, *, drawn: bool) -> Verdict | None:
    """The image check on what ``generate`` made (``strict``: a flagged picture is not written, exit 2); None without one."""
    from engine.policy.image_check import check_photo
    from engine.policy.levels import ImageFlaggedError, PhotoFlaggedError, checks_images, combine

    check = pipeline.image_check
    if check is None or not checks_images(level):
        return None
    base = check.check if drawn else check_photo(check)  # a photo is the user's picture; what the bot made is drawn
    verdict = combine((base(result.base_image, level), check.check(result.anime_image, level)), level)
    if not verdict.allowed:
        error = ImageFlaggedError if drawn else PhotoFlaggedError
        raise error("; ".join(verdict.reasons))
    if verdict.spoiler:
        log.warning("the image check flagged the picture (%s)", "; ".join(verdict.reasons))
    return verdict


def _style_json(style: Style, store: CheckpointStore, default: str | None) -> dict[str, Any]:
    path = store.path(style)
    try:
        sha256 = store.expected_sha256(style)
    except ModelUnavailableError:  # an unreadable pin: loading the style says what to do; listing goes on
        sha256 = None
    return {
        "id": style.name,
        "default": style.name == default,
        "names": {lang: style.display_name(lang) for lang in STYLE_LANGUAGES},
        "blurbs": {lang: style.blurb(lang) for lang in STYLE_LANGUAGES},
        "description": style.description,
        "format": style.format,
        "aliases": list(style.aliases),
        "file": str(path),
        "present": path.is_file(),
        "sha256": sha256,
        "url": style.url,
        "licence": style.licence,
    }


def cmd_styles(args: argparse.Namespace, settings: Settings) -> int:
    """List the AnimeGANv2 styles of the registry: display names, description, format, whether the weights are here."""
    from engine.image.styles import CheckpointStore, StyleRegistry

    registry = StyleRegistry.for_directory(settings.checkpoints_dir)
    store = CheckpointStore(settings.checkpoints_dir, download=settings.anime_download)
    try:
        default: str | None = registry.get(settings.anime_style).name
    except UnknownStyleError:
        default = None  # listing the styles is how an operator finds a valid ANIME_STYLE
    styles = [_style_json(style, store, default) for style in registry.styles]
    if args.json:
        where = {"registry": registry.source, "checkpoints_dir": str(settings.checkpoints_dir)}
        _print_json(where | {"default": default, "styles": styles})
        return 0
    print(f"styles from {registry.source}; weights in {settings.checkpoints_dir}")
    if default is None:
        print(f"ANIME_STYLE={settings.anime_style!r} is not one of them")
    for style in styles:
        names = " / ".join(dict.fromkeys(style["names"].values()))  # en / zh, once if they are the same
        print(f"{style['id']}{' (default)' if style['default'] else ''}: {names}")
        if style["present"]:
            weights = f"present ({style['file']})"
        elif style["url"] and settings.anime_download:
            weights = f"missing, downloaded on first use from {style['url']}"
        else:
            weights = f"missing: put the file at {style['file']}" + (f" (from {style['url']})" if style["url"] else "")
        print(f"    {style['format']}, weights {weights}")
        if style["description"]:
            print(f"    {style['description']}")
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """Start the chat bot (every platform with a token; the web studio when none is set) until Ctrl+C."""
    from bot import event_loop
    from bot.app import run
    from bot.web import WebAdapter

    def announce(app: BotApp) -> None:
        _log_models(app, settings)
        for adapter in app.adapters:
            if isinstance(adapter, WebAdapter):
                print(f"voice2anime studio: open {adapter.url} in a browser (Ctrl+C to stop)", flush=True)

    event_loop.run(run(settings, announce))  # unreachable database/Redis/platform, port taken: bot.startup_errors
    return 0


def _log_models(app: BotApp, settings: Settings) -> None:
    """Log which models the bot will use, which are here and which download on first use, with their sizes (no network)."""
    from bot import factory
    from engine.jobs import models_report
    from engine.jobs.local import LocalJobQueue

    try:
        # ENGINE=local: the queue factory.local_job_queue built, over an AnimePipeline
        pipeline = cast("AnimePipeline", app.jobs.pipeline) if isinstance(app.jobs, LocalJobQueue) else None
        voice = factory.tts_config(settings) if settings.voice_replies != "off" else None
        models = models_report.engine_models(factory.asr_config(settings), pipeline, voice)
        if settings.mt_model:
            from engine.language.translate import MachineTranslator

            archive = MachineTranslator(settings.mt_model, settings.models_dir).archive
            models.append(models_report.translation_model(settings.mt_model, archive))
    except Exception:  # the report is for the operator's information: the bot runs on without it
        log.warning("could not list the models", exc_info=True)
        return
    for line in models_report.report(models, drawn_elsewhere=settings.engine == "redis"):
        log.info("%s", line)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Run image jobs from Redis (ENGINE=redis bots) until SIGINT/SIGTERM; models load once, first."""
    from bot import event_loop, factory  # torch & co. load only when a command needs them
    from engine.jobs.worker import serve

    if args.pipeline:
        module, _, name = args.pipeline.partition(":")
        build = getattr(importlib.import_module(module), name)
    else:
        build = factory.loaded_pipeline
    pipeline = build(settings)
    with reaching(f"Redis at {url_location(settings.redis_url.get_secret_value())}", "REDIS_URL"):
        event_loop.run(serve(pipeline, factory.redis_config(settings), name=settings.worker_name))
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    """Bring the database schema up to date."""
    from db.migrate import upgrade

    url = settings.database_url
    with reaching(f"the database {database_location(url)}", "DATABASE_URL", verb="open" if url.startswith("sqlite") else "reach"):
        upgrade(url)
    print("database schema is up to date")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``voice2anime`` command."""
    parser = argparse.ArgumentParser(prog="voice2anime", description="Say it, get an anime picture.")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="debug logging, with the libraries' own warnings and progress bars"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("transcribe", help="transcribe a voice note / audio file")
    p.add_argument("file")
    p.add_argument("--language", help="force a language code (zh, en, yue, ...)")
    p.add_argument(
        "--script",
        choices=("zh-Hans", "zh-Hant"),
        help="write Chinese in Simplified (zh-Hans) or Traditional (zh-Hant) characters (default: as heard)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output (words carry unsure / corrected_from)")
    p.set_defaults(handler=cmd_transcribe)

    p = sub.add_parser("say", help="read a text aloud (en/zh/yue) into an OGG/Opus voice note")
    p.add_argument("text")
    p.add_argument(
        "--language",
        help="en, zh (= zh-Hans), zh-Hans, zh-Hant or yue (Mandarin unless TTS_MODEL_YUE is set); default: from the text",
    )
    p.add_argument("-o", "--output", type=Path, required=True, help="where to write the voice note (.ogg)")
    p.set_defaults(handler=cmd_say)

    p = sub.add_parser("prompt", help="turn a description (zh/en) into a Stable Diffusion prompt")
    p.add_argument("text")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_prompt)

    p = sub.add_parser("generate", help="voice note, text or photo -> anime PNG")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--voice", help="audio file to transcribe and draw")
    source.add_argument("--text", help="description to draw")
    source.add_argument("--photo", help="photo to restyle")
    source.add_argument(
        "--from",
        dest="again",
        metavar="PICTURE",
        help="draw a picture again from the parameters its PNG carries (prompt, negative, seed, sampler, steps, "
        "guidance, size, model, style, ControlNet; --style and --seed override them); a picture drawn keeping another "
        "picture's composition needs that picture too: --control-image",
    )
    p.add_argument("--style", help="AnimeGANv2 style id or alias (default: ANIME_STYLE; `voice2anime styles` lists them)")
    p.add_argument("--seed", type=int, help="seed for reproducible results")
    p.add_argument(
        "--aspect",
        choices=("square", "portrait", "landscape"),
        help="the picture's shape for --text/--voice/--from: 512x512, 512x768 (2:3) or 768x512 (3:2), each picture of "
        "--variations, the --control-image cut (centred) to it; default: a shape word in the description (landscape, portrait, "
        "横版, 竖版), else SD_WIDTH x SD_HEIGHT (--from: the picture's size; --control: the control image's proportions); "
        "not with --photo",
    )
    p.add_argument("--language", help="force the spoken language for --voice")
    p.add_argument("-o", "--output", type=Path, required=True, help="where to write the anime PNG")
    p.add_argument("--base-output", type=Path, help="also write the base (pre-style) image here")
    p.add_argument(
        "--upscale", type=int, choices=(2, 4), help="upscale the result 2 or 4 times with Real-ESRGAN (UPSCALE_MODEL)"
    )
    p.add_argument(
        "--variations",
        type=int,
        metavar="N",
        help="draw N pictures (e.g. 4) with consecutive seeds in one batch: the grid to -o, each as <name>-v1.png .. beside it",
    )
    p.add_argument(
        "--control",
        choices=CONTROL_KINDS,
        help="keep the composition of --control-image: lineart (its outline), canny (its edges), pose (an OpenPose "
        "skeleton picture, or a photo whose pose CONTROLNET_POSE_DETECTOR finds), scribble (a sketch's strokes), depth (its near and far: a depth map by "
        "CONTROLNET_DEPTH_ESTIMATOR); with --text, --voice or --from",
    )
    p.add_argument(
        "--control-image", type=Path, help="the picture whose composition --control (or the --from picture's ControlNet) keeps"
    )
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.set_defaults(handler=cmd_generate)

    p = sub.add_parser("styles", help="list the AnimeGANv2 styles: display names (en/zh), format, whether the weights are here")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_styles)

    p = sub.add_parser(
        "run",
        help="start the bot: the web studio on http://127.0.0.1:7860 with no token, Telegram/Discord with theirs",
        description="Start the bot until Ctrl+C/SIGTERM. With no platform token it serves the web studio (a page with "
        "a microphone) on http://WEB_HOST:WEB_PORT, 127.0.0.1:7860 by default, and prints that address; WEB_ENABLED=true "
        "serves it beside the bots too. TELEGRAM_BOT_TOKEN starts the Telegram adapter, DISCORD_BOT_TOKEN the Discord "
        "adapter; all of them run in one process. Requests are kept in DATABASE_URL (migrated at start); with "
        "ENGINE=redis, pictures are drawn by `voice2anime worker` processes reached through REDIS_URL.",
        epilog="Exit codes: 2 a setting is wrong (WEB_HOST off loopback without WEB_PASSWORD, a token the platform "
        "rejects, malformed DATABASE_URL, invalid value); 3 the database, Redis or a chat platform cannot be reached, "
        "the studio's port is taken, or a model/device is missing.",
    )
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("worker", help="run image jobs for ENGINE=redis bots (one process per GPU)")
    p.add_argument("--pipeline", metavar="MODULE:CALLABLE", help="build the pipeline with CALLABLE(settings) instead (tests, benchmarks)")
    p.set_defaults(handler=cmd_worker)

    p = sub.add_parser("migrate", help="create/upgrade the database schema (run also happens automatically at start)")
    p.set_defaults(handler=cmd_migrate)
    return parser


@redacting  # no token, password or webhook secret reaches stdout/stderr/logs, whatever the path
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``voice2anime`` console script."""
    args = build_parser().parse_args(argv)
    cli_output.quiet_libraries(verbose=args.verbose)  # before any library that reads these switches is imported
    from pydantic import ValidationError

    from bot.settings import Settings

    cli_output.setup_logging(verbose=args.verbose)
    try:
        settings = Settings()
    except ValidationError as error:
        print(f"error: {settings_message(error)}", file=sys.stderr)
        return 2
    with cli_output.watching_stdout() as stdout:
        try:
            code = args.handler(args, settings)
            sys.stdout.flush()  # a reader that went away shows here, not as a message at exit
            return code
        except Exception as error:
            cli_output.status.clear()
            if isinstance(error, BrokenPipeError) and stdout.reader_gone:
                return cli_output.reader_went_away()
            verdict = classify(error)
            if verdict is None:
                raise  # a bug: the traceback is the useful output
            if isinstance(error, UserError):
                log.debug("rejected input: %s (%s)", error.key, error.detail or "")
            code, message = verdict
            print(f"error: {cli_output.error_line(error, message)}", file=sys.stderr)
            return code
        finally:
            cli_output.status.clear()


if __name__ == "__main__":
    sys.exit(main())
