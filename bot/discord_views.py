"""Discord components for neutral replies: persistent buttons, a picker select, the edit modal.

Buttons and selects are :class:`discord.ui.DynamicItem` s whose ``custom_id``
carries the neutral :attr:`handlers.replies.Button.data` payload (action and
request id), so a press is understood from the id alone: they keep working
after a restart once :data:`DYNAMIC_ITEMS` are registered with
``Client.add_dynamic_items``.

The edit modal's ``custom_id`` carries the request id too, and its submission
is read from the interaction payload (:func:`modal_submission`), so it lands
on the right card after a restart or when several forms are open. discord.py
still keeps each :class:`discord.ui.Modal` it shows in memory until it is
submitted; a form closed without submitting is dropped after
:data:`MODAL_TIMEOUT` (a later submission is still understood from its id).
What a press means is decided by the conversation; the client only needs
:class:`ComponentSink`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import discord

from handlers.replies import Button, Reply

BUTTON_PREFIX = "v2a:"
SELECT_PREFIX = "v2a-s:"
MODAL_PREFIX = "v2a-edit:"
MODAL_INPUT = "text"
#: Discord allows 25 rows of options in a select and 5 buttons per row.
MAX_OPTIONS = 25
#: Modal inputs may hold at most 4000 characters.
MAX_INPUT = 4000
#: Seconds discord.py keeps an unsubmitted edit modal in memory.
MODAL_TIMEOUT = 900.0

_BUTTON_ID = re.escape(BUTTON_PREFIX) + r"(?P<data>\S+)"
_SELECT_ID = re.escape(SELECT_PREFIX) + r"(?P<data>\S+)"


class ComponentSink(Protocol):
    """The client side that turns component interactions into neutral events."""

    async def on_press(self, interaction: discord.Interaction, data: str) -> None:
        """A button press or select choice, as ``action:request_id[:value]``."""


def _sink(interaction: discord.Interaction) -> ComponentSink:
    return interaction.client  # type: ignore[return-value]  # the client is bot.discord's, a ComponentSink


class ReplyButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=_BUTTON_ID):
    """A button whose custom id is ``v2a:<Button.data>``."""

    def __init__(self, data: str, label: str = "") -> None:
        super().__init__(
            discord.ui.Button(label=label or "…", custom_id=BUTTON_PREFIX + data, style=discord.ButtonStyle.secondary)
        )
        self.data = data

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> ReplyButton:
        if not isinstance(item, discord.ui.Button):  # discord.py logs and skips a press whose item fails here
            raise TypeError(f"{match.string!r} is not a button")
        return cls(match["data"], item.label or "")

    async def callback(self, interaction: discord.Interaction) -> None:
        await _sink(interaction).on_press(interaction, self.data)


class ReplySelect(discord.ui.DynamicItem[discord.ui.Select[Any]], template=_SELECT_ID):
    """A select whose custom id is ``v2a-s:<action>:<request_id>``; the chosen option is the value."""

    def __init__(self, data: str, options: list[discord.SelectOption], placeholder: str | None = None) -> None:
        super().__init__(discord.ui.Select(custom_id=SELECT_PREFIX + data, options=options, placeholder=placeholder))
        self.data = data

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> ReplySelect:
        if not isinstance(item, discord.ui.Select):  # discord.py logs and skips a choice whose item fails here
            raise TypeError(f"{match.string!r} is not a select")
        return cls(match["data"], list(item.options), item.placeholder)

    async def callback(self, interaction: discord.Interaction) -> None:
        await _sink(interaction).on_press(interaction, f"{self.data}:{self.item.values[0]}")


#: Register at start (``setup_hook``) so old messages' components still dispatch.
DYNAMIC_ITEMS = (ReplyButton, ReplySelect)


def is_ours(custom_id: str) -> bool:
    """True for the custom id of a component :data:`DYNAMIC_ITEMS` dispatch (anything else gets no callback)."""
    return any(re.fullmatch(pattern, custom_id) for pattern in (_BUTTON_ID, _SELECT_ID))


def shown_as_select(reply: Reply) -> bool:
    """A picker (its buttons pick a value for one action and request) of 2 to :data:`MAX_OPTIONS` choices is a select."""
    return reply.kind == "picker" and 1 < sum(len(row) for row in reply.buttons) <= MAX_OPTIONS


def view_for(reply: Reply) -> discord.ui.View | None:
    """The components for ``reply``: a select for pickers, else its rows of buttons (None without any)."""
    if not reply.buttons:
        return None
    view = discord.ui.View(timeout=None)
    if shown_as_select(reply):
        buttons = [b for row in reply.buttons for b in row]
        first = buttons[0]
        options = [discord.SelectOption(label=b.label[:100], value=b.value) for b in buttons]
        view.add_item(ReplySelect(f"{first.action}:{first.request_id}", options))
        return view
    for index, row in enumerate(reply.buttons[:5]):
        for button in row[:5]:
            item = ReplyButton(button.data, button.label[:80])
            item.item.row = index
            view.add_item(item)
    return view


def edit_modal(title: str, prefill: str, request_id: str) -> discord.ui.Modal:
    """The transcript editor: one long text input prefilled with the current text; the custom id names the request."""
    modal = discord.ui.Modal(title=title[:45] or "…", custom_id=(MODAL_PREFIX + request_id)[:100], timeout=MODAL_TIMEOUT)
    modal.add_item(
        discord.ui.TextInput(
            label=title[:45] or "…",
            style=discord.TextStyle.long,
            default=prefill[:MAX_INPUT] or None,
            max_length=MAX_INPUT,
            custom_id=MODAL_INPUT,
        )
    )
    return modal


@dataclass(frozen=True)
class ModalSubmission:
    """An edit-modal submission: the request its form was opened for, and the text (None when missing)."""

    request_id: str
    text: str | None


def modal_submission(interaction: discord.Interaction) -> ModalSubmission | None:
    """The request id and text of an edit-modal submission, or None when ``interaction`` is something else."""
    data: Mapping[str, Any] = interaction.data or {}
    custom_id = str(data.get("custom_id", ""))
    if interaction.type is not discord.InteractionType.modal_submit or not custom_id.startswith(MODAL_PREFIX):
        return None
    request_id = custom_id[len(MODAL_PREFIX) :]
    stack = list(data.get("components", []))
    while stack:
        component = stack.pop()
        if component.get("custom_id") == MODAL_INPUT:
            return ModalSubmission(request_id, str(component.get("value", "")))
        stack += component.get("components", []) + ([component["component"]] if "component" in component else [])
    return ModalSubmission(request_id, None)


def edit_again_button(reply: Reply, label: str) -> discord.ui.View:
    """Fallback when the modal can no longer be the response: a button whose press opens it."""
    view = discord.ui.View(timeout=None)
    view.add_item(ReplyButton(Button(label, reply.asks_again, reply.request_id).data, label))
    return view
