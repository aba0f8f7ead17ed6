"""``voice2anime worker``: one process per GPU running image jobs from Redis Streams.

The process loads its models once, then takes entries from the job stream
(:class:`engine.jobs.job_stream.StreamConsumer`) one at a time — a dead worker's
abandoned entry first, else the next new one. For each entry it claims the job's lease
(a Lua script that also checks the "done" marker and the cancel flag), runs
the pipeline on its model thread while the event loop renews the lease every
``poll`` seconds, reads the cancel flag and publishes the latest progress
(with the newest preview, a few KB of JPEG, when the pipeline makes them),
then stores the terminal event and acknowledges the entry — only while it
still holds the lease, so a re-claimed duplicate never reports twice. A job
it cannot read or run as asked (queued by a newer bot) fails at once as
``worker.outdated`` (:mod:`engine.jobs.compat`).

With ``batch_max`` > 1 (``BATCH_MAX``) a text job brings the text jobs right
behind it in the stream along (:meth:`~engine.jobs.job_stream.StreamConsumer.peek_new`,
then ``take_new``): each is claimed as above, and they are drawn in one diffusion
call (:func:`engine.jobs.runner.run_batch`). Every job of the batch keeps its own
lease, cancel flag, progress, terminal event and acknowledgement; a job
cancelled or failing ends alone, at once, while the others go on.

A Redis that cannot be reached when the worker starts stops it at once (the
command line names ``REDIS_URL``); one that goes away later is waited for.

Signals: the first SIGINT/SIGTERM lets the running job finish and stops; a
second one stops the job at its next step (another worker re-runs it after
the lease lapses).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial

from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine.api import (
    JobCancelled,
    JobEvent,
    JobFailed,
    JobFinished,
    JobProgress,
    JobSpec,
    JobStarted,
)
from engine.jobs.compat import refusal, unreadable
from engine.jobs.distributed import EVENTS_MAXLEN, Keys, RedisConfig, job_stream
from engine.jobs.job_stream import Delivery
from engine.jobs.runner import BatchJob, ImagePipeline, can_batch, run_batch, run_job_event
from engine.jobs.wire import WireError, pack_event, unpack_spec

log = logging.getLogger(__name__)


def default_name() -> str:
    """A consumer name unique to this process: ``host-pid``."""
    return f"{socket.gethostname()}-{os.getpid()}"


# KEYS: job, lease, cancel, waiting, events. ARGV: token, lease_ms, job_id, started event, cancelled event, maxlen, ttl,
# lost event. {'run', spec} when this worker now owns the job; {'busy'} while another live worker does; {'done'} when
# it is over; {'gone'} when its hash expired before it ran: it leaves the waiting set and ends as failed with
# "job.lost", so whoever follows it stops waiting.
_CLAIM = """
local job = redis.call('HMGET', KEYS[1], 'state', 'spec')
if not job[1] then
  redis.call('ZREM', KEYS[4], ARGV[3])
  redis.call('HSET', KEYS[1], 'state', 'failed')
  redis.call('EXPIRE', KEYS[1], ARGV[7])
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[6], '*', 'e', ARGV[8])
  redis.call('EXPIRE', KEYS[5], ARGV[7])
  return {'gone'}
end
if job[1] ~= 'queued' and job[1] ~= 'running' then return {'done'} end
if redis.call('EXISTS', KEYS[3]) == 1 and not redis.call('GET', KEYS[2]) then
  redis.call('HSET', KEYS[1], 'state', 'cancelled')
  redis.call('HDEL', KEYS[1], 'spec')
  redis.call('EXPIRE', KEYS[1], ARGV[7])
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[6], '*', 'e', ARGV[5])
  redis.call('EXPIRE', KEYS[5], ARGV[7])
  return {'done'}
