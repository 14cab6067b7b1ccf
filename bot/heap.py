"""Keeps the garbage collector's full passes short in a process holding the whole store."""

from __future__ import annotations

import gc
from typing import Any

_installed = False


def settle_long_lived() -> None:
    """Move everything alive now out of the collector's reach, and keep doing so.

    The store keeps every document in memory: about a million containers at 100k sends. A
    full collection walks every tracked object, and at that size it pauses the event loop
    for 0.1 to 1 s (measured by bench/callback_bench.py), holding every request in flight.
    So the loaded store is frozen at start-up, and what survives each later full collection
    (the documents written since, still alive) is frozen too: the next full pass walks only
    what was created after it. Frozen objects are still freed as soon as nothing refers to
    them; only a reference cycle among them would outlive its use, and the full passes find
    next to none (the `collected` figures of gc.callbacks show tens of objects).
    """
    global _installed
    gc.collect()
    gc.freeze()
    # A full pass also records how many objects it left for the next one, which is then
    # put off until a quarter of that many more have piled up: counted before the freeze,
    # that was a quarter of the whole store, and the deferred pass walked them all at
    # once (a 127 ms stall, measured). This pass walks next to nothing and counts ~0.
    gc.collect()
    if not _installed:
        gc.callbacks.append(_freeze_after_full_pass)
        _installed = True


def _freeze_after_full_pass(phase: str, info: dict[str, Any]) -> None:
    if phase == "stop" and info["generation"] == 2:
        gc.freeze()
