"""The studio's network edge against a real listening studio: the password throttle, timeouts, caps, hostile input.

Every test starts the studio's own listener (``WebAdapter.start`` on a free
loopback port, as ``voice2anime run`` does) and talks to it over real TCP:
aiohttp clients for the page's requests, raw sockets for what no browser sends
(a stalled body, an idle connection). A "client on another machine" is a
connection from another loopback address (127.0.0.2): Linux routes all of
127.0.0.0/8 to loopback. The conversation behind it is the real one over
SQLite, on the scripted engine (no models: these tests are about the edge).
Waits are bounded generously; nothing asserts how long something took.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import Settings

#: Bound on any wait in these tests (a generous one: a slow CI box must never fail them).
WAIT = 60.0
PASSWORD = "hunter2-of-the-studio"


# --- starting ------------------------------------------------------------------------------------------------


@pytest.mark.slow  # a real `voice2anime run` process
@pytest.mark.parametrize("blank", [" ", "\t  "])
def test_run_refuses_a_blank_password_on_an_open_host(tmp_path: Path, blank: str) -> None:
    settings = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k not in settings} | {
        "WEB_HOST": "0.0.0.0",
        "WEB_PASSWORD": blank,
        "DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        "HF_HUB_OFFLINE": "1",
    }
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bot", "run"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail("voice2anime run served the studio on 0.0.0.0 with a blank password instead of refusing")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: WEB_HOST=0.0.0.0") and "WEB_PASSWORD" in lines[0], done.stderr
    assert not (tmp_path / "data").exists(), "refused before anything was made"
