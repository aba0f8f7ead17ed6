"""Who is who in the web studio: signed cookies, the cookie secret, the password check, where a request comes from.

A browser is one user. Its cookie holds a random id and an HMAC-SHA256 of it;
the key is derived from the studio's secret (``WEB_SECRET``, or a random one
made once and kept in ``DATA_DIR/web_secret``) and from ``WEB_PASSWORD`` — so
changing the password signs every browser out, and a cookie made without a
password is worthless once one is set. Nothing else about the user lives in
the cookie: everything they made stays on the server, found by that id.

Where a request comes from is its TCP peer, unless that peer is a reverse
proxy listed in ``WEB_TRUSTED_PROXIES``: then its ``X-Forwarded-For`` names the
client (:func:`client_address`). Limits per address count an IPv6 client by
its /64 (one host may hold all of it; :func:`address_key`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import cast

from engine.files import fsync_directory

log = logging.getLogger(__name__)

#: The cookie's name.
COOKIE = "v2a_studio"
#: How long a browser keeps its identity (seconds): a year.
COOKIE_MAX_AGE = 365 * 24 * 3600
#: Failed password tries one address may make per :data:`LOGIN_WINDOW` seconds.
LOGIN_TRIES = 10
LOGIN_WINDOW = 60.0
#: Least seconds between two log lines about refused connections.
REPORT_EVERY = 60.0
#: Name of the generated secret inside ``DATA_DIR``.
SECRET_FILE = "web_secret"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only accepts connections from this machine."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """``["10.0.0.1", "192.168.0.0/24"]`` as networks (a bare address is a network of one); ValueError names a bad entry."""
    parsed = []
    for entry in entries:
        try:
            parsed.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{entry.strip()[:60]!r} is not an IP address or network (like 10.0.0.1 or 10.0.0.0/8)") from None
    return tuple(parsed)


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``host`` as an address (an IPv4-mapped IPv6 address as IPv4; a zone index dropped), or None."""
    try:
        ip = ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_trusted(host: str, trusted: Sequence[Network]) -> bool:
    """Whether ``host`` is one of the ``trusted`` proxies."""
    ip = _ip(host)
    return ip is not None and any(ip in network for network in trusted)


def client_address(peer: str, forwarded: Sequence[str], trusted: Sequence[Network]) -> str:
    """The client of a request from ``peer`` with these ``X-Forwarded-For`` headers.

    Only a trusted proxy's header is believed, read from its end: each trusted
    proxy appends the address it got the request from, so the first address
    from the right that is not a trusted proxy is the client (what a client
    wrote in front of that is ignored). An entry that is not an address stops
    the walk at the last trusted hop.
    """
    address = peer
    if not is_trusted(peer, trusted):
        return address
    hops = [hop.strip() for header in forwarded for hop in header.split(",")]
    for hop in reversed(hops):
        ip = _ip(hop)
        if ip is None:
            break
        address = str(ip)
        if not any(ip in network for network in trusted):
            break
    return address


def address_key(host: str) -> str:
    """What limits per address count ``host`` as: the address itself, an IPv6 address's /64 network."""
    ip = _ip(host)
    if ip is None:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def load_secret(data_dir: Path, configured: str | None = None) -> bytes:
    """The cookie secret: ``configured`` (``WEB_SECRET``), else the one kept in ``data_dir`` (made on first use, mode 0600)."""
    if configured:
        return configured.encode()
    path = data_dir / SECRET_FILE
    try:
        text = path.read_text(encoding="ascii").strip()
        if len(text) >= 32:
            return text.encode()
        log.warning("%s is too short; making a new studio secret (browsers sign in again)", path)
    except FileNotFoundError:
        pass
    text = secrets.token_urlsafe(32)
    _write_private(path, text.encode("ascii"))
    log.info("made a new studio secret in %s", path)
    return text.encode()


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by this user only (0600 from the start), replacing it atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    fsync_directory(path.parent)


