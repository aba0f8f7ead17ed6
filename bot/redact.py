"""Keep bot tokens out of logs.

python-telegram-bot and httpx log request URLs, and a Bot API URL contains
the token (``https://api.telegram.org/bot<token>/getUpdates``).
:func:`install_token_redaction` quiets the ``httpx`` logger and puts a
:class:`TokenRedactingFilter` on every root handler, so whatever reaches a
handler (message, arguments, traceback) has the token replaced.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

REDACTED = "<redacted>"

#: Anything shaped like a Telegram bot token ("<bot id>:<35-char secret>"), with or without the "bot" prefix.
TOKEN_PATTERN = re.compile(r"\d{5,}:[A-Za-z0-9_-]{30,}")


class TokenRedactingFilter(logging.Filter):
    """Rewrites each record so that ``secrets`` and token-shaped strings never get formatted into output."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = {s for s in secrets if s}

    def redact(self, text: str) -> str:
        """``text`` with every secret and token-shaped substring replaced by :data:`REDACTED`."""
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return TOKEN_PATTERN.sub(REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def install_token_redaction(token: str) -> None:
    """Redact ``token`` on every current root handler and silence httpx's per-request INFO lines.

    Call it before the bot client is built (it logs its base URL at DEBUG).
    Idempotent: a handler gets one redacting filter, which learns each new token.
    """
    logging.getLogger("httpx").setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        existing = next((f for f in handler.filters if isinstance(f, TokenRedactingFilter)), None)
        if existing is None:
            existing = TokenRedactingFilter()
            handler.addFilter(existing)
        existing.secrets.add(token)
