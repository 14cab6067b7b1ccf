"""Group commit: writes made with `transaction(sync=False)` made durable, one fsync per batch.

Also the driver of background compaction (`BackgroundCompactor`), which the group commit
starts when a write or a round finds one due.
"""

from __future__ import annotations

import asyncio
import logging
import os

from storage.engine import LogStorage
from storage.errors import StoreError

log = logging.getLogger(__name__)


class BackgroundCompactor:
    """Runs a store's compactions with the slow part in a worker thread.

    One at a time: `begin_compaction` on the loop (a shallow snapshot), `job.write` in the
    default executor, `finish_compaction` back on the loop. Nobody waits for it but
    `compact()`'s callers: the store keeps serving, appending to the old file meanwhile.
    """

    def __init__(self, storage: LogStorage) -> None:
        self._storage = storage
        self._task: asyncio.Task[None] | None = None

    def start_if_due(self) -> None:
        """Start a compaction task if the store wants one (background mode) and none runs.

        Outside a running loop (a synchronous caller) it does nothing: the store asks again.
        """
        storage = self._storage
        if storage.background_compaction and storage.compaction_due():
            self._start()

    async def compact(self, *, force: bool = False) -> None:
        """Wait for the running compaction, then run one more if due (or if `force`)."""
        running = self._current()
        if running is not None:
            # shielded: a caller that gives up must not stop the compaction for the others
            await asyncio.shield(running)
        if force or self._storage.compaction_due():
            task = self._start()
            if task is not None:
                await asyncio.shield(task)

    def _current(self) -> asyncio.Task[None] | None:
        task = self._task
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        # one stranded on a loop that was closed under it (tests) is not running
        if task is None or task.done() or task.get_loop() is not loop:
            return None
        return task

    def _start(self) -> asyncio.Task[None] | None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        task = self._current()
        if task is None:
            task = self._task = loop.create_task(self._run())
        return task

    async def _run(self) -> None:
        storage = self._storage
        try:
            job = storage.begin_compaction()
        except StoreError as exc:
            # closed or broken meanwhile: whatever made it so reports it to the writers
            log.warning("background compaction not started: %s", exc)
            return
        if job is None:
            return  # someone else's is under way
        try:
            await asyncio.get_running_loop().run_in_executor(None, job.write)
        finally:
            # also when cancelled (the loop shutting down): a job not written is discarded
            storage.finish_compaction(job)


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
        self._compactor = BackgroundCompactor(storage)
        # In background mode a write that finds a compaction due (a sync=True commit, or a
        # round's `compact_if_due`) starts it here, as its own task: no waiter waits for it.
        storage.set_compaction_listener(self._compactor.start_if_due)

    async def compact_in_background(self, *, force: bool = False) -> None:
        """Compact with the slow part off the loop, if due (now if `force`), and wait for it.

        A compaction already under way is waited for first. Works in either mode.
        """
        await self._compactor.compact(force=force)

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
                    # Inline mode: compacting makes everything durable by itself. Background
                    # mode: starts the compactor's task, which nobody here waits for.
                    storage.compact_if_due()
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