end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {'busy'} end
redis.call('HSET', KEYS[1], 'state', 'running')
redis.call('EXPIRE', KEYS[1], ARGV[7])
redis.call('ZREM', KEYS[4], ARGV[3])
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[6], '*', 'e', ARGV[4])
redis.call('EXPIRE', KEYS[5], ARGV[7])
return {'run', job[2]}
"""

# KEYS: lease, cancel, job, events. ARGV: token, lease_ms, ttl. Returns {owned, cancel requested}.
# A lease that lapsed (e.g. during a Redis restart) and nobody took is taken back. While the lease is held the job
# hash and its events live on (a job running longer than the TTL must not expire mid-way).
_RENEW = """
local owned = 0
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  owned = 1
elseif not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  owned = 1
end
if owned == 1 then
  redis.call('EXPIRE', KEYS[3], ARGV[3])
  redis.call('EXPIRE', KEYS[4], ARGV[3])
end
return {owned, redis.call('EXISTS', KEYS[2])}
"""

# KEYS: job, lease, events. ARGV: token, terminal state, terminal event, maxlen, ttl.
# 1 = stored; 2 = nothing to store (the job is already over); 0 = another worker owns it.
# A job whose hash vanished while it ran (Redis lost it) is stored all the same: its result is the best news.
_FINISH = """
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] then return 0 end
local state = redis.call('HGET', KEYS[1], 'state')
if state and state ~= 'running' then return 2 end
redis.call('HSET', KEYS[1], 'state', ARGV[2])
redis.call('HDEL', KEYS[1], 'spec')
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'e', ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[5])
redis.call('DEL', KEYS[2])
return 1
"""

_TERMINAL_STATE = {JobFinished: "finished", JobFailed: "failed", JobCancelled: "cancelled"}


class _NewestProgress:
    """The running job's progress not yet published: put by the model thread, taken by the event loop.

    Only the newest report is kept (the event loop publishes every ``poll``
    seconds), but a preview is not lost to a later report without one: it
    rides along on it (the newest preview is what the user should see).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._event: JobProgress | None = None

    def put(self, event: JobProgress) -> None:
        with self._lock:
            pending = self._event
            if event.preview is None and pending is not None and pending.preview is not None:
                event = replace(event, preview=pending.preview)
            self._event = event

    def restore(self, event: JobProgress) -> None:
        """Give back a taken report that could not be published (unless a newer one came; its preview still counts)."""
        with self._lock:
            if self._event is None:
                self._event = event
            elif self._event.preview is None and event.preview is not None:
                self._event = replace(self._event, preview=event.preview)

    def take(self) -> JobProgress | None:
        """The report to publish now (None: nothing new since the last take)."""
        with self._lock:
            event, self._event = self._event, None
            return event


@dataclass
class _Claimed:
    """A job this worker holds the lease of: its spec, lease token and stream entry (acknowledged when it is over)."""

    spec: JobSpec
    token: str
    delivery: Delivery
    stop: threading.Event = field(default_factory=threading.Event)
    newest: _NewestProgress = field(default_factory=_NewestProgress)
    #: Its terminal event is stored (or dropped because the lease was lost).
    over: bool = False
    #: Another worker took the job over.
    lost: bool = False


