"""Group commit: writes made with `transaction(sync=False)` made durable, one fsync per batch."""

from __future__ import annotations

import asyncio
import os

from storage.engine import LogStorage
from storage.errors import StoreError


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
        # so one that gives up cancels only itself, never the round the others wait on.
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._rounds: asyncio.Task[None] | None = None

    async def wait(self) -> None:
        """Return once every write appended before this call is durable; StoreError if never."""
        storage = self._storage
        target = storage.appended
        if storage.durable >= target:
            return
        loop = asyncio.get_running_loop()
        if self._rounds is None or self._rounds.get_loop() is not loop:
            # none running, or one stranded on a loop that was closed under it (tests)
            self._waiters = [w for w in self._waiters if w[1].get_loop() is loop]
            self._rounds = loop.create_task(self._run_rounds())
        waiter = loop.create_future()
        self._waiters.append((target, waiter))
        await waiter

    async def _run_rounds(self) -> None:
        storage = self._storage
        try:
            while self._waiters:
                upto = storage.appended
                try:
                    storage.write_unwritten()  # the whole batch in one write
                    storage.compact_if_due()  # which makes everything durable by itself
                    if storage.durable < upto:
                        await self._fsync()
                        storage.mark_durable(upto)
                except Exception as exc:
                    error = exc if isinstance(exc, StoreError) else StoreError(str(exc))
                    self._settle(storage.durable, error)
                    continue
                self._settle(upto, None)
        finally:
            self._rounds = None
            # cancelled (the loop is shutting down): nobody is left to finish these
            for _, waiter in self._waiters:
                waiter.cancel()
            self._waiters = []

    async def _fsync(self) -> None:
        storage = self._storage
        fd = storage.sync_handle()
        try:
            await asyncio.get_running_loop().run_in_executor(None, os.fsync, fd)
        except OSError as exc:
            raise storage.sync_failed(exc) from None
        finally:
            os.close(fd)

    def _settle(self, durable: int, error: StoreError | None) -> None:
        """Wake the waiters whose writes are within `durable`; with `error`, fail the rest."""
        waiting = []
        for target, waiter in self._waiters:
            if waiter.done():
                continue  # gave up
            if target <= durable:
                waiter.set_result(None)
            elif error is not None:
                # each its own exception: the waiters raise them in their own tasks
                failed = StoreError(str(error))
                failed.__cause__ = error.__cause__
                waiter.set_exception(failed)
            else:
                waiting.append((target, waiter))  # came after this round began
        self._waiters = waiting
