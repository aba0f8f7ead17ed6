"""What a person at a terminal reads from ``voice2anime``: the real process, every line of stderr.

* a missing model's error is one whole line — what to put where, and why —
  never cut off (offline, a missing model is the normal case);
* stderr carries the bot's own lines only: no library warnings, no "Couldn't
  connect to the Hub", no progress bars — unless ``-v``;
* ``generate`` shows its progress in place on a terminal ("drawing 2/2"), and
  nothing of it when stderr is not one;
* ``generate --photo`` says no "seed None": a photo is restyled, not drawn.

Each case runs ``python -m bot`` in an empty directory with the voice2anime
settings of the test environment removed and the hub offline.
"""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from bot.settings import Settings

pytestmark = pytest.mark.slow  # one CLI process per case

#: A line of the bot's own: a log record of one of its packages (bot/cli_output.py's format), or the error.
OWN_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) (bot|engine|handlers|db|voice2anime)(\.[\w.]+)?: |error: )"
)


def environment(tmp_path: Path, **settings: str) -> dict[str, str]:
    """The environment of an operator who set only ``settings``: models in ``tmp_path/models``, the hub offline."""
    names = {name.upper() for name in Settings.model_fields}
    base = {k: v for k, v in os.environ.items() if k not in names and not k.startswith(("HF_", "TRANSFORMERS_", "DIFFUSERS_"))}
    return base | {
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",  # never the network, even on a machine that has it
        "HF_HOME": str(tmp_path / "hf-home"),
        "MODELS_DIR": str(tmp_path / "models"),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        "DATA_DIR": str(tmp_path / "data"),
    } | settings


def voice2anime(tmp_path: Path, *argv: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """``python -m bot ARGV`` in ``tmp_path`` (stdout and stderr are pipes, not a terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "bot", *argv], env=environment(tmp_path, **settings), cwd=tmp_path,
        capture_output=True, text=True, timeout=300, check=False,
    )


def foreign_lines(stderr: str) -> list[str]:
    """The lines of ``stderr`` that are not the bot's own."""
    return [line for line in stderr.splitlines() if not OWN_LINE.match(line)]


@pytest.fixture
def tiny_models(tiny_sd_dir: Path, animegan_checkpoints_dir: Path) -> dict[str, str]:
    """Settings for the tiny test models, drawing in 2 steps (the image check is off: its models are not the point here)."""
    return {
        "SD_MODEL": str(tiny_sd_dir),
        "SD_WIDTH": "64",
        "SD_HEIGHT": "64",
        "SD_STEPS": "2",
        "CHECKPOINTS_DIR": str(animegan_checkpoints_dir),
        "ANIME_DOWNLOAD": "false",
        "TORCH_THREADS": "1",
        "POLICY_IMAGE_CHECK": "false",
    }


# ----- a missing model: one whole line --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "fix"),
    [
        (["generate", "--text", "a cat on the beach", "-o", "cat.png"], "and set SD_MODEL=models/anything-v5."),
        (["transcribe", str(Path(__file__).parent / "fixtures" / "zh" / "blue_hair_girl.ogg")], "and set WHISPER_MODEL="),
    ],
    ids=["generate", "transcribe"],
)
def test_a_missing_model_is_one_whole_line_saying_what_to_put_where(tmp_path: Path, argv: list[str], fix: str) -> None:
    """The default models, not downloaded, offline: the error names the fix and ends with the whole cause."""
    done = voice2anime(tmp_path, *argv)
    assert done.returncode == 3, done.stderr
    assert foreign_lines(done.stderr) == [], done.stderr  # no "Couldn't connect to the Hub", no library warning
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and done.stderr.splitlines()[-1] == errors[0], done.stderr
    line = errors[0]
    assert fix in line and " Cause: " in line, line
    assert not line.endswith(("…", "...")), f"cut off: {line}"
    cause = line.split(" Cause: ", 1)[1]
    assert cause.endswith((".", ")")), f"the cause stops mid-sentence: {cause}"
    assert "stacktrace above" not in line and "local_files_only=False" not in line  # no stack trace is shown; offline is the point


# ----- stderr: the bot's own lines only, unless -v ------------------------------------------------------------


def test_generate_writes_only_its_own_lines_and_no_progress_when_stderr_is_not_a_terminal(
    tmp_path: Path, tiny_models: dict[str, str]
) -> None:
    done = voice2anime(tmp_path, "generate", "--text", "a cat on the beach", "--seed", "7", "-o", "cat.png", **tiny_models)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("saved cat.png (style face_paint_512_v2, seed 7, ")
    # tiny models make the libraries chatty: torchvision notices, tqdm bars, the 77-token warning
    assert foreign_lines(done.stderr) == [], done.stderr
    assert "drawing" not in done.stderr and "\r" not in done.stderr and "\x1b" not in done.stderr  # no progress off a terminal


def test_verbose_shows_the_libraries_too(tmp_path: Path, tiny_models: dict[str, str]) -> None:
    done = voice2anime(tmp_path, "-v", "generate", "--text", "a cat on the beach", "-o", "cat.png", **tiny_models)
    assert done.returncode == 0, done.stderr
    assert foreign_lines(done.stderr), done.stderr  # the libraries' warnings and progress bars


# ----- progress on a terminal ------------------------------------------------------------------------------


def test_generate_shows_its_steps_in_place_on_a_terminal(tmp_path: Path, tiny_models: dict[str, str]) -> None:
    """stderr is a pseudo-terminal: the steps are rewritten in place on one line, which is erased at the end."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "generate", "--text", "a cat on the beach", "--seed", "7", "-o", "cat.png"],
        env=environment(tmp_path, **tiny_models), cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
    )
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the process closed its end
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    stdout = process.stdout.read().decode() if process.stdout else ""
    assert process.wait(timeout=300) == 0, seen.decode(errors="replace")
    terminal = seen.decode()
    for step in ("\rloading the drawing model\x1b[K", "\rdrawing 1/2\x1b[K", "\rdrawing 2/2\x1b[K", "\rapplying the anime style\x1b[K"):
        assert step in terminal, terminal
    assert terminal.index("drawing 1/2") < terminal.index("drawing 2/2") < terminal.index("applying the anime style")
    assert terminal.endswith("\r\x1b[K"), terminal  # the progress line is gone before the result is printed
    assert "drawing" not in stdout and stdout.startswith("saved cat.png (style face_paint_512_v2, seed 7, ")
    # log lines in between start on a fresh line and leave the progress line to be drawn again
    records = [line for line in terminal.replace("\r\x1b[K", "\n").split("\r\n") if re.match(r"\d{4}-", line)]
    assert records and all(OWN_LINE.match(line) for line in records), terminal


# ----- a photo has no seed --------------------------------------------------------------------------------


def test_generate_from_a_photo_says_no_seed(tmp_path: Path, tiny_models: dict[str, str]) -> None:
    Image.new("RGB", (90, 50), (200, 120, 40)).save(tmp_path / "photo.jpg")
    done = voice2anime(tmp_path, "generate", "--photo", "photo.jpg", "-o", "photo-anime.png", **tiny_models)
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"saved photo-anime\.png \(style face_paint_512_v2, \d+\.\d s\)\n", done.stdout), done.stdout
    assert "seed" not in done.stdout and "None" not in done.stdout
