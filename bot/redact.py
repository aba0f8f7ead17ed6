"""Keep secrets out of everything the process writes.

A secret is a bot token (Telegram, Discord), the password of ``DATABASE_URL``
or ``REDIS_URL``, or the Telegram webhook secret. They reach output in
unexpected ways: python-telegram-bot and httpx log request URLs (a Bot API
URL contains the token), python-telegram-bot puts the token in
``InvalidToken``'s message, a driver may put a connection URL in an
exception, and an uncaught exception prints its message with the traceback.

So redaction is not left to the code that logs. :func:`redacting` wraps the
command line's ``main`` and covers every way out of the process:

* ``sys.stdout`` / ``sys.stderr`` are replaced by :class:`RedactingStream`
  (``print``, warnings, logging's stream handlers and last-resort handler,
  the interpreter's own error reports all write there);
* every log record is scrubbed when it is created (message, arguments,
  traceback, stack), whichever logger or handler it goes to — asyncio's
  default exception handler ("Task exception was never retrieved") logs
  through it too;
* ``sys.excepthook``, ``threading.excepthook`` and ``sys.unraisablehook``
  print redacted tracebacks, also after ``main`` has returned;
* an exception ``main`` lets through (a bug: the CLI turns what an operator
  can act on into one line itself, see :mod:`bot.startup_errors`) is printed
  as a redacted traceback, exit code 1.

Which secrets: the values of ``TELEGRAM_BOT_TOKEN``, ``DISCORD_BOT_TOKEN``,
``TELEGRAM_WEBHOOK_SECRET`` and the passwords in ``DATABASE_URL`` /
``REDIS_URL`` as found in the environment or ``.env`` (read before the
settings are validated, so even a settings error cannot print them), plus
what the code registers later with :func:`add_secret` (a generated webhook
secret). Patterns catch the rest: anything shaped like a Telegram or Discord
token, and the password part of any ``scheme://user:password@host`` URL.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ParamSpec, TextIO
from urllib.parse import parse_qsl, quote, unquote, urlsplit

REDACTED = "<redacted>"

#: Anything shaped like a Telegram bot token ("<bot id>:<35-char secret>"), with or without the "bot" prefix.
TOKEN_PATTERN = re.compile(r"\d{5,}:[A-Za-z0-9_-]{30,}")
#: Anything shaped like a Discord bot token (base64 user id . timestamp . HMAC).
DISCORD_TOKEN_PATTERN = re.compile(r"[MNO][A-Za-z0-9_-]{23,27}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,40}")
#: The password of a URL with credentials: ``scheme://user:<password>@``.
URL_PASSWORD_PATTERN = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/?#@]*:)([^\s/?#@]+)@")
#: Settings whose whole value is secret.
SECRET_SETTINGS = ("TELEGRAM_BOT_TOKEN", "DISCORD_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET")
#: Settings that are URLs whose password is secret.
URL_SETTINGS = ("DATABASE_URL", "REDIS_URL")
#: Shorter values are not replaced wherever they occur (a 3-letter password would mangle every log line);
#: inside a URL they are still caught by :data:`URL_PASSWORD_PATTERN`.
MIN_SECRET_LENGTH = 4

P = ParamSpec("P")

_secrets: set[str] = set()
_lock = threading.Lock()


# --- the secrets and the redaction itself ------------------------------------------------------


def add_secret(value: str | None) -> None:
    """Redact ``value`` (and its URL-encoded / decoded forms) from all output from now on."""
    if not value:
        return
    forms = {value, quote(value, safe=""), unquote(value)}
    with _lock:
        _secrets.update(form for form in forms if len(form) >= MIN_SECRET_LENGTH)


def add_url_secrets(url: str | None) -> None:
    """Redact the password (userinfo password, or a ``password=`` query parameter) of ``url``."""
    if not url:
        return
    try:
        parts = urlsplit(url)
        add_secret(parts.password)
        for key, value in parse_qsl(parts.query):
            if "password" in key.lower() or key.lower() in {"pass", "pwd"}:
                add_secret(value)
    except ValueError:  # a malformed URL: the pattern still redacts "user:password@"
        match = URL_PASSWORD_PATTERN.search(url)
        if match:
            add_secret(match.group(2))


def redact(text: str) -> str:
    """``text`` with every registered secret and every token- or password-shaped substring replaced."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = TOKEN_PATTERN.sub(REDACTED, text)
    text = DISCORD_TOKEN_PATTERN.sub(REDACTED, text)
    return URL_PASSWORD_PATTERN.sub(lambda m: m.group(1) + REDACTED + "@", text)


def _environment() -> dict[str, str]:
    """Settings as pydantic-settings would read them: ``.env`` first, the environment over it (names case-insensitive)."""
    values: dict[str, str] = {}
    env_file = Path(".env")
    if env_file.is_file():
        try:
            from dotenv import dotenv_values

            values.update({k.upper(): v for k, v in dotenv_values(env_file).items() if v})
        except Exception:  # an unreadable .env is reported by the settings, not here
            pass
    values.update({k.upper(): v for k, v in os.environ.items()})
    return values


