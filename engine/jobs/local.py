"""The embedded default engine: an in-process fair queue and one model thread.

No extra servers. Speech runs on its own thread so a voice note is not stuck
behind pictures; images run on the model thread, one job at a time or, with
``batch_max`` > 1, up to that many text jobs drawn in one diffusion call (the
job the fair queue picks next, then the next compatible ones in fair order;
each keeps its own progress, previews, cancel and outcome). The queue is
round-robin across users (how many each user may have waiting is the
conversation's cap, kept in the database), progress and queue positions are
published to each job's :class:`JobHandle`, cancel is cooperative, and
identical requests (same prompt, seed, style and model) are served from an LRU
cache: one engine runs one pipeline whose model is fixed for its lifetime, so
the cache key is the prompt text, seed and style. Previews, when the pipeline
makes them, reach the handle as progress events (a cached result has none).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial

from cachetools import LRUCache

from engine.api import (
    JobCancelled,
    JobEvent,
    JobFinished,
    JobHandle,
    JobQueued,
    JobResult,
    JobSpec,
    JobStarted,
)
from engine.jobs.runner import BatchJob, ImagePipeline, can_batch, run_batch, run_job_event

log = logging.getLogger(__name__)


@dataclass
class _Job:
    spec: JobSpec
    handle: JobHandle
    cancel: threading.Event = field(default_factory=threading.Event)


class FairQueue:
    """Round-robin over users: the waiting user served least recently goes next, FIFO within a user.

    "Served" counts from the moment a job is popped, so a user whose job is
    running waits behind everyone who has not had a turn yet, even if their
    queue emptied and refilled meanwhile. Not thread-safe by itself;
    :class:`LocalJobQueue` guards it with its lock.
    """

    def __init__(self) -> None:
        #: Waiting jobs per user; users in order of arrival (breaks ties between never-served users).
        self._per_user: OrderedDict[str, deque[_Job]] = OrderedDict()
        #: Serial number of each user's last turn: waiting users and the user served last only.
        self._served: dict[str, int] = {}
        self._turns = 0

    def push(self, job: _Job) -> None:
        """Append ``job`` behind the user's other waiting jobs."""
        self._per_user.setdefault(job.spec.user_key, deque()).append(job)

    def pop(self) -> _Job | None:
        """The next job in round-robin order, or None when empty."""
        if not self._per_user:
            return None
        return self._take_from(self._next_user(self._per_user, self._served))

    def pop_batch(self, limit: int, compatible: Callable[[_Job], bool]) -> list[_Job]:
        """The next job (as :meth:`pop`) and, when it is ``compatible``, up to ``limit - 1`` more compatible jobs in fair order.

        Jobs that are not compatible keep their places, and so do the jobs a
        user queued after one of them (a user's jobs never overtake each
        other). Every job taken counts as that user's turn, as if popped one
        by one.
        """
        first = self.pop()
        if first is None:
            return []
        taken = [first]
        if limit > 1 and compatible(first):
            held: set[str] = set()
            for job in self.in_order():
                if len(taken) >= limit:
                    break
                user_key = job.spec.user_key
                if user_key in held:
                    continue
                if not compatible(job):
                    held.add(user_key)
                    continue
                assert self._per_user[user_key][0] is job  # in_order keeps each user's FIFO
                taken.append(self._take_from(user_key))
        return taken

    def _take_from(self, user_key: str) -> _Job:
        jobs = self._per_user[user_key]
        job = jobs.popleft()
        if not jobs:
            del self._per_user[user_key]
        self._turns += 1
        self._served = {user: turn for user, turn in self._served.items() if user in self._per_user}
        self._served[user_key] = self._turns
        return job

    def remove(self, job_id: str) -> _Job | None:
        """Take a waiting job out of the queue (for cancel)."""
        for user_key, jobs in self._per_user.items():
            for job in jobs:
                if job.spec.job_id == job_id:
                    jobs.remove(job)
                    if not jobs:
                        del self._per_user[user_key]
                    return job
        return None

    def in_order(self) -> list[_Job]:
        """All waiting jobs in the order they will run (what :meth:`pop` would return, one by one)."""
        waiting = OrderedDict((user, list(jobs)) for user, jobs in self._per_user.items())
        served, turn, order = dict(self._served), self._turns, []
        while waiting:
            user_key = self._next_user(waiting, served)
            order.append(waiting[user_key].pop(0))
            if not waiting[user_key]:
                del waiting[user_key]
            turn += 1
            served[user_key] = turn
        return order

    @staticmethod
    def _next_user(waiting: Mapping[str, object], served: Mapping[str, int]) -> str:
        # min() keeps the first of equals: never-served users go in arrival order.
        return min(waiting, key=lambda user: served.get(user, 0))


