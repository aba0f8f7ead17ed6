"""Audio intake: every accepted format decodes, every bad file gets its typed, user-facing error."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest

from engine.errors import (
    AudioError,
    AudioTooLargeError,
    AudioTooLongError,
    EmptyAudioError,
    UnsupportedAudioError,
)
from engine.speech.audio import SAMPLE_RATE, AudioLimits, DecodedAudio, load_audio
from handlers.i18n import error_text

LIMITS = AudioLimits(max_bytes=2 * 1024 * 1024, max_seconds=30.0)


@pytest.mark.parametrize("fmt", ["ogg", "mp3", "m4a", "wav"])
def test_voice_note_formats_decode_to_16k_mono_float(english_voice_notes, fmt):
    clip = english_voice_notes[fmt]
    audio = load_audio(clip.path, LIMITS)
    assert isinstance(audio, DecodedAudio)
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert audio.duration == pytest.approx(len(audio.samples) / SAMPLE_RATE)
    assert 5.0 < audio.duration < 10.0
    assert 0.05 < np.abs(audio.samples).max() <= 1.0


def test_bytes_and_path_give_the_same_samples(english_voice_notes):
    path = english_voice_notes["ogg"].path
    from_path, from_bytes = load_audio(path, LIMITS), load_audio(path.read_bytes(), LIMITS)
    np.testing.assert_array_equal(from_path.samples, from_bytes.samples)


def test_tag_that_is_not_utf8_does_not_reject_the_voice_note(mistagged_ogg, english_voice_notes):
    """PyAV <= 18 decodes tags strictly unless told not to; PyAV 19 has no such option (and no such failure)."""
    assert b"Caf\xe9" in mistagged_ogg.path.read_bytes()
    audio = load_audio(mistagged_ogg.path, LIMITS)
    np.testing.assert_array_equal(audio.samples, load_audio(english_voice_notes["ogg"].path, LIMITS).samples)


def test_formats_agree_on_duration(english_voice_notes):
    durations = [load_audio(c.path, LIMITS).duration for c in english_voice_notes.values()]
    assert max(durations) - min(durations) < 0.1


@pytest.mark.parametrize("source", [b"", "empty-file"])
def test_empty_input(tmp_path, source):
    if source == "empty-file":
        source = tmp_path / "voice.ogg"
        source.touch()
    with pytest.raises(EmptyAudioError) as err:
        load_audio(source, LIMITS)
    assert err.value.key == "audio.empty"


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("truncated_ogg", AudioError),
        ("truncated_m4a", UnsupportedAudioError),
        ("garbage", UnsupportedAudioError),
        ("text", UnsupportedAudioError),
        ("png", UnsupportedAudioError),
        ("video_no_audio", UnsupportedAudioError),
    ],
)
def test_unreadable_or_non_audio_files(bad_audio_files, kind, error, caplog):
    with caplog.at_level(logging.INFO, logger="engine.speech.audio"), pytest.raises(error) as err:
        load_audio(bad_audio_files[kind], LIMITS)
    assert isinstance(err.value, AudioError)
    assert "OGG/MP3/M4A/WAV" in error_text(err.value.key, "en", err.value.params), "the user learns what to send"
    assert any(r.name == "engine.speech.audio" and "rejected" in r.getMessage() for r in caplog.records)


def test_truncated_stream_keeps_the_decoded_part(english_voice_notes, caplog):
    data = english_voice_notes["mp3"].path.read_bytes()
    with caplog.at_level(logging.WARNING, logger="engine.speech.audio"):
        audio = load_audio(data[: len(data) // 4], LIMITS)
    assert 0.5 < audio.duration < 4.0
    assert "truncated" in caplog.text


def test_too_large_is_checked_before_decoding():
    with pytest.raises(AudioTooLargeError) as err:
        load_audio(b"\0" * 3000, AudioLimits(max_bytes=2048, max_seconds=30))
    assert err.value.key == "audio.too_large"
    assert err.value.params["limit_mb"] == pytest.approx(2048 / 1024 / 1024)
    shown = error_text(err.value.key, "en", err.value.params)
    assert "too big" in shown and "MB" in shown


def test_too_long_rejected_from_the_declared_duration(long_ogg):
    started = time.perf_counter()
    with pytest.raises(AudioTooLongError) as err:
        load_audio(long_ogg, LIMITS)
    assert time.perf_counter() - started < 0.5  # no 2-minute decode happened
    assert err.value.params == {"seconds": pytest.approx(120, abs=1), "limit": 30.0}
    assert error_text(err.value.key, "en", err.value.params) == "That voice note is 120 s long. Please keep it under 30 s."


def test_declared_duration_is_not_trusted(understated_ogg):
    limits = AudioLimits(max_bytes=LIMITS.max_bytes, max_seconds=60)
    with pytest.raises(AudioTooLongError) as err:
        load_audio(understated_ogg, limits)
    assert err.value.params["seconds"] > 60
    assert load_audio(understated_ogg, AudioLimits(LIMITS.max_bytes, 100)).duration == pytest.approx(80, abs=0.5)


def test_playlist_cannot_pull_in_other_files(tmp_path, english_voice_notes):
    playlist = tmp_path / "voice.m3u8"
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{english_voice_notes['wav'].path}\n#EXT-X-ENDLIST\n")
    with pytest.raises(UnsupportedAudioError):
        load_audio(playlist, LIMITS)


def test_missing_path_is_a_caller_bug(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_audio(Path(tmp_path / "nope.ogg"), LIMITS)
