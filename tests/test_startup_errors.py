"""Errors an operator can read: the real ``voice2anime`` process, one line on stderr, exit 2 or 3, no traceback.

Exit 2 = a bad argument or setting, 3 = a dependency missing or unreachable
(bot/startup_errors.py). Every case runs ``python -m bot`` as a subprocess in
an empty directory, with the voice2anime variables of the test environment
removed; models point nowhere, so an error printed *after* a model load was
attempted would be the "model missing" one (exit 3), not the expected one.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import ctranslate2
import pytest
import torch
from sqlalchemy.engine import make_url

from bot.cli import main
from bot.settings import Settings
from bot.startup_errors import BadInputError, DependencyError, classify, reaching, settings_message, url_location
from tests.support.fake_telegram import TOKEN

pytestmark = pytest.mark.slow  # one CLI process per case

SECRET = "s3cretPassw0rd"
#: A log line of the bot (logging.basicConfig format in bot/cli.py), INFO level only.
INFO_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO ")
#: Slowest acceptable failure, start-up included (a dependency must never hang the start for minutes).
FAIL_FAST_SECONDS = 60


def closed_port() -> int:
    """A localhost TCP port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def voice2anime(tmp_path: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m bot ARGV`` in ``tmp_path`` with only ``env`` as voice2anime settings (models point nowhere)."""
    settings = {name.upper() for name in Settings.model_fields}
    base = {k: v for k, v in os.environ.items() if k not in settings}
    defaults = {
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "WHISPER_MODEL": str(tmp_path / "no-whisper"),
        "SD_MODEL": str(tmp_path / "no-sd"),
        "CHECKPOINTS_DIR": str(tmp_path / "no-checkpoints"),
        "ANIME_DOWNLOAD": "false",
        "DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", *argv], env=base | defaults | env, cwd=tmp_path,
        capture_output=True, text=True, timeout=180, check=False,
    )


def the_error(done: subprocess.CompletedProcess[str], code: int, *expected: str, logs_allowed: bool = False) -> str:
    """Check the process failed with ``code`` and exactly one ``error:`` line (containing ``expected``); return it.

    ``logs_allowed``: ``run`` logs its start-up at INFO before it fails; such lines may precede the error,
    nothing else may (no WARNING/ERROR records, no traceback, no pydantic dump).
    """
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    others = [line for line in lines if not (logs_allowed and INFO_LINE.match(line))]
    assert len(others) == 1 and others[0].startswith("error: "), done.stderr
    assert lines[-1] == others[0], "the error is the last line"
    for text in expected:
        assert text in others[0], others[0]
    output = done.stdout + done.stderr
    assert SECRET not in output and TOKEN.split(":")[1] not in output
    return others[0]


# ----- bad arguments: exit 2, before any model is loaded --------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["transcribe", "missing.ogg"], "missing.ogg: no such file"),
        (["transcribe", "."], "is a directory"),
        (["generate", "--voice", "missing.ogg", "-o", "out.png"], "--voice missing.ogg: no such file"),
        (["generate", "--voice", ".", "-o", "out.png"], "--voice .: is a directory"),
        (["generate", "--photo", "missing.jpg", "-o", "out.png"], "--photo missing.jpg: no such file"),
        (["generate", "--text", "a cat", "--seed", "-1", "-o", "out.png"], "--seed must be between 0 and 4294967295"),
        (["generate", "--text", "a cat", "--seed", str(2**64), "-o", "out.png"], "--seed must be between 0 and 4294967295"),
        (["generate", "--text", "a cat", "--seed", str(2**32), "-o", "out.png"], "got 4294967296"),
        (["generate", "--text", "a cat", "-o", "."], "-o .: is a directory"),
        (["generate", "--text", "a cat", "-o", "out.xyz"], "unknown image extension ('.xyz')"),
        (["generate", "--text", "a cat", "-o", "out"], "unknown image extension (none)"),
        (["generate", "--text", "a cat", "-o", "a-file/out.png"], "a-file is not a directory"),
        (["generate", "--text", "a cat", "-o", "/proc/voice2anime-test/out.png"], "cannot write in /proc/voice2anime-test"),
        (["generate", "--text", "a cat", "-o", "out.png", "--base-output", "base.gif.nope"], "--base-output"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_bad_arguments_are_one_line_and_exit_2(tmp_path: Path, argv: list[str], expected: str) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    started = time.monotonic()
    done = voice2anime(tmp_path, *argv)
    the_error(done, 2, expected)
    assert time.monotonic() - started < FAIL_FAST_SECONDS
    assert not (tmp_path / "out.png").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_output_directory_is_refused_before_generating(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        the_error(voice2anime(tmp_path, "generate", "--text", "a cat", "-o", str(locked / "out.png")), 2, "cannot write in")
    finally:
        locked.chmod(0o700)


# ----- bad settings: exit 2, one line naming the variable and what it accepts ---------------------------


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("SD_SCHEDULER", "fast", ["SD_SCHEDULER", "'dpmpp', 'euler_a', 'lcm' or 'turbo'", "got 'fast'"]),
        ("ANIME_BACKEND", "tensorrt", ["ANIME_BACKEND", "'auto', 'onnx' or 'torch'", "got 'tensorrt'"]),
        ("TORCH_DEVICE", "gpu", ["TORCH_DEVICE", "auto, cpu, cuda, cuda:N", "got 'gpu'"]),
        ("TORCH_DEVICE", "cuda:x", ["TORCH_DEVICE", "cuda:N"]),
        ("WHISPER_DEVICE", "gpu", ["WHISPER_DEVICE", "'auto', 'cpu' or 'cuda'"]),
    ],
)
def test_bad_settings_are_one_line_and_exit_2(tmp_path: Path, name: str, value: str, expected: list[str]) -> None:
    done = voice2anime(tmp_path, "generate", "--text", "a cat", "-o", "out.png", **{name: value})
    line = the_error(done, 2, "invalid settings", *expected)
    assert "pydantic" not in line and "input_value" not in line and "Value error" not in line


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"postgresql+asyncpg://bot:{SECRET}@localhost:notaport/voice2anime", "not a database URL"),
        (f"bot:{SECRET}@localhost/voice2anime", "not a database URL"),
        (f"mysql://bot:{SECRET}@localhost/voice2anime", "unsupported database scheme 'mysql'"),
        (f"postgresql://bot:{SECRET}@localhost/voice2anime", "unsupported database scheme 'postgresql'"),
        ("sqlite+aiosqlite://", "names no file"),
    ],
)
def test_malformed_database_url_is_exit_2_without_the_password(tmp_path: Path, url: str, expected: str) -> None:
    done = voice2anime(tmp_path, "run", TELEGRAM_BOT_TOKEN=TOKEN, DATABASE_URL=url)
    the_error(done, 2, "DATABASE_URL", expected, "postgresql+asyncpg://")


# ----- missing device / unreachable services: exit 3 ------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
@pytest.mark.parametrize("device", ["cuda", "cuda:3"])
def test_cuda_without_a_gpu_is_exit_3(tmp_path: Path, device: str) -> None:
    done = voice2anime(tmp_path, "generate", "--text", "a cat", "-o", "out.png", TORCH_DEVICE=device)
    the_error(done, 3, f"TORCH_DEVICE={device}", "TORCH_DEVICE=cpu")


@pytest.mark.skipif(ctranslate2.get_cuda_device_count() > 0, reason="this machine has a CUDA GPU")
@pytest.mark.parametrize("command", [["run"], ["transcribe", str(Path(__file__).parent / "fixtures" / "zh" / "blue_hair_girl.ogg")]])
def test_whisper_on_cuda_without_a_gpu_is_exit_3_at_start(tmp_path: Path, command: list[str]) -> None:
    """Said before anything starts, not as a broken first voice note (nor as "replace the model directory")."""
    done = voice2anime(tmp_path, *command, WHISPER_DEVICE="cuda", TELEGRAM_BOT_TOKEN=TOKEN)
    the_error(done, 3, "WHISPER_DEVICE=cuda", "no usable CUDA GPU", "WHISPER_DEVICE=auto or cpu", logs_allowed=True)


@pytest.mark.parametrize("dependency", ["postgresql", "redis", "telegram"])
def test_run_with_an_unreachable_dependency_is_exit_3(tmp_path: Path, dependency: str) -> None:
    port = closed_port()
    env = {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_BASE_URL": f"http://127.0.0.1:{closed_port()}/bot"}
    expected: tuple[str, ...]
    if dependency == "postgresql":
        env["DATABASE_URL"] = f"postgresql+asyncpg://bot:{SECRET}@127.0.0.1:{port}/voice2anime"
        expected = ("DATABASE_URL", f"127.0.0.1:{port}")
    elif dependency == "redis":
        env |= {"ENGINE": "redis", "REDIS_URL": f"redis://:{SECRET}@127.0.0.1:{port}/0"}
        expected = ("Redis", "REDIS_URL", f"127.0.0.1:{port}")
    else:
        env["TELEGRAM_API_BASE_URL"] = f"http://127.0.0.1:{port}/bot"
        expected = ("Telegram", "TELEGRAM_API_BASE_URL", f"127.0.0.1:{port}")
    started = time.monotonic()
    done = voice2anime(tmp_path, "run", **env)
    the_error(done, 3, *expected, logs_allowed=True)
    assert time.monotonic() - started < FAIL_FAST_SECONDS


# ----- a database that is there but cannot be used: exit 3, one line naming DATABASE_URL ---------------------


def unreachable_telegram() -> dict[str, str]:
    """A Telegram bot whose Bot API is nowhere: were the database accepted, ``run`` would fail on Telegram instead."""
    return {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_BASE_URL": f"http://127.0.0.1:{closed_port()}/bot"}


def migrated_sqlite(tmp_path: Path) -> Path:
    """A migrated SQLite database file in ``tmp_path``."""
    path = tmp_path / "bot.db"
    done = voice2anime(tmp_path, "migrate", DATABASE_URL=f"sqlite+aiosqlite:///{path}")
    assert done.returncode == 0, done.stderr
    return path


@pytest.mark.parametrize("command", ["run", "migrate"])
def test_a_sqlite_file_of_garbage_is_one_line_and_exit_3(tmp_path: Path, command: str) -> None:
    (tmp_path / "bot.db").write_bytes(random.Random(7).randbytes(16384))
    done = voice2anime(tmp_path, command, **unreachable_telegram())
    line = the_error(done, 3, "DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", "file is not a database", logs_allowed=True)
    assert "restore it from a backup" in line


def read_only_by_url(tmp_path: Path) -> Iterator[str]:
    """The database opened read-only by its URL (SQLite's ``mode=ro``): refused to root as well."""
    yield f"sqlite+aiosqlite:///file:{migrated_sqlite(tmp_path)}?mode=ro&uri=true"


def immutable_file(tmp_path: Path) -> Iterator[str]:
    """The database file marked immutable (``chattr +i``): not even root may write it."""
    path = migrated_sqlite(tmp_path)
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
        pytest.skip("chattr +i is not available here (needs root and a file system with attributes)")
    try:
        yield f"sqlite+aiosqlite:///{path}"
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def read_only_file_system(tmp_path: Path) -> Iterator[str]:
    """The database on a tmpfs mounted read-only: nobody may write it, or create its ``-wal``/``-shm`` beside it."""
    path, mount = migrated_sqlite(tmp_path), tmp_path / "ro"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root, or CAP_SYS_ADMIN)")
    try:
        shutil.copy(path, mount / "bot.db")
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        yield f"sqlite+aiosqlite:///{mount / 'bot.db'}"
    finally:
        subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.parametrize("command", ["run", "migrate"])
@pytest.mark.parametrize("read_only", [read_only_by_url, immutable_file, read_only_file_system], ids=lambda f: f.__name__)
def test_a_database_the_bot_cannot_write_is_one_line_and_exit_3(
    tmp_path: Path, command: str, read_only: Callable[[Path], Iterator[str]]
) -> None:
    """Noticed at start (migrating an up-to-date schema only reads), not as "Something went wrong" on every message."""
    with contextmanager(read_only)(tmp_path) as url:
        done = voice2anime(tmp_path, command, DATABASE_URL=url, **unreachable_telegram())
    line = the_error(done, 3, "DATABASE_URL", logs_allowed=True)
    assert re.search(r"cannot (write to|open) the database sqlite\+aiosqlite:///", line), line
    assert "the bot must be able to write it" in line


def test_a_read_only_postgresql_database_is_one_line_and_exit_3_without_the_password(
    tmp_path: Path, postgres_database_url: str
) -> None:
    """A read-only server or database (here: its transactions read-only by default); the password never shows."""
    url = make_url(postgres_database_url).set(password=SECRET).render_as_string(hide_password=False)  # trust auth ignores it
    assert voice2anime(tmp_path, "migrate", DATABASE_URL=url).returncode == 0
    name = make_url(url).database

    async def read_only() -> None:
        connection = await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False))
        try:
            await connection.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        finally:
            await connection.close()

    asyncio.run(read_only())
    done = voice2anime(tmp_path, "run", DATABASE_URL=url, **unreachable_telegram())
    line = the_error(done, 3, "DATABASE_URL", "cannot write to the database", "read-only transaction", logs_allowed=True)
    assert re.search(r"the database postgresql\+asyncpg://postgres:\S+@127\.0\.0\.1:\d+/voice2anime_test_\w+ \(DATABASE_URL\)", line), line


