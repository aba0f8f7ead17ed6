"""What the ``voice2anime`` command writes to the terminal, and what it keeps off it.

* **Only our own lines on stderr.** :func:`quiet_libraries` turns the
  libraries' warnings and progress bars off through their own public switches
  (environment variables read when they are first imported, so ``--help`` and
  ``prompt`` still never import them), and :func:`setup_logging` lets through
  the records of this project's packages and only errors of everyone else's.
  ``-v`` keeps every library's own output and logs at DEBUG.
* **Errors are whole.** :func:`error_line` is the one line ``error: …``
  prints: the operator's full message, never cut short.
* **Progress on a terminal only.** :data:`status` is one line on stderr,
  rewritten in place ("drawing 2/4"), shown only when stderr is a TTY; log
  records printed meanwhile clear it first and draw it again after.
* **A reader that goes away** (``voice2anime styles | head -1``) ends the
  command quietly: :class:`StdoutWatch` notes the closed pipe and
  :func:`reader_went_away` makes the exit code :data:`READER_GONE`.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

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
#: Exit code when the reader of stdout went away: what a shell reports for a process ended by SIGPIPE (128 + 13).
READER_GONE = 141


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


class StatusLine:
    """One line of progress on a terminal's stderr, rewritten in place (``\\r`` + text + erase to the end of the line).

    Shown only when stderr is a TTY; elsewhere every call does nothing,
    so a redirected stderr gets no progress at all. Thread-safe: log records
    from other threads go through :meth:`paused`.
    """

    def __init__(self) -> None:
        self._text = ""
        self._lock = threading.RLock()

    @property
    def stream(self) -> TextIO:
        """Where the line goes: the current ``sys.stderr``."""
        return sys.stderr

    @property
    def enabled(self) -> bool:
        """Whether the line is shown: only on a terminal."""
        try:
            return self.stream.isatty()
        except (AttributeError, ValueError, OSError):  # closed or not a real stream
            return False

    def show(self, text: str) -> None:
        """Replace the line with ``text`` (on a terminal)."""
        if not self.enabled:
            return
        with self._lock:
            if text != self._text:
                self._text = text
                self._draw()

    def clear(self) -> None:
        """Erase the line, if one is shown; later output starts at the beginning of an empty line."""
        with self._lock:
            if not self._text:
                return
            self._text = ""
            self._write("\r\x1b[K")

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Erase the line for the duration of the block (something else writes to the stream), then draw it again."""
        with self._lock:
            shown = self._text
            if shown:
                self._write("\r\x1b[K")
            try:
                yield
            finally:
                if shown:
                    self._draw()

    def _draw(self) -> None:
        self._write(f"\r{self._text}\x1b[K")

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # the terminal went away: progress is not worth an error
            pass


#: The command's progress line on stderr (see :class:`StatusLine`).
status = StatusLine()


class Progress:
    """A :data:`engine.api.ProgressCallback` that shows a picture's stages on :data:`status`: "drawing 2/4", then the style.

    ``steps`` is the number of denoising steps drawing takes (the fraction the
    engine reports is turned back into "step n of steps").
    """

    def __init__(self, steps: int) -> None:
        self.steps = max(1, steps)

    def __call__(self, stage: str, fraction: float) -> None:
        if stage == "diffusion":
            step = min(self.steps, max(1, round(fraction * self.steps)))
            status.show(f"drawing {step}/{self.steps}")
        elif stage == "style":
            status.show("applying the anime style")
        else:
            status.show(stage)


class StatusAwareHandler(logging.StreamHandler):
    """A stderr handler that clears :data:`status` before a record and draws it again after."""

    def emit(self, record: logging.LogRecord) -> None:
        with status.paused():
            super().emit(record)


def setup_logging(*, verbose: bool) -> None:
    """Log to stderr: INFO and up of our own packages and errors of the libraries; with ``verbose`` everything at DEBUG.

    Like :func:`logging.basicConfig` it does nothing when the root logger
    already has handlers (a test harness, an embedding program).
    """
    root = logging.getLogger()
    if root.handlers:
        return
    handler = StatusAwareHandler(sys.stderr)
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


class StdoutWatch:
    """Wraps ``sys.stdout`` for a command and notes when its reader went away (a broken pipe) before re-raising."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.reader_gone = False

    @property
    def wrapped(self) -> TextIO:
        """The stream written to."""
        return self._stream

    def write(self, text: str) -> int:
        with self._noting():
            return self._stream.write(text)

    def flush(self) -> None:
        with self._noting():
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    @contextmanager
    def _noting(self) -> Iterator[None]:
        try:
            yield
        except BrokenPipeError:
            self.reader_gone = True
            raise


@contextmanager
def watching_stdout() -> Iterator[StdoutWatch]:
    """``sys.stdout`` wrapped in a :class:`StdoutWatch` for the block (restored after, also for tests)."""
    original = sys.stdout
    watch = StdoutWatch(original)
    sys.stdout = watch  # a TextIO in all but name: it passes every other call on (__getattr__)
    try:
        yield watch
    finally:
        if sys.stdout is watch:
            sys.stdout = original


def reader_went_away() -> int:
    """End quietly after a broken stdout pipe: point stdout at /dev/null (so the exit's flush writes nowhere) and
    return :data:`READER_GONE`."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no file descriptor (a test's captured stream): nothing to flush
        pass
    return READER_GONE
