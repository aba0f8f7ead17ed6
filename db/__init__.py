"""The history database: users, chats, settings, requests (a guarded state machine), transcripts and images.

``create_database(url)`` opens it, ``Repository`` is what the bot reads and
writes through, ``db.migrate.upgrade``/``upgrade_async`` bring the schema up to
date. SQLite (``sqlite+aiosqlite``) by default, PostgreSQL (``postgresql+asyncpg``)
by URL.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from db.enums import ChatKind, ImageRole, RequestKind
    from db.preferences import KEEP, ChatOverrides, Preferences
    from db.records import ImageRecord, RequestRecord, TranscriptRecord, WordRecord
    from db.repository import Repository
    from db.session import DEFAULT_URL, Database, create_database
    from db.states import ACTIVE_STATES, TERMINAL_STATES, RequestState

#: Where each name below lives. They are imported on first use: importing ``db.session`` to check
#: DATABASE_URL (every command reads the settings) must not load the ORM models and the repository.
_HOMES = {
    "db.enums": ("ChatKind", "ImageRole", "RequestKind"),
    "db.preferences": ("KEEP", "ChatOverrides", "Preferences"),
    "db.records": ("ImageRecord", "RequestRecord", "TranscriptRecord", "WordRecord"),
    "db.repository": ("Repository",),
    "db.session": ("DEFAULT_URL", "Database", "create_database"),
    "db.states": ("ACTIVE_STATES", "TERMINAL_STATES", "RequestState"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'db' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ACTIVE_STATES",
    "DEFAULT_URL",
    "KEEP",
    "TERMINAL_STATES",
    "ChatKind",
    "ChatOverrides",
    "Database",
    "ImageRecord",
    "ImageRole",
    "Preferences",
    "Repository",
    "RequestKind",
    "RequestRecord",
    "RequestState",
    "TranscriptRecord",
    "WordRecord",
    "create_database",
]
