"""Which models an engine will use, which of them are here and which download on first use, and about how big they are.

``voice2anime run`` logs this at start (:func:`report`), so an operator knows
before the first request what the first picture will fetch. Nothing here
touches the network or loads a model: local paths are looked at, and the
Hugging Face cache is read with ``huggingface_hub.try_to_load_from_cache``
(Whisper's with faster-whisper's ``download_model(local_files_only=True)``).

The models are read off the engine's own objects — the recogniser's
:class:`~engine.speech.asr.AsrConfig`, the voice replies'
:class:`~engine.speech.tts.TtsConfig`, the diffusion config, the style registry and
store, the picture check's sources — so the report names exactly what the
engine will load. Sizes come from :data:`APPROX_MB`, the one table of them
(a pinned WD tagger's from its own record, with its revision and hashes; a
catalogued voice's from the voice catalogue, with its licence).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from engine.hub import HUB_ID

if TYPE_CHECKING:
    from engine.image.pipeline import AnimePipeline
    from engine.speech.asr import AsrConfig
    from engine.speech.tts import TtsConfig

#: About how much each model weighs when downloaded (MB, from its Hugging Face repository or release file), by part and
#: by the name its setting gives it. A model missing here is reported without a size.
APPROX_MB: Mapping[str, Mapping[str, float]] = {
    # WHISPER_MODEL size names: faster-whisper's CTranslate2 conversions (model.bin, float16).
    "speech": {
        "tiny": 75, "tiny.en": 75, "base": 145, "base.en": 145, "small": 484, "small.en": 484,
        "medium": 1530, "medium.en": 1530, "large-v1": 3090, "large-v2": 3090, "large-v3": 3090, "large": 3090,
        "distil-large-v3": 1510, "large-v3-turbo": 1620, "turbo": 1620,
    },
    # SD_MODEL: the files diffusers fetches (fp32 safetensors: UNet 3.44 GB, text encoder 492 MB, VAE 335 MB, configs).
    "drawing": {"stablediffusionapi/anything-v5": 4300},
    # SD_FEW_STEPS / SD_LORA.
    "tiny decoder": {"madebyollin/taesd": 10},
    "lora": {"latent-consistency/lcm-lora-sdv1-5": 135, "ByteDance/Hyper-SD/Hyper-SD15-8steps-lora.safetensors": 257},
    # Every AnimeGANv2 style of the bundled registry (.pt state dicts and the Hayao/Shinkai ONNX exports alike).
    "style": {"AnimeGANv2": 8.6},
    # CONTROLNET_*: a ControlNet v1.1 for SD 1.5 in diffusers format (fp32 safetensors, 1.45 GB), fetched when first used.
    "composition": {"lllyasviel": 1445},
    # CONTROLNET_DEPTH_ESTIMATOR (model.safetensors, Apache-2.0) and CONTROLNET_POSE_DETECTOR (yolox_l + dw-ll_ucoco_384 ONNX).
    "detector": {"depth-anything/Depth-Anything-V2-Small-hf": 99, "yzd-v/DWPose": 351},
    # UPSCALE_MODEL: Real-ESRGAN's SRVGGNetCompact for anime (the release's .pth).
    "upscale": {"realesr-animevideov3": 2.4},
    # NudeNet's detector inside its wheel. (The WD taggers of POLICY_ANIME_MODEL carry their size in their pinned
    # records, engine.policy.image_check.PINNED_TAGGERS, with their revision and hashes.)
    "picture check": {"NudeNet 320n": 12},
}

#: The weights file a diffusers-format LoRA repository holds (what ``load_lora_weights`` looks for first).
LORA_WEIGHTS = "pytorch_lora_weights.safetensors"

State = Literal["here", "download", "missing"]


@dataclass(frozen=True)
class Model:
    """One model the engine loads: which ``part`` it is for, its ``name``, whether it is here, and where.

    ``where`` is the file or directory when it is here, the directory it
    downloads into when it is not, or what to do when it is missing and
    cannot be downloaded. ``megabytes`` is its approximate size (None:
    unknown); ``count`` says how many files of the kind this line stands for
    (the styles); ``licence`` is said beside the size when it is known.
    """

    part: str
    name: str
    state: State
    where: str
    megabytes: float | None = None
    count: int = 1
    licence: str | None = None
    #: Fetched only when a user first asks for what it does (a photo's composition, an upscale), not for a first picture.
    on_demand: bool = False


def size_text(megabytes: float) -> str:
    """``484 MB``, ``8.6 MB``, ``4.3 GB``."""
    if megabytes >= 1000:
        return f"{megabytes / 1000:.1f} GB"
    return f"{megabytes:g} MB" if megabytes < 100 else f"{megabytes:.0f} MB"


def _approx(part: str, name: str) -> float | None:
    return APPROX_MB.get(part, {}).get(name)


def _cached(repo_id: str, filename: str, cache_dir: Path | str | None, revision: str | None = None) -> str | None:
    """The cached file's path when ``filename`` of ``repo_id`` is in the hub cache, else None (no network)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename, cache_dir=None if cache_dir is None else str(cache_dir), revision=revision)
    return found if isinstance(found, str) else None


