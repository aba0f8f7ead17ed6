"""The life cycle of a request: states and the transitions allowed between them.

:data:`TRANSITIONS` is the single source of truth for which moves exist; the
state diagram (with the event behind each move) lives beside the conversation
in ``handlers/conversation/routes.py`` and a test checks that the two agree. The database
applies every transition as a guarded ``UPDATE ... WHERE state IN (allowed
sources)``; asking for a move that is not in the table is a programming error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum


class RequestState(StrEnum):
    """Where a request is in its life cycle (stored as its string value)."""

    TRANSCRIBING = "transcribing"
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    QUEUED = "queued"
    RUNNING = "running"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


_S = RequestState

#: from-state -> states it may move to.
TRANSITIONS: Mapping[RequestState, frozenset[RequestState]] = {
    _S.TRANSCRIBING: frozenset({_S.AWAITING_CONFIRMATION, _S.FAILED}),
    _S.AWAITING_CONFIRMATION: frozenset({_S.QUEUED, _S.TRANSCRIBING, _S.CANCELLED, _S.EXPIRED, _S.FAILED}),
    _S.QUEUED: frozenset({_S.RUNNING, _S.CANCELLED, _S.FAILED, _S.AWAITING_CONFIRMATION}),
    _S.RUNNING: frozenset({_S.DELIVERED, _S.FAILED, _S.CANCELLED, _S.QUEUED, _S.AWAITING_CONFIRMATION}),
    _S.DELIVERED: frozenset(),
    _S.FAILED: frozenset(),
    _S.CANCELLED: frozenset(),
    _S.EXPIRED: frozenset(),
}

#: States a request may be created in.
INITIAL_STATES: frozenset[RequestState] = frozenset({_S.TRANSCRIBING, _S.AWAITING_CONFIRMATION, _S.QUEUED})
#: States that occupy a generation slot (used for per-user and global limits).
ACTIVE_STATES: frozenset[RequestState] = frozenset({_S.QUEUED, _S.RUNNING})
#: States a request never leaves.
TERMINAL_STATES: frozenset[RequestState] = frozenset(s for s, targets in TRANSITIONS.items() if not targets)


def allowed_sources(
    to_state: RequestState, from_states: Iterable[RequestState] | None = None
) -> frozenset[RequestState]:
    """The states a request may be in for a move to ``to_state``.

    With ``from_states`` the result is narrowed to those states; each of them
    must be a legal source. Raises ``ValueError`` if the move (or one of the
    given sources) is not in :data:`TRANSITIONS`.
    """
    to_state = RequestState(to_state)
    legal = frozenset(s for s, targets in TRANSITIONS.items() if to_state in targets)
    if from_states is None:
        if not legal:
            raise ValueError(f"no transition leads to {to_state.value!r}")
        return legal
    wanted = frozenset(RequestState(s) for s in from_states)
    illegal = wanted - legal
    if illegal or not wanted:
        names = ", ".join(sorted(s.value for s in illegal)) or "(none given)"
        raise ValueError(f"illegal transition to {to_state.value!r} from: {names}")
    return wanted
