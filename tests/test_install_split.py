"""The split install: the base package is the bot (no torch); the image engine is the ``engine`` extra.

Fast checks (this venv, which has the extra): pyproject's split, the one-line
"install voice2anime[engine]" refusal (exit 3) of ENGINE=local ``run``, ``worker``
and ``generate`` when torch is absent (simulated: ``sys.modules["torch"] = None``
makes it unimportable), and that ``--help``, ``prompt``, ``transcribe`` and an
ENGINE=redis bot import no engine module (checked in a child process whose import
system refuses them).

Slow check, the CI step "the bot starts and transcribes without torch installed":
in the torch-free Python 3.12 virtualenv of ``tests/test_python312_speech.py`` (the
speech requirements plus ``pip install -e .``, which a dry run showed pulls no engine
distribution), run ``voice2anime --help``, ``prompt --json``, ``transcribe --json``
with the test Whisper model, ``run`` with ENGINE=redis against a real redis-server
and the fake Telegram server (answers /start, transcribes a voice note into its
confirmation card, stops on SIGTERM), and ENGINE=local ``run``, ``worker`` and
``generate`` refusing with the one-line message, exit 3.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from bot.cli import main
from bot.startup_errors import ENGINE_MODULES, MissingExtraError, require_engine
from handlers.actions import Action
from tests.support.fake_telegram import TOKEN, FakeTelegram, private_chat, user
from tests.support.redis_server import RedisServer
from tests.test_python312_speech import ENGINE_DISTRIBUTIONS, REPORT_NAME, engine_distributions_in, find_python312, speech_venv

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "tests" / "fixtures" / "zh" / "blue_hair_girl.ogg"  # 一个蓝色头发的女孩在樱花树下
#: The phrase every refusal carries.
INSTALL_HINT = "install voice2anime[engine]"
#: Modules no engine-free command may load (the engine extra's, by import name).
ENGINE_IMPORTS = frozenset(ENGINE_MODULES) - {"onnxruntime"}  # onnxruntime also comes with faster-whisper (its VAD)


def _name(requirement: str) -> str:
    return requirement.split(";")[0].split("[")[0].split(">")[0].split("<")[0].split("=")[0].split("~")[0].strip().lower()


# --- pyproject -------------------------------------------------------------------------------------


def test_base_install_has_no_engine_and_the_extra_has_all_of_it() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    base = {_name(r) for r in project["dependencies"]}
    extras = project["optional-dependencies"]
    engine = {_name(r) for r in extras["engine"]}
    assert not engine_distributions_in(base), "the base install must not pull the image engine"
    assert set(ENGINE_MODULES) <= engine, "what bot.startup_errors.require_engine checks comes with the extra"
    assert set(ENGINE_DISTRIBUTIONS) - {"triton"} <= engine
    assert extras["gpu"] == ["voice2anime[engine]"], "gpu is an alias of engine"
    assert {"faster-whisper", "redis", "sqlalchemy", "python-telegram-bot", "discord.py"} <= base


def test_setup_script_installs_torch_first_then_the_engine_extra() -> None:
    script = (ROOT / "scripts" / "setup.sh").read_text(encoding="utf-8")
    torch_line = script.index('install "torch==')
    assert torch_line < script.index('".[engine,dev]"') and torch_line < script.index('".[engine]"')


# --- the refusal without torch ------------------------------------------------------------------------


@pytest.fixture
def no_torch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """torch cannot be imported (``find_spec`` says absent, ``import torch`` raises); cwd is an empty tmp dir."""
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.chdir(tmp_path)
    for name in ("TELEGRAM_BOT_TOKEN", "DISCORD_BOT_TOKEN", "ENGINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # nothing there: the refusal must come first
    return tmp_path


def test_require_engine_names_the_extra_and_what_is_missing(no_torch: Path) -> None:
    with pytest.raises(MissingExtraError) as caught:
        require_engine("voice2anime worker")
    error = caught.value
    assert error.exit_code == 3 and error.extra == "engine" and error.missing == ("torch",)
    assert str(error).startswith("voice2anime worker needs the image engine") and INSTALL_HINT in str(error)


@pytest.mark.parametrize(
    ("argv", "starts"),
    [
        (["run"], "error: ENGINE=local needs the image engine"),
        (["worker"], "error: voice2anime worker needs the image engine"),
        (["generate", "--text", "a cat", "-o", "out.png"], "error: drawing a picture needs the image engine"),
    ],
)
def test_commands_that_draw_refuse_in_one_line_without_torch(
    no_torch: Path, capsys: pytest.CaptureFixture[str], argv: list[str], starts: str
) -> None:
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(starts), err
    assert "(no torch)" in err and INSTALL_HINT in err and "Traceback" not in err
    if argv == ["run"]:
        assert "or set ENGINE=redis" in err
    assert not (no_torch / "data").exists() and not (no_torch / "bot.db").exists(), "refused before anything was made"


# --- what the engine-free commands import -------------------------------------------------------------

#: Run in a child process: the import system refuses the engine's modules, as in an install without the extra.
_BLOCKED = f"""
import importlib.abc, json, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {sorted(ENGINE_IMPORTS)!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (the engine extra is not installed)", name=name)
        return None
sys.meta_path.insert(0, Refuse())
"""


def _loaded_after(code: str, tmp_path: Path) -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_BOT_TOKEN")} | {"ENGINE": "redis", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _BLOCKED + code + "\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"],
        cwd=tmp_path, env=env | {"PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_help_and_prompt_load_no_engine_and_no_heavy_library(tmp_path: Path) -> None:
    code = """
import contextlib, io
from bot.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main(["--help"])
    except SystemExit:
        pass
    assert main(["prompt", "--json", "一个蓝色头发的女孩在樱花树下"]) == 0
"""
    loaded = _loaded_after(code, tmp_path)
    # numpy is not in the list: the content policy's second check (engine.policy.classifier) reads with it
    heavy = {"PIL", "faster_whisper", "ctranslate2", "av", "onnxruntime", "redis", "telegram", "discord"}
    heavy |= {"aiohttp", "alembic"}
    assert not loaded & (ENGINE_IMPORTS | heavy), f"prompt loaded {sorted(loaded & (ENGINE_IMPORTS | heavy))}"


def test_the_redis_bot_and_speech_build_without_the_engine(tmp_path: Path) -> None:
    code = """
from bot import app, factory
from bot.settings import Settings
from engine.jobs import local, runner, worker
from engine.jobs.distributed import RedisJobQueue
settings = Settings(engine="redis")
assert isinstance(factory.job_queue(settings), RedisJobQueue)
factory.transcriber(settings)
factory.conversation_config(settings)
"""
    loaded = _loaded_after(code, tmp_path)
    assert not loaded & ENGINE_IMPORTS, sorted(loaded & ENGINE_IMPORTS)
    assert {"faster_whisper", "redis", "sqlalchemy"} <= loaded


# --- the CI step: a bot without torch, for real --------------------------------------------------------


@pytest.fixture(scope="module")
def bot_venv() -> Path:
    """The torch-free Python 3.12 virtualenv with the base install (skips without a usable Python 3.12)."""
    python = find_python312()
    if python is None:
        pytest.skip(
            "no usable Python 3.12 on this machine (looked for python3.12 on PATH, in pyenv and /usr): "
            "the torch-free install is not checked"
        )
    return speech_venv(python)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    dropped = ("ENGINE", "PYTHONPATH", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_BOT_TOKEN") and k not in dropped}
    return env | {
        "DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    } | extra


def _cli(venv: Path, tmp_path: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """``voice2anime ARGS`` of ``venv`` run to the end in ``tmp_path``: the outcome and how long it took."""
    started = time.monotonic()
    done = subprocess.run(
        [str(venv / "bin" / "voice2anime"), *args], cwd=tmp_path, env=_env(tmp_path, **env),
        capture_output=True, text=True, timeout=300, check=False,
    )
    return done, time.monotonic() - started


def _engine_modules_in(venv: Path) -> list[str]:
    """Which of the engine's modules the virtualenv's Python can import."""
    code = f"import importlib.util as u; print(*[m for m in {sorted(ENGINE_IMPORTS)!r} if u.find_spec(m)])"
    found = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True)
    return found.stdout.split()


@pytest.mark.slow
async def test_the_bot_starts_and_transcribes_without_torch_installed(
    bot_venv: Path, tmp_path: Path, whisper_model_dir: Path, fake_telegram: FakeTelegram, redis_server: RedisServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    present = await asyncio.to_thread(_engine_modules_in, bot_venv)
    assert not present, f"the bot venv has {present}: it must be torch-free"
    report = json.loads((bot_venv / REPORT_NAME).read_text())
    planned = [item["metadata"]["name"] for item in report["install"]]
    assert "voice2anime" in planned and not engine_distributions_in(planned), "pip install --dry-run -e . pulls no engine"
    times: dict[str, float] = {}

    done, times["--help"] = await asyncio.to_thread(_cli, bot_venv, tmp_path, "--help")
    assert done.returncode == 0 and "transcribe" in done.stdout and "worker" in done.stdout, done.stderr

    done, times["prompt"] = await asyncio.to_thread(_cli, bot_venv, tmp_path, "prompt", "--json", "一个蓝色头发的女孩在樱花树下")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["parsed"]["subject"] == "girl"

    speech = {"WHISPER_MODEL": str(whisper_model_dir), "WHISPER_CPU_THREADS": "1", "WHISPER_BEAM_SIZE": "2"}
    done, times["transcribe"] = await asyncio.to_thread(_cli, bot_venv, tmp_path, "transcribe", "--json", str(CLIP), **speech)
    assert done.returncode == 0, done.stderr[-3000:]
    transcript = json.loads(done.stdout)
    assert transcript["language"] == "zh" and "女孩" in transcript["text"], transcript["text"]

    for args, starts in (
        (("run",), "error: ENGINE=local needs the image engine"),
        (("worker",), "error: voice2anime worker needs the image engine"),
        (("generate", "--text", "a cat", "-o", str(tmp_path / "x.png")), "error: drawing a picture needs the image engine"),
    ):
        env = {"ENGINE": "local", "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_BASE_URL": fake_telegram.api_url}
        done, _ = await asyncio.to_thread(_cli, bot_venv, tmp_path, *args, **env)
        assert done.returncode == 3, (args, done.stdout, done.stderr[-3000:])
        assert done.stderr.count("\n") == 1 and done.stderr.startswith(starts), done.stderr
        assert INSTALL_HINT in done.stderr and "torch" in done.stderr and "Traceback" not in done.stderr
    assert not fake_telegram.calls, "ENGINE=local refused before reaching Telegram"

    # ENGINE=redis: the bot answers /start and turns a voice note into its card; the pictures would come from workers.
    env = _env(
        tmp_path, ENGINE="redis", REDIS_URL=redis_server.url, TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_BASE_URL=fake_telegram.api_url, TELEGRAM_FILE_BASE_URL=fake_telegram.file_url, **speech,
    )
    log_path = tmp_path / "bot.log"
    with log_path.open("wb") as log:
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            str(bot_venv / "bin" / "voice2anime"), "run", env=env, cwd=tmp_path, stdout=log, stderr=log
        )
        try:
            async def polling() -> None:
                while not fake_telegram.called("getUpdates"):
                    assert process.returncode is None, f"the bot exited: {log_path.read_text()[-3000:]}"
                    await asyncio.sleep(0.05)

            await asyncio.wait_for(polling(), 120)
            times["run (polling)"] = time.monotonic() - started
            alice = user()
            chat = private_chat(alice)
            await fake_telegram.push(fake_telegram.message(chat, alice, text="/start"))
            await fake_telegram.wait_for(lambda: fake_telegram.sent(chat["id"]), timeout=60)
            times["run (/start answered)"] = time.monotonic() - started

            voice = fake_telegram.add_file(CLIP.read_bytes()) | {"duration": 3, "mime_type": "audio/ogg"}
            await fake_telegram.push(fake_telegram.message(chat, alice, voice=voice))

            def card() -> dict | None:
                for message in fake_telegram.sent(chat["id"]):
                    data = [b["callback_data"] for row in message.get("reply_markup", {}).get("inline_keyboard", []) for b in row]
                    if any(d.startswith(f"{Action.CONFIRM}:") for d in data):
                        return message
                return None

            shown = await fake_telegram.wait_for(card, timeout=180)
            assert "女孩" in shown["text"], shown["text"]
            times["run (voice card)"] = time.monotonic() - started
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), 60) == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    logs = log_path.read_text(errors="replace")
    assert "Traceback" not in logs and TOKEN.split(":")[1] not in logs
    with capsys.disabled():
        shown_times = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in times.items())
        print(f"\n[torch-free bot, Python 3.12 venv {bot_venv}] {shown_times}")


def test_the_engine_layers_import_nothing_heavy(tmp_path: Path) -> None:
    code = "import engine, engine.language, engine.policy, engine.speech, engine.image, engine.jobs\n"
    loaded = _loaded_after(code, tmp_path)
    assert not loaded & (ENGINE_IMPORTS | {"faster_whisper", "PIL", "numpy"}), sorted(loaded)
