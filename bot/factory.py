"""Composition root: builds engine objects from :class:`Settings`.

The engine never reads settings itself; this is the one place that maps
settings to engine configuration.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from bot.startup_errors import require_engine

if TYPE_CHECKING:
    from bot.settings import Settings
    from engine.api import JobQueue
    from engine.image.animegan import AnimeGAN
    from engine.image.control import ControlNets
    from engine.image.diffusion import TextToImage
    from engine.image.pipeline import AnimePipeline
    from engine.image.styles import Style
    from engine.image.upscale import Upscaler
    from engine.jobs.distributed import RedisConfig, RedisJobQueue
    from engine.jobs.local import LocalJobQueue
    from engine.policy.image_check import ContentCheck
    from engine.policy.text import ChatPolicy
    from engine.speech.asr import AsrConfig, SpeechRecognizer
    from engine.speech.audio import AudioLimits
    from engine.speech.transcriber import WhisperTranscriber
    from engine.speech.tts import Narrator, TtsConfig
    from handlers.conversation import ConversationConfig

# Every engine module is imported where it is used: the image engine (torch, diffusers, onnx) is the
# optional ``voice2anime[engine]`` extra, which a bot with ENGINE=redis, ``transcribe`` and ``prompt`` do without.

log = logging.getLogger(__name__)


def audio_limits(settings: Settings) -> AudioLimits:
    """Audio intake limits from settings."""
    from engine.speech.audio import AudioLimits

    return AudioLimits(max_bytes=settings.audio_max_bytes, max_seconds=settings.audio_max_seconds)


def asr_config(settings: Settings) -> AsrConfig:
    """Which Whisper model to use, and how, from settings."""
    from engine.speech.asr import AsrConfig

    return AsrConfig(
        model=settings.whisper_model,
        device=settings.whisper_device,
        compute_type=settings.whisper_compute_type,
        beam_size=settings.whisper_beam_size,
        vad=settings.whisper_vad,
        cpu_threads=settings.whisper_cpu_threads,
        download_root=settings.models_dir,
        language=settings.whisper_language or None,
        translate=settings.whisper_translate,
    )


def speech_recognizer(settings: Settings) -> SpeechRecognizer:
    """A faster-whisper recognizer configured from settings (model loads on first use)."""
    from engine.speech.asr import SpeechRecognizer

    return SpeechRecognizer(asr_config(settings), audio_limits(settings))


def tts_config(settings: Settings) -> TtsConfig:
    """Which voices read replies aloud, and how, from settings."""
    from engine.speech.tts import TtsConfig

    return TtsConfig(
        model=settings.tts_model,
        cantonese_model=settings.tts_model_yue or None,
        models_dir=settings.models_dir,
        threads=settings.tts_threads,
    )


def narrator(settings: Settings) -> Narrator:
    """The voice that reads replies aloud (its models load on first use)."""
    from engine.speech.tts import Narrator

    return Narrator(tts_config(settings))


def use_machine_translator(settings: Settings) -> None:
    """Read Chinese descriptions with the ``MT_MODEL`` translation model too, when one is set.

    The model is fetched (first use), verified and loaded now, before any
    description is read: one that cannot be had stops the command with what to
    do (:class:`~engine.errors.ModelUnavailableError`, exit 3) instead of
    every request waiting for a download that fails.
    """
    if not settings.mt_model:
        return
    from engine.language.prompt import set_machine_translator
    from engine.language.translate import MachineTranslator

    translator = MachineTranslator(settings.mt_model, settings.models_dir)
    translator.load()
    set_machine_translator(translator.translate)


#: The LCM-LoRA for Stable Diffusion 1.5 models: what the default model is drawn with when there is no GPU.
CPU_LCM_LORA = "latent-consistency/lcm-lora-sdv1-5"
#: Settings that mean "the operator chose the model or the sampler": any of them turns the CPU default off.
_SD_CHOICES = frozenset({"sd_model", "sd_scheduler", "sd_steps", "sd_guidance", "sd_lora", "sd_lora_scale"})


def few_steps_on_cpu(settings: Settings) -> bool:
    """Whether to draw in 4 LCM steps: no GPU (``TORCH_DEVICE`` cpu, or auto without CUDA) and none of
    ``SD_MODEL``/``SD_SCHEDULER``/``SD_STEPS``/``SD_GUIDANCE``/``SD_LORA``/``SD_LORA_SCALE`` set.

    25 DPM-Solver++ steps of the default SD 1.5 model take minutes on a laptop CPU; the LCM-LoRA
    (135 MB, downloaded on first use like the model) makes a picture in 4 steps without
    classifier-free guidance, about 12x less UNet work. A GPU keeps the full-quality default.
    """
    if settings.model_fields_set & _SD_CHOICES:
        return False
    if settings.torch_device == "cpu":
        return True
    if settings.torch_device != "auto":
        return False
    from engine.image.device import resolve_device

    return resolve_device("auto").type == "cpu"


#: ``SD_FEW_STEPS`` presets: (the distillation LoRA for SD 1.5 models, the sampler it is made for). Steps and guidance
#: are that sampler's defaults (lcm: 4 steps, guidance 1 = off; hyper: 8 steps, guidance 0) unless SD_STEPS/SD_GUIDANCE say.
FEW_STEP_PRESETS: dict[str, tuple[str, str]] = {
    "lcm": (CPU_LCM_LORA, "lcm"),
    # One file of ByteDance/Hyper-SD (which also holds SDXL/SD3/FLUX LoRAs): only this 257 MB file is fetched.
    "hyper": ("ByteDance/Hyper-SD/Hyper-SD15-8steps-lora.safetensors", "hyper"),
}


#: LCM steps with ``SD_SPEED=fast`` (LCM's default is 4).
FAST_LCM_STEPS = 2


def few_steps(settings: Settings) -> str | None:
    """The few-step preset drawing uses: ``SD_FEW_STEPS`` when set (``off``: none), else ``lcm`` when :func:`few_steps_on_cpu`."""
    if settings.sd_few_steps is not None:
        return None if settings.sd_few_steps == "off" else settings.sd_few_steps
    return "lcm" if few_steps_on_cpu(settings) else None


def text_to_image(settings: Settings) -> TextToImage:
    """A diffusers text-to-image engine configured from settings (loads on first use); see :func:`few_steps`.

    ``SD_VAE`` and ``SD_CPU_DTYPE`` ``auto`` are the engine's ``auto`` (on a CPU: the tiny decoder; bfloat16 where
    the CPU computes it) when drawing in few steps, else ``full`` and ``float32``. ``SD_BACKEND=auto`` is torch
    everywhere (ControlNets need it); ONNX Runtime only with ``SD_BACKEND=onnx``. ``SD_SPEED=fast`` draws LCM in
    :data:`FAST_LCM_STEPS` steps unless ``SD_STEPS`` says how many.
    """
    from engine.image.diffusion import DiffusionConfig, TextToImage

    preset = few_steps(settings)
    lora, scheduler = FEW_STEP_PRESETS[preset] if preset else (settings.sd_lora, settings.sd_scheduler)
    steps = settings.sd_steps
    if steps is None and settings.sd_speed == "fast" and scheduler == "lcm":
        steps = FAST_LCM_STEPS
    config = DiffusionConfig(
        model=settings.sd_model,
        scheduler=scheduler,
        steps=steps,
        guidance=settings.sd_guidance,
        width=settings.sd_width,
        height=settings.sd_height,
        lora=(settings.sd_lora or lora) if preset else lora,
        lora_scale=settings.sd_lora_scale if not preset or "sd_lora_scale" in settings.model_fields_set else 1.0,
        device=settings.torch_device,
        cache_dir=settings.models_dir,
        compile=settings.torch_compile,
        vae_tiling_above=settings.sd_vae_tiling_above,
        vae=settings.sd_vae if settings.sd_vae != "auto" or preset else "full",
        tiny_vae=settings.sd_tiny_vae,
        backend=settings.sd_backend,
        cpu_dtype=settings.sd_cpu_dtype if settings.sd_cpu_dtype != "auto" or preset else "float32",
    )
    if preset and settings.sd_few_steps is None:
        log.info("no GPU: drawing in %d steps with %s (set SD_SCHEDULER to choose)", config.resolved_steps, CPU_LCM_LORA)
    elif preset:
        log.info("SD_FEW_STEPS=%s: drawing in %d steps with %s", preset, config.resolved_steps, config.lora)
    return TextToImage(config)


def batch_max(settings: Settings, *, resolve: bool = True) -> int:
    """``BATCH_MAX``, or when unset 4 on a CUDA GPU and 1 otherwise (``TORCH_DEVICE``).

    Looking for a GPU needs torch; ``resolve=False`` answers 0 then ("auto": a
    worker decides when it first batches), so a bot process that only queues
    jobs never imports torch for it.
    """
    if settings.batch_max is not None:
        return settings.batch_max
    if settings.torch_device in ("cpu", "mps"):
        return 1
    if not resolve:
        return 0
    from engine.image.device import auto_batch_max

    return auto_batch_max(settings.torch_device)


def animegan(settings: Settings) -> AnimeGAN:
    """The AnimeGANv2 style engine configured from settings."""
    from engine.image.animegan import AnimeGAN

    return AnimeGAN(
        settings.checkpoints_dir,
        device=settings.torch_device,
        backend=settings.anime_backend,
        max_side=settings.anime_max_side,
        download=settings.anime_download,
        threads=settings.torch_threads,
    )


def upscaler(settings: Settings) -> Upscaler:
    """Real-ESRGAN upscaling configured from settings (``UPSCALE_*``; the model loads, and downloads, on first use)."""
    require_engine("upscaling a picture")
    from engine.image.upscale import UpscaleConfig, Upscaler

    config = UpscaleConfig(
        model=settings.upscale_model, models_dir=settings.models_dir, device=settings.torch_device, tile=settings.upscale_tile
    )
    return Upscaler(config)


def anime_pipeline(settings: Settings, *, needed_by: str = "drawing a picture", hint: str = "") -> AnimePipeline:
    """Text/photo -> anime image pipeline from settings (``PREVIEWS``: whether drawing makes previews; a worker's own setting).

    Without the ``voice2anime[engine]`` extra this raises :class:`bot.startup_errors.MissingExtraError`
    (exit 3): "<needed_by> needs the image engine ... install voice2anime[engine]<hint>".
    """
    require_engine(needed_by, hint)
    from engine.image.pipeline import AnimePipeline

    return AnimePipeline(
        text_to_image(settings),
        animegan(settings),
        default_style=settings.anime_style,
        previews=settings.previews,
        image_check=image_check(settings),
        upscaler=upscaler(settings),
        control=control_nets(settings),
    )


def control_nets(settings: Settings) -> ControlNets:
    """The ControlNets from settings (``CONTROLNET_*``; each loads, and downloads into ``MODELS_DIR``, on first use)."""
    from engine.image.control import ControlConfig, ControlNets

    models = {
        "lineart": settings.controlnet_lineart,
        "canny": settings.controlnet_canny,
        "pose": settings.controlnet_pose,
        "scribble": settings.controlnet_scribble,
        "depth": settings.controlnet_depth,
    }
    return ControlNets(
        ControlConfig(
            models=models,
            scale=settings.controlnet_scale,
            cache_dir=settings.models_dir,
            depth_estimator=settings.controlnet_depth_estimator,
            pose_detector=settings.controlnet_pose_detector,
        )
    )


def image_check(settings: Settings) -> ContentCheck | None:
    """The content policy's picture check, or None with ``POLICY_IMAGE_CHECK=false``; its models load on first use.

    Drawn pictures are rated by the WD tagger (``POLICY_ANIME_MODEL``: a hub
    model downloaded into ``MODELS_DIR`` on first use, or a local directory); a
    picture a user sends also goes through the nudity detector
    (``POLICY_IMAGE_MODEL``, ``POLICY_IMAGE_THRESHOLD``). Raises
    :class:`~engine.errors.ImageCheckUnavailableError` (exit 3) at once when
    ``POLICY_ANIME_MODEL`` names neither a directory holding the tagger nor a
    pinned hub model, or there is no detector (``nudenet`` not installed and no
    ``POLICY_IMAGE_MODEL``).
    """
    from engine.policy.image_check import PHOTO_THRESHOLDS, AnimeRatingCheck, ContentCheck, tagger_source
    from engine.policy.photo_check import ImageCheck, resolve_model

    if not settings.policy_image_check:
        log.warning("POLICY_IMAGE_CHECK=false: pictures are sent without the content policy's image check")
        return None
    drawn = AnimeRatingCheck(tagger_source(settings.policy_anime_model, settings.models_dir), threads=settings.torch_threads)
    photos = ImageCheck(
        resolve_model(settings.policy_image_model),
        thresholds=PHOTO_THRESHOLDS,
        threshold=settings.policy_image_threshold,
        threads=settings.torch_threads,
    )
    return ContentCheck(drawn, photos)


def chat_policy(settings: Settings) -> ChatPolicy:
    """The content policy the conversation applies (``CONTENT_POLICY``, ``POLICY_*``); the term list is read here, once."""
    from engine.policy.levels import Level
    from engine.policy.text import ChatPolicy, prompt_checker

    policy = ChatPolicy(
        level=Level(settings.content_policy),
        off_chats=settings.policy_off_chats,
        spoilers=settings.policy_spoilers,
        terms_file=settings.policy_terms_file,
    )
    prompt_checker(policy.terms_file)  # a bad POLICY_TERMS_FILE stops the start (exit 2), not the first request
    return policy


#: What a bot without the engine extra can do instead of ENGINE=local.
LOCAL_ENGINE_HINT = ", or set ENGINE=redis and run voice2anime worker where it is installed"


def local_job_queue(settings: Settings) -> LocalJobQueue:
    """The embedded job queue: in-process queue and model thread (models load on first use); needs the engine extra."""
    from engine.jobs.local import LocalJobQueue

    pipeline = anime_pipeline(settings, needed_by="ENGINE=local", hint=LOCAL_ENGINE_HINT)
    return LocalJobQueue(pipeline, batch_max=batch_max(settings))


def loaded_pipeline(settings: Settings) -> AnimePipeline:
    """The pipeline with Stable Diffusion, the default style and the image check already loaded (a worker's start-up)."""
    pipeline = anime_pipeline(settings, needed_by="voice2anime worker")
    pipeline.text_to_image.load()
    pipeline.animegan.load(pipeline.default_style)
    if pipeline.image_check is not None:
        pipeline.image_check.load()
    return pipeline


#: Seconds allowed to open a Redis connection (without it redis-py waits for the OS: minutes for a silent host).
REDIS_CONNECT_TIMEOUT_SECONDS = 10
#: Seconds a Redis reply may take (without it a server that accepts but never answers hangs the bot for ever);
#: well above the longest blocking read (the job queue's 2 s XREADGROUP, the bot's event reads of POLL seconds).
REDIS_READ_TIMEOUT_SECONDS = 15


def with_timeouts(
    url: str, connect: float = REDIS_CONNECT_TIMEOUT_SECONDS, read: float = REDIS_READ_TIMEOUT_SECONDS
) -> str:
    """``url`` with ``socket_connect_timeout`` and ``socket_timeout`` in its query, unless the operator set them there."""
    base, hash_, fragment = url.partition("#")
    for name, seconds in (("socket_connect_timeout", connect), ("socket_timeout", read)):
        if f"{name}=" not in base:
            base = f"{base}{'&' if '?' in base else '?'}{name}={seconds:g}"
    return f"{base}{hash_}{fragment}"


def redis_config(settings: Settings) -> RedisConfig:
    """Where the distributed job queue lives (bot and workers); connecting gives up after 10 s, a reply after 15 s."""
    from engine.jobs.distributed import RedisConfig

    return RedisConfig(
        url=with_timeouts(settings.redis_url.get_secret_value()),
        prefix=settings.redis_key_prefix,
        stream_maxlen=settings.redis_stream_maxlen,
        job_ttl=settings.redis_job_ttl_seconds,
        lease=settings.worker_lease_seconds,
        batch_max=batch_max(settings, resolve=False),
    )


def redis_job_queue(settings: Settings) -> RedisJobQueue:
    """Pictures made on ``voice2anime worker`` processes through Redis."""
    from engine.jobs.distributed import RedisJobQueue

    return RedisJobQueue(redis_config(settings))


def job_queue(settings: Settings) -> JobQueue:
    """The job queue ``ENGINE`` selects: ``local`` (in-process) or ``redis`` (workers)."""
    return redis_job_queue(settings) if settings.engine == "redis" else local_job_queue(settings)


def transcriber(settings: Settings) -> WhisperTranscriber:
    """Speech, always in the bot process: faster-whisper on its own thread (the model loads on first use)."""
    from engine.speech.transcriber import WhisperTranscriber

    return WhisperTranscriber(speech_recognizer(settings))


def offered_styles(settings: Settings) -> list[Style]:
    """The styles the pickers offer: every registered one, except (drawing here, downloads off) those without weights.

    A style whose weights are missing while ``ANIME_DOWNLOAD`` is off could
    only fail; when no style has weights, all are offered and each says what
    to put where. Workers (``ENGINE=redis``) have their own checkpoints, so the
    bot offers every style.
    """
    from engine.image.styles import CheckpointStore, StyleRegistry

    styles = StyleRegistry.for_directory(settings.checkpoints_dir).styles
    if settings.engine == "redis" or settings.anime_download:
        return styles
    store = CheckpointStore(settings.checkpoints_dir, download=False)
    present = [style for style in styles if store.path(style).is_file()]
    if present and len(present) < len(styles):
        missing = ", ".join(style.name for style in styles if style not in present)
        log.warning("styles without weights in %s are not offered (ANIME_DOWNLOAD is off): %s", settings.checkpoints_dir, missing)
    return present or styles


def conversation_config(settings: Settings) -> ConversationConfig:
    """Conversation limits and timings from settings; styles from the AnimeGANv2 registry (:func:`offered_styles`)."""
    from engine.image.styles import StyleRegistry
    from handlers.conversation import ConversationConfig
    from handlers.i18n import LANGUAGES

    registry = StyleRegistry.for_directory(settings.checkpoints_dir)
    styles = offered_styles(settings)
    default = registry.get(settings.anime_style).name
    if default not in {style.name for style in styles}:
        default = styles[0].name  # ANIME_STYLE's weights are missing and will not be fetched: a style that works
    return ConversationConfig(
        styles=tuple(style.name for style in styles),
        style_names={style.name: {lang: style.display_name(lang) for lang in LANGUAGES} for style in registry.styles},
        default_style=default,
        card_ttl=timedelta(seconds=settings.card_ttl_seconds),
        progress_interval=settings.progress_interval_seconds,
        previews=settings.previews,
        max_text_chars=settings.prompt_max_chars,
        requests_per_minute=settings.requests_per_minute,
        max_active_per_user=settings.max_queued_per_user,
        max_active_total=settings.max_queued_total,
        history_limit=settings.history_limit,
        photo_max_pixels=settings.photo_max_pixels,
        photo_max_side=settings.anime_max_side,
        control_photo=settings.control_photo,
        policy=chat_policy(settings),
        voice_replies=settings.voice_replies,
    )
