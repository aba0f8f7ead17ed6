"""The voices the bot can speak with: known sherpa-onnx models, fetched on first use, or a local directory.

``TTS_MODEL`` names a model of the catalogue (``tts_models.json`` beside this
file: release URL, sha256, size, licence) or a local directory. A catalogue
model is downloaded once from its sherpa-onnx release, checked against its
sha256 and unpacked into ``MODELS_DIR/tts/<name>``; offline, or with a bad
file, :class:`VoiceModelUnavailableError` says what to put where.
:class:`VoiceFiles` reads a model directory's layout (VITS or Kokoro, its
lexicons, jieba dictionary and text-normalisation rules) into a sherpa-onnx
configuration.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tarfile
import tempfile
import threading
import urllib.request
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from engine.errors import ModelUnavailableError

log = logging.getLogger(__name__)

#: Seconds a download may stall before it counts as offline.
DOWNLOAD_TIMEOUT = 60.0
_CATALOGUE = Path(__file__).with_name("tts_models.json")
_fetching = threading.Lock()


class VoiceModelUnavailableError(ModelUnavailableError):
    """The text-to-speech model (voice replies) cannot be loaded or fetched."""

    model = "voice"


@dataclass(frozen=True)
class KnownVoice:
    """A model of the catalogue: where it comes from and what it is."""

    name: str
    url: str
    sha256: str
    size_mb: int
    licence: str
    languages: tuple[str, ...]
    speaker: int


@cache
def catalogue() -> dict[str, KnownVoice]:
    """The known models, by name (``tts_models.json``)."""
    entries: dict[str, dict[str, Any]] = json.loads(_CATALOGUE.read_text(encoding="utf-8"))
    return {
        name: KnownVoice(name=name, languages=tuple(entry.pop("languages")), **entry) for name, entry in entries.items()
    }


def model_directory(model: str, models_dir: Path, *, download: bool = True) -> Path:
    """The unpacked directory of ``model`` (a catalogue name or a local directory), fetching it when needed."""
    known = catalogue().get(model)
    if known is None:
        local = Path(model).expanduser()
        if local.is_dir():
            return local
        names = ", ".join(catalogue())
        raise VoiceModelUnavailableError(
            f"the voice model {model!r} is neither a known model ({names}) nor a directory: set TTS_MODEL to one of them"
        )
    target = models_dir / "tts" / known.name
    if target.is_dir():
        return target
    with _fetching:
        if not target.is_dir():
            archive = target.with_name(f"{known.name}.tar.bz2")
            if not archive.is_file():
                if not download:
                    raise VoiceModelUnavailableError(_put_it_here(known, archive))
                _fetch(known, archive)
            _verify(known, archive)
            _unpack(archive, target)
            archive.unlink()
    return target


def _put_it_here(known: KnownVoice, archive: Path) -> str:
    return (
        f"download {known.url} ({known.size_mb} MB, sha256 {known.sha256}) and put it at {archive}, "
        f"or unpack it and set TTS_MODEL to that directory"
    )


def _fetch(known: KnownVoice, archive: Path) -> None:
    log.info("downloading the voice model %s (%d MB) to %s", known.name, known.size_mb, archive)
    archive.parent.mkdir(parents=True, exist_ok=True)
    part = archive.with_name(archive.name + ".part")
    try:
        with urllib.request.urlopen(known.url, timeout=DOWNLOAD_TIMEOUT) as response, part.open("wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    except Exception as exc:  # DNS, refused, HTTP errors, timeouts, a full disk: all mean "not from here"
        part.unlink(missing_ok=True)
        raise VoiceModelUnavailableError(
            f"cannot fetch the voice model {known.name} ({type(exc).__name__}: {exc}): {_put_it_here(known, archive)}"
        ) from exc
    part.replace(archive)


def _verify(known: KnownVoice, archive: Path) -> None:
    digest = hashlib.sha256()
    with archive.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != known.sha256:
        raise VoiceModelUnavailableError(
            f"{archive} has sha256 {digest.hexdigest()}, expected {known.sha256}: delete it and "
            f"{_put_it_here(known, archive)}"
        )


def _unpack(archive: Path, target: Path) -> None:
    """Unpack the release archive (one top directory) into ``target``, atomically."""
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp, tarfile.open(archive) as tar:
        tar.extractall(tmp, filter="data")
        inner = [p for p in Path(tmp).iterdir() if p.is_dir()]
        shutil.move(str(inner[0] if len(inner) == 1 else Path(tmp)), target)


@dataclass(frozen=True)
class VoiceFiles:
    """What a sherpa-onnx voice directory holds, read from its layout.

    A ``voices.bin`` makes it Kokoro, else VITS (Melo, Piper-style, icefall).
    The model is ``model.onnx``, ``model.int8.onnx`` or the only ``*.onnx``;
    ``tokens.txt`` is required; ``lexicon*.txt``, a jieba ``dict/`` and
    ``*.fst`` text-normalisation rules are used when present.
    """

    directory: Path

    def model(self) -> Path:
        """The ONNX graph of the voice."""
        for name in ("model.onnx", "model.int8.onnx"):
            if (self.directory / name).is_file():
                return self.directory / name
        graphs = sorted(self.directory.glob("*.onnx"))
        if len(graphs) != 1:
            raise self._missing("one model.onnx")
        return graphs[0]

    def config(self, threads: int) -> Any:
        """The ``sherpa_onnx.OfflineTtsConfig`` of this voice, checked (sherpa-onnx would end the process on a bad one)."""
        import sherpa_onnx

        directory = self.directory
        if not directory.is_dir():
            raise VoiceModelUnavailableError(f"the voice model directory {directory} does not exist: set TTS_MODEL")
        tokens = directory / "tokens.txt"
        if not tokens.is_file():
            raise self._missing("tokens.txt")
        lexicons = ",".join(str(p) for p in sorted(directory.glob("lexicon*.txt")))
        dict_dir = str(directory / "dict") if (directory / "dict").is_dir() else ""
        model = str(self.model())
        if (directory / "voices.bin").is_file():
            data_dir = str(directory / "espeak-ng-data") if (directory / "espeak-ng-data").is_dir() else ""
            kokoro = sherpa_onnx.OfflineTtsKokoroModelConfig(
                model=model, voices=str(directory / "voices.bin"), tokens=str(tokens), lexicon=lexicons,
                data_dir=data_dir, dict_dir=dict_dir,
            )
            model_config = sherpa_onnx.OfflineTtsModelConfig(kokoro=kokoro, num_threads=threads)
        else:
            if not lexicons:
                raise self._missing("lexicon.txt")
            vits = sherpa_onnx.OfflineTtsVitsModelConfig(model=model, lexicon=lexicons, tokens=str(tokens), dict_dir=dict_dir)
            model_config = sherpa_onnx.OfflineTtsModelConfig(vits=vits, num_threads=threads)
        rules = ",".join(str(p) for p in sorted(directory.glob("*.fst")))
        config = sherpa_onnx.OfflineTtsConfig(model=model_config, rule_fsts=rules, max_num_sentences=1)
        if not config.validate():
            raise VoiceModelUnavailableError(f"the voice model in {directory} is incomplete or unreadable: unpack it again")
        return config

    def _missing(self, what: str) -> VoiceModelUnavailableError:
        return VoiceModelUnavailableError(
            f"the voice model directory {self.directory} has no {what}: unpack a sherpa-onnx TTS model there"
        )
