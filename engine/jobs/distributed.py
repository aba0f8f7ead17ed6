"""Scale-out job queue: image jobs run on GPU workers fed through a Redis stream, under a protocol of our own.

The bot process keeps speech recognition (a voice note's card should not wait
behind minutes of diffusion, and the audio never needs to leave the bot) and
sends image jobs to ``voice2anime worker`` processes (:mod:`engine.jobs.worker`),
one per GPU, on any number of machines.

Redis layout (every key starts with ``RedisConfig.prefix``)::

    {p}:jobs                    the job stream (consumer group {p}:workers), one entry per
                                job: just its id; trimmed to ~stream_maxlen on add
                                (:mod:`engine.jobs.job_stream`)
    {p}:job:{id}                hash: state (queued|running|finished|failed|cancelled),
                                spec (msgpack JobSpec), kind (text|photo|restyle: what a
                                batching worker peeks at), enqueued; TTL job_ttl,
                                renewed when a worker claims it and while it runs
    {p}:job:{id}:events         stream of msgpack job events (started, progress — a few
                                carry a preview JPEG of 2-20 KB when the worker's PREVIEWS
                                is on —, the terminal event with the whole result); TTL job_ttl
    {p}:job:{id}:lease          the running worker's token, renewed while it runs
    {p}:job:{id}:cancel         cooperative cancel flag for a running job; TTL job_ttl
    {p}:waiting                 sorted set of waiting job ids, scored by {p}:seq (a counter):
                                submission order, i.e. queue positions

A worker with ``batch_max`` > 1 that takes a text job also takes the text jobs
right behind it in the stream (up to ``batch_max`` in all, stopping at the first
waiting job of another kind, which stays for the next free worker) and draws
them in one diffusion call; each is claimed, leased, reported and acknowledged
on its own, exactly as if it had run alone.

Delivery is at least once: a worker that dies leaves its stream entry
un-acknowledged and its lease lapses; another worker's XAUTOCLAIM re-claims the
entry and, finding no live lease, runs the job again. The job hash is the
"done" marker: a finished or cancelled job is never run or reported again (a
failed one runs again only when the bot submits it again: a retry), and a worker
only publishes a result while it holds the lease. The bot side follows each
job's event stream from the start, so a bot restart (which re-submits its
unfinished requests) picks up results that arrived while it was down.

How many pictures a user (or everyone) may have waiting is not checked here:
the conversation enforces those caps atomically in its database before it
submits. The job keys are not hash-tagged and the scripts touch several of them:
this needs a standalone Redis (or Sentinel), not Redis Cluster.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine.api import TERMINAL_EVENTS, JobCancelled, JobHandle, JobQueued, JobSpec
from engine.jobs.job_stream import JobStream
from engine.jobs.wire import pack_event, pack_spec, unpack_event

log = logging.getLogger(__name__)

#: Approximate cap on events kept per job (progress is coalesced; the terminal event is always last).
EVENTS_MAXLEN = 256


@dataclass(frozen=True)
class RedisConfig:
    """Where the job queue lives and how long things are kept (shared by bot and workers)."""

    url: str
    prefix: str = "voice2anime"
    stream_maxlen: int = 10_000
    job_ttl: int = 86_400
    #: Seconds: a running job's lease; a job whose worker stopped renewing it is re-claimed after this.
    lease: float = 30.0
    #: Seconds between polls: event reads (bot), lease renewal / cancel checks (worker).
    poll: float = 0.2
    #: Worker: most text jobs drawn in one diffusion call (``BATCH_MAX``; 1 = one job at a time, 0 = auto: 4 on CUDA, else 1).
    batch_max: int = 1

    @property
    def lease_ms(self) -> int:
        """:attr:`lease` in milliseconds."""
        return max(1, int(self.lease * 1000))

    @property
    def read_block_ms(self) -> int:
        """Milliseconds an idle worker's read of the job stream waits: half the lease, 0.1-2 s (far below the socket timeout)."""
        return max(100, min(2000, self.lease_ms // 2))


class Keys:
    """Redis key names under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.stream = f"{prefix}:jobs"
        self.group = f"{prefix}:workers"
        self.waiting = f"{prefix}:waiting"
        self.seq = f"{prefix}:seq"

    def job(self, job_id: str) -> str:
        """The job's state hash."""
        return f"{self.prefix}:job:{job_id}"

    def events(self, job_id: str) -> str:
        """The job's event stream."""
        return f"{self.job(job_id)}:events"

    def lease(self, job_id: str) -> str:
        """The running worker's lease on the job."""
        return f"{self.job(job_id)}:lease"

    def cancel(self, job_id: str) -> str:
        """The job's cancel flag."""
        return f"{self.job(job_id)}:cancel"


def job_stream(redis: Redis, config: RedisConfig) -> JobStream:
    """The job stream of ``config`` on the client ``redis``."""
    keys = Keys(config.prefix)
    return JobStream(redis, keys.stream, keys.group, maxlen=config.stream_maxlen)


# KEYS: job, waiting, seq, events, cancel. ARGV: spec, ttl, job_id, kind.
# Returns {state, enqueued} of an existing job, else {"new", "0"}. A failed job is queued again as new, its old events
# dropped: submitting it again is a retry (Retry, Try again, a restart's recovery).
_SUBMIT = """
local job = redis.call('HMGET', KEYS[1], 'state', 'enqueued')
if job[1] and job[1] ~= 'failed' then return {job[1], job[2] or '0'} end
redis.call('DEL', KEYS[4], KEYS[5])
local seq = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], 'state', 'queued', 'spec', ARGV[1], 'kind', ARGV[4], 'enqueued', '0')
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], seq, ARGV[3])
return {'new', '0'}
"""

# KEYS: job, waiting, cancel, events. ARGV: job_id, ttl, cancelled event, events maxlen.
# A waiting job is cancelled at once; a running one gets its flag; returns 0 when the job is unknown or over.
_CANCEL = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'queued' then
  redis.call('HSET', KEYS[1], 'state', 'cancelled')
  redis.call('HDEL', KEYS[1], 'spec')
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[4], '*', 'e', ARGV[3])
  redis.call('EXPIRE', KEYS[4], ARGV[2])
  return 1
elseif state == 'running' then
  redis.call('SET', KEYS[3], '1', 'EX', ARGV[2])
  return 1
end
return 0
"""


@dataclass
class _Follow:
    handle: JobHandle
    last_id: bytes = b"0"
    position: int | None = None
    #: A worker picked the job up (no more queue positions).
    started: bool = False


class RedisJobQueue:
    """:class:`engine.api.JobQueue` whose image jobs run on ``voice2anime worker`` processes.

    Speech stays in the bot process (:class:`engine.speech.transcriber.WhisperTranscriber`). Queue order is first come, first
    served across users. No result cache: identical requests run again
    (results stay in Redis only for the bot to collect them).
    """

    def __init__(self, config: RedisConfig) -> None:
        self.config = config
        self.keys = Keys(config.prefix)
        self._stream: JobStream | None = None
        self._reader: asyncio.Task[None] | None = None
        self._followed: dict[str, _Follow] = {}
        self._wake = asyncio.Event()

    async def start(self) -> None:
        """Connect to Redis, declare the consumer group and start reading job events (idempotent)."""
        if self._reader is not None:
            return
        redis = Redis.from_url(self.config.url)
        stream = job_stream(redis, self.config)
        try:
            await stream.create_group()  # the first command: an unreachable Redis fails the start here
        except BaseException:
            await redis.aclose()
            raise
        self._stream = stream
        self._submit_script = redis.register_script(_SUBMIT)
        self._cancel_script = redis.register_script(_CANCEL)
        self._reader = asyncio.create_task(self._read_events(), name="voice2anime-job-events")

    async def close(self) -> None:
        """Stop following jobs and disconnect. Jobs keep running on the workers; a restarted bot re-follows them."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        self._followed.clear()
        stream, self._stream = self._stream, None
        if stream is not None:
            await stream.redis.aclose()

    async def submit(self, spec: JobSpec) -> JobHandle:
        """Queue ``spec`` for the workers, or follow it when a job with this id already exists.

        Submitting an id again (the bot's restart recovery does) never runs the
        job twice: the handle replays the job's events from the beginning,
        including a result that arrived while nobody was listening. A job that
        failed is the exception: submitted again, it runs again (a retry: the
        missing model may be there now, the workers updated).
        """
        stream = self._connected()
        keys, job_id = self.keys, spec.job_id
        reply = await self._submit_script(
            keys=[keys.job(job_id), keys.waiting, keys.seq, keys.events(job_id), keys.cancel(job_id)],
            args=[pack_spec(spec), self.config.job_ttl, job_id, spec.kind],
        )
        state = reply[0].decode()
        if state in ("new", "queued") and reply[1] == b"0":
            # Not (yet) in the stream: new, or the bot died between the two steps. A duplicate entry is harmless.
            await stream.add(job_id)
            await stream.redis.hset(keys.job(job_id), "enqueued", "1")
        handle = JobHandle(job_id, asyncio.get_running_loop())
        self._followed[job_id] = _Follow(handle)
        await self._publish_positions()
        self._wake.set()
        return handle

    async def cancel(self, job_id: str) -> bool:
        """Cancel a waiting job at once, or flag a running one (its worker stops at the next step)."""
        self._connected()
        keys = self.keys
        cancelled = await self._cancel_script(
            keys=[keys.job(job_id), keys.waiting, keys.cancel(job_id), keys.events(job_id)],
            args=[job_id, self.config.job_ttl, pack_event(JobCancelled()), EVENTS_MAXLEN],
        )
        return bool(cancelled)

    # --- event reader ---------------------------------------------------------------

    def _connected(self) -> JobStream:
        if self._stream is None:
            raise RuntimeError("RedisJobQueue.start() was not called (or the engine is closed)")
        return self._stream

    async def _read_events(self) -> None:
        """One loop for all followed jobs: XREAD their event streams, publish, then refresh queue positions."""
        redis = self._connected().redis
        block_ms = max(1, int(self.config.poll * 1000))
        while True:
            if not self._followed:
                await self._wake.wait()
            self._wake.clear()
            streams = {self.keys.events(job_id): follow.last_id for job_id, follow in self._followed.items()}
            if not streams:
                continue
            try:
                by_stream = {key.encode(): job_id for key, job_id in zip(streams, self._followed)}
                for stream, entries in await redis.xread(streams, block=block_ms) or []:
                    self._dispatch(by_stream[stream], entries)
                await self._publish_positions()
            except RedisError as error:
                log.warning("reading job events from Redis failed (%s); retrying", error)
                await asyncio.sleep(5 * self.config.poll)
            except Exception:  # the reader serves every job: it must not die (logged with its traceback)
                log.exception("handling job events failed")
                await asyncio.sleep(5 * self.config.poll)

    def _dispatch(self, job_id: str, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        follow = self._followed.get(job_id)
        for entry_id, fields in entries:
            if follow is None or self._followed.get(job_id) is not follow:
                return
            follow.last_id = entry_id  # before decoding: a bad entry is skipped, not retried forever
            event = unpack_event(fields[b"e"])
            follow.started = True
            follow.handle.publish(event)
            if isinstance(event, TERMINAL_EVENTS):
                del self._followed[job_id]

    async def _publish_positions(self) -> None:
        """Tell every followed waiting job its place in the queue when it changed."""
        follows = list(self._followed.items())
        if not follows:
            return
        async with self._connected().redis.pipeline(transaction=False) as pipe:
            for job_id, _ in follows:
                pipe.zrank(self.keys.waiting, job_id)
            ranks = await pipe.execute()
        for (job_id, follow), rank in zip(follows, ranks):
            position = None if rank is None else rank + 1
            current = self._followed.get(job_id) is follow and not follow.started
            if current and position is not None and position != follow.position:
                follow.handle.publish(JobQueued(position))
            follow.position = position
