"""``voice2anime worker`` processes for tests and ``bench/scale.py``, with or without models.

* :class:`FakePipeline` — a model-free stand-in for ``AnimePipeline``: a job
  takes ``VOICE2ANIME_FAKE_STEPS`` steps of ``VOICE2ANIME_FAKE_STEP_SECONDS``
  each (progress and cancel checked at every step) and returns 8x8 images.
  With ``VOICE2ANIME_FAKE_LOG`` set, every run appends ``start|done|cancelled
  <label> <pid>`` to that file (the label is a text job's positive prompt or a
  photo job's style), so tests can count runs across processes.
* :func:`build_fake_pipeline` — the ``--pipeline`` callable for it.
* :class:`WorkerProcess` — ``python -m bot worker`` in a subprocess with its
  log in a file; :func:`worker_env` the environment it needs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from PIL import Image

from engine.api import CancelCheck, ProgressCallback
from engine.errors import Cancelled
from engine.image.pipeline import AnimeResult

ROOT = Path(__file__).resolve().parents[2]
FAKE = "tests.support.workers:build_fake_pipeline"


class FakePipeline:
    """Sleeps instead of drawing; see the module docstring."""

    previews = False  # what engine.jobs.runner.ImagePipeline asks of a pipeline: no previews, no picture check, one job at a time
    image_check = None
    draws_batches = False

    def __init__(self, steps: int, step_seconds: float, log: Path | None) -> None:
        self.steps = steps
        self.step_seconds = step_seconds
        self.log = log

    def _note(self, what: str, label: str) -> None:
        if self.log is not None:
            with self.log.open("a", encoding="utf-8") as f:  # one short append per line: atomic across processes
                f.write(f"{what} {label} {os.getpid()}\n")

    def _run(self, label: str, stage: str, style: str, progress: ProgressCallback, cancelled: CancelCheck) -> AnimeResult:
        self._note("start", label)
        for step in range(self.steps):
            if cancelled():
                self._note("cancelled", label)
                raise Cancelled
            time.sleep(self.step_seconds)
            progress(stage, (step + 1) / self.steps)
        self._note("done", label)
        image = Image.new("RGB", (8, 8), (10, 20, 30))
        return AnimeResult(image, image, style, None, None, ((stage, self.steps * self.step_seconds),))

    def from_prompt(
        self,
        positive: str,
        negative: str,
        *,
        style: str | None,
        seed: int | None,
        progress: ProgressCallback,
        cancelled: CancelCheck,
    ) -> AnimeResult:
        return self._run(positive, "diffusion", style or "fake", progress, cancelled)

    def from_photo(self, photo: bytes, *, style: str | None, progress: ProgressCallback, cancelled: CancelCheck) -> AnimeResult:
        return self._run(style or "photo", "style", style or "fake", progress, cancelled)


def build_fake_pipeline(settings: Any) -> FakePipeline:
    """``voice2anime worker --pipeline tests.support.workers:build_fake_pipeline``."""
    log = os.environ.get("VOICE2ANIME_FAKE_LOG")
    return FakePipeline(
        int(os.environ.get("VOICE2ANIME_FAKE_STEPS", "4")),
        float(os.environ.get("VOICE2ANIME_FAKE_STEP_SECONDS", "0")),
        Path(log) if log else None,
    )


def worker_env(redis_url: str, prefix: str, *, lease: float = 1.5, **extra: str) -> dict[str, str]:
    """Environment of a worker process on ``redis_url`` under key ``prefix`` (``extra``: more variables)."""
    return os.environ | {
        "ENGINE": "redis",
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": prefix,
        "WORKER_LEASE_SECONDS": str(lease),
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
    } | extra


def tiny_pipeline_env(tiny_sd_dir: Path, animegan_checkpoints_dir: Path, models_dir: Path, **extra: str) -> dict[str, str]:
    """The variables of a worker drawing with the real pipeline on the tiny test models (64x64, 2 steps, CPU)."""
    return {
        "SD_MODEL": str(tiny_sd_dir),
        "SD_SCHEDULER": "dpmpp",
        "SD_STEPS": "2",
        "SD_GUIDANCE": "1.0",
        "SD_WIDTH": "64",
        "SD_HEIGHT": "64",
        "TORCH_DEVICE": "cpu",
        "CHECKPOINTS_DIR": str(animegan_checkpoints_dir),
        "ANIME_BACKEND": "torch",
        "ANIME_DOWNLOAD": "false",
        "ANIME_STYLE": "face_paint_512_v2",
        "MODELS_DIR": str(models_dir),
    } | extra


class WorkerProcess:
    """One ``python -m bot worker`` subprocess; its stderr goes to ``log_path``."""

    def __init__(self, name: str, env: dict[str, str], log_path: Path, *, pipeline: str | None = FAKE) -> None:
        self.name = name
        self.log_path = log_path
        command = [sys.executable, "-m", "bot", "worker"] + (["--pipeline", pipeline] if pipeline else [])
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(command, env=env | {"WORKER_NAME": name}, cwd=ROOT, stderr=log, stdout=log)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait for the worker's "ready" log line."""
        deadline = time.monotonic() + timeout
        while "ready on stream" not in self.log():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker {self.name} did not start:\n{self.log()[-3000:]}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: a crash mid-job."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (the running job finishes first); the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise


def start_workers(count: int, env: dict[str, str], log_dir: Path, *, pipeline: str | None = FAKE) -> list[WorkerProcess]:
    """Start ``count`` workers named ``w1``, ``w2``, ... and wait until all are ready."""
    workers = [WorkerProcess(f"w{i}", env, log_dir / f"worker-w{i}.log", pipeline=pipeline) for i in range(1, count + 1)]
    for worker in workers:
        worker.wait_ready()
    return workers