def _cache_name(cache_dir: Path | str | None) -> str:
    return str(cache_dir) if cache_dir is not None else "the Hugging Face cache"


# ----- each part --------------------------------------------------------------------------------


def speech_model(config: Any) -> Model:
    """Whisper (an :class:`~engine.speech.asr.AsrConfig`): a local CTranslate2 directory or a size name / hub id in ``download_root``."""
    name, root = str(config.model), config.download_root
    local = Path(name).expanduser()
    if local.is_dir() or name.startswith((".", "/", "~")):
        if (local / "model.bin").is_file():
            return Model("speech", f"Whisper {name}", "here", str(local))
        return Model("speech", f"Whisper {name}", "missing", f"no CTranslate2 Whisper model (model.bin) in {local}")
    from faster_whisper import download_model

    size = _approx("speech", name)
    try:
        path = download_model(name, local_files_only=True, cache_dir=None if root is None else str(root))
    except ValueError:
        return Model("speech", f"Whisper {name}", "missing", "not a Whisper model name (WHISPER_MODEL)")
    except Exception:  # not in the cache: faster-whisper downloads it on first use
        return Model("speech", f"Whisper {name}", "download", _cache_name(root), size)
    return Model("speech", f"Whisper {name}", "here", str(path), size)


def drawing_models(config: Any) -> list[Model]:
    """Stable Diffusion and its LoRA (a :class:`~engine.image.diffusion.DiffusionConfig`), told apart as the loader does."""
    from engine.image.device import resolve_device
    from engine.image.diffusion import _is_single_file, _looks_like_path
    from engine.image.tiny_vae import uses_tiny_vae

    name, cache = str(config.model), config.cache_dir
    size = _approx("drawing", name)
    local = Path(name).expanduser()
    if _is_single_file(name) or local.is_dir() or _looks_like_path(name) or not HUB_ID.match(name):
        if local.is_file() or (local / "model_index.json").is_file():
            model = Model("drawing", name, "here", str(local), size)
        else:
            model = Model("drawing", name, "missing", f"no Stable Diffusion model at {local} (SD_MODEL)")
    elif found := _cached(name, "model_index.json", cache):
        model = Model("drawing", name, "here", str(Path(found).parent), size)
    else:
        model = Model("drawing", name, "download", _cache_name(cache), size)
    models = [model]
    if config.lora:
        models.append(lora_model(str(config.lora), cache))
    if uses_tiny_vae(config.vae, resolve_device(config.device)):
        models.append(tiny_vae_model(str(config.tiny_vae), cache))
    return models


