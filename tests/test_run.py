"""`voice2anime run` as a real process: starts from settings, answers over Telegram, stops gracefully, resumes.

The process talks to the fake Bot API server (tests/support/fake_telegram.py)
over HTTP; models are the tiny test ones, the database a SQLite file.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from handlers import cards
from tests.support.fake_telegram import TOKEN, FakeTelegram, private_chat, user

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
            if message["message_id"] > after and any(d.startswith(f"{cards.CONFIRM}:") for d in data):
                return message, next(d for d in data if d.startswith(f"{cards.CONFIRM}:"))
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
        photo = await server.wait_for(lambda: server.called("sendPhoto"), timeout=120)
        assert photo[0].params["chat_id"] == str(chat["id"])
        assert await stop(second) == 0
    assert states(tmp_path / "bot.db") == ["delivered"]

    logs = (tmp_path / "first.log").read_text() + (tmp_path / "second.log").read_text()
    assert "shutting down" in logs and "resuming request" in logs
    assert TOKEN not in logs and TOKEN.split(":")[1] not in logs


@pytest.mark.parametrize(
    ("extra", "expected"),
    [({}, "TELEGRAM_BOT_TOKEN"), ({"TELEGRAM_BOT_TOKEN": TOKEN, "SD_STEPS": "400"}, "SD_STEPS: Input should be less than or equal to 150")],
)
def test_run_refuses_to_start_with_a_clear_reason(tmp_path: Path, extra: dict[str, str], expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_BOT_TOKEN")} | extra
    done = subprocess.run([sys.executable, "-m", "bot", "run"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert expected in done.stderr and "Traceback" not in done.stderr
    assert TOKEN.split(":")[1] not in done.stderr
