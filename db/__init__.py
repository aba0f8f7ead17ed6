"""The history database: users, chats, settings, requests (a guarded state machine), transcripts and images.

``create_database(url)`` opens it, ``Repository`` is what the bot reads and
writes through, ``db.migrate.upgrade``/``upgrade_async`` bring the schema up to
date. SQLite (``sqlite+aiosqlite``) by default, PostgreSQL (``postgresql+asyncpg``)
by URL.
"""

from db.enums import ChatKind, ImageRole, RequestKind
from db.preferences import KEEP, ChatOverrides, Preferences
from db.records import ImageRecord, RequestRecord, TranscriptRecord, WordRecord
from db.repository import Repository
from db.session import DEFAULT_URL, Database, create_database
from db.states import ACTIVE_STATES, TERMINAL_STATES, RequestState

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
