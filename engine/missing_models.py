"""Missing models, told to the operator once: one WARNING line per model and fix, never a traceback.

A model that cannot be loaded or fetched fails every request that needs it
until the operator acts; the log says so once, with the fix, instead of a
traceback per request. The user is told by the conversation (the
``model.unavailable`` message), which keeps the request to be retried.
"""

from __future__ import annotations

import logging
import threading

from engine.errors import ModelUnavailableError

log = logging.getLogger(__name__)

#: The start of the message key a request that failed for a missing model carries: ``model.unavailable.<part>``.
MODEL_UNAVAILABLE = "model.unavailable"

_told: set[tuple[str, str]] = set()
_lock = threading.Lock()


def unavailable_key(error: ModelUnavailableError) -> str:
    """The user-facing message key for ``error``: ``model.unavailable.speech``, ``….drawing``, ``….style``, …."""
    return f"{MODEL_UNAVAILABLE}.{error.model}"


def is_unavailable(key: str | None) -> bool:
    """Did a request fail (``error_key``) because a model is missing?"""
    return key is not None and key.startswith(f"{MODEL_UNAVAILABLE}.")


def tell_operator(error: ModelUnavailableError) -> None:
    """Log ``error``'s fix as one WARNING line, the first time this model fails with this fix in this process."""
    key = (error.model, error.fix)
    with _lock:
        if key in _told:
            return
        _told.add(key)
    log.warning("the %s model is not available: %s", error.model.replace("_", " "), error.fix)