def tiny_vae_model(source: str, cache_dir: Path | str | None) -> Model:
    """The tiny decoder (``SD_TINY_VAE``): a local ``AutoencoderTiny`` directory or a hub id."""
    from engine.image.diffusion import _looks_like_path

    name, size = f"tiny decoder {source}", _approx("tiny decoder", source)
    local = Path(source).expanduser()
    if local.is_dir() or _looks_like_path(source):
        if (local / "config.json").is_file():
            return Model("drawing", name, "here", str(local), size)
        return Model("drawing", name, "missing", f"no AutoencoderTiny at {local} (SD_TINY_VAE)")
    if found := _cached(source, "config.json", cache_dir):
        return Model("drawing", name, "here", str(Path(found).parent), size)
    return Model("drawing", name, "download", _cache_name(cache_dir), size)


def lora_model(lora: str, cache_dir: Path | str | None) -> Model:
    """A LoRA: a local file or directory, one file of a hub repository, or a diffusers-format hub repository.

    Told apart as :func:`engine.image.diffusion._apply_lora` does (its patterns are used).
    """
    from engine.image.diffusion import _HUB_FILE, _looks_like_path

    name, size = f"LoRA {lora}", _approx("lora", lora)
    local = Path(lora).expanduser()
    if local.exists():
        return Model("drawing", name, "here", str(local), size)
    hub_file = _HUB_FILE.match(lora)
    if hub_file:
        found = _cached(hub_file[1], hub_file[2], cache_dir)
    elif HUB_ID.match(lora) and not _looks_like_path(lora):
        found = _cached(lora, LORA_WEIGHTS, cache_dir)
    else:
        return Model("drawing", name, "missing", f"no such file or directory: {local} (SD_LORA)")
    if found:
        return Model("drawing", name, "here", str(Path(found).parent), size)
    return Model("drawing", name, "download", _cache_name(cache_dir), size)


def style_models(animegan: Any) -> list[Model]:
    """The AnimeGANv2 styles of the registry (an :class:`~engine.image.animegan.AnimeGAN`): here, downloadable or missing."""
    store, size = animegan.store, _approx("style", "AnimeGANv2")
    here: list[str] = []
    download: list[str] = []
    missing: list[str] = []
    for style in animegan.registry.styles:
        path = store.path(style)
        (here if path.is_file() else download if style.url and store.download else missing).append(style.name)
    directory = str(store.directory)
    models = []
    if here:
        models.append(Model("style", ", ".join(here), "here", directory, size, len(here)))
    if download:
        models.append(Model("style", ", ".join(download), "download", directory, size, len(download)))
    if missing:
        fix = f"put their files in {directory} (`voice2anime styles` says which)"
        models.append(Model("style", ", ".join(missing), "missing", fix, size, len(missing)))
    return models


def picture_check_models(check: Any) -> list[Model]:
    """The content policy's picture check: the WD tagger for drawings, NudeNet (or another detector) for photos."""
    if check is None:
        return []
    from engine.policy.image_check import MODEL_FILE
    from engine.policy.photo_check import nudenet_model

    models = []
    drawn = getattr(check, "drawn", None)
    if drawn is not None:
        source = drawn.source
        if source.local is not None:
            models.append(Model("picture check of drawings", str(source.local), "here", str(source.local)))
        elif source.pinned is not None:
            pinned = source.pinned
            size = float(pinned.megabytes)
            found = _cached(pinned.repo_id, MODEL_FILE, source.models_dir, pinned.revision)
            where = str(Path(found).parent) if found else str(source.models_dir)
            models.append(Model("picture check of drawings", pinned.repo_id, "here" if found else "download", where, size))
    photos = getattr(check, "photos", None) if drawn is not None else check
    if photos is not None:
        path = Path(photos.model)
        if path == nudenet_model():
            nudenet = _approx("picture check", "NudeNet 320n")
            models.append(Model("picture check of photos", "NudeNet 320n", "here", "inside the nudenet package", nudenet))
        else:
            models.append(Model("picture check of photos", str(path), "here" if path.is_file() else "missing", str(path)))
    return models


def translation_model(source: str, archive: Path) -> Model:
    """The ``MT_MODEL`` translation package: a local path, or a URL whose download is kept at ``archive``."""
    local = Path(source).expanduser()
    if "://" not in source:
        return Model("translation", source, "here" if local.exists() else "missing", str(local))
    if archive.is_file() or archive.with_suffix("").is_dir():
        return Model("translation", source, "here", str(archive))
    return Model("translation", source, "download", str(archive.parent))


