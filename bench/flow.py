"""Conversation throughput and latency through the handlers and the database, without models.

Run by hand from the repository root::

    python -m bench.flow [--users 20] [--rounds 10]

Each simulated user sends a voice note, presses Confirm on the card and waits
for the picture (an instant, model-free engine answers), ``rounds`` times,
all users concurrently. Prints events/s and p50/p99 latency of
``Conversation.handle`` per event type, SQLite next to PostgreSQL.
PostgreSQL comes from ``VOICE2ANIME_BENCH_POSTGRES_URL`` (``postgresql+asyncpg://``,
a database the bench may fill) or a throwaway Debian cluster; skipped when neither exists.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image

from db import Repository, create_database
from db.migrate import upgrade_async
from engine.api import JobFinished, JobHandle, JobQueued, JobResult, JobSpec, JobStarted, Segment, Transcript, Word
from handlers import cards
from handlers.events import ButtonPress, Origin, VoiceMessage, fetched
from handlers.flow import Conversation, ConversationConfig
from handlers.replies import Reply

SENTENCE = "a girl with blue hair under a cherry blossom tree at night"


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (90, 140, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


class InstantEngine:
    """An Engine whose transcripts and pictures are ready at once."""

    def __init__(self) -> None:
        self.png = _png()

    async def start(self) -> None:
        """Nothing to start."""

    async def close(self) -> None:
        """Nothing to stop."""

    async def transcribe(self, audio: bytes, *, language: str | None = None) -> Transcript:
        words = tuple(Word(f" {w}", i, i + 1, 0.9) for i, w in enumerate(SENTENCE.split()))
        return Transcript(SENTENCE, "en", 0.99, 3.0, (Segment(SENTENCE, 0, 3, words),), SENTENCE)

    async def submit(self, spec: JobSpec) -> JobHandle:
        handle = JobHandle(spec.job_id, asyncio.get_running_loop())
        base = self.png if spec.kind == "text" else None
        result = JobResult(spec.job_id, self.png, spec.style, base_png=base, seed=spec.seed or 1, model="bench")
        for event in (JobQueued(1), JobStarted(), JobFinished(result)):
            handle.publish(event)
        return handle

    async def cancel(self, job_id: str) -> bool:
        return False


class Cards:
    """A messenger that remembers the newest card (and count of images) per user."""

    def __init__(self) -> None:
        self.card: dict[str, tuple[str, Reply]] = {}
        self.images: dict[str, int] = defaultdict(int)
        self.delivered: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._refs = 0

    async def send(self, origin: Origin, reply: Reply) -> str:
        self._refs += 1
        self._remember(origin, f"m{self._refs}", reply)
        return f"m{self._refs}"

    async def edit(self, origin: Origin, message_ref: str, reply: Reply) -> None:
        self._remember(origin, message_ref, reply)

    async def notify(self, origin: Origin, text: str) -> None:
        """Toasts are not needed here."""

    def _remember(self, origin: Origin, ref: str, reply: Reply) -> None:
        if reply.kind == "card":
            self.card[origin.user_id] = (ref, reply)
        elif reply.kind == "image":
            self.images[origin.user_id] += 1
            self.delivered[origin.user_id].set()


async def run(url: str, data_dir: Path, users: int, rounds: int) -> dict[str, list[float]]:
    """Latencies (seconds) per event type for ``users`` x ``rounds`` voice -> confirm -> picture cycles."""
    await upgrade_async(url)
    database = create_database(url, pool_size=10) if url.startswith("postgresql") else create_database(url)
    messenger = Cards()
    config = ConversationConfig(
        styles=("face_paint_512_v2",), default_style="face_paint_512_v2", progress_interval=0.0,
        requests_per_minute=10**6, max_active_per_user=10**6, max_active_total=10**6,
    )
    conversation = Conversation(Repository(database, data_dir), InstantEngine(), messenger, config)
    latencies: dict[str, list[float]] = defaultdict(list)

    async def timed(kind: str, event: object) -> None:
        started = time.perf_counter()
        await conversation.handle(event)  # type: ignore[arg-type]
        latencies[kind].append(time.perf_counter() - started)

    async def user(n: int) -> None:
        origin = Origin("bench", f"chat{n}", f"user{n}", f"User {n}", "en")
        for _ in range(rounds):
            messenger.delivered[origin.user_id].clear()
            await timed("voice", VoiceMessage(origin, fetched(b"ogg")))
            ref, card = messenger.card[origin.user_id]
            await timed("confirm", ButtonPress(origin, card.request_id, cards.CONFIRM, "", ref))
            started = time.perf_counter()
            await asyncio.wait_for(messenger.delivered[origin.user_id].wait(), 30)
            latencies["delivery"].append(time.perf_counter() - started)

    try:
        await asyncio.gather(*(user(n) for n in range(users)))
        await conversation.wait_idle()
        assert sum(messenger.images.values()) == users * rounds, "every picture must arrive"
    finally:
        await database.dispose()
    return latencies


@contextmanager
def throwaway_postgres() -> Iterator[str | None]:
    """``VOICE2ANIME_BENCH_POSTGRES_URL``, else a temporary local cluster (as in the tests), else None."""
    from tests.support.database import _free_port, _postgres_bin_dir

    configured = os.environ.get("VOICE2ANIME_BENCH_POSTGRES_URL")
    bin_dir = _postgres_bin_dir()
    if configured or bin_dir is None:
        yield configured
        return
    run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    base = Path(tempfile.mkdtemp(prefix="voice2anime-bench-pg-"))
    if run_as:
        shutil.chown(base, "postgres", "postgres")
    data, port = base / "data", _free_port()
    pg_ctl = [*run_as, str(bin_dir / "pg_ctl"), "-D", str(data)]
    try:
        subprocess.run([*run_as, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync"],
                       check=True, capture_output=True)
        options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1"
        subprocess.run([*pg_ctl, "-l", str(base / "log"), "-o", options, "-w", "start"], check=True, capture_output=True)
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"
    except subprocess.CalledProcessError:
        yield None
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "-w", "stop"], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)


def _summary(latencies: dict[str, list[float]], seconds: float) -> dict[str, str]:
    handled = sum(len(latencies[k]) for k in ("voice", "confirm"))
    rows = {"events/s": f"{handled / seconds:,.0f}", "pictures/s": f"{len(latencies['delivery']) / seconds:,.1f}"}
    for kind in ("voice", "confirm", "delivery"):
        values = sorted(latencies[kind])
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
        rows[f"{kind} p50/p99 ms"] = f"{statistics.median(values) * 1000:.1f} / {p99 * 1000:.1f}"
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20, help="concurrent users")
    parser.add_argument("--rounds", type=int, default=10, help="voice -> confirm -> picture cycles per user")
    args = parser.parse_args()
    results: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as tmp, throwaway_postgres() as postgres:
        backends = {"sqlite": f"sqlite+aiosqlite:///{tmp}/bench.db"} | ({"postgresql": postgres} if postgres else {})
        for name, url in backends.items():
            started = time.perf_counter()
            latencies = asyncio.run(run(url, Path(tmp) / name, args.users, args.rounds))
            results[name] = _summary(latencies, time.perf_counter() - started)
    print(f"{args.users} users x {args.rounds} rounds (voice note -> Confirm -> picture), instant engine")
    names = list(results)
    print(f"{'':22}" + "".join(f"{n:>18}" for n in names))
    for row in results[names[0]]:
        print(f"{row:22}" + "".join(f"{results[n][row]:>18}" for n in names))
    if "postgresql" not in results:
        print("(PostgreSQL skipped: set VOICE2ANIME_BENCH_POSTGRES_URL or install Debian's postgresql)")


if __name__ == "__main__":
    main()
