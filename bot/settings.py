"""The one configuration object: environment variables and an optional ``.env``.

Every field is documented in README.md ("Settings"). Engine modules never read
settings themselves; the CLI and the bot pass explicit values into them.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: What TORCH_DEVICE accepts (as :class:`engine.image.diffusion.DiffusionConfig` does).
_TORCH_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


class Settings(BaseSettings):
    """All voice2anime settings (env var = upper-case field name)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # --- speech recognition (faster-whisper) ---
    whisper_model: str = Field("small", description="Whisper size name (tiny, base, small, medium, large-v3, ...) or a local CTranslate2 model directory.")
    whisper_device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto | cpu | cuda")
    whisper_compute_type: str = Field("auto", description="auto (int8 on CPU, float16 on CUDA) or any CTranslate2 compute type.")
    whisper_beam_size: int = Field(5, ge=1, le=10, description="Beam size for decoding (1 = greedy, fastest).")
    whisper_vad: bool = Field(True, description="Skip silence with the Silero VAD filter.")
    whisper_cpu_threads: int = Field(0, ge=0, description="CPU threads for Whisper (0 = CTranslate2 default).")
    whisper_translate: bool = Field(True, description="Also ask Whisper for an English translation of non-English speech to build the prompt.")
    whisper_language: str | None = Field(None, description="Force a language code (e.g. zh, en); empty = auto-detect.")
    models_dir: Path = Field(Path("models"), description="Where hub models are cached/downloaded.")
    mt_model: str | None = Field(
        None,
        description="Optional zh->en machine translation of Chinese descriptions: an Argos Translate package "
        "(.argosmodel URL, downloaded into MODELS_DIR at start and sha256-pinned, or a local path; needs the `mt` extra); "
        "empty = the CC-CEDICT dictionary only.",
    )

    # --- voice replies (sherpa-onnx text to speech) ---
    tts_model: str = Field(
        "vits-melo-tts-zh_en",
        description="Voice that reads replies aloud (Mandarin and English): vits-melo-tts-zh_en | kokoro-int8-multi-lang-v1_1 "
        "(downloaded into MODELS_DIR on first use, sha256-pinned) or a local sherpa-onnx TTS model directory.",
    )
    tts_model_yue: str | None = Field(
        None, description="Optional Cantonese voice: a local sherpa-onnx TTS model directory; empty = Cantonese is read in Mandarin."
    )
    tts_threads: int = Field(2, ge=1, le=16, description="CPU threads for one voice reply.")
    voice_replies: Literal["off", "voice", "always"] = Field(
        "voice",
        description="Spoken replies: off (none, for anyone) | voice (the default: a voice note's card is read back) | always "
        "(also typed cards and a line when a picture is ready); each user may choose otherwise in /settings.",
    )

    # --- audio intake ---
    audio_max_bytes: int = Field(20 * 1024 * 1024, gt=0, description="Largest accepted audio file in bytes.")
    audio_max_seconds: float = Field(60.0, gt=0, description="Longest accepted voice note in seconds.")

    # --- photos ---
    photo_max_pixels: int = Field(
        40_000_000,
        ge=1,
        description="Largest photo accepted, in pixels (width x height), read from the file header before anything is decoded "
        "(decompression bombs); at most Pillow's Image.MAX_IMAGE_PIXELS (about 89 million).",
    )

    # --- prompt ---
    prompt_max_chars: int = Field(500, gt=0, description="Longest accepted typed/heard description in characters.")

    # --- image generation (diffusers) ---
    sd_model: str = Field("stablediffusionapi/anything-v5", description="Stable Diffusion 1.5-class model: Hugging Face id or local diffusers directory.")
    sd_scheduler: Literal["dpmpp", "euler_a", "lcm", "turbo"] = Field("dpmpp", description="dpmpp (DPM-Solver++ 2M Karras) | euler_a | lcm | turbo")
    sd_steps: int | None = Field(None, ge=1, le=150, description="Denoising steps (empty = the scheduler's default: 25 dpmpp/euler_a, 4 lcm, 1 turbo).")
    sd_guidance: float | None = Field(None, ge=0, le=30, description="Classifier-free guidance (empty = scheduler default: 7.0 dpmpp/euler_a, 1.0 lcm, 0 turbo).")
    sd_width: int = Field(512, ge=64, le=2048, multiple_of=8, description="Image width in pixels.")
    sd_height: int = Field(512, ge=64, le=2048, multiple_of=8, description="Image height in pixels.")
    sd_lora: str | None = Field(None, description="Optional LoRA: Hugging Face id or local .safetensors file/directory.")
    sd_lora_scale: float = Field(0.8, ge=0, le=2, description="Strength of the LoRA.")
    sd_few_steps: Literal["off", "lcm", "hyper"] | None = Field(
        None,
        description="Draw in few steps with a distillation LoRA: lcm (LCM-LoRA, 4 steps, no guidance) | hyper "
        "(Hyper-SD 1.5 8-step LoRA, DDIM trailing, no guidance) | off; empty = lcm without a GPU when no SD_* model or "
        "sampler setting is given, else off. SD_LORA, when set, replaces the preset's LoRA (e.g. a local copy).",
    )
    sd_vae: Literal["auto", "full", "tiny"] = Field(
        "auto",
        description="Decoder that turns the drawing into pixels: tiny (TAESD, SD_TINY_VAE; a tenth of the time on a CPU, a "
        "little softer) | full (the model's own VAE) | auto: tiny when drawing on the CPU in few steps (SD_FEW_STEPS; "
        "the default without a GPU), else full.",
    )
    sd_tiny_vae: str = Field("madebyollin/taesd", description="The tiny decoder (SD_VAE): Hugging Face id or local AutoencoderTiny directory.")
    sd_backend: Literal["auto", "torch", "onnx"] = Field(
        "auto",
        description="Where the UNet runs: onnx (ONNX Runtime on the CPU, exported once into MODELS_DIR; a few per cent "
        "faster per step than torch in float32 at 512x512, more on smaller pictures, but no ControlNet: photos with words "
        "and sketches cannot be drawn) | torch | auto: torch.",
    )
    sd_cpu_dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description="Number format on the CPU: bfloat16 (about 3x faster on CPUs with AMX or AVX-512 BF16, slower on others) | "
        "float32 | auto: bfloat16 when drawing on such a CPU in few steps (SD_FEW_STEPS; the default without a GPU), else "
        "float32. SD_BACKEND=onnx is always float32.",
    )
    sd_speed: Literal["normal", "fast"] = Field(
        "normal", description="fast: LCM drawing (the CPU default) in 2 steps instead of 4: about half the drawing time, rougher pictures."
    )
    sd_vae_tiling_above: int = Field(
        1024, ge=0, le=4096, description="Decode pictures whose longest side is above this in tiles (less memory); 0 = never."
    )
    torch_compile: bool = Field(
        False, description="torch.compile the UNet (faster steps on CUDA; the first picture at each batch size compiles for a while)."
    )
    batch_max: int | None = Field(
        None,
        ge=1,
        le=16,
        description="Most waiting text jobs drawn in one diffusion call by the model thread or a worker; empty = 4 on a CUDA GPU, 1 otherwise.",
    )

    # --- style transfer (AnimeGANv2) ---
    checkpoints_dir: Path = Field(Path("checkpoints"), description="AnimeGANv2 weights and the style registry live here.")
    anime_style: str = Field("face_paint_512_v2", description="Default AnimeGANv2 style.")
    anime_max_side: int = Field(1024, ge=64, le=4096, description="Longest side fed to AnimeGANv2; larger images are scaled down.")
    anime_backend: Literal["auto", "onnx", "torch"] = Field("auto", description="auto | onnx | torch (auto picks the fastest available).")
    anime_download: bool = Field(True, description="Download missing AnimeGANv2 weights from their official URL on first use.")

    # --- upscaling (Real-ESRGAN) ---
    upscale_model: str = Field(
        "realesr-animevideov3",
        min_length=1,
        description="Upscaling model: realesr-animevideov3 (Real-ESRGAN's anime model, downloaded into MODELS_DIR on first use, "
        "sha256-pinned) or the path of a Real-ESRGAN SRVGGNetCompact .pth.",
    )
    upscale_tile: int = Field(
        256, ge=32, le=4096, description="Side of the tiles a picture is upscaled in (input pixels): smaller uses less memory."
    )

    # --- keeping a picture's composition (ControlNet) ---
    controlnet_lineart: str = Field(
        "lllyasviel/control_v11p_sd15s2_lineart_anime",
        min_length=1,
        description="ControlNet that keeps a photo's outline (anime line art, run with CLIP skip 2): Hugging Face id "
        "(downloaded into MODELS_DIR on first use) or local diffusers directory.",
    )
    controlnet_canny: str = Field(
        "lllyasviel/control_v11p_sd15_canny", min_length=1, description="ControlNet that keeps a photo's edges (Canny): hub id or directory."
    )
    controlnet_pose: str = Field(
        "lllyasviel/control_v11p_sd15_openpose",
        min_length=1,
        description="ControlNet that keeps a pose given as an OpenPose skeleton picture: hub id or directory.",
    )
    controlnet_scribble: str = Field(
        "lllyasviel/control_v11p_sd15_scribble", min_length=1, description="ControlNet that draws from a sketch: hub id or directory."
    )
    controlnet_depth: str = Field(
        "lllyasviel/control_v11f1p_sd15_depth", min_length=1, description="ControlNet that keeps a photo's depth (near and far): hub id or directory."
    )
    controlnet_depth_estimator: str = Field(
        "depth-anything/Depth-Anything-V2-Small-hf",
        min_length=1,
        description="Model that makes a photo's depth map for CONTROLNET_DEPTH (Depth Anything V2 Small, Apache-2.0, ~100 MB): "
        "Hugging Face id (downloaded into MODELS_DIR on first use) or local transformers directory.",
    )
    controlnet_pose_detector: str = Field(
        "yzd-v/DWPose",
        min_length=1,
        description="Where a photo's pose is found for CONTROLNET_POSE (DWPose: yolox_l.onnx and dw-ll_ucoco_384.onnx, "
        "Apache-2.0, 351 MB): Hugging Face repo (downloaded into MODELS_DIR on first use) or a local directory holding both files.",
    )
    controlnet_scale: float = Field(1.0, ge=0, le=2, description="How strongly the kept composition steers the drawing (0: not at all).")
    control_photo: Literal["lineart", "canny", "depth", "pose"] = Field(
        "lineart",
        description="What a photo sent with a description keeps unless the card's choice says otherwise: lineart (its outline) | "
        "canny (its edges) | depth (its near and far) | pose (its people's pose).",
    )

    # --- conversation and limits ---
    card_ttl_seconds: float = Field(600, gt=0, description="How long a confirmation card can be answered.")
    progress_interval_seconds: float = Field(2.0, ge=0, description="Least time between two progress edits of a message.")
    previews: bool = Field(
        True,
        description="Show a small preview of the picture while it is drawn, then the sketch before the anime style, "
        "in its status message; false: text progress only, and Stable Diffusion skips the preview decoding.",
    )
    requests_per_minute: int = Field(6, ge=1, description="New requests a user may make per minute.")
    max_queued_per_user: int = Field(3, ge=1, description="Pictures a user may have waiting or running at once.")
    max_queued_total: int = Field(100, ge=1, description="Pictures waiting or running for everyone at once.")
    history_limit: int = Field(5, ge=1, le=20, description="Entries shown by /history.")

    # --- content policy (engine.policy) ---
    content_policy: Literal["strict", "standard", "off"] = Field(
        "strict",
        description="strict (no sexual or suggestive content, gore, graphic violence or hate; pictures checked) | standard "
        "(nothing explicit; flagged pictures behind a spoiler) | off (nothing checked; only in Discord age-restricted channels "
        "and POLICY_OFF_CHATS, standard elsewhere). Chat admins can choose another level for their chat.",
    )
    policy_off_chats: Annotated[frozenset[str], NoDecode] = Field(
        frozenset(), description="Comma-separated Telegram chat ids where the policy may be off (e.g. -1001234567890)."
    )
    policy_terms_file: Path | None = Field(
        None, description="The operator's own term file (the format of engine/policy/terms.txt), added to the shipped list."
    )
    policy_image_check: bool = Field(
        True, description="Check pictures with the nudity detector (strict: flagged ones are not sent); false: send them unchecked."
    )
    policy_image_model: Path | None = Field(
        None, description="An ONNX detector with NudeNet's signature (a .onnx file or a directory with model.onnx); empty = NudeNet's, from its wheel."
    )
    policy_anime_model: str = Field(
        "SmilingWolf/wd-vit-tagger-v3",
        description="The WD tagger v3 that rates drawn pictures: a pinned hub id (downloaded into MODELS_DIR on first use) "
        "or a local directory with model.onnx and selected_tags.csv.",
    )
    policy_image_threshold: float | None = Field(
        None, gt=0, le=1, description="Least detector score that flags a picture, for every class; empty = the per-class defaults."
    )
    policy_spoilers: bool = Field(
        True, description="At standard, send a flagged picture behind a spoiler (false: do not send it, as at strict)."
    )

    # --- storage ---
    database_url: str = Field(
        "sqlite+aiosqlite:///data/voice2anime.db",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///path.db (default) or postgresql+asyncpg://user:pass@host/db.",
    )
    data_dir: Path = Field(Path("data"), description="Where delivered images are stored (by sha256).")

    # --- platforms ---
    telegram_bot_token: SecretStr | None = Field(None, description="Telegram bot token from @BotFather; starts the Telegram adapter.")
    telegram_api_base_url: str = Field(
        "https://api.telegram.org/bot",
        description="Bot API URL; the token is appended (or replaces {token}). Point it at a local Bot API server to lift the download limit.",
    )
    telegram_file_base_url: str = Field("https://api.telegram.org/file/bot", description="Bot API file download URL (token appended, or replaces {token}).")
    telegram_local_mode: bool = Field(False, description="The Bot API server runs with --local (files are read from its disk, no download limit).")
    telegram_max_download_bytes: int = Field(20 * 1024 * 1024, gt=0, description="Largest file the bot downloads (Telegram's cloud Bot API: 20 MB; raise it with a local Bot API server in --local mode).")
    telegram_webhook_url: str | None = Field(None, description="Public HTTPS URL for Telegram to post updates to; empty = long polling.")
    telegram_webhook_listen: str = Field("0.0.0.0", description="Address the webhook server listens on.")
    telegram_webhook_port: int = Field(8443, ge=1, le=65535, description="Port the webhook server listens on.")
    telegram_webhook_secret: SecretStr | None = Field(None, description="Secret Telegram sends in X-Telegram-Bot-Api-Secret-Token with each webhook update.")
    discord_bot_token: SecretStr | None = Field(None, description="Discord bot token; starts the Discord adapter.")
    discord_guild_allowlist: Annotated[frozenset[int], NoDecode] = Field(
        frozenset(), description="Comma-separated Discord guild (server) ids the bot serves; empty = every guild. DMs are always served."
    )
    discord_sync_commands: bool = Field(True, description="Publish the slash commands to Discord at start (set false once they are synced).")

    # --- web studio (a page in the browser; what `run` serves when no platform token is set) ---
    web_enabled: bool | None = Field(
        None, description="Serve the web studio: empty = only when no platform token is set; true = beside the bots too; false = never."
    )
    web_host: str = Field("127.0.0.1", min_length=1, description="Address the studio listens on; anything but loopback needs WEB_PASSWORD.")
    web_port: int = Field(7860, ge=0, le=65535, description="Port the studio listens on (0 = any free port).")
    web_password: SecretStr | None = Field(None, description="Password the studio asks for; required when WEB_HOST is not a loopback address.")
    web_secret: SecretStr | None = Field(
        None, description="Key that signs the studio's browser cookies; empty = a random one kept in DATA_DIR/web_secret."
    )
    web_photo_max_bytes: int = Field(20 * 1024 * 1024, gt=0, description="Largest photo the studio accepts (bytes).")
    web_trusted_proxies: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="Comma-separated addresses or networks (CIDR) of reverse proxies in front of the studio: their X-Forwarded-For "
        "names the client for the password throttle and the upload caps, and their own connections count only towards the total; "
        "empty = the header is ignored.",
    )

    # --- scale-out (ENGINE=redis: taskiq over Redis Streams, `voice2anime worker` processes) ---
    engine: Literal["local", "redis"] = Field("local", description="local = in-process model thread; redis = GPU workers fed through Redis Streams.")
    redis_url: SecretStr = Field(
        SecretStr("redis://localhost:6379/0"),
        description="Redis URL for ENGINE=redis and workers: redis://[:password@]host:port/db, rediss:// for TLS.",
    )
    redis_key_prefix: str = Field("voice2anime", min_length=1, description="Prefix of every Redis key (several deployments can share one Redis).")
    redis_stream_maxlen: int = Field(10_000, ge=1_000, description="Approximate cap on entries in the job stream (trimmed on add); keep far above MAX_QUEUED_TOTAL.")
    redis_job_ttl_seconds: int = Field(86_400, ge=60, description="How long job state, progress events and results stay in Redis.")
    worker_name: str | None = Field(None, description="Consumer name of this worker in the Redis consumer group (empty = host-pid).")
    worker_lease_seconds: float = Field(30.0, ge=0.5, le=3600, description="A worker renews its job lease while it runs; a job whose worker is silent this long is re-claimed by another worker.")

    torch_device: str = Field("auto", description="Where Stable Diffusion and AnimeGANv2 run: auto (CUDA when present) | cpu | cuda | cuda:N.")
    torch_threads: int = Field(0, ge=0, description="CPU threads for the ONNX Runtime AnimeGANv2 session (0 = library default).")

    @field_validator("torch_device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (whether that device exists is checked when it is used)."""
        if not _TORCH_DEVICE.fullmatch(value):
            raise ValueError(f"should be auto, cpu, cuda, cuda:N (N = GPU index) or mps (got {value[:40]!r})")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        """A URL the history database can run on (the message never repeats the URL: it may hold a password)."""
        from db.session import check_url  # sqlalchemy: imported only when settings are read

        check_url(value)
        return value

    @field_validator("policy_off_chats", mode="before")
    @classmethod
    def _split_chats(cls, value: object) -> object:
        """Accept ``"-100123, 456"`` from the environment as well as any iterable of ids."""
        if isinstance(value, str):
            return frozenset(part for part in value.replace(" ", "").split(",") if part)
        return value

    @field_validator("web_trusted_proxies", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        """``"10.0.0.1, 192.168.0.0/24"`` (or any iterable) as normalised networks; a bad entry is named."""
        from bot.web_session import networks  # the studio's own reading of them

        entries = value.split(",") if isinstance(value, str) else value
        if not isinstance(entries, list | tuple | set | frozenset):
            return value
        return tuple(str(network) for network in networks(str(e) for e in entries if str(e).strip()))

    @field_validator("discord_guild_allowlist", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        """Accept ``"123, 456"`` from the environment as well as any iterable of ids."""
        if isinstance(value, str):
            return frozenset(int(part) for part in value.replace(" ", "").split(",") if part)
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
