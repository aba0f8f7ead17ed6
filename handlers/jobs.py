"""Following image jobs for the conversation: submit, watch, deliver.

One watcher task per job consumes its engine events: it edits the status
message, stores the images and moves the request through the guarded DB
transitions, so a redelivered or duplicate result is sent once at most.

The status message only moves forward: ⏳ queued (#n once the position is
known) → 🖌 drawing n% (the highest percentage reached; text jobs) → 🎨 styling
(an upscale job: ⬆️ making it bigger n%, over its tiles) → 📤 sending, then
one final line without buttons once the picture is delivered (or the failure
notice with "Send again"; a picture that could not be stored, or a job the
workers are too old for: the notice with "Try again", the request queued
again, see :meth:`JobTracker._not_stored` and :meth:`JobTracker._outdated`).
Stage changes and queue positions are shown at once, percentages and previews
at most every ``progress_interval`` seconds. With previews the message also shows the
newest picture the engine sent: the picture forming while drawing, then the
sketch (the drawing before the anime style), which stays above the picture.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from db.enums import VARIATIONS, ImageRole, RequestKind, variation_roles
from db.records import RequestRecord
from db.repository import Repository
from db.states import RequestState
from engine.api import (
    LOADING,
    PREPARING,
    UPSCALING,
    JobCancelled,
    JobFailed,
    JobFinished,
    JobHandle,
    JobKind,
    JobProgress,
    JobQueue,
    JobQueued,
    JobResult,
    JobSpec,
    JobStarted,
)
from engine.errors import UserError
from engine.jobs.compat import is_outdated
from engine.missing_models import is_unavailable
from engine.policy.levels import ImageFlaggedError, Level
from engine.policy.text import ChatPolicy
from handlers import cards
from handlers.events import Origin
from handlers.i18n import error_text, t
from handlers.replies import Messenger, Reply

log = logging.getLogger(__name__)

#: Puts a request whose job failed for a missing model back to its card: (origin, request id, the status message,
#: the ``model.unavailable.*`` key, the operator's fix) -> whether it could (a photo or a restyle has no card).
Reopen = Callable[[Origin, str, str | None, str, str], Awaitable[bool]]
#: Told that a request's picture was delivered: (origin, request id).
Delivered = Callable[[Origin, str], Awaitable[None]]

S = RequestState


#: ``error_key`` of a delivered request whose picture the image check flagged at ``standard``: it is shown as a spoiler.
POLICY_SPOILER = "policy.spoiler"
#: How long shutdown waits for a picture already being uploaded to be taken (seconds).
HANDOVER_GRACE = 30.0


def delivered_reply(
    record: RequestRecord,
    lang: str,
    png: bytes,
    style_names: cards.StyleNames,
    tiles: Sequence[bytes] = (),
    description: str | None = None,
) -> Reply:
    """The picture card of a delivered request (also used to re-send it from /history); behind a spoiler when flagged.

    A variations request's card is its grid (``png``) of ``tiles`` with a button to keep each; ``description``
    (:func:`description_of`) quotes the words it draws.
    """
    if record.error_key == POLICY_SPOILER:
        unmarked = replace(record, error_key=None)
        return cards.as_spoiler(delivered_reply(unmarked, lang, png, style_names, tiles, description), lang)
    anime = record.image(ImageRole.ANIME)
    if record.kind is RequestKind.UPSCALE and anime is not None:
        return cards.upscaled(record.id, lang, png, scale=record.upscale or 0, size=(anime.width, anime.height))
    if record.kind is RequestKind.VARIATIONS:
        return cards.variations(
            record.id,
            lang,
            png,
            tiles=tiles,
            style=cards.style_name(record.style or "", lang, style_names),
            seeds=variation_seeds(record.seed or 0)[: len(tiles)],
            description=description,
        )
    return cards.delivered(
        record.id,
        lang,
        png,
        style=cards.style_name(record.style or "", lang, style_names),
        seed=record.seed,
        description=description,
        drawn=bool(record.prompt_positive),
    )


async def description_of(repository: Repository, record: RequestRecord) -> str | None:
    """The words a picture draws, as the user gave them: its own, else (a restyle, reroll, variation ...) its parent's."""
    transcript = (await described_by(repository, record)).transcript
    return (transcript.final_text or transcript.edited_text or transcript.heard_text) if transcript else None


