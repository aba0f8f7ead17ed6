"""Data derived from a shipped file (a parsed dictionary), kept on disk so the next process loads it instead.

Parsing CC-CEDICT and listing its English words take seconds; loading the
same data back with :mod:`marshal` a fraction of that
(``docs/decisions/derived-data-cache.md``). The copy lives in ``$XDG_CACHE_HOME/voice2anime`` (default
``~/.cache/voice2anime``), named by what it was made from: the source file's
path, size and modification time, the Python version and ``name``. A changed
source, another Python or a damaged copy simply builds again; a cache that
cannot be written (read-only home) costs only the time.
"""

from __future__ import annotations

import hashlib
import logging
import marshal
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from engine.files import atomic_write

log = logging.getLogger(__name__)
T = TypeVar("T")


def cache_dir() -> Path:
    """Where derived data is kept: ``$XDG_CACHE_HOME/voice2anime``, else ``~/.cache/voice2anime``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "voice2anime"


def remembered(name: str, source: Path, build: Callable[[], T]) -> T:
    """``build()``, or what an earlier process built from the same ``source`` (marshal-able data only)."""
    try:
        stat = source.stat()
    except OSError:
        return build()  # build() says what is wrong with the source
    identity = f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{sys.version_info[:2]}|{marshal.version}|{name}"
    path = cache_dir() / f"{name}-{hashlib.sha256(identity.encode()).hexdigest()[:16]}.marshal"
    try:
        value: T = marshal.loads(path.read_bytes())  # what build() returned, marshalled
        return value
    except FileNotFoundError:
        pass
    except (OSError, EOFError, ValueError, TypeError):
        log.warning("the cached %s at %s is unreadable; building it again", name, path)
    value = build()
    try:
        atomic_write(path, marshal.dumps(value))  # type: ignore[arg-type]  # T is marshal-able data (the docstring's contract)
    except (OSError, ValueError) as exc:
        log.debug("could not keep %s at %s: %s", name, path, exc)
    return value
