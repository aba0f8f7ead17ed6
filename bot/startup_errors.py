"""Why a command cannot run: one line an operator can act on, and an exit code.

Exit codes (the CLI's contract): ``2`` = bad input or setting (fix the command
line or the environment), ``3`` = a dependency is missing or unreachable (a
model, a GPU, the database, Redis, a chat platform). A traceback is a bug.

* :class:`BadInputError` (2) and :class:`DependencyError` (3) are raised by the
  checks the CLI and the bot run before doing any work;
  :class:`MissingExtraError` (3), from :func:`require_engine`, names the
  optional part of the install (``voice2anime[engine]``) that a command needs.
* :func:`settings_message` turns a :class:`pydantic.ValidationError` of the
  settings into one line naming each variable and what it accepts (never the
  value of a URL, token or secret).
* :func:`reaching` wraps a start-up step that connects somewhere (database,
  Redis, a platform): a connection failure becomes a :class:`DependencyError`
  naming the service and the setting; where it is shown comes from
  :func:`database_location` / :func:`url_location` (no credentials).
* :func:`classify` maps an exception to ``(exit code, message)``, or ``None``
  when it is a bug (the traceback is then the right output).
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from engine.errors import ModelUnavailableError, UserError
from handlers.i18n import error_text

if TYPE_CHECKING:
    from pydantic import ValidationError

#: Exit code for bad input or a bad setting.
BAD_INPUT = 2
#: Exit code for a missing or unreachable dependency.
UNAVAILABLE = 3

_MAX_LINE = 400
#: Settings whose value may be echoed in an error (no URL, token, secret or password).
_SECRET_HINTS = ("url", "token", "secret", "password")


class OperatorError(Exception):
    """A reason for the operator, printed as ``error: <message>`` (one line); ``exit_code`` says which kind.

    ``exit_code`` defaults to the class's (2 here, see the subclasses); pass it to
    raise an ``OperatorError`` of another kind directly.
    """

    exit_code = BAD_INPUT

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(one_line(message))
        if exit_code is not None:
            self.exit_code = exit_code


class BadInputError(OperatorError):
    """A command-line argument or setting is wrong (exit 2)."""

    exit_code = BAD_INPUT


class DependencyError(OperatorError):
    """Something the command needs is missing or unreachable (exit 3)."""

    exit_code = UNAVAILABLE


#: The image engine (Stable Diffusion, AnimeGANv2) is the ``engine`` extra of the install (``gpu`` is its alias):
#: ``pip install 'voice2anime[engine]'``. These are its modules, by import name.
ENGINE_EXTRA = "engine"
ENGINE_MODULES = ("torch", "diffusers", "transformers", "accelerate", "peft", "onnx", "onnxruntime", "safetensors")


class MissingExtraError(DependencyError):
    """An optional part of the install that a command needs is missing (exit 3); the message names the extra."""

    def __init__(self, extra: str, missing: Sequence[str], needed_by: str, hint: str = "") -> None:
        self.extra = extra
        self.missing = tuple(missing)
        super().__init__(
            f"{needed_by} needs the image engine, which is not installed (no {', '.join(self.missing)}): "
            f"install voice2anime[{extra}] (pip install 'voice2anime[{extra}]'){hint}"
        )


def missing_modules(modules: Sequence[str] = ENGINE_MODULES) -> list[str]:
    """Which of ``modules`` cannot be imported here (found without importing them: no torch load)."""
    missing = []
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a broken or half-removed package counts as missing
            found = False
        if not found:
            missing.append(module)
    return missing


def require_engine(needed_by: str, hint: str = "") -> None:
    """Raise :class:`MissingExtraError` unless the ``engine`` extra (torch, diffusers, ...) is installed."""
    missing = missing_modules()
    if missing:
        raise MissingExtraError(ENGINE_EXTRA, missing, needed_by, hint)


def one_line(text: str, limit: int = _MAX_LINE) -> str:
    """``text`` with whitespace runs (newlines included) collapsed, cut at ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def classify(exc: BaseException) -> tuple[int, str] | None:
    """``(exit code, one-line message)`` for an error the operator can act on; ``None`` for a bug."""
    if isinstance(exc, OperatorError):
        return exc.exit_code, str(exc)
    code = getattr(exc, "exit_code", None)
    if code in (BAD_INPUT, UNAVAILABLE) and not isinstance(code, bool):
        return code, one_line(str(exc))  # another module's operator error that carries its exit code
    if isinstance(exc, UserError):
        return BAD_INPUT, one_line(error_text(exc.key, "en", exc.params))
    if isinstance(exc, ModelUnavailableError):
        return UNAVAILABLE, one_line(str(exc))
    return None


