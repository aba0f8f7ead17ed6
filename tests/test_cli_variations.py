"""``voice2anime generate --variations 4``: a grid and four pictures, each as ``generate --seed`` would draw it."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from bot.cli import main
from engine.image import png_info
from tests import test_cli
from tests.support.images import assert_images_close
from tests.test_cli import run_json

engine_env = test_cli.engine_env


def test_variations_write_a_grid_and_four_pictures_with_consecutive_seeds(
    engine_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cat.png"
    summary = run_json(capsys, "generate", "--text", "a cat on the beach", "--seed", "7", "--variations", "4", "-o", str(out))
    assert [v["seed"] for v in summary["variations"]] == [7, 8, 9, 10]
    assert [Path(v["output"]).name for v in summary["variations"]] == [f"cat-v{n}.png" for n in range(1, 5)]
    assert Image.open(out).size == (128, 128)
    chunk = png_info.read((tmp_path / "cat-v3.png").read_bytes(), ours_only=True)
    assert chunk is not None and chunk.seed == 9 and chunk.transcript == "a cat on the beach"
    run_json(capsys, "generate", "--text", "a cat on the beach", "--seed", "9", "-o", str(tmp_path / "alone.png"))
    assert_images_close(Image.open(tmp_path / "cat-v3.png"), Image.open(tmp_path / "alone.png"))


@pytest.mark.parametrize(
    "extra, said",
    [
        (["--variations", "1"], "--variations must be between 2 and 8"),
        (["--variations", "4", "--upscale", "2"], "not with --photo, --upscale or --base-output"),
    ],
)
def test_variations_refuse_what_they_cannot_do_before_any_model_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], said: str
) -> None:
    assert main(["generate", "--text", "a cat", "-o", str(tmp_path / "a.png"), *extra]) == 2
    assert said in capsys.readouterr().err