def variation_seeds(seed: int) -> tuple[int, ...]:
    """The seeds of a variations request whose seed is ``seed``: it and the next ones (as batch seeds go elsewhere)."""
    return tuple((seed + offset) % 2**32 for offset in range(VARIATIONS))


async def variation_tiles(record: RequestRecord) -> tuple[bytes, ...]:
    """The stored pictures of a variations request, in order (those still on disk)."""
    paths = [image.path for n in range(1, VARIATIONS + 1) if (image := record.image(variation_roles(n)[0])) is not None]
    return tuple(await asyncio.to_thread(lambda: [path.read_bytes() for path in paths if path.exists()]))


async def described_by(repository: Repository, record: RequestRecord) -> RequestRecord:
    """The request whose words ``record`` draws: itself, or for a restyle, reroll or variation the first one up with a transcript."""
    seen = {record.id}
    while record.transcript is None and record.parent_id and record.parent_id not in seen:
        parent = await repository.get_request(record.parent_id)
        if parent is None:
            break
        seen.add(parent.id)
        record = parent
    return record


#: The stages of a status message, in the order it goes through them (never back); an upscale job's is "upscaling".
STAGES = ("queued", "drawing", "styling", "upscaling", "sending")
#: The status stage an engine stage moves the message to (any other: "drawing").
_STATUS_OF = {"style": "styling", UPSCALING: "upscaling"}


@dataclass
class StatusView:
    """What the status message of one job shows; every change only moves it forward.

    ``percent`` is the highest overall percentage reached (shown while
    drawing or upscaling), ``preview`` the newest picture of the job (``sketch``:
    it is the drawing before styling) and ``shown`` the picture the message shows now.
    """

    request_id: str
    lang: str
    stage: str = "queued"
    position: int | None = None
    percent: int = 0
    preview: bytes | None = None
    sketch: bool = False
    shown: bytes | None = None
    #: The drawing model is loading (the first picture) or being prepared, so nothing is drawn yet: the words saying so.
    loading: str | None = None

    def advance(self, stage: str) -> bool:
        """Move on to ``stage`` unless the message is already past it; True when the stage changed."""
        if STAGES.index(stage) <= STAGES.index(self.stage):
            return False
        self.stage = stage
        return True

    def progress(self, fraction: float) -> None:
        """Raise the percentage to ``fraction`` of the job (never lowers it)."""
        self.percent = max(self.percent, min(100, int(fraction * 100)))

    def reply(self) -> Reply:
        """The status as a reply; it carries the preview only when the message does not show it yet."""
        request_id, lang = self.request_id, self.lang
        new = self.preview if self.preview is not self.shown else None
        if self.loading:
            return cards.progress(request_id, lang, self.loading)
        if self.stage == "queued":
            return cards.progress(request_id, lang, "queued", position=self.position)
        if self.stage == "drawing":
            return cards.progress(request_id, lang, "generating", percent=self.percent, preview=new)
        if self.stage == "styling":
            return cards.progress(request_id, lang, "styling", preview=new)
        if self.stage == "upscaling":
            return cards.progress(request_id, lang, "progress.upscaling", percent=self.percent)
        return cards.progress(request_id, lang, "progress.sending", preview=new)

    @property
    def shows_sketch(self) -> bool:
        """The message shows the drawing before the anime style."""
        return self.shown is not None and self.shown is self.preview and self.sketch


