"""The event loop the bot and the image worker run on: uvloop's where it is installed, else asyncio's own.

uvloop (a dependency on Linux and macOS) does the loop's own work — socket
reads and writes, readiness polling, callbacks — in C on libuv. The bot's
events are mostly small database round trips (``db.units``), each costing
a write, a poll and a read: ``python -m bench.flow`` measures its share.
Without uvloop (Windows, or ``pip uninstall uvloop``) the same code runs on
asyncio's loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def name_of(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: whose event loop ``loop`` is (for the start-up log line)."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on a new event loop (see the module docstring), as ``asyncio.run`` does."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
