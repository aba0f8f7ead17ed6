"""Every table of the conversation: which handler an event, a command or a button goes to, and when it may.

```mermaid
stateDiagram-v2
    [*] --> transcribing: voice note
    [*] --> awaiting_confirmation: /anime text
    [*] --> queued: photo, Restyle, Reroll, Variations, keeping a variation (V1..V4), Upscale
    transcribing --> awaiting_confirmation: card shown, the speech model is missing (Retry)
    transcribing --> failed: bad audio, nothing heard
    awaiting_confirmation --> queued: Draw it (at once when confirmation is off)
    awaiting_confirmation --> transcribing: Heard wrong language
    awaiting_confirmation --> cancelled: Cancel, /cancel
    awaiting_confirmation --> expired: pressed after CARD_TTL
    awaiting_confirmation --> failed: the card cannot be stored or shown, /anime text the content policy refuses
    queued --> running: a worker picks it up, a kept variation (no job)
    queued --> cancelled: Cancel, /cancel
    queued --> failed: inputs gone, engine refused, a reroll the policy refuses, a flagged photo
    queued --> awaiting_confirmation: a model the drawing needs is missing (the card again, with Retry)
    running --> delivered: the platform accepted the picture
    running --> failed: the job failed, the image check flagged the picture
    running --> cancelled: Cancel, /cancel
    running --> queued: resumed after a restart, the picture could not be stored
    running --> awaiting_confirmation: a model the drawing needs is missing (the card again, with Retry)
    delivered --> [*]
    failed --> [*]
    cancelled --> [*]
    expired --> [*]
```

Edit, Style and Keep what I said (the words the engine corrected put back)
keep a card in ``awaiting_confirmation``; a picture whose upload failed stays
``running`` (kept, resent on request or after a restart); a finished picture
that could not be stored (a full disk) goes back to ``queued`` (run again on
"Try again" or after a restart). A model that is not installed (Whisper, Stable
Diffusion, a style's weights: the operator's to fix) keeps the request open:
its card comes back, saying which part is missing, with Retry.
The content policy (:mod:`engine.policy`) is asked before anything is queued:
typed ``/anime`` text it refuses fails at once with ``error_key``
``policy.refused``; a voice note's card (or an edited card) it refuses stays
open without Draw, saying why (a misheard word can be fixed with Edit) and
carrying ``policy.refused`` until an edit passes. Pictures are checked where
they are made (:mod:`engine.jobs.runner`).
The moves are :data:`db.states.TRANSITIONS` (a test checks this diagram
against it); every move is a guarded transition in the database, so a
duplicate button press or a redelivered event never applies twice. Which
button works in which state is :data:`BUTTONS`. Queued requests are handed to
:class:`handlers.jobs.JobTracker`, which follows each job to its end.

The commands are :data:`COMMANDS`: the Telegram menu, the Discord command
tree and the studio's command chips are made from it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from db.records import RequestRecord
from db.states import RequestState
from handlers.actions import Action
from handlers.chat_settings import CHAT_SETTINGS
from handlers.conversation import (
    card,
    composition,
    dropped,
    followups,
    intake,
    keeps,
    recovery,
    remix,
    settings,
    upscaling,
    variations,
    welcome,
)
from handlers.conversation.context import Context, Who
from handlers.events import ButtonPress, Command, PhotoMessage, Rejected, TextMessage, VoiceMessage

S = RequestState

#: ``handler(ctx, who, event)`` for one type of event.
EventHandler = Callable[[Context, Who, Any], Awaitable[None]]
#: ``handler(ctx, who, command)``.
CommandHandler = Callable[[Context, Who, Command], Awaitable[None]]
#: ``handler(ctx, who, press, record)``: a button about a request, found to be the presser's and in an allowed state.
RequestButtonHandler = Callable[[Context, Who, ButtonPress, RequestRecord], Awaitable[None]]
#: ``handler(ctx, who, press)``: a settings button (about no request).
SettingsButtonHandler = Callable[[Context, Who, ButtonPress], Awaitable[None]]

#: The events other than commands and button presses, by type.
EVENTS: dict[type, EventHandler] = {
    VoiceMessage: intake.on_voice,
    TextMessage: intake.on_text,
    PhotoMessage: intake.on_photo,
    Rejected: intake.on_rejected,
}


@dataclass(frozen=True)
class CommandOption:
    """A typed option of a command where the platform has them (Discord); elsewhere the words after the command.

    ``text`` is :attr:`~handlers.events.Command.args`; ``style`` is :attr:`~handlers.events.Command.style`, one of the styles;
    ``image`` is a picture sent with the command (the command becomes a :class:`~handlers.events.PhotoMessage` with the
    text as its caption: drawn keeping the picture's composition). Its description is the i18n key ``command.<command>.<option>``.
    """

    name: Literal["text", "style", "image"]
    required: bool = False


@dataclass(frozen=True)
class CommandRoute:
    """A slash command: its handler, whether its answer is the asker's only, and its options."""

    name: str
    handler: CommandHandler
    #: The answer is for the asker only (a ``private`` reply: Discord defers these ephemerally in servers).
    private: bool = False
    options: tuple[CommandOption, ...] = ()

    @property
    def description(self) -> str:
        """The i18n key of what the command does (menus, the command tree, the studio's chips)."""
        return f"command.{self.name}"


#: Every command, in the order the menus show them.
COMMANDS: tuple[CommandRoute, ...] = (
    CommandRoute("start", welcome.on_start),
    CommandRoute("help", welcome.on_help, private=True),
    CommandRoute("anime", intake.on_anime, options=(CommandOption("text", required=True), CommandOption("style"), CommandOption("image"))),
    CommandRoute("style", settings.on_style, private=True),
    CommandRoute("history", followups.on_history, private=True),
    CommandRoute("settings", settings.on_settings, private=True),
    CommandRoute("cancel", recovery.on_cancel_command),
)
#: The commands' names, in the order the menus show them (/help lists them so).
COMMAND_NAMES = tuple(route.name for route in COMMANDS)
#: Command name -> its route.
BY_COMMAND = {route.name: route for route in COMMANDS}
#: The studio's command chips, in the order the page shows them (its text box is ``/anime``; ``/start`` is for chats).
STUDIO_CHIPS = ("settings", "style", "history", "help", "cancel")
#: What a command that is not in the table gets.
UNKNOWN_COMMAND: CommandHandler = welcome.on_unknown


@dataclass(frozen=True)
class ButtonRoute:
    """What a button about a request does and in which states of its request it may."""

    handler: RequestButtonHandler
    states: frozenset[RequestState]


#: An open confirmation card (expiry is checked too).
CARD_STATES = frozenset({S.AWAITING_CONFIRMATION})
#: A picture that was delivered.
DONE_STATES = frozenset({S.DELIVERED})

#: Which button works in which state of its request: the one table the conversation consults.
BUTTONS: dict[Action, ButtonRoute] = {
    Action.CONFIRM: ButtonRoute(card.on_confirm, CARD_STATES),
    Action.EDIT: ButtonRoute(card.on_edit, CARD_STATES),
    Action.RETRY: ButtonRoute(card.on_retry, CARD_STATES),
    Action.RETRY_AS: ButtonRoute(card.on_retry_as, CARD_STATES),
    Action.STYLE: ButtonRoute(card.on_style, CARD_STATES),
    Action.STYLE_SET: ButtonRoute(card.on_style_set, CARD_STATES),
    Action.DETAILS: ButtonRoute(card.on_details, CARD_STATES),
    Action.KEEP_SAID: ButtonRoute(card.on_keep_said, CARD_STATES),
    Action.CANCEL: ButtonRoute(recovery.on_cancel, frozenset({S.AWAITING_CONFIRMATION, S.QUEUED, S.RUNNING})),
    Action.RESTYLE: ButtonRoute(followups.on_restyle, DONE_STATES),
    Action.RESTYLE_AS: ButtonRoute(followups.on_restyle_as, DONE_STATES),
    Action.REROLL: ButtonRoute(followups.on_reroll, DONE_STATES),
    Action.BASE: ButtonRoute(followups.on_base, DONE_STATES),
    Action.VARIATIONS: ButtonRoute(variations.on_variations, DONE_STATES),
    Action.KEEP: ButtonRoute(variations.on_keep, DONE_STATES),
    Action.UPSCALE: ButtonRoute(upscaling.on_upscale, DONE_STATES),
    Action.RESEND: ButtonRoute(followups.on_resend, DONE_STATES | {S.RUNNING}),  # running: drawn, upload failed
    Action.TRY_AGAIN: ButtonRoute(recovery.on_try_again, frozenset({S.QUEUED})),  # drawn, but could not be stored
    Action.RETRY_MISSING: ButtonRoute(recovery.on_retry_missing, CARD_STATES),  # waited for a missing model
    Action.USE_SKETCH: ButtonRoute(composition.on_use_sketch, frozenset({S.QUEUED, S.RUNNING, S.DELIVERED, S.FAILED, S.CANCELLED})),
    Action.REMIX: ButtonRoute(remix.on_remix, DONE_STATES),
    Action.REMIX_STRENGTH: ButtonRoute(remix.on_strength, CARD_STATES),
    Action.ASPECT: ButtonRoute(remix.on_aspect, CARD_STATES),
    Action.DRAW_AGAIN: ButtonRoute(dropped.on_draw_again, DONE_STATES),
    Action.KEEPS: ButtonRoute(keeps.on_keeps, CARD_STATES),
}

#: Settings buttons (their request is ``handlers.cards.NO_REQUEST``): personal ones for whoever presses,
#: chat-wide ones (one per :data:`handlers.chat_settings.CHAT_SETTINGS` entry) for the chat's admins.
SETTINGS_BUTTONS: dict[Action, SettingsButtonHandler] = {
    Action.SET_LANGUAGE: settings.on_language,
    Action.DEFAULT_STYLE: settings.on_default_style,
    Action.VOICE_REPLIES: settings.on_voice_replies,
    **{entry.action: settings.on_chat_setting for entry in CHAT_SETTINGS},
}
