"""`voice2anime run` as a real process: starts from settings, answers over Telegram, stops gracefully, resumes.

The process talks to the fake Bot API server (tests/support/fake_telegram.py)
over HTTP; models are the tiny test ones, the database a SQLite file.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from handlers.actions import Action
from tests.support.database import _admin as postgres_admin
from tests.support.fake_telegram import TOKEN, FakeTelegram, private_chat, user

pytestmark = pytest.mark.slow  # real `voice2anime run` processes

STOP_TIMEOUT = 60.0


def bot_env(server: FakeTelegram, tmp_path: Path, whisper_model_dir: Path, tiny_sd_dir: Path, checkpoints: Path, **extra: str) -> dict[str, str]:
    """The environment an operator would set, pointing at the fake server and the test models."""
    return os.environ | {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_BASE_URL": server.api_url,
        "TELEGRAM_FILE_BASE_URL": server.file_url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        "DATA_DIR": str(tmp_path / "data"),
        "WHISPER_MODEL": str(whisper_model_dir),
        "WHISPER_CPU_THREADS": "1",
        "SD_MODEL": str(tiny_sd_dir),
        "SD_WIDTH": "64",
        "SD_HEIGHT": "64",
        "SD_STEPS": "2",
        "CHECKPOINTS_DIR": str(checkpoints),
        "ANIME_DOWNLOAD": "false",
        "PROGRESS_INTERVAL_SECONDS": "0",
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
    } | extra


@asynccontextmanager
async def bot_process(env: dict[str, str], tmp_path: Path, name: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python -m bot run`` with its stderr in ``tmp_path/name.log``; killed if the test leaves it running."""
    log = (tmp_path / f"{name}.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", env=env, cwd=tmp_path, stdout=log, stderr=log
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        log.close()


async def started(server: FakeTelegram, process: asyncio.subprocess.Process, calls_before: int) -> None:
    """Wait until the process published its command menus (it is polling then)."""
    async def menus() -> None:
        while len(server.called("setMyCommands")) < calls_before + 2:
            assert process.returncode is None, "the bot exited during start-up"
            await asyncio.sleep(0.05)

    await asyncio.wait_for(menus(), 120)


async def stop(process: asyncio.subprocess.Process) -> int:
    process.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(process.wait(), STOP_TIMEOUT)


def card_of(server: FakeTelegram, chat_id: int, after: int) -> Any:
    def check() -> dict[str, Any] | None:
        for message in server.sent(chat_id):
            keyboard = message.get("reply_markup", {}).get("inline_keyboard", [])
            data = [b["callback_data"] for row in keyboard for b in row]
            if message["message_id"] > after and any(d.startswith(f"{Action.CONFIRM}:") for d in data):
                return message, next(d for d in data if d.startswith(f"{Action.CONFIRM}:"))
        return None

    return check


def states(db: Path) -> list[str]:
    with sqlite3.connect(db) as connection:
        return [row[0] for row in connection.execute("SELECT state FROM requests ORDER BY created_at")]


async def test_run_answers_stops_gracefully_and_resumes_after_restart(
    fake_telegram: FakeTelegram, tmp_path: Path, whisper_model_dir: Path, tiny_sd_dir: Path, animegan_checkpoints_dir: Path
) -> None:
    server, alice = fake_telegram, user()
    chat = private_chat(alice)
    # Enough work that the job is still running when the bot is stopped.
    env = bot_env(server, tmp_path, whisper_model_dir, tiny_sd_dir, animegan_checkpoints_dir, SD_STEPS="150", SD_WIDTH="256", SD_HEIGHT="256")

    async with bot_process(env, tmp_path, "first") as first:
        await started(server, first, 0)
        await server.push(server.message(chat, alice, text="/anime a cat on the beach"))
        card, confirm = await server.wait_for(card_of(server, chat["id"], 0))
        await server.push(server.press(alice, card, confirm))
        await server.wait_for(lambda: any("%" in c.params.get("text", "") for c in server.called("editMessageText")))
        assert await stop(first) == 0
    assert states(tmp_path / "bot.db") == ["running"], "a stopped bot leaves the job for the next start"
    assert not server.called("sendPhoto")

    async with bot_process(env | {"SD_STEPS": "2", "SD_WIDTH": "64", "SD_HEIGHT": "64"}, tmp_path, "second") as second:
        await started(server, second, 2)
        # The first sendPhoto may be a preview (the text status cannot gain a photo); the picture carries Restyle.
        pictures = await server.wait_for(lambda: [c for c in server.called("sendPhoto") if any(d.startswith(f"{Action.RESTYLE}:") for d in c.callback_data())], timeout=120)
        assert pictures[0].params["chat_id"] == str(chat["id"])
        assert await stop(second) == 0
    assert states(tmp_path / "bot.db") == ["delivered"]

    logs = (tmp_path / "first.log").read_text() + (tmp_path / "second.log").read_text()
    assert "shutting down" in logs and "resuming request" in logs
    assert "on uvloop's event loop" in logs, "uvloop is a dependency: the bot runs on it (bot.event_loop)"
    assert "of the start-up heap left out of garbage collection" in logs, "no full GC walks the dictionaries (bot.event_loop)"
    assert TOKEN not in logs and TOKEN.split(":")[1] not in logs


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"WEB_ENABLED": "false"}, "TELEGRAM_BOT_TOKEN"),  # no token and no studio (without WEB_ENABLED: tests/test_web.py)
        ({"TELEGRAM_BOT_TOKEN": TOKEN, "SD_STEPS": "400"}, "SD_STEPS: Input should be less than or equal to 150"),
    ],
)
def test_run_refuses_to_start_with_a_clear_reason(tmp_path: Path, extra: dict[str, str], expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_BOT_TOKEN")} | extra
    done = subprocess.run([sys.executable, "-m", "bot", "run"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert expected in done.stderr and "Traceback" not in done.stderr
    assert TOKEN.split(":")[1] not in done.stderr


# --- secrets never leave the process; a refused start is one line -------------------------------------

#: Secrets an operator sets; none of them may appear in anything the process writes.
BAD_TOKEN = "987654321:AAH-not-a-token-Telegram-knows-0123456"
DB_PASSWORD = "db-Pa55word-of-the-test"
REDIS_PASSWORD = "redis-Pa55word-of-the-test"
WEBHOOK_SECRET = "webhook-Secret-of-the-test_0123"
DISCORD_TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GAbCdE.fake-discord-token-for-the-test-suite0"


def run_cli(env: dict[str, str], cwd: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """``python -m bot ARGS`` to the end, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def assert_no_secret(output: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in output, f"{secret!r} leaked"
        if ":" in secret:  # a Telegram token's secret half on its own
            assert secret.split(":", 1)[1] not in output, f"{secret!r} leaked"


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def secret_env(server: FakeTelegram, tmp_path: Path, **extra: str) -> dict[str, str]:
    """A minimal start-up environment with every kind of secret set (the engine is local: Redis is not used)."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_BOT_TOKEN")}
    return env | {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_BASE_URL": server.api_url,
        "TELEGRAM_FILE_BASE_URL": server.file_url,
        "TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        "REDIS_URL": f"redis://:{REDIS_PASSWORD}@127.0.0.1:6399/0",
        "DATA_DIR": str(tmp_path / "data"),
        "HF_HUB_OFFLINE": "1",
    } | extra


async def test_run_with_a_token_telegram_rejects_says_so_in_one_line_without_the_token(fake_telegram: FakeTelegram, tmp_path: Path) -> None:
    env = secret_env(fake_telegram, tmp_path, TELEGRAM_BOT_TOKEN=BAD_TOKEN)

    done = await asyncio.to_thread(run_cli, env, tmp_path, "-v", "run")  # debug logging: request URLs and parameters

    assert fake_telegram.calls and fake_telegram.calls[0].status == 401  # the fake really refused it
    assert_no_secret(done.stdout + done.stderr, BAD_TOKEN, REDIS_PASSWORD, WEBHOOK_SECRET)
    assert error_lines(done.stderr) == ["error: Telegram rejected TELEGRAM_BOT_TOKEN (401 Unauthorized) — check the token"]
    assert done.returncode == 2 and "Traceback" not in done.stderr


async def test_run_with_a_wrong_api_url_says_so_in_one_line_without_the_token(fake_telegram: FakeTelegram, tmp_path: Path) -> None:
    wrong = f"http://127.0.0.1:{fake_telegram.port}/nothing-here/bot"
    env = secret_env(fake_telegram, tmp_path, TELEGRAM_API_BASE_URL=wrong)

    done = await asyncio.to_thread(run_cli, env, tmp_path, "-v", "run")

    assert fake_telegram.calls and fake_telegram.calls[0].status == 404
    assert_no_secret(done.stdout + done.stderr, TOKEN, REDIS_PASSWORD, WEBHOOK_SECRET)
    (line,) = error_lines(done.stderr)
    assert line.startswith(f"error: Telegram Bot API not found at {wrong} (TELEGRAM_API_BASE_URL): 404 Not Found")
    assert done.returncode == 3 and "Traceback" not in done.stderr


async def test_run_with_the_webhook_port_in_use_names_the_port_and_its_settings(fake_telegram: FakeTelegram, tmp_path: Path) -> None:
    """Another program on TELEGRAM_WEBHOOK_PORT: the operator is told which port and which settings, not the Bot API."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = secret_env(
            fake_telegram,
            tmp_path,
            TELEGRAM_WEBHOOK_URL=f"http://127.0.0.1:{port}/hook",
            TELEGRAM_WEBHOOK_LISTEN="127.0.0.1",
            TELEGRAM_WEBHOOK_PORT=str(port),
        )
        done = await asyncio.to_thread(run_cli, env, tmp_path, "run")

    (line,) = error_lines(done.stderr)
    assert line.startswith(
        f"error: cannot listen on 127.0.0.1:{port} for Telegram's webhook (TELEGRAM_WEBHOOK_LISTEN, TELEGRAM_WEBHOOK_PORT): "
    ), line
    assert "in use" in line
    assert not fake_telegram.called("setWebhook")
    assert_no_secret(done.stdout + done.stderr, TOKEN, REDIS_PASSWORD, WEBHOOK_SECRET)
    assert done.returncode == 3 and "Traceback" not in done.stderr


async def test_run_in_webhook_mode_with_debug_logging_writes_no_secret(
    request: pytest.FixtureRequest, fake_telegram: FakeTelegram, tmp_path: Path
) -> None:
    """A full start and stop with every secret set and ``-v``: python-telegram-bot logs each call's parameters
    (setWebhook's secret_token), httpx each URL (the token)."""
    database_url, drop = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", None
    try:  # PostgreSQL with a password in DATABASE_URL when the machine has it (trust auth ignores the password)
        server_url = request.getfixturevalue("postgres_server")
    except pytest.skip.Exception as skipped:
        print(f"DATABASE_URL password not checked: {skipped}")
    else:
        name = f"voice2anime_test_{uuid.uuid4().hex[:12]}"
        await postgres_admin(server_url, f'CREATE DATABASE "{name}"')
        drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        database_url = make_url(server_url).set(database=name, password=DB_PASSWORD).render_as_string(hide_password=False)
    try:
        await webhook_run_writes_no_secret(fake_telegram, tmp_path, database_url)
    finally:
        if drop:
            await postgres_admin(server_url, drop)


async def webhook_run_writes_no_secret(fake_telegram: FakeTelegram, tmp_path: Path, database_url: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = secret_env(
        fake_telegram,
        tmp_path,
        DATABASE_URL=database_url,
        TELEGRAM_WEBHOOK_URL=f"http://127.0.0.1:{port}/hook",
        TELEGRAM_WEBHOOK_LISTEN="127.0.0.1",
        TELEGRAM_WEBHOOK_PORT=str(port),
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "-v", "run", env=env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        communicate = asyncio.ensure_future(process.communicate())
        await fake_telegram.wait_for(lambda: fake_telegram.called("setWebhook") or communicate.done(), timeout=120)
        assert fake_telegram.called("setWebhook", secret_token=WEBHOOK_SECRET)
        process.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(communicate, STOP_TIMEOUT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    output = out.decode() + err.decode()
    assert process.returncode == 0, output[-3000:]
    assert "setWebhook" in output and "<redacted>" in output  # the debug lines are there, scrubbed
    assert_no_secret(output, TOKEN, DB_PASSWORD, REDIS_PASSWORD, WEBHOOK_SECRET)


@pytest.fixture
async def rejecting_discord() -> AsyncIterator[tuple[str, list[str]]]:
    """A Discord REST API that answers every token with 401 (as for a revoked one): (base URL, Authorization headers seen)."""
    from aiohttp import web

    seen: list[str] = []

    async def users_me(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.json_response({"message": "401: Unauthorized", "code": 0}, status=401)

    app = web.Application()
    app.router.add_get("/api/v10/users/@me", users_me)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/api/v10", seen
    await runner.cleanup()


#: ``voice2anime`` with discord.py's REST base pointed at a test server (Discord has no base-URL setting).
DISCORD_AT = "import sys, discord.http; discord.http.Route.BASE = sys.argv.pop(1); from bot.cli import main; sys.exit(main())"


async def test_run_with_a_token_discord_rejects_says_so_in_one_line_without_the_token(
    rejecting_discord: tuple[str, list[str]], tmp_path: Path
) -> None:
    base, seen = rejecting_discord
    env = {k: v for k, v in os.environ.items() if not k.endswith("_BOT_TOKEN")} | {
        "DISCORD_BOT_TOKEN": DISCORD_TOKEN,
        "DISCORD_SYNC_COMMANDS": "false",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        "DATA_DIR": str(tmp_path / "data"),
        "HF_HUB_OFFLINE": "1",
    }

    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", DISCORD_AT, base, "-v", "run"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )

    assert seen == [f"Bot {DISCORD_TOKEN}"]  # it really tried the token
    assert_no_secret(done.stdout + done.stderr, DISCORD_TOKEN)
    assert error_lines(done.stderr) == ["error: Discord rejected DISCORD_BOT_TOKEN (401 Unauthorized) — check the token"]
    assert done.returncode == 2 and "Traceback" not in done.stderr


#: Every way a secret could leave a process, run under the CLI's wrapper (secrets from the environment and ``.env``).
LEAKY = r"""
import asyncio, gc, logging, os, sys, threading, warnings
from pathlib import Path
from urllib.parse import urlsplit
from bot.redact import redacting

TOKEN = os.environ["TELEGRAM_BOT_TOKEN"]
DOTENV = Path(".env").read_text()
DB_PASSWORD = urlsplit(DOTENV.split("DATABASE_URL=")[1].split()[0]).password


class Leaky:
    def __del__(self):
        raise RuntimeError(f"in __del__ with {TOKEN}")


def in_thread():
    raise RuntimeError(f"thread with {TOKEN}")


async def failing():
    raise RuntimeError(f"task failed with {TOKEN}")


async def forgotten_task():
    asyncio.get_running_loop().create_task(failing())
    await asyncio.sleep(0.1)


@redacting
def main() -> int:
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    print("stdout:", TOKEN, DOTENV, DB_PASSWORD)
    logging.getLogger("x").info("log: %s", TOKEN)
    logging.getLogger("x").warning("redis at %s", os.environ["REDIS_URL"])
    try:
        raise ValueError(f"bad {TOKEN}")
    except ValueError:
        logging.getLogger("x").exception("traceback:")
    warnings.warn(f"warning: {TOKEN}")
    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    Leaky()
    gc.collect()
    asyncio.run(forgotten_task())
    gc.collect()
    raise RuntimeError(f"uncaught {TOKEN} {os.environ['TELEGRAM_WEBHOOK_SECRET']}")


sys.exit(main())
"""


def test_every_way_out_of_the_process_is_redacted(tmp_path: Path) -> None:
    odd_token = "not-token-shaped-but-secret-XYZZY"  # only known as a secret because it is TELEGRAM_BOT_TOKEN
    dotenv_discord = "dotenv-discord-secret-PLUGH"
    (tmp_path / ".env").write_text(f"DISCORD_BOT_TOKEN={dotenv_discord}\nDATABASE_URL=postgresql://u:{DB_PASSWORD}@db/x\n")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_BOT_TOKEN") and k not in ("DATABASE_URL", "REDIS_URL")} | {
        "TELEGRAM_BOT_TOKEN": odd_token,
        "REDIS_URL": f"redis://:{REDIS_PASSWORD}@cache:6379/0",
        "TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }

    done = subprocess.run([sys.executable, "-c", LEAKY], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)

    output = done.stdout + done.stderr
    assert done.returncode == 1
    for seen in ("stdout:", "log:", "redis at", "traceback:", "warning:", "thread with", "in __del__", "task failed", "uncaught"):
        assert seen in output, f"{seen!r} is missing from {output}"
    assert_no_secret(output, odd_token, DB_PASSWORD, REDIS_PASSWORD, WEBHOOK_SECRET, dotenv_discord)
    assert output.count("<redacted>") >= 10