class LocalJobQueue:
    """In-process :class:`engine.api.JobQueue` over an anime pipeline (one model thread).

    ``batch_max`` (``BATCH_MAX``): how many waiting text jobs the model thread
    may draw in one diffusion call (1: one job at a time).
    """

    def __init__(
        self, pipeline: ImagePipeline, *, cache_size: int = 64, batch_max: int = 1
    ) -> None:
        if batch_max < 1:
            raise ValueError(f"batch_max must be at least 1, got {batch_max}")
        self.pipeline = pipeline
        self.batch_max = batch_max
        self._cache: LRUCache[tuple[object, ...], JobResult] = LRUCache(maxsize=cache_size)
        self._queue = FairQueue()
        #: Jobs on the model thread now (several when a batch runs), by id.
        self._running: dict[str, _Job] = {}
        self._lock = threading.Condition()
        self._closing = False
        self._worker: threading.Thread | None = None

    async def start(self) -> None:
        """Start the model thread (idempotent)."""
        with self._lock:
            if self._worker is None:
                self._closing = False
                self._worker = threading.Thread(target=self._work, name="voice2anime-model", daemon=True)
                self._worker.start()

    async def close(self) -> None:
        """Cancel waiting and running jobs and stop the threads."""
        with self._lock:
            self._closing = True
            waiting = self._queue.in_order()
            for job in waiting:
                self._queue.remove(job.spec.job_id)
            for running in self._running.values():
                running.cancel.set()
            self._lock.notify_all()
            worker, self._worker = self._worker, None
        for job in waiting:
            job.handle.publish(JobCancelled())
        if worker:
            await asyncio.to_thread(worker.join)

    async def submit(self, spec: JobSpec) -> JobHandle:
        """Queue ``spec``; cached results finish at once."""
        handle = JobHandle(spec.job_id, asyncio.get_running_loop())
        cached = self._cached(spec)
        if cached is not None:
            handle.publish(JobFinished(cached))
            return handle
        with self._lock:
            self._queue.push(_Job(spec, handle))
            self._publish_positions()
            self._lock.notify_all()
        return handle

    async def cancel(self, job_id: str) -> bool:
        """Cancel a waiting job at once, or ask the running one to stop at its next step."""
        with self._lock:
            job = self._queue.remove(job_id)
            if job is not None:
                self._publish_positions()
            elif job_id in self._running:
                self._running[job_id].cancel.set()  # a batched job stops alone: the others go on
                return True
            else:
                return False
        job.handle.publish(JobCancelled())
        return True

    # --- model thread ---------------------------------------------------------

    def _publish_positions(self) -> None:
        for position, job in enumerate(self._queue.in_order(), start=1):
            job.handle.publish(JobQueued(position))

    def _next_jobs(self) -> list[_Job]:
        with self._lock:
            while not self._closing:
                jobs = self._queue.pop_batch(self.batch_max, lambda job: can_batch(self.pipeline, job.spec))
                if jobs:
                    self._running.update((job.spec.job_id, job) for job in jobs)
                    self._publish_positions()
                    return jobs
                self._lock.wait()
            return []

    def _work(self) -> None:
        while jobs := self._next_jobs():
            for job in jobs:
                job.handle.publish(JobStarted())
            # Every progress report (previews included: a few small JPEGs per job) goes to the handle as is.
            if len(jobs) == 1:
                (job,) = jobs
                self._done(job, run_job_event(self.pipeline, job.spec, job.handle.publish, job.cancel.is_set))
            else:
                run_batch(
                    self.pipeline,
                    [BatchJob(job.spec, job.handle.publish, job.cancel.is_set, partial(self._done, job)) for job in jobs],
                )

    def _done(self, job: _Job, event: JobEvent) -> None:
        """``job`` is over (a batched job may end before the rest of its batch)."""
        if isinstance(event, JobFinished):
            self._remember(job.spec, event.result)
        with self._lock:
            self._running.pop(job.spec.job_id, None)
        job.handle.publish(event)

    # --- result cache -------------------------------------------------------

    @staticmethod
    def _cache_key(spec: JobSpec) -> tuple[object, ...] | None:
        if spec.kind != "text" or spec.seed is None or spec.control:
            return None  # photos (and drawings kept to one) are one-off; no seed means "surprise me"
        # The model is implied: this engine's pipeline (and so its model) never changes.
        return (spec.positive, spec.negative, spec.seed, spec.style, spec.policy)  # a picture passed at one level may not at another

    def _cached(self, spec: JobSpec) -> JobResult | None:
        key = self._cache_key(spec)
        if key is None:
            return None
        with self._lock:
            hit = self._cache.get(key)
            if hit is None:
                return None
        log.info("job %s served from cache", spec.job_id)
        return replace(hit, job_id=spec.job_id, timings=())

    def _remember(self, spec: JobSpec, result: JobResult) -> None:
        key = self._cache_key(spec)
        if key is None:
            return
        with self._lock:
            self._cache[key] = result
