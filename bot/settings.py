"""The one configuration object: environment variables and an optional ``.env``.

Every field is documented in README.md ("Settings"). Engine modules never read
settings themselves; the CLI and the bot pass explicit values into them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """All voice2anime settings (env var = upper-case field name)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # --- speech recognition (faster-whisper) ---
    whisper_model: str = Field("small", description="Whisper size name (tiny, base, small, medium, large-v3, ...) or a local CTranslate2 model directory.")
    whisper_device: str = Field("auto", description="auto | cpu | cuda")
    whisper_compute_type: str = Field("auto", description="auto (int8 on CPU, float16 on CUDA) or any CTranslate2 compute type.")
    whisper_beam_size: int = Field(5, ge=1, le=10, description="Beam size for decoding (1 = greedy, fastest).")
    whisper_vad: bool = Field(True, description="Skip silence with the Silero VAD filter.")
    whisper_cpu_threads: int = Field(0, ge=0, description="CPU threads for Whisper (0 = CTranslate2 default).")
    whisper_translate: bool = Field(True, description="Also ask Whisper for an English translation of non-English speech to build the prompt.")
    whisper_language: str | None = Field(None, description="Force a language code (e.g. zh, en); empty = auto-detect.")
    models_dir: Path = Field(Path("models"), description="Where hub models are cached/downloaded.")

    # --- audio intake ---
    audio_max_bytes: int = Field(20 * 1024 * 1024, gt=0, description="Largest accepted audio file in bytes.")
    audio_max_seconds: float = Field(60.0, gt=0, description="Longest accepted voice note in seconds.")

    # --- prompt ---
    prompt_max_chars: int = Field(500, gt=0, description="Longest accepted typed/heard description in characters.")

    # --- image generation (diffusers) ---
    sd_model: str = Field("stablediffusionapi/anything-v5", description="Stable Diffusion 1.5-class model: Hugging Face id or local diffusers directory.")
    sd_scheduler: str = Field("dpmpp", description="dpmpp (DPM-Solver++ 2M Karras) | euler_a | lcm | turbo")
    sd_steps: int | None = Field(None, ge=1, le=150, description="Denoising steps (empty = the scheduler's default: 25 dpmpp/euler_a, 4 lcm, 1 turbo).")
    sd_guidance: float | None = Field(None, ge=0, le=30, description="Classifier-free guidance (empty = scheduler default: 7.0 dpmpp/euler_a, 1.0 lcm, 0 turbo).")
    sd_width: int = Field(512, ge=64, le=2048, multiple_of=8, description="Image width in pixels.")
    sd_height: int = Field(512, ge=64, le=2048, multiple_of=8, description="Image height in pixels.")
    sd_lora: str | None = Field(None, description="Optional LoRA: Hugging Face id or local .safetensors file/directory.")
    sd_lora_scale: float = Field(0.8, ge=0, le=2, description="Strength of the LoRA.")

    # --- style transfer (AnimeGANv2) ---
    checkpoints_dir: Path = Field(Path("checkpoints"), description="AnimeGANv2 weights and the style registry live here.")
    anime_style: str = Field("face_paint_512_v2", description="Default AnimeGANv2 style.")
    anime_max_side: int = Field(1024, ge=64, le=4096, description="Longest side fed to AnimeGANv2; larger images are scaled down.")
    anime_backend: str = Field("auto", description="auto | onnx | torch (auto picks the fastest available).")
    anime_download: bool = Field(True, description="Download missing AnimeGANv2 weights from their official URL on first use.")

    # --- conversation and limits ---
    card_ttl_seconds: float = Field(600, gt=0, description="How long a confirmation card can be answered.")
    progress_interval_seconds: float = Field(2.0, ge=0, description="Least time between two progress edits of a message.")
    requests_per_minute: int = Field(6, ge=1, description="New requests a user may make per minute.")
    max_queued_per_user: int = Field(3, ge=1, description="Pictures a user may have waiting or running at once.")
    max_queued_total: int = Field(100, ge=1, description="Pictures waiting or running for everyone at once.")
    history_limit: int = Field(5, ge=1, le=20, description="Entries shown by /history.")

    # --- storage ---
    database_url: str = Field(
        "sqlite+aiosqlite:///data/voice2anime.db",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///path.db (default) or postgresql+asyncpg://user:pass@host/db.",
    )
    data_dir: Path = Field(Path("data"), description="Where delivered images are stored (by sha256).")

    # --- platforms ---
    telegram_bot_token: SecretStr | None = Field(None, description="Telegram bot token from @BotFather; starts the Telegram adapter.")
    discord_bot_token: SecretStr | None = Field(None, description="Discord bot token; starts the Discord adapter.")

    torch_device: str = Field("auto", description="Where Stable Diffusion and AnimeGANv2 run: auto (CUDA when present) | cpu | cuda | cuda:N.")
    torch_threads: int = Field(0, ge=0, description="CPU threads for the ONNX Runtime AnimeGANv2 session (0 = library default).")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