def test_run_help_says_which_token_starts_which_platform(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "TELEGRAM_BOT_TOKEN starts the Telegram adapter" in text
    assert "DISCORD_BOT_TOKEN the Discord adapter" in text
    assert "Exit codes: 2" in text


# ----- the classification itself -------------------------------------------------------------------------


def test_settings_message_names_the_variable_and_never_echoes_a_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"mysql://bot:{SECRET}@db/x")
    monkeypatch.setenv("SD_SCHEDULER", "fast")
    with pytest.raises(Exception) as raised:
        Settings()
    line = settings_message(raised.value)  # type: ignore[arg-type]
    assert "\n" not in line and SECRET not in line and "mysql://" not in line
    assert "DATABASE_URL:" in line and "SD_SCHEDULER:" in line


def test_reaching_turns_connection_failures_into_exit_3_and_lets_bugs_through() -> None:
    with pytest.raises(DependencyError) as raised, reaching("Redis at redis://db:6379", "REDIS_URL"):
        raise ConnectionRefusedError(111, "Connection refused")
    assert classify(raised.value) == (3, "cannot reach Redis at redis://db:6379 (REDIS_URL): [Errno 111] Connection refused")
    with pytest.raises(KeyError), reaching("Redis", "REDIS_URL"):
        raise KeyError("a bug keeps its traceback")
    assert classify(KeyError("x")) is None
    assert classify(BadInputError("bad\nvalue")) == (2, "bad value")


