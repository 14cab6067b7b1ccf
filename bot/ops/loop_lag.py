"""The event loop's own lag: how late a 10 ms timer wakes up, measured inside the process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

PROBE_EVERY_S = 0.010  # the lag probe's period: a pause longer than this is seen whole

Observe = Callable[[float], None]


async def watch_loop_lag(observe: Observe, *, every: float = PROBE_EVERY_S) -> None:
    """Sleep `every` seconds again and again and report each wake-up's lateness (seconds).

    Anything that holds the loop (a long computation, an inline fsync, the GIL held by a
    worker thread) delays the wake-up by as much: the lateness is the pause, as callers of
    the loop felt it. Runs until cancelled.
    """
    clock = time.perf_counter
    while True:
        start = clock()
        await asyncio.sleep(every)
        observe(max(0.0, clock() - start - every))
