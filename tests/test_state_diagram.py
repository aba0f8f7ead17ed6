"""The state diagram beside the conversation's routes is the state table, drawn: every edge and no other."""

from __future__ import annotations

import re

import handlers.conversation.routes
from db.states import INITIAL_STATES, TERMINAL_STATES, TRANSITIONS, RequestState
from handlers.actions import Action
from handlers.conversation.routes import BUTTONS, COMMANDS, SETTINGS_BUTTONS, STUDIO_CHIPS
from handlers.i18n import has_message

EDGE = re.compile(r"^\s*(\[\*\]|\w+)\s*-->\s*(\[\*\]|\w+)", re.MULTILINE)


def diagram_edges() -> set[tuple[str, str]]:
    doc = handlers.conversation.routes.__doc__ or ""
    mermaid = doc.split("```mermaid", 1)[1].split("```", 1)[0]
    return set(EDGE.findall(mermaid))


def test_the_diagram_draws_exactly_the_transition_table() -> None:
    edges = diagram_edges()
    moves = {(a, b) for a, b in edges if "[*]" not in (a, b)}
    assert moves == {(s.value, t.value) for s, targets in TRANSITIONS.items() for t in targets}


def test_the_diagram_starts_and_ends_where_requests_do() -> None:
    edges = diagram_edges()
    assert {b for a, b in edges if a == "[*]"} == {s.value for s in INITIAL_STATES}
    assert {a for a, b in edges if b == "[*]"} == {s.value for s in TERMINAL_STATES}


def test_every_state_is_drawn() -> None:
    drawn = {name for edge in diagram_edges() for name in edge} - {"[*]"}
    assert drawn == {s.value for s in RequestState}


def test_every_button_action_has_one_route() -> None:
    """A button is about a request (with the states it works in) or a setting, never both, never neither."""
    assert set(BUTTONS) | set(SETTINGS_BUTTONS) == set(Action)
    assert not set(BUTTONS) & set(SETTINGS_BUTTONS)


def test_every_command_is_described_and_the_studio_offers_only_commands() -> None:
    names = [route.name for route in COMMANDS]
    assert len(names) == len(set(names))
    for route in COMMANDS:
        assert has_message(route.description)
        assert all(has_message(f"{route.description}.{option.name}") for option in route.options)
    assert set(STUDIO_CHIPS) <= set(names)