def add_secrets_from_environment() -> None:
    """Register the secrets of the settings (:data:`SECRET_SETTINGS`, :data:`URL_SETTINGS`) found in env / ``.env``."""
    values = _environment()
    for name in SECRET_SETTINGS:
        add_secret(values.get(name))
    for name in URL_SETTINGS:
        add_url_secrets(values.get(name))


# --- logging -----------------------------------------------------------------------------------


def scrub_record(record: logging.LogRecord, secrets: Iterable[str] = ()) -> logging.LogRecord:
    """Redact a log record in place: the formatted message, the traceback text and the stack."""

    def clean(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, REDACTED)
        return redact(text)

    try:
        message = record.getMessage()
    except Exception:  # arguments that do not fit the format: logging reports that itself
        return record
    cleaned = clean(message)
    if cleaned != message:
        record.msg, record.args = cleaned, None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = clean(record.exc_text)
    if record.stack_info:
        record.stack_info = clean(record.stack_info)
    return record


class TokenRedactingFilter(logging.Filter):
    """A handler filter that scrubs ``secrets`` (and everything :func:`redact` knows) from each record."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = {s for s in secrets if s}

    def redact(self, text: str) -> str:
        """``text`` with every secret and token-shaped substring replaced by :data:`REDACTED`."""
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return redact(text)

    def filter(self, record: logging.LogRecord) -> bool:
        scrub_record(record, self.secrets)
        return True


def _install_record_factory() -> None:
    """Scrub every record as it is created, so no handler (present or future) ever sees a secret."""
    current = logging.getLogRecordFactory()
    if getattr(current, "redacting", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return scrub_record(current(*args, **kwargs))

    factory.redacting = True  # type: ignore[attr-defined]  # a marker on the function, read back with getattr above
    logging.setLogRecordFactory(factory)


def install_token_redaction(token: str) -> None:
    """Redact ``token`` from every log record and silence httpx's per-request INFO lines.

    Call it before the bot client is built (it logs its base URL at DEBUG).
    Records made outside the record factory (``logging.makeLogRecord``) are
    caught by a :class:`TokenRedactingFilter` on each current root handler.
    """
    add_secret(token)
    _install_record_factory()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        existing = next((f for f in handler.filters if isinstance(f, TokenRedactingFilter)), None)
        if existing is None:
            existing = TokenRedactingFilter()
            handler.addFilter(existing)
        existing.secrets.add(token)


# --- streams and hooks -------------------------------------------------------------------------


class RedactingStream:
    """A text stream that redacts what is written to it before passing it on (everything else is delegated)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    @property
    def wrapped(self) -> TextIO:
        """The stream written to."""
        return self._stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text) if isinstance(text, str) else text)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _stderr_write(text: str) -> None:
    stream = sys.stderr if sys.stderr is not None else sys.__stderr__
    if stream is None:
        return
    try:
        stream.write(redact(text))
        stream.flush()
    except Exception:  # nowhere left to report to
        pass


def _excepthook(exc_type: type[BaseException], value: BaseException, tb: Any) -> None:
    _stderr_write("".join(traceback.format_exception(exc_type, value, tb)))


def _threading_excepthook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else threading.get_ident()
    text = "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback))
    _stderr_write(f"Exception in thread {name}:\n{text}")


def _unraisablehook(unraisable: Any) -> None:
    message = unraisable.err_msg or "Exception ignored in"
    try:
        where = f"{message}: {unraisable.object!r}\n" if unraisable.object is not None else f"{message}\n"
    except Exception:
        where = f"{message}: <object repr() failed>\n"
    details = ""
    if unraisable.exc_type is not None:
        details = "".join(traceback.format_exception(unraisable.exc_type, unraisable.exc_value, unraisable.exc_traceback))
    _stderr_write(where + details)


def install() -> None:
    """Redact every output path of this process from now on (idempotent); see the module docstring."""
    add_secrets_from_environment()
    _install_record_factory()
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, RedactingStream):
            setattr(sys, name, RedactingStream(stream))
    sys.excepthook = _excepthook
    threading.excepthook = _threading_excepthook
    sys.unraisablehook = _unraisablehook


def redacting(main: Callable[P, int]) -> Callable[P, int]:
    """Wrap a command-line ``main`` so that no secret leaves the process (see the module docstring).

    An exception ``main`` lets through is printed as a redacted traceback and ends with
    exit code 1 (what Python does, minus the secrets).
    """

    @functools.wraps(main)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> int:
        install()
        try:
            return main(*args, **kwargs)
        except SystemExit as exit:
            if isinstance(exit.code, str):  # sys.exit("message") prints the message
                raise SystemExit(redact(exit.code)) from None
            raise
        except Exception as error:
            _excepthook(type(error), error, error.__traceback__)
            return 1

    return wrapper
