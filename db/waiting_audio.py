"""Voice notes waiting for the speech model, kept on disk so that a restart does not lose them.

A voice note that cannot be listened to yet (no Whisper model: the operator
sets ``WHISPER_MODEL`` and restarts) waits with Retry. Its recording is kept
at ``<data_dir>/waiting-audio/<request id>`` until it is listened to, so Retry
after the restart still has it. Request ids are the database's own (hex), never
user input.
"""

from __future__ import annotations

import re
from contextlib import suppress
from pathlib import Path

from engine.files import atomic_write

_REQUEST_ID = re.compile(r"^[0-9a-f]{8,64}$")


class WaitingAudio:
    """The recordings of voice notes waiting for the speech model, one file each. Blocking I/O."""

    def __init__(self, data_dir: Path) -> None:
        self.directory = Path(data_dir) / "waiting-audio"

    def keep(self, request_id: str, audio: bytes) -> None:
        """Keep ``audio`` for ``request_id`` (replacing what was kept)."""
        atomic_write(self._path(request_id), audio)

    def take(self, request_id: str) -> bytes | None:
        """The recording kept for ``request_id``, removed from the disk; None when there is none."""
        path = self._path(request_id)
        try:
            audio = path.read_bytes()
        except FileNotFoundError:
            return None
        with suppress(FileNotFoundError):
            path.unlink()
        return audio

    def _path(self, request_id: str) -> Path:
        if not _REQUEST_ID.match(request_id):
            raise ValueError(f"not a request id: {request_id!r}")
        return self.directory / request_id
