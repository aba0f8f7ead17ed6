"""Database fixtures for tests (pytest plugin module).

* ``postgres_server`` (session) — SQLAlchemy URL of a PostgreSQL server's
  ``postgres`` database that tests may create databases on. Taken from
  ``VOICE2ANIME_TEST_POSTGRES_URL`` when set (``postgresql+asyncpg://...``, the
  role needs CREATEDB); otherwise a throwaway cluster is started from Debian's
  ``/usr/lib/postgresql/<version>/bin`` (``initdb`` + ``pg_ctl``, trust auth,
  127.0.0.1 on a free port, data in a temporary directory, run as the
  ``postgres`` user when the tests run as root). Skips when neither exists.
* ``postgres_database_url`` — a fresh, empty database on that server, dropped
  afterwards.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

POSTGRES_URL_ENV = "VOICE2ANIME_TEST_POSTGRES_URL"


def _postgres_bin_dir() -> Path | None:
    """The newest Debian PostgreSQL server binaries, if installed."""
    candidates = [
        d for d in Path("/usr/lib/postgresql").glob("*/bin") if (d / "initdb").exists() and (d / "pg_ctl").exists()
    ]
    return max(candidates, key=lambda d: int(d.parent.name), default=None) if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _asyncpg_dsn(sqlalchemy_url: str) -> str:
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server to test against (see module docstring), or skip."""
    configured = os.environ.get(POSTGRES_URL_ENV)
    if configured:
        yield configured
        return
    bin_dir = _postgres_bin_dir()
    if bin_dir is None:
        pytest.skip(f"PostgreSQL not available: set {POSTGRES_URL_ENV} or install Debian's postgresql package")
    run_as: list[str] = []
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("PostgreSQL tests as root need a 'postgres' system user (initdb refuses to run as root)")
        run_as = ["runuser", "-u", "postgres", "--"]
    base = Path(tempfile.mkdtemp(prefix="voice2anime-pg-"))
    if owner is not None:
        os.chown(base, owner.pw_uid, owner.pw_gid)
    data, port = base / "data", _free_port()
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    try:
        try:
            initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync"]
            subprocess.run([*run_as, *initdb, "-E", "UTF8", "--locale=C"], check=True, capture_output=True, text=True)
            pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log"), "-o", options]
            subprocess.run([*run_as, *pg_ctl, "-w", "-t", "60", "start"], check=True, capture_output=True, text=True)
        except subprocess.CalledProcessError as err:
            log = base / "server.log"
            detail = log.read_text(errors="replace")[-2000:] if log.exists() else err.stderr
            pytest.skip(f"could not start a throwaway PostgreSQL from {bin_dir}: {detail.strip()}")
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            stop = [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
            subprocess.run([*run_as, *stop], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


async def _admin(server_url: str, sql: str) -> None:
    connection = await asyncpg.connect(_asyncpg_dsn(server_url))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@pytest.fixture
def postgres_database_url(postgres_server: str) -> Iterator[str]:
    """URL of a new empty database on the test server; dropped after the test."""
    name = f"voice2anime_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(postgres_server, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(postgres_server).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(postgres_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
