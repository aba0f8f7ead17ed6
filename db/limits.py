"""Request caps the database enforces atomically: new requests per minute, active pictures per user and in total.

The check and the write it guards happen in one transaction that holds an
admission lock (PostgreSQL: a transaction-scoped advisory lock; SQLite: the
database's write lock, taken first), so concurrent requests can never go over
a cap together.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Cap(StrEnum):
    """Which cap a request ran into."""

    PER_MINUTE = "per_minute"
    ACTIVE_PER_USER = "active_per_user"
    ACTIVE_TOTAL = "active_total"


@dataclass(frozen=True)
class Caps:
    """The numbers behind each :class:`Cap`."""

    requests_per_minute: int
    active_per_user: int
    active_total: int

    def limit(self, cap: Cap) -> int:
        """The number for ``cap``."""
        return {
            Cap.PER_MINUTE: self.requests_per_minute,
            Cap.ACTIVE_PER_USER: self.active_per_user,
            Cap.ACTIVE_TOTAL: self.active_total,
        }[cap]


class CapReached(Exception):
    """A request (or a move to ``queued``) was refused because ``cap`` is reached."""

    def __init__(self, cap: Cap, limit: int) -> None:
        super().__init__(f"{cap.value} cap reached ({limit})")
        self.cap = cap
        self.limit = limit
