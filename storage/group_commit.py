"""Group commit: writes made with `transaction(sync=False)` made durable, one fsync per batch."""

from __future__ import annotations

import asyncio
import os

from storage.engine import LogStorage


class GroupCommit:
    """Waits until everything appended so far is on disk, without blocking the event loop.

    One fsync runs at a time, in a worker thread. Every writer that arrives while it runs
    shares the next one, so under load a single fsync covers a whole batch of requests,
    and the loop keeps serving while the disk works.
    """

    def __init__(self, storage: LogStorage) -> None:
        self._storage = storage
        self._round: asyncio.Future[None] | None = None

    async def wait(self) -> None:
        """Return once every write appended before this call is durable; StoreError if never."""
        storage = self._storage
        target = storage.appended
        while storage.durable < target:
            if self._round is None:
                self._round = asyncio.ensure_future(self._sync())
                # every waiter may have given up: the outcome is kept in the store anyway
                self._round.add_done_callback(_consume)
            # shielded: a caller that gives up must not cancel the fsync others wait on
            await asyncio.shield(self._round)

    async def _sync(self) -> None:
        storage = self._storage
        upto = storage.appended
        try:
            fd = storage.sync_handle()
            try:
                await asyncio.get_running_loop().run_in_executor(None, os.fsync, fd)
            except OSError as exc:
                raise storage.sync_failed(exc) from None
            finally:
                os.close(fd)
            storage.mark_durable(upto)
        finally:
            self._round = None


def _consume(done: asyncio.Future[None]) -> None:
    if not done.cancelled():
        done.exception()
