"""Content-addressed PNG files under the data directory.

A picture is stored once per distinct content at
``<data_dir>/images/ab/cd/<sha256>.png`` (``ab``/``cd`` = first two byte pairs
of the hash, so no directory grows huge). Writes are atomic: the bytes go to a
temporary file in the target directory, are fsynced, then renamed into place;
a reader never sees a half-written file, and two writers of the same bytes
both end up with the same complete file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from engine.files import atomic_write

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class StoredImage:
    """Where a PNG was stored and what it is."""

    sha256: str
    #: Relative to the data dir, POSIX separators (what the database keeps).
    relative_path: PurePosixPath
    width: int
    height: int


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; ``ValueError`` if ``data`` is not a PNG."""
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise ValueError("not a PNG image")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


class ImageStore:
    """PNG files under ``<data_dir>/images``, keyed and deduplicated by sha256."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)

    def path_of(self, relative_path: str | PurePosixPath) -> Path:
        """Absolute location of a stored file given its database path."""
        return self.data_dir.joinpath(*PurePosixPath(relative_path).parts)

    def put_png(self, data: bytes) -> StoredImage:
        """Store ``data`` (PNG bytes) unless identical bytes are already stored. Blocking I/O."""
        width, height = png_size(data)
        digest = hashlib.sha256(data).hexdigest()
        relative = PurePosixPath("images", digest[:2], digest[2:4], f"{digest}.png")
        target = self.path_of(relative)
        if not target.exists():
            atomic_write(target, data)
        return StoredImage(sha256=digest, relative_path=relative, width=width, height=height)
