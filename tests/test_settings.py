"""Settings: environment parsing and README coverage."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.settings import Settings

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_documented_in_the_readme(field: str) -> None:
    assert f"`{field.upper()}" in README, f"{field.upper()} missing from README settings table"


def test_settings_read_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHISPER_BEAM_SIZE", "1")
    monkeypatch.setenv("SD_MODEL", "/models/my-sd")
    monkeypatch.setenv("WHISPER_VAD", "false")
    settings = Settings()
    assert (settings.whisper_beam_size, settings.sd_model, settings.whisper_vad) == (1, "/models/my-sd", False)


def test_settings_read_from_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("AUDIO_MAX_SECONDS=30\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert Settings().audio_max_seconds == 30


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SD_WIDTH", "513"),
        ("WHISPER_BEAM_SIZE", "0"),
        ("AUDIO_MAX_BYTES", "-1"),
        ("SD_SCHEDULER", "fast"),
        ("ANIME_BACKEND", "tensorrt"),
        ("TORCH_DEVICE", "gpu"),
        ("TORCH_DEVICE", "cuda:"),
        ("WHISPER_DEVICE", "gpu"),
        ("DATABASE_URL", "postgresql://bot:pw@db/voice2anime"),
        ("DATABASE_URL", "postgresql+asyncpg://bot:pw@db:port/voice2anime"),
    ],
)
def test_invalid_settings_are_rejected(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TORCH_DEVICE", "cuda:1"),
        ("TORCH_DEVICE", "mps"),
        ("DATABASE_URL", "postgresql+asyncpg://bot:pw@db:5432/voice2anime"),
        ("DATABASE_URL", "postgresql+asyncpg:///voice2anime"),
        ("DATABASE_URL", "sqlite+aiosqlite:///:memory:"),
    ],
)
def test_valid_device_and_database_settings_are_accepted(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    assert getattr(Settings(), name.lower()) == value
