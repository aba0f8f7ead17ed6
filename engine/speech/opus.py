"""Speech samples to an OGG/Opus voice note (what Telegram, Discord and browsers play), with PyAV's libopus."""

from __future__ import annotations

import io

import av
import numpy as np

#: Opus works at 48 kHz; the encoder is fed that.
OPUS_RATE = 48_000
#: Bits per second of the voice note: plenty for one voice.
BITRATE = 32_000


def ogg_opus(samples: np.ndarray, sample_rate: int) -> bytes:
    """Mono float samples in [-1, 1] at ``sample_rate`` as an OGG/Opus file."""
    pcm = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0).reshape(1, -1)
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=OPUS_RATE, layout="mono")
        stream.bit_rate = BITRATE
        resampler = av.AudioResampler(format="s16", layout="mono", rate=OPUS_RATE)
        frame = av.AudioFrame.from_ndarray(pcm, format="flt", layout="mono")
        frame.sample_rate = sample_rate
        for chunk in (*resampler.resample(frame), *resampler.resample(None)):
            container.mux(stream.encode(chunk))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def seconds_of(ogg: bytes) -> float:
    """How long an OGG/Opus file lasts: its last page's granule position less the pre-skip, at 48 kHz (read, not decoded)."""
    position = pre_skip = granule = 0
    while ogg.startswith(b"OggS", position) and position + 27 <= len(ogg):
        segments = ogg[position + 26]
        body = position + 27 + segments
        if position == 0 and ogg.startswith(b"OpusHead", body):
            pre_skip = int.from_bytes(ogg[body + 10 : body + 12], "little")
        granule = max(granule, int.from_bytes(ogg[position + 6 : position + 14], "little", signed=True))
        position = body + sum(ogg[position + 27 : body])
    return max(0, granule - pre_skip) / OPUS_RATE