# ----- settings ---------------------------------------------------------------------------


def settings_message(error: ValidationError) -> str:
    """One line for an invalid :class:`bot.settings.Settings`: ``NAME: what it accepts`` for every problem."""
    problems = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else "settings"
        message = re.sub(r"^(Value|Assertion) error, ", "", item["msg"])
        shown = item.get("input")
        if item["type"] == "literal_error" and _may_echo(field) and isinstance(shown, str):
            message += f" (got {shown[:60]!r})"
        problems.append(f"{field.upper()}: {message}")
    return one_line("invalid settings: " + "; ".join(problems))


def _may_echo(field: str) -> bool:
    return not any(hint in field.lower() for hint in _SECRET_HINTS)


# ----- dependencies -----------------------------------------------------------------------


def database_location(url: str) -> str:
    """``url`` without its password (``postgresql+asyncpg://bot:***@db:5432/voice2anime``)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "DATABASE_URL"


def url_location(url: str) -> str:
    """``scheme://host:port`` of ``url``: no user, password, path (a bot token may be in it) or query."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(unparsable URL)"
    return f"{parts.scheme}://{host}{port}" if parts.scheme else "(no scheme)"


def is_connection_failure(exc: BaseException) -> bool:
    """Whether ``exc`` means "could not connect / the peer went away / timed out" (not a bug)."""
    if isinstance(exc, (OSError, TimeoutError)):
        return True
    for module, names in (
        # InvalidResponse: something that is not Redis answers at that address
        ("redis.exceptions", ("ConnectionError", "TimeoutError", "AuthenticationError", "InvalidResponse")),
        ("telegram.error", ("NetworkError",)),  # TimedOut is one; InvalidToken is not
        ("sqlalchemy.exc", ("OperationalError", "InterfaceError")),
        ("asyncpg.exceptions", ("PostgresConnectionError", "InvalidAuthorizationSpecificationError", "InvalidCatalogNameError")),
        ("aiohttp", ("ClientConnectionError",)),
    ):
        loaded = sys.modules.get(module)
        if loaded is not None and isinstance(exc, tuple(getattr(loaded, n) for n in names if hasattr(loaded, n))):
            return True
    return False


def _reason(exc: BaseException) -> str:
    """The cause of a connection failure, without SQL statements or library boilerplate."""
    inner = getattr(exc, "orig", None) or exc  # sqlalchemy.exc.DBAPIError wraps the driver's error
    text = str(inner).split("\n", 1)[0].strip() or type(inner).__name__
    if not text.startswith(type(inner).__name__) and type(inner).__module__ != "builtins":
        text = f"{type(inner).__name__}: {text}"
    return text


@contextmanager
def reaching(what: str, setting: str | None, *, verb: str = "reach") -> Iterator[None]:
    """Turn a connection failure inside the block into ``DependencyError("cannot <verb> <what> (<setting>): …")``.

    ``what`` must not contain secrets (use :func:`database_location` / :func:`url_location`).
    Other exceptions pass through unchanged.
    """
    try:
        yield
    except OperatorError:
        raise
    except Exception as exc:
        if not is_connection_failure(exc):
            raise
        source = f" ({setting})" if setting else ""
        raise DependencyError(f"cannot {verb} {what}{source}: {_reason(exc)}") from exc
