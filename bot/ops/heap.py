"""Keeps the garbage collector's full passes short in a process holding the whole store."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import time
from collections.abc import Callable
from typing import Any

_installed = False
# A full pass every this many middle passes (CPython's default is 10). Each full pass walks
# only what was promoted since the last one, then freezes it, so more frequent passes are
# shorter: at 100k sends, 3 instead of 10 took the longest from 15 ms to 5 ms, and from
# 106 ms to 35 ms when requests seldom wait (fsync off), for no more time in total.
FULL_PASS_EVERY = 3


def settle_long_lived(on_pass: Callable[[int, float], None] | None = None) -> None:
    """Move everything alive now out of the collector's reach, and keep doing so.

    The store keeps every document in memory: about a million containers at 100k sends. A
    full collection walks every tracked object, and at that size it pauses the event loop
    for 0.1 to 1 s (measured by bench/callback_bench.py), holding every request in flight.
    So the loaded store is frozen at start-up, and what survives each later full collection
    (the documents written since, still alive) is frozen too: the next full pass walks only
    what was created after it. Frozen objects are still freed as soon as nothing refers to
    them; only a reference cycle among them would outlive its use, and the callback path
    makes none: over 30,000 callbacks no pass of any generation collected anything (the
    `collected` figure of gc.callbacks).
    """
    global _installed, _on_pass
    _on_pass = on_pass
    gc.collect()
    gc.freeze()
    # A full pass also records how many objects it left for the next one, which is then
    # put off until a quarter of that many more have piled up: counted before the freeze,
    # that was a quarter of the whole store, and the deferred pass walked them all at
    # once (a 127 ms stall, measured). This pass walks next to nothing and counts ~0.
    gc.collect()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_PASS_EVERY)
    if not _installed:
        gc.callbacks.append(_freeze_after_full_pass)
        _installed = True


_on_pass: Callable[[int, float], None] | None = None  # told each pass: (generation, seconds)
_started = 0.0


def _freeze_after_full_pass(phase: str, info: dict[str, Any]) -> None:
    global _started
    if phase == "start":
        _started = time.perf_counter()  # passes never overlap: the collector holds the GIL
        return
    if info["generation"] == 2:
        gc.freeze()
    if _on_pass is not None:
        # the collector pauses whichever thread ran it, the loop's included: /metrics shows
        # whether a long loop pause was a collection
        _on_pass(info["generation"], time.perf_counter() - _started)


def release_free_memory() -> bool:
    """Hand the C heap's free pages back to the system; False where the C library can't.

    A big archive pass frees most of the memory the sends it moved held, but glibc keeps
    freed pages for reuse, so the process stays at its high-water mark (a bot that moved
    10k sends at once stayed 54 MiB above what it used, measured by bench/history_bench.py).
    `malloc_trim` returns them. It takes a few milliseconds and releases the GIL (ctypes):
    call it from a worker thread.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim  # glibc only
    except (OSError, AttributeError):
        return None
    return trim
