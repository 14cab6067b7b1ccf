"""Waiting, in asyncio, for a change a stand-in's server thread makes under its lock."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Changes:
    """The stand-ins' one way to wait: `notify()` after each change (lock held), and
    `until(check)` in the waiter's loop, which looks again after every change."""

    def __init__(self, cond: threading.Condition) -> None:
        self._cond = cond
        self._watchers: set[Callable[[], None]] = set()

    def notify(self) -> None:
        """Wake every waiter, threads and loops alike. Call with the lock held."""
        self._cond.notify_all()
        for wake in list(self._watchers):
            wake()

    async def until(self, check: Callable[[], T | None], timeout: float) -> T:  # noqa: ASYNC109
        """`check()` (run under the lock) once it returns something; TimeoutError after
        `timeout` seconds. The caller's loop keeps running meanwhile."""
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()

        def wake() -> None:
            # Called from the server's thread; a closed loop means the waiter is gone.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(changed.set)

        with self._cond:
            self._watchers.add(wake)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    changed.clear()  # before looking, so a change made meanwhile wakes us
                    with self._cond:
                        result = check()
                    if result is not None:
                        return result
                    await changed.wait()
        finally:
            with self._cond:
                self._watchers.discard(wake)
