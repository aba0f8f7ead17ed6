"""How many transactions and statements the conversation spends on a voice note, its Draw and its delivery.

Through ``Conversation.handle`` with the real repository on SQLite (every
statement seen by ``sqlite3``'s trace callback, as ``bench.flow`` counts them)
and a scripted engine: each step writes what it changes once, in as few
transactions as its guarantees allow, and the user sees the same card and picture.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from db import RequestState
from engine.api import JobStarted
from handlers.actions import Action
from tests.support.conversation import button
from tests.support.scripted_engine import ScriptedEngine, whisper_wrote

S = RequestState
GIRL = whisper_wrote([("a", 0.9), ("girl", 0.9), ("with", 0.9), ("blue", 0.9), ("hair", 0.9)], "en")


@contextmanager
def sqlite_statements() -> Iterator[list[str]]:
    """Every statement (``BEGIN`` included, ``COMMIT`` left out) SQLite runs on connections opened meanwhile."""
    seen: list[str] = []

    def connected(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_trace_callback(lambda sql: None if sql.startswith(("COMMIT", "PRAGMA")) else seen.append(sql))

    event.listen(Engine, "connect", connected)
    try:
        yield seen
    finally:
        event.remove(Engine, "connect", connected)


def counted(statements: list[str]) -> tuple[int, int]:
    """(statements, transactions) among ``statements``; the list is emptied for the next step."""
    transactions = sum(sql.startswith("BEGIN") for sql in statements)
    total = (len(statements) - transactions, transactions)
    statements.clear()
    return total


async def test_a_voice_note_its_draw_and_its_picture_each_write_once(sqlite_url, make_harness):
    engine = ScriptedEngine(transcript=GIRL)
    with sqlite_statements() as seen:
        h = await make_harness(sqlite_url, engine)
        await h.voice("amy", b"ogg")  # first contact: amy and her chat are created
        seen.clear()

        await h.voice("amy", b"ogg")
        ref, card = h.messenger.last("card")
        assert "Draw" in " ".join(b.label for row in card.buttons for b in row), "the card is shown"
        # the request, its transcript, and the card opened and read back in one transaction
        assert counted(seen) == (4, 3)

        await h.press("amy", button(card, Action.CONFIRM), ref)
        assert counted(seen) == (4, 2), "the card read, then the move to queued with its final text and the request"

        engine.finish(engine.specs[-1].job_id)
        await h.settle()
        assert len(h.messenger.images("amy")) == 1, "the picture is delivered"
        # started and finished at once: the result's transaction moves it to running (no move of its own), then delivered
        assert counted(seen) == (5, 2)
    delivered = await h.request(card.request_id)
    assert delivered.state is S.DELIVERED and delivered.started_at is not None and delivered.finished_at is not None


async def test_a_job_that_runs_before_it_finishes_is_running_meanwhile(sqlite_url, make_harness):
    engine = ScriptedEngine(transcript=GIRL)
    h = await make_harness(sqlite_url, engine)
    await h.voice("ben", b"ogg")
    ref, card = h.messenger.last("card")
    await h.press("ben", button(card, Action.CONFIRM), ref)
    job = engine.specs[-1].job_id

    engine.handles[job].publish(JobStarted())
    for _ in range(20):  # the watcher takes the event and writes the move
        await asyncio.sleep(0)
        if (await h.request(card.request_id)).state is S.RUNNING:
            break
    running = await h.request(card.request_id)
    assert running.state is S.RUNNING and running.started_at is not None

    engine.finish(job)
    await h.settle()
    assert len(h.messenger.images("ben")) == 1
    delivered = await h.request(card.request_id)
    assert delivered.state is S.DELIVERED and delivered.started_at == running.started_at, "started once"
