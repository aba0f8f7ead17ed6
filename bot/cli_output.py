"""What the ``voice2anime`` command writes to the terminal, and what it keeps off it.

* **Only our own lines on stderr.** :func:`quiet_libraries` turns the
  libraries' warnings and progress bars off through their own public switches
  (environment variables read when they are first imported, so ``--help`` and
  ``prompt`` still never import them), and :func:`setup_logging` lets through
  the records of this project's packages and only errors of everyone else's.
  ``-v`` keeps every library's own output and logs at DEBUG.
* **Errors are whole.** :func:`error_line` is the one line ``error: …``
  prints: the operator's full message, never cut short.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

from engine.errors import UserError

#: Top-level packages whose log records are ours (every level shown); other loggers show errors only, unless -v.
OWN_PACKAGES = frozenset({"voice2anime", "bot", "handlers", "engine", "db", "__main__"})
#: The libraries' own switches for their warnings and progress bars, set (unless already set) when -v is not given:
#: transformers, diffusers and huggingface_hub log through their own handlers at the level these name; tqdm's
#: ``TQDM_DISABLE`` covers the bars with no switch of their own (diffusers' "Loading pipeline components");
#: ``CT2_VERBOSE=-1`` keeps CTranslate2's (Whisper's) C++ log to errors.
QUIET_ENVIRONMENT = {
    "TRANSFORMERS_VERBOSITY": "error",
    "DIFFUSERS_VERBOSITY": "error",
    "HF_HUB_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TQDM_DISABLE": "1",
    "CT2_VERBOSE": "-1",
}
#: The log line format (tests/test_startup_errors.py reads it back).
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def quiet_libraries(*, verbose: bool) -> None:
    """Keep library warnings, notices and progress bars off stderr (see :data:`QUIET_ENVIRONMENT`), unless ``verbose``.

    Call it before any of those libraries is imported: they read these
    switches once. A switch the operator set in the environment is kept.
    Python warnings are ignored too, unless ``-W``/``PYTHONWARNINGS`` asks for them.
    """
    if verbose:
        return
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    if not sys.warnoptions:
        warnings.simplefilter("ignore")


class OwnRecords(logging.Filter):
    """Pass this project's records (:data:`OWN_PACKAGES`) and other loggers' errors; drop libraries' info and warnings."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or record.name.partition(".")[0] in OWN_PACKAGES


def setup_logging(*, verbose: bool) -> None:
    """Log to stderr: INFO and up of our own packages and errors of the libraries; with ``verbose`` everything at DEBUG.

    Like :func:`logging.basicConfig` it does nothing when the root logger
    already has handlers (a test harness, an embedding program).
    """
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    if not verbose:
        handler.addFilter(OwnRecords())
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def error_line(error: BaseException, message: str) -> str:
    """What follows ``error:`` for ``error``, classified as ``message`` (:func:`bot.startup_errors.classify`).

    A :class:`UserError` keeps its translated text; any other error is its
    own message, whole, on one line: the classification caps a line's length,
    which cut a long model error off before its "what to put where" ended.
    """
    if isinstance(error, UserError):
        return message
    return " ".join(str(error).split()) or message

