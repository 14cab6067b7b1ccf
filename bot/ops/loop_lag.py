"""The event loop's own lag: how late a 10 ms timer wakes up, measured inside the process."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable

PROBE_EVERY_S = 0.010  # the lag probe's period: a pause longer than this is seen whole
# How long a thread may keep the GIL while another waits for it (CPython's default: 5 ms).
GIL_SWITCH_S = 0.001

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


def share_the_gil_quickly(interval: float = GIL_SWITCH_S) -> None:
    """Make a busy worker thread hand the GIL back to the loop within `interval`.

    The loop thread lets go of the GIL at every system call (each socket read and write,
    each file write). While a worker thread runs Python (a segment append encoding events,
    a compaction encoding the store), the worker then keeps the GIL for the whole switch
    interval before the loop gets it back: at CPython's 5 ms, one request of a few system
    calls took 20-45 ms (bench/history_bench.py, py-spy on the loop thread). Shorter
    slices cost the worker a little throughput and the loop nothing.
    """
    sys.setswitchinterval(interval)