def voice_models(config: Any) -> list[Model]:
    """The voice replies' sherpa-onnx voices (a :class:`~engine.speech.tts.TtsConfig`): ``TTS_MODEL``, and ``TTS_MODEL_YUE`` when set."""
    models = [voice_model("voice replies", str(config.model), config.models_dir, "TTS_MODEL")]
    if config.cantonese_model:
        models.append(voice_model("voice replies in Cantonese", str(config.cantonese_model), config.models_dir, "TTS_MODEL_YUE"))
    return models


def voice_model(part: str, source: str, models_dir: Path, setting: str) -> Model:
    """One voice: a model of the catalogue, unpacked (or its archive put) in ``models_dir/tts``, or a local directory.

    Told apart as :func:`engine.speech.tts_models.model_directory` does.
    """
    from engine.speech.tts_models import catalogue

    known = catalogue().get(source)
    if known is None:
        local = Path(source).expanduser()
        if (local / "tokens.txt").is_file():
            return Model(part, source, "here", str(local))
        names = ", ".join(catalogue())
        return Model(part, source, "missing", f"no sherpa-onnx voice (tokens.txt) in {local}: set {setting} to {names} or a directory")
    directory = Path(models_dir) / "tts"
    unpacked, archive = directory / known.name, directory / f"{known.name}.tar.bz2"
    size, licence = float(known.size_mb), known.licence
    if unpacked.is_dir():
        return Model(part, known.name, "here", str(unpacked), size, licence=licence)
    if archive.is_file():
        return Model(part, known.name, "here", f"{archive}, unpacked on first use", size, licence=licence)
    return Model(part, known.name, "download", str(directory), size, licence=licence)


def control_models(config: Any) -> list[Model]:
    """The ControlNet of each kind (a :class:`~engine.image.control.ControlConfig`): a local directory, cached, or fetched when first used."""
    from engine.image.control import CONTROL_KINDS

    models = []
    for kind in CONTROL_KINDS:
        name = config.model(kind)
        local = Path(name).expanduser()
        part, size = f"composition ({kind})", _approx("composition", name.split("/", 1)[0])
        if local.exists() or not HUB_ID.match(name):
            state: State = "here" if (local / "config.json").is_file() else "missing"
            where = str(local) if state == "here" else f"no diffusers ControlNet (config.json) in {local} (CONTROLNET_{kind.upper()})"
            models.append(Model(part, name, state, where, on_demand=True))
        elif found := _cached(name, "config.json", config.cache_dir):
            models.append(Model(part, name, "here", str(Path(found).parent), size, on_demand=True))
        else:
            models.append(Model(part, name, "download", _cache_name(config.cache_dir), size, on_demand=True))
    return models + [_detector("depth", config.depth_estimator, "config.json", config.cache_dir), _pose_detector(config)]


def _detector(kind: str, name: str, marker: str, cache_dir: Path | str | None) -> Model:
    """A photo's depth estimator or pose detector: a local directory with ``marker``, cached, or fetched when first used."""

    part, local = f"composition ({kind} from a photo)", Path(name).expanduser()
    if local.exists() or not HUB_ID.match(name):
        here = (local / marker).is_file()
        return Model(part, name, "here" if here else "missing", str(local) if here else f"no {marker} in {local}", on_demand=True)
    size = _approx("detector", name)
    if found := _cached(name, marker, cache_dir):
        return Model(part, name, "here", str(Path(found).parent), size, licence="Apache-2.0", on_demand=True)
    return Model(part, name, "download", _cache_name(cache_dir), size, licence="Apache-2.0", on_demand=True)


def _pose_detector(config: Any) -> Model:
    from engine.image.pose import FILES

    return _detector("pose", config.pose_detector, FILES[-1], config.cache_dir)


