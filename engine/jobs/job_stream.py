"""The job stream: a Redis stream of job ids shared by the workers' consumer group (redis-py's public asyncio API).

The stream only says which job to run next: one entry ``{job: <job id>}`` per
submitted job, in submission order (XADD, trimmed to about ``maxlen``). The
job itself — spec, state, lease, cancel flag, events — lives in keys of its own
(:mod:`engine.jobs.distributed`), so this module knows nothing of them.

The workers form one consumer group. A :class:`StreamConsumer` takes one entry
at a time: first an entry another consumer took and left unacknowledged for
``idle_ms`` (its worker died: XAUTOCLAIM hands it over atomically, so exactly
one consumer gets it), else the next new entry (XREADGROUP, waiting up to
``block_ms``). An entry stays pending until its job is over and the consumer
acknowledges it (XACK). Delivery is therefore at least once; the job's own
state, not the stream, makes sure it never runs or reports twice.

Entries queued by earlier versions, which sent jobs through taskiq (a JSON
task message in a ``data`` field), are still read, so an upgrade loses no
waiting job.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

log = logging.getLogger(__name__)

#: The field of a stream entry that holds the job id.
JOB_FIELD = b"job"
#: The task name under which earlier versions queued jobs (taskiq message in a ``data`` field).
_LEGACY_TASK = "voice2anime.run_job"


@dataclass(frozen=True)
class Delivery:
    """One stream entry handed to a consumer: its id (to acknowledge it) and the job it names (None: not a job entry)."""

    entry_id: bytes
    job_id: str | None


def job_id_of(fields: dict[bytes, bytes]) -> str | None:
    """The job id a stream entry carries, or None when the entry is not a job."""
    if JOB_FIELD in fields:
        try:
            return fields[JOB_FIELD].decode()
        except UnicodeDecodeError:
            return None
    legacy = fields.get(b"data")
    if legacy is None:
        return None
    try:
        message: Any = json.loads(legacy)
        args = message["args"]
        if message["task_name"] == _LEGACY_TASK and len(args) == 1 and isinstance(args[0], str):
            return args[0]
    except (ValueError, TypeError, KeyError):
        pass
    return None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class JobStream:
    """The stream at ``key`` and its consumer group ``group``: what the bot adds to and the workers read."""

    def __init__(self, redis: Redis, key: str, group: str, *, maxlen: int) -> None:
        self.redis = redis
        self.key = key
        self.group = group
        self.maxlen = maxlen

    async def create_group(self) -> None:
        """Create the stream and its consumer group unless they exist (idempotent).

        The group starts at the stream's beginning: entries added before the
        first worker ever connected are not skipped.
        """
        try:
            await self.redis.xgroup_create(self.key, self.group, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def add(self, job_id: str) -> None:
        """Queue ``job_id`` behind the entries already there (the stream is trimmed to about ``maxlen``)."""
        await self.redis.xadd(self.key, {JOB_FIELD: job_id.encode()}, maxlen=self.maxlen, approximate=True)

    def consumer(self, name: str, *, block_ms: int, idle_ms: int) -> StreamConsumer:
        """The consumer ``name`` of the group (see :class:`StreamConsumer`)."""
        return StreamConsumer(self, name, block_ms=block_ms, idle_ms=idle_ms)


class StreamConsumer:
    """One worker's reading end: takes entries one at a time and acknowledges them once their job is over.

    It never holds more than it is working on: :meth:`take` returns one entry,
    and re-claims at most one abandoned entry per call, so a busy worker does
    not sit on jobs another worker could start.
    """

    def __init__(self, stream: JobStream, name: str, *, block_ms: int, idle_ms: int) -> None:
        self.stream = stream
        self.name = name
        self.block_ms = block_ms
        self.idle_ms = idle_ms
        #: Where the next XAUTOCLAIM continues its walk of the group's pending entries ("0-0": from the start).
        self._cursor: bytes | str = "0-0"

    async def take(self) -> Delivery | None:
        """The next entry for this consumer: an abandoned one first (it is older), else a new one; None when neither came.

        Waits up to ``block_ms`` for a new entry. When Redis lost the consumer
        group (a restart without persistence, say), the group is created again
        and None returned: its entries are delivered again from the start and
        each job's state tells a finished job from one still to run.
        """
        try:
            reclaimed = await self._reclaim()
            if reclaimed is not None:
                return reclaimed
            new = await self._read(count=1, block=self.block_ms)
        except ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            log.warning("the job stream's consumer group was gone; creating it again")
            await self.stream.create_group()
            return None
        return new[0] if new else None

    async def take_new(self, count: int) -> list[Delivery]:
        """Up to ``count`` new entries for this consumer now, without waiting (a batching worker topping up)."""
        return await self._read(count=count, block=None)

    async def peek_new(self, count: int) -> list[str | None]:
        """The job ids of the next ``count`` entries no consumer has taken yet (None for a non-job entry); nothing is taken."""
        redis, stream = self.stream.redis, self.stream
        groups = await redis.xinfo_groups(stream.key)
        last = next((g["last-delivered-id"] for g in groups if _text(g["name"]) == stream.group), None)
        if last is None:
            return []
        entries = await redis.xrange(stream.key, min=f"({_text(last)}", max="+", count=count)
        return [job_id_of(fields) for _, fields in entries]

    async def ack(self, delivery: Delivery) -> None:
        """Acknowledge ``delivery``: its job is over, the entry leaves the group's pending list."""
        await self.stream.redis.xack(self.stream.key, self.stream.group, delivery.entry_id)

    async def _read(self, *, count: int, block: int | None) -> list[Delivery]:
        stream = self.stream
        fetched = await stream.redis.xreadgroup(stream.group, self.name, {stream.key: ">"}, count=count, block=block)
        return [Delivery(entry_id, job_id_of(fields)) for _, entries in fetched or [] for entry_id, fields in entries]

    async def _reclaim(self) -> Delivery | None:
        """One entry left unacknowledged for ``idle_ms`` (its worker died, as a rule), now this consumer's (XAUTOCLAIM); None if none."""
        stream = self.stream
        cursor, claimed, *_ = await stream.redis.xautoclaim(
            stream.key, stream.group, self.name, min_idle_time=self.idle_ms, start_id=self._cursor, count=1
        )
        self._cursor = cursor
        for entry_id, fields in claimed:
            if not fields:  # trimmed from the stream (Redis 6.2 hands it over without fields; 7 drops it itself)
                await stream.redis.xack(stream.key, stream.group, entry_id)
                continue
            log.info("re-claimed stream entry %s", _text(entry_id))
            return Delivery(entry_id, job_id_of(fields))
        return None
