"""Bots and workers of different versions: a job a worker cannot read, or cannot make as asked, is refused, not guessed.

During an upgrade the bot and the workers run different versions for a while.
Two things can go wrong with a job queued by a newer bot:

* the worker cannot read it (:class:`~engine.jobs.wire.WireError`: a kind or a
  value it does not know, such as ``kind="upscale"``);
* it reads it but does not know a field that changes the picture (a control
  image, a remix's picture, the seeds of variations): it would ignore the
  field and silently draw something else. Every spec therefore lists the
  :data:`~engine.api.FEATURES` it uses in ``needs``, and a worker refuses a
  job that needs one it does not know.

Either way the job fails as :data:`WORKER_OUTDATED` (the bot tells the user
the picture server is being updated and keeps the request for "Try again")
and the worker logs one line telling the operator to update the workers.
Workers from before this check answer an unreadable job with
:data:`LEGACY_UNREADABLE`, which the bot takes the same way; they ignore
``needs``, so update the workers before the bot.
"""

from __future__ import annotations

from engine.api import FEATURES, JobFailed, JobSpec
from engine.jobs.wire import WireError

#: The message key of a job this worker is too old to run (the bot's ``worker.outdated`` message).
WORKER_OUTDATED = "worker.outdated"
#: The (``error_key``, ``detail``) with which workers from before :data:`WORKER_OUTDATED` fail a job they cannot read.
LEGACY_UNREADABLE = ("error.generic", "unreadable job spec")
#: Longest reason kept for the log line and the event's detail (a validation error lists every field).
_REASON_CHARS = 300


def unsupported(spec: JobSpec) -> tuple[str, ...]:
    """The features ``spec`` needs that this version does not know (empty: it can run as asked)."""
    return tuple(sorted(set(spec.needs) - FEATURES))


def unreadable(error: WireError) -> JobFailed:
    """The terminal event of a job whose spec this worker cannot read; ``detail`` says why, on one line."""
    return JobFailed(WORKER_OUTDATED, f"unreadable job spec: {one_line(str(error))}")


def refusal(spec: JobSpec) -> JobFailed | None:
    """The terminal event of a job that needs features this worker does not know; None when it can run it."""
    missing = unsupported(spec)
    if not missing:
        return None
    return JobFailed(WORKER_OUTDATED, f"needs {', '.join(missing)}", {"missing": ", ".join(missing)})


def is_outdated(event: JobFailed) -> bool:
    """Did a worker fail the job because it is older than the bot (this version's refusal, or an older worker's)?"""
    return event.error_key == WORKER_OUTDATED or (event.error_key, event.detail) == LEGACY_UNREADABLE


def one_line(text: str) -> str:
    """``text`` on one line, at most a few hundred characters (a log line, an event's detail)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= _REASON_CHARS else flat[: _REASON_CHARS - 1] + "…"
