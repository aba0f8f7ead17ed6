"""A real ``redis-server`` for tests (pytest plugin module).

:class:`RedisServer` runs Debian's ``redis-server`` on a free 127.0.0.1 port
with its data in a directory of its own, a password (``requirepass``) and the
append-only file on with ``appendfsync always``, so a job that Redis accepted
survives :meth:`RedisServer.kill` + :meth:`RedisServer.start` (a crash and a
restart on the same port). Skips with the reason when ``redis-server`` is not
installed.

Fixture: ``redis_server`` — a started server in the test's tmp dir, killed afterwards.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server process; ``url`` carries the password."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server not installed (apt-get install redis-server)")
        self.binary = binary
        self.directory = directory
        self.port = _free_port()
        self.password = secrets.token_hex(8)
        self.url = f"redis://:{self.password}@127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "redis.conf").write_text(
            "\n".join([
                "bind 127.0.0.1",
                f"port {self.port}",
                f"dir {directory}",
                f"requirepass {self.password}",
                "appendonly yes",
                "appendfsync always",
                'save ""',
                "logfile redis.log",
            ]) + "\n",
            encoding="utf-8",
        )

    def start(self, timeout: float = 20.0) -> None:
        """Start the server and wait until it answers PING."""
        self.process = subprocess.Popen([self.binary, str(self.directory / "redis.conf")], cwd=self.directory)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.exceptions.BusyLoadingError:
                    pass
                except redis.exceptions.ConnectionError:
                    if self.process.poll() is not None:
                        raise RuntimeError(f"redis-server exited: {self.log()[-2000:]}") from None
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start: {self.log()[-2000:]}")
                time.sleep(0.05)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL the server (a crash: only what the append-only file holds survives)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def log(self) -> str:
        """The server's log file."""
        path = self.directory / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A started, password-protected redis-server with AOF on, killed after the test."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.kill()