class Worker:
    """Runs jobs from the Redis stream on one pipeline: one at a time, or text jobs in batches of up to ``config.batch_max``."""

    def __init__(self, pipeline: ImagePipeline, config: RedisConfig, *, name: str | None = None) -> None:
        self.pipeline = pipeline
        self.config = config
        self.name = name or default_name()
        self.keys = Keys(config.prefix)
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voice2anime-model")
        self._redis = Redis.from_url(config.url)
        self._claim = self._redis.register_script(_CLAIM)
        self._renew = self._redis.register_script(_RENEW)
        self._finish = self._redis.register_script(_FINISH)
        stream = job_stream(self._redis, config)
        self._consumer = stream.consumer(self.name, block_ms=config.read_block_ms, idle_ms=config.lease_ms)
        self._batch_max: int | None = None
        self._stopping: asyncio.Event | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Take jobs until ``stop`` is set (the running job finishes first); survives Redis restarts.

        Declares the consumer group first: a Redis that cannot be reached at
        start raises here rather than being retried for ever.
        """
        self._stopping = stop
        try:
            await self._consumer.stream.create_group()  # an unreachable Redis fails the start here
            log.info("worker %s ready on stream %s", self.name, self.keys.stream)
            while not stop.is_set():
                try:
                    delivery = await self._consumer.take()
                except RedisError as error:
                    log.warning("receiving jobs failed (%r); reconnecting", error)
                    await asyncio.sleep(1.0)
                    continue
                if delivery is not None:
                    await self.handle(delivery)
        finally:
            await self._redis.aclose()
            self._model_thread.shutdown(wait=False, cancel_futures=True)

    async def handle(self, delivery: Delivery) -> None:
        """Run the job of one stream entry; an error is logged and the entry left to be re-claimed after the lease."""
        try:
            await self.run_job(delivery)
        except RedisError as error:
            log.warning("job %s: Redis failed (%r); it is taken up again once its lease lapses", delivery.job_id, error)
        except Exception:  # one job's bug must not stop the worker (logged with its traceback)
            log.exception("job %s failed in the worker; it is taken up again once its lease lapses", delivery.job_id)

    async def run_job(self, delivery: Delivery) -> None:
        """Claim, run, report and acknowledge the job of ``delivery`` (idempotent per job id), batched with the text jobs behind it."""
        claimed = await self._claim_job(delivery)
        if claimed is None:
            return
        jobs = [claimed]
        stopping = self._stopping is not None and self._stopping.is_set()  # finishing up: take nothing more
        if not stopping and can_batch(self.pipeline, claimed.spec) and (limit := self.batch_max()) > 1:
            jobs += await self._take_more(limit - 1)
        together = [job for job in jobs if can_batch(self.pipeline, job.spec)] if len(jobs) > 1 else []
        if len(together) > 1:
            await self._execute_batch(together)
        for job in jobs:
            if not any(job is other for other in together):  # alone (a job of another kind read in a race)
                await self._conclude(job, await self._execute(job.spec, job.token))

    def batch_max(self) -> int:
        """Most text jobs per diffusion call: ``config.batch_max``, or when that is 0 (auto) 4 on a CUDA GPU and 1 otherwise."""
        if self._batch_max is None:
            if self.config.batch_max:
                self._batch_max = self.config.batch_max
            else:
                from engine.image.device import auto_batch_max  # torch: only a worker whose pipeline draws batches asks

                self._batch_max = auto_batch_max()
            log.info("worker %s draws up to %d text jobs at once", self.name, self._batch_max)
        return self._batch_max

    async def _claim_job(self, delivery: Delivery) -> _Claimed | None:
        """Claim the lease of ``delivery``'s job; the claimed job to run, or None when there is nothing to run (dealt with here)."""
        job_id = delivery.job_id
        if job_id is None:
            log.warning("stream entry %s names no job; acknowledging it", delivery.entry_id.decode())
            await self._ack(delivery)
            return None
        keys, config, token = self.keys, self.config, f"{self.name}:{uuid.uuid4().hex}"
        reply = await self._claim(
            keys=[keys.job(job_id), keys.lease(job_id), keys.cancel(job_id), keys.waiting, keys.events(job_id)],
            args=[
                token,
                config.lease_ms,
                job_id,
                pack_event(JobStarted()),
                pack_event(JobCancelled()),
                EVENTS_MAXLEN,
                config.job_ttl,
                pack_event(JobFailed("job.lost", "the job expired in Redis before a worker took it")),
            ],
        )
        outcome = reply[0].decode()
        if outcome == "busy":
            log.info("job %s is running on another worker; leaving it to that worker", job_id)
            return None  # not acknowledged: re-claimed again later should that worker die
        if outcome == "gone":
            log.warning("job %s expired in Redis before it ran; reported as lost", job_id)
            await self._ack(delivery)
            return None
        if outcome != "run":
            log.info("job %s is %s; acknowledging the duplicate delivery", job_id, outcome)
            await self._ack(delivery)
            return None
        log.info("job %s started", job_id)
        try:
            spec = unpack_spec(reply[1])
        except WireError as error:  # e.g. queued by a newer bot: fail it (the user may try again), do not re-claim it forever
            refused = unreadable(error)
            log.error("job %s cannot be read by this worker (%s): update the workers to the bot's version", job_id, refused.detail)
            await self._report(job_id, token, delivery, refused)
            return None
        if (refusing := refusal(spec)) is not None:  # it would run, but not as asked
            log.error("job %s %s, which this worker does not know: update the workers to the bot's version", job_id, refusing.detail)
            await self._report(job_id, token, delivery, refusing)
            return None
        return _Claimed(spec, token, delivery)

    async def _conclude(self, job: _Claimed, event: JobEvent | None) -> None:
        """Store ``job``'s terminal event and acknowledge its entry (``None``: the lease was lost, nothing to store)."""
        job.over = True
        if event is None or job.lost:
            log.warning("job %s: lost the lease to another worker; dropping this run", job.spec.job_id)
            return
        await self._report(job.spec.job_id, job.token, job.delivery, event)

    async def _report(self, job_id: str, token: str, delivery: Delivery, event: JobEvent) -> None:
        stored = await self._store(job_id, token, event)
        if stored:
            await self._ack(delivery)
        log.info("job %s %s", job_id, _TERMINAL_STATE[type(event)] if stored == 1 else "was already over")

    async def _ack(self, delivery: Delivery) -> None:
        """Acknowledge the stream entry of a job that is over.

        Should Redis fail now, the entry stays pending: another worker re-claims
        it after the lease, finds the job over and acknowledges it then.
        """
        try:
            await self._consumer.ack(delivery)
        except RedisError as error:
            log.warning("job %s: acknowledging its stream entry failed (%s); it is acknowledged when re-claimed", delivery.job_id, error)

    async def _take_more(self, count: int) -> list[_Claimed]:
        """Claim up to ``count`` more jobs from the stream to draw with the one in hand: the text jobs right behind it.

        Peeks first and takes only the entries up to the first waiting job of
        another kind (a photo or restyle job stays for the next free worker);
        entries whose job is already over are taken too (acknowledged at once).
        A job of another kind read anyway (another worker read in between) runs
        alone after the batch.
        """
        try:
            job_ids = await self._consumer.peek_new(count)
            async with self._redis.pipeline(transaction=False) as pipe:
                for job_id in job_ids:
                    pipe.hmget(self.keys.job(job_id or "?"), "state", "kind")
                states = await pipe.execute()
            take = 0
            for job_id, (state, kind) in zip(job_ids, states, strict=True):
                if job_id is None or (state == b"queued" and kind != b"text"):
                    break
                take += 1
            deliveries = await self._consumer.take_new(take) if take else []
        except RedisError as error:
            log.warning("could not look for jobs to batch (%s); running the job in hand alone", error)
            return []
        claimed = []
        for delivery in deliveries:
            job = await self._claim_job(delivery)
            if job is not None:
                claimed.append(job)
        return claimed

    async def _execute_batch(self, jobs: list[_Claimed]) -> None:
        """Draw ``jobs`` in one diffusion call on the model thread; each job's outcome is stored as soon as it is known."""
        loop = asyncio.get_running_loop()
        ended: asyncio.Queue[tuple[_Claimed, JobEvent]] = asyncio.Queue()

        def finish(job: _Claimed, event: JobEvent) -> None:  # on the model thread
            loop.call_soon_threadsafe(ended.put_nowait, (job, event))

        batch = [BatchJob(job.spec, job.newest.put, job.stop.is_set, partial(finish, job)) for job in jobs]
        run = loop.run_in_executor(self._model_thread, run_batch, self.pipeline, batch)
        try:
            while True:
                if not run.done():
                    await asyncio.wait({run}, timeout=self.config.poll)
                while not ended.empty():
                    job, event = ended.get_nowait()
                    if not job.lost:  # its last progress goes out before its outcome, as for a job run alone
                        job.lost = not await self._heartbeat(job.spec.job_id, job.token, job.stop, job.newest)
                    await self._conclude(job, event)
                if run.done() and ended.empty():
                    break
                for job in jobs:
                    if not job.over and not job.lost:
                        job.lost = not await self._heartbeat(job.spec.job_id, job.token, job.stop, job.newest)
            await run  # run_batch never raises; this surfaces a bug in it
        finally:
            for job in jobs:
                job.stop.set()  # a worker cancelled mid-batch stops the run at the next step

    async def _store(self, job_id: str, token: str, event: JobEvent) -> int:
        """Store the terminal event (see ``_FINISH``), retrying through a Redis restart of up to a minute."""
        keys, config, attempts = self.keys, self.config, 0
        while True:
            try:
                return int(
                    await self._finish(
                        keys=[keys.job(job_id), keys.lease(job_id), keys.events(job_id)],
                        args=[token, _TERMINAL_STATE[type(event)], pack_event(event), EVENTS_MAXLEN, config.job_ttl],
                    )
                )
            except RedisError as error:
                attempts += 1
                if attempts >= 60:
                    raise
                log.warning("job %s: storing the result failed (%s); retrying", job_id, error)
                await asyncio.sleep(1.0)

    async def _execute(self, spec: JobSpec, token: str) -> JobEvent | None:
        """Run ``spec`` on the model thread; the terminal event, or None when the lease was lost."""
        stop = threading.Event()
        newest = _NewestProgress()
        loop = asyncio.get_running_loop()
        run = loop.run_in_executor(self._model_thread, run_job_event, self.pipeline, spec, newest.put, stop.is_set)
        owned = True
        try:
            while not run.done():
                await asyncio.wait({run}, timeout=self.config.poll)
                owned = await self._heartbeat(spec.job_id, token, stop, newest)
            return await run if owned else None
        finally:
            stop.set()  # a worker cancelled mid-job stops its run at the next step

    async def _heartbeat(self, job_id: str, token: str, stop: threading.Event, newest: _NewestProgress) -> bool:
        """Renew the lease, honour a cancel request, publish the newest progress (with its preview); returns owned."""
        keys, config = self.keys, self.config
        event = None
        try:
            owned, cancel = await self._renew(
                keys=[keys.lease(job_id), keys.cancel(job_id), keys.job(job_id), keys.events(job_id)],
                args=[token, config.lease_ms, config.job_ttl],
            )
            if cancel or not owned:
                stop.set()
            event = newest.take()
            if event is not None and owned:
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.xadd(keys.events(job_id), {"e": pack_event(event)}, maxlen=EVENTS_MAXLEN, approximate=True)
                    pipe.expire(keys.events(job_id), config.job_ttl)
                    await pipe.execute()
            return bool(owned)
        except RedisError as error:
            if event is not None:
                newest.restore(event)
            log.warning("job %s: Redis unavailable (%s); the job keeps running", job_id, error)
            return True


async def serve(pipeline: ImagePipeline, config: RedisConfig, *, name: str | None = None) -> None:
    """Run a :class:`Worker` until SIGINT/SIGTERM (see the module docstring for the two-signal shutdown)."""
    worker = Worker(pipeline, config, name=name)
    stop = asyncio.Event()
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set() and task is not None:
            task.cancel()
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        await worker.run(stop)
    except asyncio.CancelledError:
        log.warning("worker %s stopped mid-job; another worker takes the job over", worker.name)
