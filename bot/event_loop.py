"""What keeps the bot's event loop quick: uvloop's loop where it is installed, and a start-up heap frozen out of the GC.

uvloop (a dependency on Linux and macOS) does the loop's own work — socket
reads and writes, readiness polling, callbacks — in C on libuv. The bot's
events are mostly small database round trips (``db.units``), each costing
a write, a poll and a read. Without uvloop (Windows, or ``pip uninstall uvloop``) the same code runs on
asyncio's loop. The bot and the image worker run on :func:`run`.

What start-up loads (jieba, CC-CEDICT, the content policy's terms, the
libraries) is about half a million containers that live as long as the
process; every full garbage collection walked all of them, and no event was
handled meanwhile. :func:`freeze_start_up_heap` leaves them out of collections
from then on (``docs/decisions/event-loop-gc-freeze.md``).
"""

from __future__ import annotations

import asyncio
import gc
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


def freeze_start_up_heap() -> int:
    """Collect once, then leave every object alive now out of later collections (``gc.freeze``; call after loading).

    Returns how many objects are left out.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
