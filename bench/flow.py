"""Conversation throughput and latency through the handlers and the database, without models.

Run by hand from the repository root::

    python -m bench.flow [--users 20] [--rounds 10] [--before REV [--after REV]] [--repeat N] [--backends sqlite,postgresql]

Each simulated user sends a voice note (each note of a run with different
words, so no remembered reading serves another request), presses Confirm on
the card and waits for the picture (an instant, model-free engine answers), ``rounds`` times,
all users concurrently. Prints events/s (voice notes and Confirm presses
handled per second), p50/p99 latency of ``Conversation.handle`` per event type
and of the delivery (Confirm handled -> picture sent), and how many SQL
statements and transactions each took, SQLite next to PostgreSQL.

``--before REV`` measures the code of commit ``REV`` the same way (this bench
run against that commit's ``db``, ``handlers`` and ``engine``, in a copy of the
tree extracted with ``git archive``) and prints it beside the working tree
(or beside commit ``--after REV``), one backend after the other: before, after.
``--repeat N`` measures each tree N times, interleaved (before, after, after,
before, ...) so that the machine's load falls on both alike, and pools the
runs (the spread of events/s over them is printed too).
Every measurement runs in a fresh process on a fresh database. The one-time
loading of the prompt dictionaries and one warm-up cycle of one more user
(connections, compiled statements) happen before the clock starts. "CPU ms per
picture" is the process's CPU time (all threads) over the pictures delivered:
what the conversation costs whatever the machine's load. Each tree runs on the
event loop its bot runs on (``bot.event_loop``: uvloop's where installed;
asyncio's before that module existed), named in the table.

PostgreSQL comes from ``VOICE2ANIME_BENCH_POSTGRES_URL`` (``postgresql+asyncpg://``,
a server on which the bench may create databases) or a throwaway Debian
cluster; skipped when neither exists. The load average is printed with the
figures: on a shared machine they move with it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import importlib
import inspect
import io
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PIL import Image

SENTENCE = "a girl with blue hair under a cherry blossom tree at night"
_HAIR = ("blue", "silver", "red", "black", "pink", "green", "white", "golden", "purple", "brown")
_PLACES = ("under a cherry blossom tree", "on a beach", "in a forest", "on a rooftop", "in a library",
           "by a lake", "in a city street", "on a mountain", "in a garden", "on a train")
_TIMES = ("at night", "at sunset", "in the rain", "in the morning")


def sentence(n: int) -> str:
    """The ``n``-th voice note's words: every note of a run says something different (no cache answers for another)."""
    hair, place, time_of_day = _HAIR[n % 10], _PLACES[n // 10 % 10], _TIMES[n // 100 % 4]
    return f"a girl with {hair} hair {place} {time_of_day}"
KINDS = ("voice", "confirm", "delivery")
ROOT = Path(__file__).resolve().parent.parent

#: Which event the current task works for (the SQL counter files statements under it).
_EVENT: contextvars.ContextVar[str] = contextvars.ContextVar("bench_event", default="other")


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (90, 140, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


class InstantEngine:
    """A transcriber and job queue whose transcripts and pictures are ready at once."""

    def __init__(self) -> None:
        self.png = _png()

    async def start(self) -> None:
        """Nothing to start."""

    async def close(self) -> None:
        """Nothing to stop."""

    async def transcribe(self, audio: bytes, *, language: str | None = None, **_: Any) -> Any:
        """The "voice note" is its own words (UTF-8)."""
        from engine.api import Segment, Transcript, Word

        said = audio.decode()
        words = tuple(Word(f" {w}", i, i + 1, 0.9) for i, w in enumerate(said.split()))
        return Transcript(said, "en", 0.99, 3.0, (Segment(said, 0, 3, words),), said)

    async def submit(self, spec: Any) -> Any:
        from engine.api import JobFinished, JobHandle, JobQueued, JobResult, JobStarted

        class DeliveryHandle(JobHandle):
            """Files the job watcher's statements under "delivery" (it runs in a task of its own)."""

            async def events(self) -> AsyncIterator[Any]:
                _EVENT.set("delivery")
                async for event in super().events():
                    yield event

        handle = DeliveryHandle(spec.job_id, asyncio.get_running_loop())
        base = self.png if spec.kind == "text" else None
        result = JobResult(spec.job_id, self.png, spec.style, base_png=base, seed=spec.seed or 1, model="bench")
        for event in (JobQueued(1), JobStarted(), JobFinished(result)):
            handle.publish(event)
        return handle

    async def cancel(self, job_id: str) -> bool:
        return False


class Cards:
    """A messenger that remembers the newest card (and count of images and errors) per user."""

    def __init__(self) -> None:
        self.card: dict[str, tuple[str, Any]] = {}
        self.images: dict[str, int] = defaultdict(int)
        self.errors: list[str] = []
        self.delivered: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._refs = 0

    async def send(self, origin: Any, reply: Any) -> str:
        self._refs += 1
        self._remember(origin, f"m{self._refs}", reply)
        return f"m{self._refs}"

    async def edit(self, origin: Any, message_ref: str, reply: Any) -> None:
        self._remember(origin, message_ref, reply)

    async def notify(self, origin: Any, text: str) -> None:
        """Toasts are not needed here."""

    async def is_admin(self, origin: Any) -> bool:
        """Nobody changes chat settings here."""
        return False

    async def send_voice(self, origin: Any, voice: Any) -> None:
        """No voice replies are measured here."""

    def _remember(self, origin: Any, ref: str, reply: Any) -> None:
        if reply.kind == "card":
            self.card[origin.user_id] = (ref, reply)
        elif reply.kind == "image":
            self.images[origin.user_id] += 1
            self.delivered[origin.user_id].set()
        elif reply.kind == "error":
            self.errors.append(reply.text)


def _count_statements(tally: dict[str, Counter[str]]) -> None:
    """Count every SQL statement and transaction under the event it served, at the driver that ran it.

    Counting must not change what it measures: SQLAlchemy runs its execution events (a dispatch at each step
    of every statement) only once an engine has listeners. So the drivers are watched instead: on
    ``pysqlite`` the ``sqlite3`` trace callback sees every statement (a ``BEGIN`` is a transaction); on
    ``asyncpg`` its ``PreparedStatement.fetch`` (SQLAlchemy's way in), ``Connection.executemany`` (a
    statement per row), ``Connection.fetch`` and ``Connection.execute`` (older trees ran statements on the
    driver itself, and transactions say ``BEGIN`` through it: an exclusive unit's ``BEGIN`` takes the
    admission lock in the same round trip), wrapped here, see every statement and every ``BEGIN`` — asyncpg's own query
    logger would do the same at several times the cost, timing every query. Only a tree from before
    ``db.units`` ran statements on ``aiosqlite``, whose ``BEGIN`` is implicit: there SQLAlchemy's cursor
    events count them, and its commit and rollback events mark the transactions.
    """
    control = ("BEGIN", "COMMIT", "ROLLBACK", "PRAGMA", "SAVEPOINT", "RELEASE")

    def seen(sql: str) -> None:
        head = sql.lstrip().upper()
        if head.startswith("BEGIN"):
            tally[_EVENT.get()]["transactions"] += 1
        elif not head.startswith(control):
            tally[_EVENT.get()]["statements"] += 1

    def connected(dbapi_connection: Any, _record: Any) -> None:
        if callable(getattr(dbapi_connection, "set_trace_callback", None)):  # pysqlite
            dbapi_connection.set_trace_callback(seen)

    try:
        import asyncpg
        from asyncpg.prepared_stmt import PreparedStatement
    except ImportError:
        pass
    else:
        fetch, execute, prepared_fetch = asyncpg.Connection.fetch, asyncpg.Connection.execute, PreparedStatement.fetch
        executemany = asyncpg.Connection.executemany

        def counted_fetch(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
            seen(query)
            return fetch(self, query, *args, **kwargs)

        def counted_execute(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
            seen(query)
            return execute(self, query, *args, **kwargs)

        def counted_executemany(self: Any, query: str, args: Any, *rest: Any, **kwargs: Any) -> Any:
            args = list(args)
            for _ in args:  # one execution per row, in one round trip (pysqlite's executemany is traced per row too)
                seen(query)
            return executemany(self, query, args, *rest, **kwargs)

        def counted_prepared_fetch(self: Any, *args: Any, **kwargs: Any) -> Any:
            seen(self.get_query())
            return prepared_fetch(self, *args, **kwargs)

        asyncpg.Connection.fetch, asyncpg.Connection.execute = counted_fetch, counted_execute  # type: ignore[method-assign]
        asyncpg.Connection.executemany = counted_executemany  # type: ignore[method-assign]
        PreparedStatement.fetch = counted_prepared_fetch  # type: ignore[method-assign]

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    event.listen(Engine, "connect", connected)  # a pool event: statements run as without it
    if not (ROOT / "db" / "units.py").exists():
        _count_on_aiosqlite(seen, tally)


def _count_on_aiosqlite(seen: Any, tally: dict[str, Counter[str]]) -> None:
    """SQLAlchemy's events count the statements and transactions of ``aiosqlite`` (trees from before ``db.units``)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    def statement(conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        if conn.dialect.driver == "aiosqlite":
            seen(sql)

    def ended(conn: Any) -> None:
        if conn.dialect.driver == "aiosqlite":
            tally[_EVENT.get()]["transactions"] += 1

    event.listen(Engine, "before_cursor_execute", statement)
    event.listen(Engine, "commit", ended)
    event.listen(Engine, "rollback", ended)


def _conversation_api() -> tuple[Any, Any, str]:
    """The tree's ``Conversation``, ``ConversationConfig`` and Draw action, wherever that tree keeps them."""
    try:
        from handlers.actions import Action
        from handlers.conversation import Conversation, ConversationConfig
    except ImportError:  # a tree from before handlers.conversation
        flow, cards = importlib.import_module("handlers.flow"), importlib.import_module("handlers.cards")
        return flow.Conversation, flow.ConversationConfig, cards.CONFIRM
    return Conversation, ConversationConfig, Action.CONFIRM


async def run(url: str, data_dir: Path, users: int, rounds: int) -> dict[str, Any]:
    """Latencies (seconds) per event type and statement counts for ``users`` x ``rounds`` voice -> confirm -> picture cycles."""
    from db import Repository, create_database
    from db.migrate import upgrade_async
    from handlers.events import ButtonPress, Origin, VoiceMessage, fetched

    Conversation, ConversationConfig, confirm = _conversation_api()

    await upgrade_async(url)
    database = create_database(url)
    messenger = Cards()
    config = ConversationConfig(
        styles=("face_paint_512_v2",), default_style="face_paint_512_v2", progress_interval=0.0,
        requests_per_minute=10**6, max_active_per_user=10**6, max_active_total=10**6,
    )
    engine = InstantEngine()
    # Speech and the job queue apart (a transcriber and a queue), or one engine in a tree from before they were.
    speech_and_jobs = (engine, engine) if "transcriber" in inspect.signature(Conversation).parameters else (engine,)
    conversation = Conversation(Repository(database, data_dir), *speech_and_jobs, messenger, config)
    latencies: dict[str, list[float]] = defaultdict(list)
    tally: dict[str, Counter[str]] = defaultdict(Counter)
    _count_statements(tally)
    failed = 0
    notes = itertools.count()  # each voice note of the run says something else (see sentence())

    async def timed(kind: str, event: object) -> None:
        _EVENT.set(kind)
        started = time.perf_counter()
        await conversation.handle(event)  # type: ignore[arg-type]
        latencies[kind].append(time.perf_counter() - started)

    async def user(n: int, rounds: int = rounds) -> None:
        nonlocal failed
        origin = Origin("bench", f"chat{n}", f"user{n}", f"User {n}", "en")
        for _ in range(rounds):
            messenger.delivered[origin.user_id].clear()
            messenger.card.pop(origin.user_id, None)
            await timed("voice", VoiceMessage(origin, fetched(sentence(next(notes)).encode())))
            if origin.user_id not in messenger.card:
                failed += 1
                continue
            ref, card = messenger.card[origin.user_id]
            await timed("confirm", ButtonPress(origin, card.request_id, confirm, "", ref))
            started = time.perf_counter()
            try:
                await asyncio.wait_for(messenger.delivered[origin.user_id].wait(), 30)
            except TimeoutError:
                failed += 1
                continue
            latencies["delivery"].append(time.perf_counter() - started)

    try:
        # One untimed cycle first: connections opened, statements compiled, caches filled (once per process).
        await user(-1, rounds=1)
        await conversation.wait_idle()
        latencies.clear()
        tally.clear()
        messenger.images.clear()
        failed = 0
        started = time.perf_counter()
        cpu = time.process_time()
        await asyncio.gather(*(user(n) for n in range(users)))
        await conversation.wait_idle()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await database.dispose()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "latencies": latencies,
        "counts": {kind: dict(tally[kind]) for kind in KINDS},
        "pictures": sum(messenger.images.values()),
        "expected": users * rounds,
        "failed": failed,
        "errors": Counter(messenger.errors).most_common(3),
    }


def _summary(result: dict[str, Any]) -> dict[str, str]:
    latencies, seconds = result["latencies"], result["seconds"]
    rows = {"events/s": f"{_events_per_second(result):,.0f}"}
    if len(result.get("rates", ())) > 1:
        rows["events/s of each run"] = f"{min(result['rates']):,.0f}-{max(result['rates']):,.0f}"
    rows |= {
        "pictures/s": f"{len(latencies.get('delivery', ())) / seconds:,.1f}",
        "pictures delivered": f"{result['pictures']}/{result['expected']}",
        "CPU ms per picture": f"{result['cpu_seconds'] * 1000 / max(1, result['pictures']):.1f}",
    }
    for kind in KINDS:
        values = sorted(latencies.get(kind, ()))
        if values:
            p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
            rows[f"{kind} p50/p99 ms"] = f"{statistics.median(values) * 1000:.1f} / {p99 * 1000:.1f}"
        else:
            rows[f"{kind} p50/p99 ms"] = "-"
    for kind in KINDS:
        count, counted = len(latencies.get(kind, ())), result["counts"].get(kind, {})
        if count:
            statements, transactions = counted.get("statements", 0) / count, counted.get("transactions", 0) / count
            rows[f"{kind} SQL / transactions"] = f"{statements:.1f} / {transactions:.1f}"
        else:
            rows[f"{kind} SQL / transactions"] = "-"
    return rows


# --- running the measurements -------------------------------------------------------------------


def _tree_at(repository: Path, revision: str, into: Path) -> Path:
    """The files of commit ``revision`` under ``into``, with this bench in place of that commit's."""
    archive = subprocess.run(["git", "-C", str(repository), "archive", revision], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    shutil.copyfile(Path(__file__), into / "bench" / "flow.py")
    return into


def _short(repository: Path, revision: str) -> str:
    """The abbreviated commit id of ``revision``."""
    done = subprocess.run(["git", "-C", str(repository), "rev-parse", "--short", revision], check=True, capture_output=True, text=True)
    return done.stdout.strip()


def _pooled(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several measurements of one tree as one: times, counts and latencies added up; events/s of each kept."""
    latencies: dict[str, list[float]] = defaultdict(list)
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    errors: Counter[str] = Counter()
    for run in runs:
        for kind, values in run["latencies"].items():
            latencies[kind] += values
        for kind, counted in run["counts"].items():
            counts[kind].update(counted)
        errors.update(dict(run["errors"]))
    added = {key: sum(run[key] for run in runs) for key in ("seconds", "cpu_seconds", "pictures", "expected", "failed")}
    return added | {
        "latencies": latencies,
        "counts": {kind: dict(counted) for kind, counted in counts.items()},
        "errors": errors.most_common(3),
        "loop": runs[0]["loop"],
        "load": statistics.mean(run["load"] for run in runs),
        "rates": [_events_per_second(run) for run in runs],
    }


def _events_per_second(result: dict[str, Any]) -> float:
    """Voice notes and Confirm presses handled per second."""
    return sum(len(result["latencies"].get(kind, ())) for kind in ("voice", "confirm")) / result["seconds"]


def _measure(tree: Path, url: str, data_dir: Path, users: int, rounds: int) -> dict[str, Any]:
    """One measurement in a fresh process importing the project from ``tree``."""
    command = [sys.executable, "-m", "bench.flow", "--measure", url, "--data-dir", str(data_dir),
               "--users", str(users), "--rounds", str(rounds)]
    environment = os.environ | {"PYTHONPATH": str(tree)}
    load = os.getloadavg()[0]
    done = subprocess.run(command, cwd=tree, env=environment, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the measurement in {tree} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["load"] = (load + os.getloadavg()[0]) / 2
    return result


def _measure_here(url: str, data_dir: str, users: int, rounds: int) -> None:
    """``--measure``: warm up, run, print the result as one JSON line."""
    import logging

    logging.basicConfig(level=logging.CRITICAL)  # a failed event is counted, not printed
    try:
        from engine.language.prompt import build_prompt
    except ImportError:  # a tree from before the engine's layers
        build_prompt = importlib.import_module("engine.prompt").build_prompt

    build_prompt(SENTENCE)  # the dictionaries load once per process: not part of any event
    if (ROOT / "bot" / "event_loop.py").exists():  # the event loop this tree's bot runs on
        from bot import event_loop

        if hasattr(event_loop, "freeze_start_up_heap"):  # as the bot does once it has loaded the dictionaries
            event_loop.freeze_start_up_heap()

        async def measured() -> dict[str, Any]:
            return await run(url, Path(data_dir), users, rounds) | {"loop": event_loop.name_of(asyncio.get_running_loop())}

        result = event_loop.run(measured())
    else:  # a tree from before bot.event_loop (checked by file: an editable install would find this tree's module)
        result = asyncio.run(run(url, Path(data_dir), users, rounds)) | {"loop": "asyncio"}
    print(json.dumps(result))


async def _create_database(server_url: str) -> str:
    """A fresh database on the PostgreSQL server (``postgresql+asyncpg://.../postgres``)."""
    import asyncpg
    from sqlalchemy.engine import make_url

    server = make_url(server_url)
    name = f"voice2anime_bench_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(server.set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return server.set(database=name).render_as_string(hide_password=False)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20, help="concurrent users")
    parser.add_argument("--rounds", type=int, default=10, help="voice -> confirm -> picture cycles per user")
    parser.add_argument("--before", metavar="REV", help="also measure commit REV (e.g. the one before a change), side by side")
    parser.add_argument("--after", metavar="REV", help="measure commit REV instead of the working tree")
    parser.add_argument("--repo", type=Path, default=ROOT, help="the git repository of --before/--after (default: this one)")
    parser.add_argument("--repeat", type=int, default=1, help="measure each tree N times, interleaved, and pool the runs")
    parser.add_argument("--backends", default="sqlite,postgresql", help="which databases (comma-separated)")
    parser.add_argument("--measure", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        _measure_here(args.measure, args.data_dir, args.users, args.rounds)
        return

    wanted = args.backends.split(",")
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp, throwaway_postgres() as postgres:
        after = _tree_at(args.repo, args.after, Path(tmp) / "after") if args.after else ROOT
        after_label = f" {_short(args.repo, args.after)}" if args.after else " now"
        trees = {after_label if args.after else "": after}
        if args.before:
            trees = {f" {_short(args.repo, args.before)}": _tree_at(args.repo, args.before, Path(tmp) / "before")}
            trees[after_label] = after
        for backend in wanted:
            if backend == "postgresql" and not postgres:
                continue
            runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for turn in range(args.repeat):
                order = list(trees.items())
                for label, tree in order[::-1] if turn % 2 else order:  # before, after, after, before, ...
                    name = f"{backend}{label}"
                    run_name = f"{name.replace(' ', '-')}-{turn}"
                    if backend == "sqlite":
                        url = f"sqlite+aiosqlite:///{tmp}/{run_name}.db"
                    else:
                        url = asyncio.run(_create_database(postgres))  # type: ignore[arg-type]
                    runs[name].append(_measure(tree, url, Path(tmp) / run_name, args.users, args.rounds))
            results |= {name: _pooled(measured) for name, measured in runs.items()}
    repeated = f", {args.repeat} runs of each interleaved and pooled" if args.repeat > 1 else ""
    print(f"{args.users} users x {args.rounds} rounds (voice note -> Confirm -> picture), instant engine{repeated}")
    names = list(results)
    table = {
        name: _summary(result) | {"event loop": result["loop"], "load average": f"{result['load']:.1f}"}
        for name, result in results.items()
    }
    width = max(len(text) for column in [names, *(t.values() for t in table.values())] for text in column) + 3
    print(f"{'':26}" + "".join(f"{n:>{width}}" for n in names))
    for row in table[names[0]]:
        print(f"{row:26}" + "".join(f"{table[n][row]:>{width}}" for n in names))
    for name, result in results.items():
        if result["errors"]:
            print(f"{name}: errors shown to users: {result['errors']}")
    if "postgresql" in wanted and not postgres:
        print("(PostgreSQL skipped: set VOICE2ANIME_BENCH_POSTGRES_URL or install Debian's postgresql)")


if __name__ == "__main__":
    main()