def upscale_model(upscaler: Any) -> list[Model]:
    """Real-ESRGAN (an :class:`~engine.image.upscale.Upscaler`, or None: this engine upscales nothing)."""
    if upscaler is None:
        return []
    from engine.image.upscale import KNOWN_MODELS

    config = upscaler.config
    known = KNOWN_MODELS.get(config.model)
    if known is None:
        path = Path(config.model).expanduser()
        state: State = "here" if path.is_file() else "missing"
        return [Model("upscale", str(path), state, str(path) if path.is_file() else f"no file at {path} (UPSCALE_MODEL)", on_demand=True)]
    path = Path(config.models_dir) / known.file
    size = _approx("upscale", known.name)
    if path.is_file():
        return [Model("upscale", known.name, "here", str(path), size, licence="BSD-3-Clause", on_demand=True)]
    return [Model("upscale", known.name, "download", str(config.models_dir), size, licence="BSD-3-Clause", on_demand=True)]


def pipeline_models(pipeline: AnimePipeline) -> list[Model]:
    """The image engine's models: drawing, styles, the picture check, then what is fetched only when used."""
    return [
        *drawing_models(pipeline.text_to_image.config),
        *style_models(pipeline.animegan),
        *picture_check_models(pipeline.image_check),
        *control_models(pipeline.control.config),
        *upscale_model(pipeline.upscaler),
    ]


def engine_models(speech: AsrConfig, pipeline: AnimePipeline | None, voice: TtsConfig | None = None) -> list[Model]:
    """What the bot will load: Whisper, the voice replies' voices (``voice``; None: replies are off), ``pipeline``'s models.

    ``pipeline`` is None when pictures are drawn elsewhere (Redis workers).
    """
    models = [speech_model(speech)]
    if voice is not None:
        models += voice_models(voice)
    if pipeline is not None:
        models += pipeline_models(pipeline)
    return models


# ----- the report -------------------------------------------------------------------------------


def _line(model: Model) -> str:
    size = f"about {size_text(model.megabytes)}" if model.megabytes is not None else ""
    if model.licence:
        size = f"{size}, {model.licence}" if size else model.licence
    each = f"{size} each" if size and model.count > 1 else size
    if model.count > 1:
        what = f"{model.part}: {model.count} AnimeGANv2 styles ({model.name})"
    elif model.part == "style":
        what = f"{model.part}: AnimeGANv2 {model.name}"
    else:
        what = f"{model.part}: {model.name}"
    if model.state == "here":
        return f"  {what}: here ({model.where}{', ' + each if each else ''})"
    if model.state == "download":
        return f"  {what}: downloaded on first use into {model.where}{' (' + each + ')' if each else ''}"
    return f"  {what}: missing — {model.where}"


def report(models: Sequence[Model], *, drawn_elsewhere: bool = False) -> list[str]:
    """The lines ``voice2anime run`` logs: a summary, then one line per model (styles grouped); no network was used.

    ``drawn_elsewhere``: pictures are drawn by workers (``ENGINE=redis``), whose models are on their machines.
    """
    counted = _downloads(m for m in models if not m.on_demand)
    later = _downloads(m for m in models if m.on_demand)
    head = f"models: {_count(models, 'here')} here, {_count(models, 'download')} downloaded on first use"
    if counted and not later:
        head += f" (about {size_text(counted)} in all)"
    elif later:
        first = f"about {size_text(counted)} for the first pictures, " if counted else ""
        head += f" ({first}{size_text(later)} more only when composition or upscaling is first used)"
    missing = _count(models, "missing")
    if missing:
        head += f", {missing} missing"
    lines = [head + "; nothing is fetched now", *(_line(model) for model in models)]
    if drawn_elsewhere:
        lines.append("  pictures: drawn by `voice2anime worker` processes (ENGINE=redis), with the models on their machines")
    return lines


def _count(models: Iterable[Model], state: State) -> int:
    return sum(model.count for model in models if model.state == state)


def _downloads(models: Iterable[Model]) -> float:
    return sum(model.megabytes * model.count for model in models if model.state == "download" and model.megabytes)
