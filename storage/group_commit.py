"""Group commit: writes made with `transaction(sync=False)` made durable, one fsync per batch."""

from __future__ import annotations

import asyncio
import os

from storage.engine import LogStorage


class GroupCommit:
    """Waits until everything appended so far is on disk, without blocking the event loop.

    One round runs at a time: it writes every line the batch left in memory with one
    write(), then fsyncs in a worker thread. Every writer that arrives meanwhile shares the
    next round, so under load a single write and fsync cover a whole batch of requests, and
    the loop keeps serving while the disk works.
    """

    def __init__(self, storage: LogStorage) -> None:
        self._storage = storage
        # (bytes appended when the waiter came, its future): each waiter has its own future,
        # so one that gives up cancels only itself, never the fsync the others wait on.
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._syncing: asyncio.Task[None] | None = None

    async def wait(self) -> None:
        """Return once every write appended before this call is durable; StoreError if never."""
        storage = self._storage
        target = storage.appended
        if storage.durable >= target:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((target, waiter))
        if self._syncing is None or self._syncing.done():  # done: its loop was closed under it
            self._syncing = asyncio.create_task(self._sync_rounds())
        await waiter

    async def _sync_rounds(self) -> None:
        storage = self._storage
        try:
            while self._waiters:
                upto = storage.appended
                try:
                    storage.write_unwritten()  # the whole batch in one write
                    storage.compact_if_due()
                    fd = storage.sync_handle()
                    try:
                        await asyncio.get_running_loop().run_in_executor(None, os.fsync, fd)
                    except OSError as exc:
                        raise storage.sync_failed(exc) from None
                    finally:
                        os.close(fd)
                except Exception as exc:  # the store is broken now: no later round can help
                    waiters, self._waiters = self._waiters, []
                    for _, waiter in waiters:
                        if not waiter.done():
                            waiter.set_exception(exc)
                    continue
                storage.mark_durable(upto)
                waiting = []
                for target, waiter in self._waiters:
                    if target > upto:
                        waiting.append((target, waiter))  # came after this round began
                    elif not waiter.done():
                        waiter.set_result(None)
                self._waiters = waiting
        finally:
            self._syncing = None