class _StatusMessage:
    """One job's status message: its :class:`StatusView` and the (throttled) edits that show it."""

    def __init__(self, tracker: JobTracker, origin: Origin, request_id: str, lang: str, ref: str | None) -> None:
        self.tracker = tracker
        self.origin = origin
        self.ref = ref
        self.view = StatusView(request_id, lang)
        self._last_edit = float("-inf")
        self._shown: Reply | None = None

    async def show(self, *, force: bool = False) -> None:
        """Edit the message to the view unless nothing visible changed, or (``force`` aside) it was edited too recently."""
        reply = self.view.reply()
        if reply.image_png is None and self._shown is not None and reply == replace(self._shown, image_png=None):
            return
        now = self.tracker._monotonic()
        if not force and now - self._last_edit < self.tracker.progress_interval:
            return
        self._last_edit, self._shown = now, reply
        await self.put(reply)
        if reply.image_png is not None:
            self.view.shown = reply.image_png

    async def put(self, reply: Reply) -> None:
        """Show ``reply`` in the status message (posting one if there is none yet)."""
        self.ref = await self.tracker._edit_status(self.origin, self.ref, reply, self.view.request_id)


class JobTracker:
    """Submits requests to the engine and follows them until they are delivered, failed or cancelled.

    With ``previews`` off, preview images the engine sends are not shown.
    ``reopen`` is asked first when a job fails for a missing model: it puts
    the request's card back (see :data:`Reopen`); a request without one fails.
    ``delivered`` is told of every picture a job delivered (not of a resend).
    ``policy`` (the deployment's content policy) adds its negative prompt terms
    to every text job and decides what happens to a picture the image check
    flagged at ``standard``: a spoiler, or (``spoilers`` off) not sent.
    """

    def __init__(
        self,
        repository: Repository,
        queue: JobQueue,
        messenger: Messenger,
        *,
        default_style: str,
        style_names: cards.StyleNames,
        progress_interval: float,
        retry_delays: Sequence[float] = (2.0, 10.0, 30.0),
        monotonic: Callable[[], float] = time.monotonic,
        previews: bool = True,
        policy: ChatPolicy | None = None,
        reopen: Reopen | None = None,
        delivered: Delivered | None = None,
    ) -> None:
        self.policy = policy or ChatPolicy()
        self.reopen = reopen
        self.delivered = delivered
        self.repository = repository
        self.queue = queue
        self.messenger = messenger
        self.default_style = default_style
        self.style_names = style_names
        self.progress_interval = progress_interval
        self.retry_delays = tuple(retry_delays)
        self.previews = previews
        self._monotonic = monotonic
        self._watchers: set[asyncio.Task[None]] = set()
        #: Requests whose job is being followed (submitted and not yet ended).
        self._following: set[str] = set()
        self._sending: set[str] = set()
        self._handing_over: set[asyncio.Task[bool]] = set()

    async def wait_idle(self) -> None:
        """Wait until every job being followed has ended."""
        while self._watchers:
            await asyncio.gather(*list(self._watchers), return_exceptions=True)

    async def finish_handovers(self, timeout: float = HANDOVER_GRACE) -> None:
        """Wait (at most ``timeout`` s) for pictures being handed to the platform to be taken and recorded.

        Shutdown calls this before the adapters disconnect, so a picture the
        platform already received is marked delivered, not sent again after
        the restart.
        """
        if self._handing_over:
            await asyncio.wait(list(self._handing_over), timeout=timeout)

    async def close(self) -> None:
        """Stop following jobs without touching their state (they are resumed after a restart)."""
        for task in list(self._watchers):
            task.cancel()
        await asyncio.gather(*list(self._watchers), return_exceptions=True)
        await self.finish_handovers()

    async def spec_for(self, record: RequestRecord, policy: Level = Level.STRICT) -> JobSpec | None:
        """The engine job for a queued request, or None when what it needs is gone.

        Photo and restyle jobs send their request's base image: a photo's is
        stored when it arrives; a restyle takes its parent's (the same file,
        recorded for the restyle too, so its "Original" and "Restyle" work).
        ``policy`` is the level of the requester's chat: the job carries it
        (the image check) and a text job's negative prompt the policy's terms.
        """
        style = record.style or self.default_style
        user_key = str(record.user_id)
        if record.kind is RequestKind.UPSCALE:  # its base is the picture to upscale (its parent's, linked)
            picture = record.image(ImageRole.BASE)
            if picture is None or not picture.path.exists() or record.upscale not in (2, 4):
                return None
            png = await asyncio.to_thread(picture.path.read_bytes)
            return JobSpec(record.id, user_key, "upscale", style, source_png=png, policy=policy.value, scale=record.upscale)
        if record.kind in (RequestKind.PHOTO, RequestKind.RESTYLE):
            base = record.image(ImageRole.BASE)
            if base is None and record.kind is RequestKind.RESTYLE and record.parent_id:
                base = await self.repository.link_image(record.parent_id, record.id, ImageRole.BASE)
            if base is None or not base.path.exists():
                return None
            kind: JobKind = "photo" if record.kind is RequestKind.PHOTO else "restyle"
            source = await asyncio.to_thread(base.path.read_bytes)
            return JobSpec(record.id, user_key, kind, style, source_png=source, policy=policy.value)
        if not record.prompt_positive:
            return None
        words = (await described_by(self.repository, record)).transcript
        variations = record.kind is RequestKind.VARIATIONS and record.seed is not None
        control: dict[str, Any] = {}
        if record.control:  # the picture whose composition the drawing keeps
            image = record.image(ImageRole.CONTROL)
            if image is None or not image.path.exists():
                return None
            control = {"control": record.control, "control_png": await asyncio.to_thread(image.path.read_bytes)}
        remix: dict[str, Any] = {}
        if record.kind is RequestKind.REMIX:  # drawn over its picture's drawing
            parent = await self.repository.get_request(record.parent_id) if record.parent_id else None
            drawing = parent.image(ImageRole.BASE) if parent is not None else None
            if drawing is None or not drawing.path.exists() or record.strength is None:
                return None
            remix = {"init_png": await asyncio.to_thread(drawing.path.read_bytes), "strength": record.strength}
        else:
            if record.width is not None and record.height is not None:
                remix = {"width": record.width, "height": record.height}
            remix.update({name: value for name, value in (("steps", record.steps), ("guidance", record.guidance)) if value is not None})
        return JobSpec(
            record.id,
            user_key,
            "text",
            style,
            positive=record.prompt_positive,
            negative=self.policy.checker.with_negative(record.prompt_negative or "", policy),
            seed=record.seed,
            policy=policy.value,
            transcript=(words.final_text or words.edited_text or words.heard_text) if words else "",
            language=(words.language if words else None) or record.source_language or "",
            seeds=variation_seeds(record.seed) if variations and record.seed is not None else (),
            **control,
            **remix,
        )

    async def submit(self, origin: Origin, lang: str, request_id: str, spec: JobSpec, ref: str | None) -> None:
        """Hand ``spec`` to the engine and follow it, reporting in message ``ref`` (None: post one at the first update)."""
        try:
            handle = await self.queue.submit(spec)
        except Exception as error:
            if not isinstance(error, UserError):
                log.exception("submitting request %s failed", request_id)
            key, params = (error.key, error.params) if isinstance(error, UserError) else ("error.generic", {})
            await self.repository.transition(request_id, S.FAILED, from_states=[S.QUEUED], error_key=key)
            await self._edit_status(origin, ref, Reply(error_text(key, lang, params), kind="error"), request_id)
            return
        first = {"text": "drawing", "upscale": "upscaling"}.get(spec.kind, "styling")
        task = asyncio.create_task(self._watch(origin, lang, request_id, handle, ref, first), name=f"watch-{request_id}")
        self._watchers.add(task)
        self._following.add(request_id)
        task.add_done_callback(self._watchers.discard)
        task.add_done_callback(lambda _: self._following.discard(request_id))

    def following(self, request_id: str) -> bool:
        """Whether the job of ``request_id`` is being followed (submitted, not yet ended)."""
        return request_id in self._following

    async def _watch(
        self, origin: Origin, lang: str, request_id: str, handle: JobHandle, ref: str | None, first: str
    ) -> None:
        """Follow one job: queue position, stages and progress (see the module docstring), then the result.

        ``first`` is the stage the job starts with: "drawing" for text jobs, "upscaling" for upscale jobs, "styling"
        for photos and restyles.
        """
        status = _StatusMessage(self, origin, request_id, lang, ref)
        view = status.view
        try:
            async for event in handle.events():
                match event:
                    case JobQueued(position=position):
                        if view.stage == "queued" and position != view.position:
                            view.position = position
                            await status.show(force=True)
                    case JobStarted():
                        if not handle.ended:  # else its end moves it (a result: queued -> running as it is stored)
                            await self.repository.transition(request_id, S.RUNNING, from_states=[S.QUEUED])
                        await status.show(force=view.advance(first))
                    case JobProgress(stage=step) if step in (LOADING, PREPARING):
                        view.loading = "progress.preparing" if step == PREPARING else "progress.loading"
                        await status.show(force=True)
                    case JobProgress(fraction=fraction, stage=step, preview=preview):
                        view.loading = None
                        moved = view.advance(_STATUS_OF.get(step, "drawing"))
                        view.progress(fraction)
                        if preview is not None and self.previews:
                            view.preview, view.sketch = preview, step == "style"
                        await status.show(force=moved)
                    case JobFinished(result=result):
                        await self._deliver(origin, lang, request_id, result, status)
                    case JobFailed(error_key=error_key, detail=detail) if is_unavailable(error_key) and self.reopen is not None and (
                        await self.reopen(origin, request_id, status.ref, error_key, detail)
                    ):
                        pass  # the card is back, saying which model is missing, with Retry
                    case JobFailed() if is_outdated(event):
                        await self._outdated(lang, request_id, event, status)
                    case JobFailed(error_key=error_key, params=params):
                        await self.repository.transition(
                            request_id, S.FAILED, from_states=[S.QUEUED, S.RUNNING], error_key=error_key
                        )
                        key = error_key if error_key != "error.generic" else "job.failed"
                        await status.put(Reply(error_text(key, lang, params), kind="error"))
                    case JobCancelled():
                        if await self.repository.transition(request_id, S.CANCELLED, from_states=[S.QUEUED, S.RUNNING]):
                            await status.put(Reply(t("cancelled", lang)))
        except Exception:
            log.exception("watching request %s failed", request_id)
            await self.queue.cancel(request_id)  # nobody would receive its result
            if await self.repository.transition(
                request_id, S.FAILED, from_states=[S.QUEUED, S.RUNNING], error_key="error.generic"
            ):
                await status.put(Reply(t("job.failed", lang), kind="error"))  # the status ends, without its Cancel

    async def _deliver(self, origin: Origin, lang: str, request_id: str, result: JobResult, status: _StatusMessage) -> None:
        """Store what the job made, then send the picture; the request is delivered once the platform took the upload.

        A drawn base image (text jobs) is stored here; a photo's or restyle's
        base was stored before the job ran (see :meth:`spec_for`). The status
        message says "sending" meanwhile, then ends as one line without buttons.
        """
        if result.flagged and not self.policy.spoilers:
            log.warning("request %s: the image check flagged the picture (%s); not sent", request_id, ", ".join(result.flagged))
            if await self.repository.transition(
                request_id, S.FAILED, from_states=[S.QUEUED, S.RUNNING], error_key=ImageFlaggedError.key
            ):
                await status.put(Reply(t(ImageFlaggedError.key, lang), kind="error"))
            return
        images = [(ImageRole.BASE, result.base_png)] if result.base_png is not None else []
        seeds: dict[ImageRole, int] = {}
        for number, variation in enumerate(result.variations, start=1):
            anime, base = variation_roles(number)
            images += [(anime, variation.anime_png), (base, variation.base_png)]
            seeds |= {anime: variation.seed, base: variation.seed}
        try:
            # One transaction: the images, queued -> running (a cached result may finish without ever "starting"), style,
            # seed, and a flagged picture's spoiler mark (kept, so a resend shows it behind the spoiler too).
            record = await self.repository.store_result(
                request_id,
                [*images, (ImageRole.ANIME, result.anime_png)],
                seed=result.seed,
                model=result.model,
                style=result.style,
                error_key=POLICY_SPOILER if result.flagged else None,
                image_seeds=seeds,
            )
        except OSError as error:  # the disk is full, the image directory cannot be written ...
            await self._not_stored(lang, request_id, error, status)
            return
        if record is None:
            return  # cancelled, or a duplicate result of a request that is already delivered
        status.view.advance("sending")
        await status.show(force=True)
        tiles = tuple(variation.anime_png for variation in result.variations)
        if await self.send_picture(origin, lang, record, result.anime_png, status=status.ref, tiles=tiles):
            await status.put(cards.progress_done(request_id, lang, sketch=status.view.shows_sketch))
            if self.delivered is not None:
                await self.delivered(origin, request_id)

    async def _outdated(self, lang: str, request_id: str, event: JobFailed, status: _StatusMessage) -> None:
        """A worker older than this bot could not read the job or run it as asked: the request waits, queued, for Try again.

        Nothing the user did is wrong and the operator's update fixes it, so
        the request stays retryable as in :meth:`_not_stored` (the status says
        the picture server is being updated, with "Try again" and Cancel; a
        restart resumes it), and the operator gets one warning line naming the cause.
        """
        log.warning(
            "request %s: a worker could not run its job (%s); update the workers to this bot's version. "
            "The request waits, queued, for Try again or the next start",
            request_id, event.detail,
        )
        if await self._queued_again(request_id):
            await status.put(cards.worker_outdated(request_id, lang))

    async def _queued_again(self, request_id: str) -> bool:
        """Put a request whose job ended without its picture back to queued; False when it was cancelled meanwhile."""
        if await self.repository.transition(request_id, S.QUEUED, from_states=[S.RUNNING]):
            return True
        record = await self.repository.get_request(request_id)
        return record is not None and record.state is S.QUEUED

    async def _not_stored(self, lang: str, request_id: str, error: OSError, status: _StatusMessage) -> None:
        """The finished picture could not be written: the request waits, queued, for "Try again" or the next start.

        The cause (a full disk, an image directory that cannot be written) is
        the operator's to fix, so the request stays retryable: it goes back to
        queued — a restart resumes it, the status says so with "Try again" and
        Cancel — and the engine runs it again (or answers from its cache). The
        operator gets one warning line naming the path, no traceback.
        """
        log.warning(
            "request %s: the finished picture could not be stored (%s: %s); it waits, queued, for Try again or the next start",
            request_id, type(error).__name__, error,
        )
        if await self._queued_again(request_id):
            await status.put(cards.not_stored(request_id, lang))

    async def send_picture(
        self, origin: Origin, lang: str, record: RequestRecord, png: bytes, *, status: str | None = None, tiles: Sequence[bytes] = ()
    ) -> bool:
        """Upload a drawn picture, retrying with backoff; the request becomes delivered only once the platform took it.

        After the last failed try the user is told (with a "Send again"
        button; in the ``status`` message when there is one) and the request
        stays running with its images stored, so a restart resends it. A second
        call for a picture being sent is a no-op. ``tiles``: the pictures of a variations grid.
        """
        if record.id in self._sending:
            return False
        self._sending.add(record.id)
        tiles = tuple(tiles) or await variation_tiles(record)
        try:
            for delay in (0.0, *self.retry_delays):
                await asyncio.sleep(delay)
                # One attempt runs to its end even when shutdown cancels this task: a picture the platform
                # took is recorded as delivered (close() waits for it), never resent after the restart.
                handover = asyncio.ensure_future(self._hand_over(origin, lang, record, png, tiles))
                self._handing_over.add(handover)
                handover.add_done_callback(self._handing_over.discard)
                if await asyncio.shield(handover):
                    return True
            log.error("request %s: the picture could not be sent after %d tries; kept for a resend", record.id, 1 + len(self.retry_delays))
            await self._edit_status(origin, status, cards.delivery_failed(record.id, lang), record.id)
            return False
        finally:
            self._sending.discard(record.id)

    async def _hand_over(self, origin: Origin, lang: str, record: RequestRecord, png: bytes, tiles: Sequence[bytes]) -> bool:
        """One upload of a picture; once the platform took it, the request becomes delivered. False if it failed."""
        try:
            description = await description_of(self.repository, record)
            await self.messenger.send(origin, delivered_reply(record, lang, png, self.style_names, tiles, description))
        except Exception:
            log.warning("sending the picture of request %s failed", record.id, exc_info=True)
            return False
        if not await self.repository.transition(record.id, S.DELIVERED, from_states=[S.RUNNING]):
            log.info("request %s was sent but had already left the running state", record.id)
        return True

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
