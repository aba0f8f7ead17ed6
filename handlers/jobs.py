"""Following image jobs for the conversation: submit, watch, deliver.

One watcher task per job consumes its engine events: it edits the status
message (queue position, throttled progress), stores the images and moves the
request through the guarded DB transitions, so a redelivered or duplicate
result is sent once at most.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from db.enums import ImageRole, RequestKind
from db.records import RequestRecord
from db.repository import Repository
from db.states import RequestState
from engine.api import (
    Engine,
    JobCancelled,
    JobFailed,
    JobFinished,
    JobHandle,
    JobKind,
    JobProgress,
    JobQueued,
    JobResult,
    JobSpec,
    JobStarted,
)
from engine.errors import UserError
from handlers import cards
from handlers.events import Origin
from handlers.i18n import error_text, t
from handlers.replies import Messenger, Reply

log = logging.getLogger(__name__)

S = RequestState


def delivered_reply(record: RequestRecord, lang: str, png: bytes) -> Reply:
    """The picture card of a delivered request (also used to re-send it from /history)."""
    return cards.delivered(record.id, lang, png, style=record.style or "", seed=record.seed, prompt=record.prompt_positive)


class JobTracker:
    """Submits requests to the engine and follows them until they are delivered, failed or cancelled."""

    def __init__(
        self,
        repository: Repository,
        engine: Engine,
        messenger: Messenger,
        *,
        default_style: str,
        progress_interval: float,
        retry_delays: Sequence[float] = (2.0, 10.0, 30.0),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.repository = repository
        self.engine = engine
        self.messenger = messenger
        self.default_style = default_style
        self.progress_interval = progress_interval
        self.retry_delays = tuple(retry_delays)
        self._monotonic = monotonic
        self._watchers: set[asyncio.Task[None]] = set()
        self._sending: set[str] = set()

    async def wait_idle(self) -> None:
        """Wait until every job being followed has ended."""
        while self._watchers:
            await asyncio.gather(*list(self._watchers), return_exceptions=True)

    async def close(self) -> None:
        """Stop following jobs without touching their state (they are resumed after a restart)."""
        for task in list(self._watchers):
            task.cancel()
        await asyncio.gather(*list(self._watchers), return_exceptions=True)

    async def spec_for(self, record: RequestRecord) -> JobSpec | None:
        """The engine job for a queued request, or None when what it needs is gone.

        Photo and restyle jobs send their request's base image: a photo's is
        stored when it arrives; a restyle takes its parent's (the same file,
        recorded for the restyle too, so its "Original" and "Restyle" work).
        """
        style = record.style or self.default_style
        user_key = str(record.user_id)
        if record.kind in (RequestKind.PHOTO, RequestKind.RESTYLE):
            base = record.image(ImageRole.BASE)
            if base is None and record.kind is RequestKind.RESTYLE and record.parent_id:
                base = await self.repository.link_image(record.parent_id, record.id, ImageRole.BASE)
            if base is None or not base.path.exists():
                return None
            kind: JobKind = "photo" if record.kind is RequestKind.PHOTO else "restyle"
            return JobSpec(record.id, user_key, kind, style, source_png=await asyncio.to_thread(base.path.read_bytes))
        if not record.prompt_positive:
            return None
        return JobSpec(
            record.id,
            user_key,
            "text",
            style,
            positive=record.prompt_positive,
            negative=record.prompt_negative or "",
            seed=record.seed,
        )

    async def submit(self, origin: Origin, lang: str, request_id: str, spec: JobSpec, ref: str | None) -> None:
        """Hand ``spec`` to the engine and follow it, reporting in message ``ref`` (None: post one at the first update)."""
        try:
            handle = await self.engine.submit(spec)
        except Exception as error:
            if not isinstance(error, UserError):
                log.exception("submitting request %s failed", request_id)
            key, params = (error.key, error.params) if isinstance(error, UserError) else ("error.generic", {})
            await self.repository.transition(request_id, S.FAILED, from_states=[S.QUEUED], error_key=key)
            await self._edit_status(origin, ref, Reply(error_text(key, lang, params), kind="error"), request_id)
            return
        stage = "generating" if spec.kind == "text" else "styling"
        task = asyncio.create_task(self._watch(origin, lang, request_id, handle, ref, stage), name=f"watch-{request_id}")
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _watch(
        self, origin: Origin, lang: str, request_id: str, handle: JobHandle, ref: str | None, stage: str
    ) -> None:
        """Follow one job: queue position, progress (throttled), then the result; ``stage`` names the first step."""
        last_edit = float("-inf")
        shown: Reply | None = None

        async def show(reply: Reply, *, force: bool = False) -> None:
            nonlocal last_edit, shown, ref
            now = self._monotonic()
            if reply == shown or (not force and now - last_edit < self.progress_interval):
                return
            last_edit, shown = now, reply
            ref = await self._edit_status(origin, ref, reply, request_id)

        try:
            async for event in handle.events():
                match event:
                    case JobQueued(position=position):
                        await show(cards.progress(request_id, lang, "queued", position=position), force=True)
                    case JobStarted():
                        await self.repository.transition(request_id, S.RUNNING, from_states=[S.QUEUED])
                        await show(cards.progress(request_id, lang, stage, percent=0), force=True)
                    case JobProgress(fraction=fraction, stage=step):
                        key = "styling" if step == "style" else "generating"
                        await show(cards.progress(request_id, lang, key, percent=int(fraction * 100)))
                    case JobFinished(result=result):
                        await self._deliver(origin, lang, request_id, result, ref)
                    case JobFailed(error_key=error_key, params=params):
                        await self.repository.transition(
                            request_id, S.FAILED, from_states=[S.QUEUED, S.RUNNING], error_key=error_key
                        )
                        key = error_key if error_key != "error.generic" else "job.failed"
                        await self._edit_status(origin, ref, Reply(error_text(key, lang, params), kind="error"), request_id)
                    case JobCancelled():
                        if await self.repository.transition(request_id, S.CANCELLED, from_states=[S.QUEUED, S.RUNNING]):
                            await self._edit_status(origin, ref, Reply(t("cancelled", lang)), request_id)
        except Exception:
            log.exception("watching request %s failed", request_id)
            await self.engine.cancel(request_id)  # nobody would receive its result
            if await self.repository.transition(
                request_id, S.FAILED, from_states=[S.QUEUED, S.RUNNING], error_key="error.generic"
            ):
                await self.messenger.send(origin, Reply(t("job.failed", lang), kind="error"))

    async def _deliver(self, origin: Origin, lang: str, request_id: str, result: JobResult, ref: str | None) -> None:
        """Store what the job made, then send the picture; the request is delivered once the platform took the upload.

        A drawn base image (text jobs) is stored here; a photo's or restyle's
        base was stored before the job ran (see :meth:`spec_for`).
        """
        if result.base_png is not None:
            await self.repository.add_image(request_id, ImageRole.BASE, result.base_png, seed=result.seed, model=result.model)
        await self.repository.add_image(
            request_id, ImageRole.ANIME, result.anime_png, seed=result.seed, model=result.model, style=result.style
        )
        # Only running jobs can be delivered: a cached result may finish without ever "starting".
        await self.repository.transition(request_id, S.RUNNING, from_states=[S.QUEUED])
        fields: dict[str, object] = {"style": result.style} | ({"seed": result.seed} if result.seed is not None else {})
        if not await self.repository.update_in_state(request_id, [S.RUNNING], **fields):
            return  # cancelled, or a duplicate result of a request that is already delivered
        record = await self.repository.get_request(request_id)
        assert record is not None
        key = "generating" if result.base_png is not None else "styling"
        await self._edit_status(origin, ref, Reply(t(key, lang, percent=100), kind="progress"), request_id)
        await self.send_picture(origin, lang, record, result.anime_png)

    async def send_picture(self, origin: Origin, lang: str, record: RequestRecord, png: bytes) -> bool:
        """Upload a drawn picture, retrying with backoff; the request becomes delivered only once the platform took it.

        After the last failed try the user is told (with a "Send again"
        button) and the request stays running with its images stored, so a
        restart resends it. A second call for a picture being sent is a no-op.
        """
        if record.id in self._sending:
            return False
        self._sending.add(record.id)
        try:
            for delay in (0.0, *self.retry_delays):
                await asyncio.sleep(delay)
                try:
                    await self.messenger.send(origin, delivered_reply(record, lang, png))
                except Exception:
                    log.warning("sending the picture of request %s failed", record.id, exc_info=True)
                    continue
                if not await self.repository.transition(record.id, S.DELIVERED, from_states=[S.RUNNING]):
                    log.info("request %s was sent but had already left the running state", record.id)
                return True
            log.error("request %s: the picture could not be sent after %d tries; kept for a resend", record.id, 1 + len(self.retry_delays))
            try:
                await self.messenger.send(origin, cards.delivery_failed(record.id, lang))
            except Exception:
                log.warning("could not tell the user of request %s that sending failed", record.id, exc_info=True)
            return False
        finally:
            self._sending.discard(record.id)

    async def _edit_status(self, origin: Origin, ref: str | None, reply: Reply, request_id: str) -> str | None:
        """Best effort: a status edit that fails (network, message deleted) must not fail the picture.

        Without a status message (``ref`` None) a new one is posted. Returns
        the status message's ref.
        """
        try:
            if ref is None:
                return await self.messenger.send(origin, reply)
            await self.messenger.edit(origin, ref, reply)
        except Exception:
            log.warning("status update of request %s failed", request_id, exc_info=True)
        return ref