class Signer:
    """Makes and checks the studio cookie (see the module docstring)."""

    def __init__(self, secret: bytes, password: str | None = None) -> None:
        self._key = hmac.new(secret, b"voice2anime-web-cookie\0" + (password or "").encode(), hashlib.sha256).digest()
        self._password = password if password and password.strip() else None  # a blank one is none, as an empty one

    @property
    def needs_password(self) -> bool:
        """Whether a browser must give ``WEB_PASSWORD`` before it gets a cookie."""
        return self._password is not None

    def new_cookie(self) -> tuple[str, str]:
        """``(user id, cookie value)`` for a browser seen for the first time."""
        user = secrets.token_urlsafe(16)
        return user, f"{user}.{self._sign(user)}"

    def user_of(self, cookie: str | None) -> str | None:
        """The user id a cookie stands for, or None when it is missing, malformed or not signed by us."""
        if not cookie or cookie.count(".") != 1:
            return None
        user, signature = cookie.split(".")
        if not user or len(user) > 64 or not hmac.compare_digest(signature.encode(), self._sign(user).encode()):
            return None
        return user

    def password_matches(self, given: str) -> bool:
        """Constant-time comparison with ``WEB_PASSWORD`` (False when there is none)."""
        if self._password is None:
            return False
        # surrogatepass: a lone surrogate (valid JSON, no character) is just a wrong password
        return hmac.compare_digest(
            hashlib.sha256(given.encode("utf-8", "surrogatepass")).digest(),
            hashlib.sha256(self._password.encode("utf-8", "surrogatepass")).digest(),
        )

    def _sign(self, user: str) -> str:
        digest = hmac.new(self._key, user.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class LoginThrottle:
    """At most :data:`LOGIN_TRIES` password tries per address per :data:`LOGIN_WINDOW` seconds.

    A try is counted when it starts (:meth:`reserve`), before its password is
    read and checked, so any number of tries sent at once still get only
    :data:`LOGIN_TRIES` checks; a right password gives its try back (:meth:`release`).
    """

    def __init__(
        self, tries: int = LOGIN_TRIES, window: float = LOGIN_WINDOW, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._tries = tries
        self._window = window
        self._clock = clock
        self._recent_tries: dict[str, deque[float]] = {}

    def reserve(self, address: str) -> bool:
        """Count a try of ``address`` now; False (nothing counted) when its tries are used up."""
        tries = self._recent(address)
        if len(tries) >= self._tries:
            return False
        tries.append(self._clock())
        if len(self._recent_tries) > 10_000:  # forget quiet addresses
            for key in [k for k, v in self._recent_tries.items() if not v][:5_000]:
                del self._recent_tries[key]
        return True

    def release(self, address: str) -> None:
        """Give back the latest try of ``address`` (its password was right)."""
        tries = self._recent_tries.get(address)
        if tries:
            tries.pop()

    def _recent(self, address: str) -> deque[float]:
        tries = self._recent_tries.setdefault(address, deque())
        while tries and tries[0] < self._clock() - self._window:
            tries.popleft()
        return tries


class Caps:
    """Counts what each address holds at once (connections, uploads) and refuses one over a cap."""

    def __init__(self, per_address: int, total: int) -> None:
        self._per_address = per_address
        self._total = total
        self._held: dict[str, int] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def take(self, key: str, *, exempt: bool = False) -> bool:
        """Count one more for ``key``; False (nothing counted) over the total, or over the per-address cap unless ``exempt``."""
        held = self._held.get(key, 0)
        if self._count >= self._total or (not exempt and held >= self._per_address):
            return False
        self._held[key] = held + 1
        self._count += 1
        return True

    def give_back(self, key: str) -> None:
        """One of ``key``'s is done."""
        held = self._held.get(key, 0)
        if held <= 1:
            self._held.pop(key, None)
        else:
            self._held[key] = held - 1
        self._count = max(0, self._count - 1)


class ConnectionGuard:
    """A protocol factory around aiohttp's: caps open connections per address and in total, closes silent ones.

    Over a cap, a new connection gets ``refusal`` (a complete HTTP response)
    and is closed before aiohttp sees it. A connection that has not sent a whole
    request within ``first_request_seconds`` is closed (:meth:`request_started`
    is told of each request; aiohttp's keep-alive timeout covers the time between
    requests). Trusted proxies count only towards the total.
    """

    def __init__(
        self,
        factory: Callable[[], asyncio.Protocol],
        *,
        per_address: int,
        total: int,
        first_request_seconds: float,
        trusted: Sequence[Network],
        refusal: bytes,
    ) -> None:
        self._factory = factory
        self._caps = Caps(per_address, total)
        self._first_request_seconds = first_request_seconds
        self._trusted = trusted
        self._refusal = refusal
        self._waiting: dict[asyncio.BaseTransport, asyncio.TimerHandle] = {}
        self._refused = 0
        self._last_report = -REPORT_EVERY

    def __call__(self) -> asyncio.Protocol:
        return _GuardedConnection(self, self._factory())

    def __len__(self) -> int:
        """Connections open now."""
        return len(self._caps)

    def request_started(self, transport: asyncio.BaseTransport | None) -> None:
        """A whole request arrived on ``transport``: it no longer has to hurry."""
        timer = self._waiting.pop(transport, None) if transport is not None else None
        if timer is not None:
            timer.cancel()

    def _admit(self, transport: asyncio.BaseTransport) -> str | None:
        """The connection's address key, or None when it is over a cap (then it was answered and closed)."""
        peer = transport.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        key = address_key(host)
        if not self._caps.take(key, exempt=is_trusted(host, self._trusted)):
            self._refuse(transport, host)
            return None
        loop = asyncio.get_running_loop()
        self._waiting[transport] = loop.call_later(self._first_request_seconds, self._too_slow, transport)
        return key

    def _refuse(self, transport: asyncio.BaseTransport, host: str) -> None:
        cast(asyncio.Transport, transport).write(self._refusal)
        transport.close()
        self._refused += 1
        now = time.monotonic()
        if now - self._last_report >= REPORT_EVERY:  # one line a minute at most, however many
            log.warning(
                "refused %d studio connection(s) over the caps (%d open; latest from %s)", self._refused, len(self), host
            )
            self._refused, self._last_report = 0, now

    def _too_slow(self, transport: asyncio.BaseTransport) -> None:
        self._waiting.pop(transport, None)
        log.debug("closed a studio connection that sent no request in %s s", self._first_request_seconds)
        transport.close()

    def _closed(self, transport: asyncio.BaseTransport, key: str) -> None:
        self.request_started(transport)
        self._caps.give_back(key)


class _GuardedConnection(asyncio.Protocol):
    """One connection as :class:`ConnectionGuard` sees it; an admitted one is aiohttp's (``inner``) in every other way."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner = inner
        self._key: str | None = None
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._key = self._guard._admit(transport)
        if self._key is not None:
            self._transport = transport
            self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._key is not None and self._transport is not None:
            self._guard._closed(self._transport, self._key)
            self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._key is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._key is not None else None

    def pause_writing(self) -> None:
        if self._key is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._key is not None:
            self._inner.resume_writing()
