"""Audio intake: bytes or a file from a chat -> 16 kHz mono float32 samples.

Accepts whatever PyAV (FFmpeg) can demux and that has an audio stream:
OGG/Opus voice notes (Telegram, Discord), MP3, M4A/AAC, WAV, FLAC, WebM, ...
Every rejection raises a typed :class:`engine.errors.AudioError` and logs one
line for the operator; no raw decoder exception escapes for bad input.

Checks run cheapest first: byte size, then the container's declared duration
(so a two-hour file is refused without decoding it), then the real decoded
length, because the declared duration may be missing or wrong.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from engine.errors import (
    AudioError,
    AudioTooLargeError,
    AudioTooLongError,
    EmptyAudioError,
    UnsupportedAudioError,
)

log = logging.getLogger(__name__)

#: Sample rate Whisper expects.
SAMPLE_RATE = 16_000
#: Codec padding / rounding tolerated above ``max_seconds`` (a "60 s" note may decode to 60.05 s).
DURATION_SLACK_SECONDS = 0.5

#: Keyword arguments for :func:`av.open`, per PyAV major version. PyAV <= 18 decodes
#: container and stream metadata eagerly and strictly as UTF-8 (one tag with a stray
#: byte would fail the whole file) unless ``metadata_errors`` says otherwise; PyAV 19
#: removed that argument (passing it is a ``TypeError``) and always decodes with
#: "surrogateescape". pyproject.toml caps av below 20 until the next major is checked.
_AV_MAJOR = int(av.__version__.split(".")[0])
_OPEN_KWARGS: dict[str, str] = {"metadata_errors": "ignore"} if _AV_MAJOR < 19 else {}


@dataclass(frozen=True)
class AudioLimits:
    """What a voice note may be: at most ``max_bytes`` and ``max_seconds`` long."""

    max_bytes: int
    max_seconds: float


@dataclass(frozen=True)
class DecodedAudio:
    """Decoded speech: float32 mono samples at :data:`SAMPLE_RATE`, and their length in seconds."""

    samples: np.ndarray
    duration: float


def load_audio(source: bytes | Path, limits: AudioLimits) -> DecodedAudio:
    """Check and decode a voice note to 16 kHz mono float32.

    ``source`` is the file's bytes or a path to it (a missing path raises
    ``FileNotFoundError``: that is the caller's bug, not the user's).

    Raises :class:`EmptyAudioError` (no bytes / no samples),
    :class:`AudioTooLargeError`, :class:`AudioTooLongError`,
    :class:`UnsupportedAudioError` (not audio, no audio stream) or
    :class:`AudioError` (unreadable/truncated).
    """
    size = len(source) if isinstance(source, bytes) else source.stat().st_size
    if size == 0:
        log.info("audio rejected: empty file")
        raise EmptyAudioError()
    if size > limits.max_bytes:
        log.info("audio rejected: %d bytes > limit %d", size, limits.max_bytes)
        raise AudioTooLargeError.of(size, limits.max_bytes)
    data = source if isinstance(source, bytes) else source.read_bytes()
    # Always decode from memory, never by file name: FFmpeg picks some demuxers
    # (HLS playlists, ...) from the name, and those open further files/URLs.
    # A protocol whitelist naming no real protocol ("none") forbids any nested open.
    try:
        container = av.open(io.BytesIO(data), options={"protocol_whitelist": "none"}, **_OPEN_KWARGS)
    except av.error.EOFError as exc:
        log.info("audio rejected: file ends before its header does (%s)", exc)
        raise AudioError(detail=str(exc)) from exc
    except av.error.FFmpegError as exc:
        log.info("audio rejected: not a media file FFmpeg can read (%s)", exc)
        raise UnsupportedAudioError(detail=str(exc)) from exc
    with container:
        if not container.streams.audio:
            log.info("audio rejected: %s file has no audio stream", container.format.name)
            raise UnsupportedAudioError(detail=f"{container.format.name} without an audio stream")
        declared = _declared_seconds(container)
        if declared is not None and declared > limits.max_seconds + DURATION_SLACK_SECONDS:
            log.info("audio rejected: declared %.1f s > limit %.1f s", declared, limits.max_seconds)
            raise AudioTooLongError(seconds=declared, limit=limits.max_seconds)
        samples = _decode(container, limits)
        if len(samples) == 0:
            log.info("audio rejected: %s stream decoded to no samples", container.format.name)
            raise EmptyAudioError()
    duration = len(samples) / SAMPLE_RATE
    if declared is not None and duration < declared / 2 and declared - duration > 1.0:
        log.warning("audio decoded %.1f s of a declared %.1f s (truncated file?); using what was decoded", duration, declared)
    return DecodedAudio(samples=samples, duration=duration)


def _declared_seconds(container: av.container.InputContainer) -> float | None:
    """The duration the container claims, if it claims one."""
    if container.duration is not None:
        return container.duration / av.time_base
    stream = container.streams.audio[0]
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return None


def _decode(container: av.container.InputContainer, limits: AudioLimits) -> np.ndarray:
    """Decode the first audio stream, stopping as soon as it is longer than allowed.

    Corrupt packets are skipped; a stream that breaks off keeps what was
    decoded before the break (an error only if that is nothing).
    """
    stream = container.streams.audio[0]
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    max_samples = int((limits.max_seconds + DURATION_SLACK_SECONDS) * SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    total = 0
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                continue
            for frame in frames:
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    chunks.append(chunk)
                    total += len(chunk)
            if total > max_samples:
                seconds = total / SAMPLE_RATE
                log.info("audio rejected: decoded %.1f s > limit %.1f s", seconds, limits.max_seconds)
                raise AudioTooLongError(seconds=seconds, limit=limits.max_seconds)
        chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    except (av.error.FFmpegError, ValueError) as exc:
        # ValueError: the resampler refuses a stream whose format changes midway.
        if total == 0:
            log.info("audio rejected: undecodable %s stream (%s)", container.format.name, exc)
            raise AudioError(detail=str(exc)) from exc
        log.warning("audio stream broke off after %.1f s (%s); using what was decoded", total / SAMPLE_RATE, exc)
    return np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