def test_url_location_drops_credentials_and_path() -> None:
    assert url_location(f"redis://:{SECRET}@cache.internal:6380/2") == "redis://cache.internal:6380"
    assert url_location(f"https://api.telegram.org/bot{TOKEN}") == "https://api.telegram.org"


async def test_postgresql_connections_time_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that accepts TCP but never answers fails the connection after CONNECT_TIMEOUT_SECONDS."""
    from db import session

    monkeypatch.setattr(session, "CONNECT_TIMEOUT_SECONDS", 0.5)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        database = session.create_database(f"postgresql+asyncpg://bot:{SECRET}@127.0.0.1:{silent.getsockname()[1]}/x")
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            async with database.engine.connect():
                pass
        assert time.monotonic() - started < 5
        await database.dispose()


def test_redis_connections_and_replies_time_out() -> None:
    from bot.factory import with_timeouts

    assert with_timeouts("redis://h:6379/0") == "redis://h:6379/0?socket_connect_timeout=10&socket_timeout=15"
    assert with_timeouts("rediss://h/0?ssl_cert_reqs=none") == (
        "rediss://h/0?ssl_cert_reqs=none&socket_connect_timeout=10&socket_timeout=15"
    )
    assert with_timeouts("redis://h/0?socket_connect_timeout=3&socket_timeout=60") == (
        "redis://h/0?socket_connect_timeout=3&socket_timeout=60"
    )


def test_run_with_a_redis_that_never_answers_is_exit_3(tmp_path: Path) -> None:
    """A server that accepts the connection and then says nothing (a wrong port, a hung proxy) does not hang the bot."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections complete in the kernel's backlog; nobody ever reads or answers
        port = silent.getsockname()[1]
        started = time.monotonic()
        done = voice2anime(tmp_path, "run", TELEGRAM_BOT_TOKEN=TOKEN, ENGINE="redis", REDIS_URL=f"redis://:{SECRET}@127.0.0.1:{port}/0")
    the_error(done, 3, "Redis", "REDIS_URL", f"127.0.0.1:{port}", logs_allowed=True)
    assert SECRET not in done.stderr and time.monotonic() - started < FAIL_FAST_SECONDS
