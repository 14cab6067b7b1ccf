"""Group commit: sync=False writes become durable through shared, off-loop fsyncs."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from storage import group_commit, logfile
from storage.errors import StoreError
from storage.store import FILE_NAME, Store

TABLE = "notes"


class _OsSeenByGroupCommit:
    """The os module as storage.group_commit sees it, with only `fsync` replaced.

    Patching `os.fsync` itself would also replace the engine's own fsyncs (sync=True
    writes, compaction), so the counts would no longer be the group commit's alone.
    """

    def __init__(self, fsync: Callable[[int], None]) -> None:
        self.fsync = fsync

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


class FsyncSpy:
    """Counts (and can fail or hold back) the fsyncs GroupCommit runs in its worker thread."""

    def __init__(self) -> None:
        self.calls = 0
        self.error: OSError | None = None
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()  # not held back unless a test asks for it

    def __call__(self, fd: int) -> None:
        self.calls += 1
        self.entered.set()
        # bounded, so a broken test fails instead of hanging the worker thread forever
        if not self.release.wait(timeout=10):
            raise AssertionError("the test never released the fsync")
        if self.error is not None:
            raise self.error
        os.fsync(fd)

    def hold(self) -> None:
        self.release.clear()

    async def started(self) -> None:
        """Until an fsync has begun in the worker thread."""
        assert await asyncio.to_thread(self.entered.wait, 10), "no fsync began"


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> Iterator[FsyncSpy]:
    spy = FsyncSpy()
    monkeypatch.setattr(group_commit, "os", _OsSeenByGroupCommit(spy))
    yield spy
    spy.release.set()  # never leave a worker thread waiting


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path, fsync=True) as opened:
        yield opened


async def synced(store: Store) -> None:
    """`store.synced()`, bounded: a round that never covers the writes must fail, not hang."""
    async with asyncio.timeout(10):
        await store.synced()


def write_unsynced(store: Store, n: int) -> None:
    with store.db.transaction(sync=False):
        store.db.table(TABLE).insert({"n": n})


async def waiting_on_a_held_fsync(store: Store, fsyncs: FsyncSpy, n: int) -> asyncio.Task[None]:
    """Write `n` unsynced, and a waiter for it whose round's fsync is held until released."""
    fsyncs.hold()
    write_unsynced(store, n)
    waiter = asyncio.create_task(synced(store))
    await fsyncs.started()
    return waiter


def stored_numbers(data_dir: Path) -> list[int]:
    with Store.open(data_dir) as reopened:
        return sorted(doc["n"] for doc in reopened.db.table(TABLE))


async def test_unsynced_writes_are_durable_only_once_synced(store: Store, fsyncs: FsyncSpy) -> None:
    storage = store.db.storage
    before = storage.appended
    write_unsynced(store, 1)
    assert storage.appended > before
    assert storage.durable < storage.appended
    assert fsyncs.calls == 0  # appending alone never waits for the disk
    await synced(store)
    assert storage.durable == storage.appended
    assert fsyncs.calls == 1
    await synced(store)  # nothing new: no second fsync
    assert fsyncs.calls == 1


async def test_concurrent_writers_share_fsyncs(
    tmp_path: Path, store: Store, fsyncs: FsyncSpy
) -> None:
    writers = 20

    async def writer(n: int) -> None:
        write_unsynced(store, n)
        await synced(store)

    await asyncio.gather(*(writer(n) for n in range(writers)))
    assert 1 <= fsyncs.calls < writers
    assert store.db.storage.durable == store.db.storage.appended
    store.close()
    assert stored_numbers(tmp_path) == list(range(writers))


async def test_writers_arriving_during_an_fsync_share_the_next_one(
    store: Store, fsyncs: FsyncSpy
) -> None:
    first = await waiting_on_a_held_fsync(store, fsyncs, 0)
    # these land after the running fsync read `appended`, so it cannot cover them
    for n in range(1, 11):
        write_unsynced(store, n)
    late = [asyncio.create_task(synced(store)) for _ in range(10)]
    await asyncio.sleep(0)  # every late waiter now waits on the running round
    fsyncs.release.set()
    await asyncio.gather(first, *late)
    # one round for the first write, one shared by all ten late ones
    assert fsyncs.calls == 2
    assert store.db.storage.durable == store.db.storage.appended


async def test_a_failed_fsync_fails_every_waiter_and_breaks_the_store(
    store: Store, fsyncs: FsyncSpy
) -> None:
    fsyncs.error = OSError(5, "Input/output error")

    async def writer(n: int) -> None:
        write_unsynced(store, n)
        await synced(store)

    results = await asyncio.gather(*(writer(n) for n in range(5)), return_exceptions=True)
    assert all(isinstance(r, StoreError) for r in results), results
    assert "Input/output error" in str(results[0])
    # the kernel may have dropped the unsynced pages: nothing more may be added on top
    with pytest.raises(StoreError):
        write_unsynced(store, 99)
    with pytest.raises(StoreError), store.db.transaction():
        store.db.table(TABLE).insert({"n": 100})
    for _ in range(2):
        with pytest.raises(StoreError):
            await synced(store)
    assert store.db.storage.durable < store.db.storage.appended


async def test_a_cancelled_waiter_does_not_cancel_the_shared_fsync(
    tmp_path: Path, store: Store, fsyncs: FsyncSpy
) -> None:
    fsyncs.hold()
    write_unsynced(store, 1)
    write_unsynced(store, 2)
    quitter = asyncio.create_task(synced(store))
    stayer = asyncio.create_task(synced(store))
    await fsyncs.started()  # both now wait on the same round
    quitter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await quitter
    fsyncs.release.set()
    await stayer
    assert fsyncs.calls == 1  # the round ran once, to its end
    assert store.db.storage.durable == store.db.storage.appended
    store.close()
    assert stored_numbers(tmp_path) == [1, 2]


async def test_without_fsync_synced_returns_at_once(tmp_path: Path, fsyncs: FsyncSpy) -> None:
    with Store.open(tmp_path, fsync=False) as store:
        write_unsynced(store, 1)
        assert store.db.storage.durable == store.db.storage.appended
        await synced(store)
    assert fsyncs.calls == 0


async def test_a_synced_transaction_makes_earlier_unsynced_ones_durable(
    store: Store, fsyncs: FsyncSpy
) -> None:
    storage = store.db.storage
    for n in range(3):
        write_unsynced(store, n)
    assert storage.durable < storage.appended
    with store.db.transaction():
        store.db.table(TABLE).insert({"n": 3})
    # its fsync covers every byte appended before it
    assert storage.durable == storage.appended
    await synced(store)
    assert fsyncs.calls == 0


async def test_compaction_makes_unsynced_writes_durable(
    tmp_path: Path, store: Store, fsyncs: FsyncSpy
) -> None:
    storage = store.db.storage
    for n in range(3):
        write_unsynced(store, n)
    assert storage.durable < storage.appended
    store.db.compact()
    assert storage.durable == storage.appended
    await synced(store)
    assert fsyncs.calls == 0
    store.close()
    assert stored_numbers(tmp_path) == [0, 1, 2]


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every write() the engine makes to its log (it writes via logfile)."""
    sizes: list[int] = []
    real = logfile.write_all

    def counting(fd: int, data: bytes) -> None:
        sizes.append(len(data))
        real(fd, data)

    monkeypatch.setattr(logfile, "write_all", counting)
    return sizes


async def test_a_round_writes_the_whole_batch_with_one_write(
    tmp_path: Path, store: Store, fsyncs: FsyncSpy, writes: list[int]
) -> None:
    log_file = tmp_path / FILE_NAME
    size = log_file.stat().st_size
    storage = store.db.storage
    before = storage.appended
    for n in range(10):
        write_unsynced(store, n)
    # kept in memory until a round: the file has not grown, nothing was written
    assert log_file.stat().st_size == size
    assert writes == []
    await synced(store)
    assert writes == [storage.appended - before]  # one write, every line of the batch
    assert log_file.stat().st_size == size + writes[0]
    assert fsyncs.calls == 1
    store.close()
    assert stored_numbers(tmp_path) == list(range(10))


async def test_a_synced_write_first_writes_the_unwritten_lines_before_its_own(
    tmp_path: Path, store: Store, fsyncs: FsyncSpy
) -> None:
    write_unsynced(store, 1)
    with store.db.transaction():
        store.db.table(TABLE).update({"n": 2})  # must land after the insert it changes
    store.close()
    assert stored_numbers(tmp_path) == [2]


async def test_a_failed_batch_write_fails_every_waiter_and_changes_nothing_on_disk(
    tmp_path: Path, store: Store, fsyncs: FsyncSpy, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_unsynced(store, 0)
    await synced(store)  # one kept write before the disk fills up

    def disk_full(fd: int, data: bytes) -> None:
        os.write(fd, data[: len(data) // 2])  # a torn line, as a full disk leaves it
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(logfile, "write_all", disk_full)

    async def writer(n: int) -> None:
        write_unsynced(store, n)
        await synced(store)

    results = await asyncio.gather(*(writer(n) for n in range(1, 6)), return_exceptions=True)
    assert all(isinstance(r, StoreError) for r in results), results
    assert "No space left on device" in str(results[0])
    assert fsyncs.calls == 1  # no fsync after a failed write
    # those changes are in memory and cannot be undone: the store refuses anything more,
    # and a refused transaction leaves nothing behind in memory either
    with pytest.raises(StoreError):
        write_unsynced(store, 99)
    assert 99 not in [doc["n"] for doc in store.db.table(TABLE)]
    for _ in range(2):
        with pytest.raises(StoreError):
            await synced(store)
    store.close()
    monkeypatch.undo()
    assert stored_numbers(tmp_path) == [0]  # the torn half line was cut off


async def test_closing_writes_what_no_round_has_written_yet(
    tmp_path: Path, fsyncs: FsyncSpy
) -> None:
    with Store.open(tmp_path, fsync=True) as store:
        write_unsynced(store, 7)
    assert stored_numbers(tmp_path) == [7]


async def test_rounds_compact_a_log_that_only_unsynced_writes_made_grow(
    tmp_path: Path, fsyncs: FsyncSpy
) -> None:
    with Store.open(tmp_path, fsync=True, compact_min_ops=20, compact_ratio=0.0) as store:
        storage = store.db.storage
        generation = storage.generation
        for n in range(30):
            write_unsynced(store, n)
        assert storage.generation == generation  # an unsynced write never compacts
        await synced(store)
        assert storage.generation == generation + 1
        assert storage.durable == storage.appended
    assert stored_numbers(tmp_path) == list(range(30))


async def test_a_broken_store_is_never_compacted_into_looking_durable(
    tmp_path: Path, store: Store, fsyncs: FsyncSpy, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = store.db.storage
    fsyncs.error = OSError(5, "Input/output error")
    write_unsynced(store, 1)
    with pytest.raises(StoreError):
        await synced(store)
    generation = storage.generation
    # a compaction would write a fresh, fsynced snapshot and call everything durable
    monkeypatch.setattr(storage, "_compaction_due", lambda: True)
    for _ in range(2):
        with pytest.raises(StoreError):
            await synced(store)
    assert storage.generation == generation
    assert storage.durable < storage.appended


async def test_a_closed_store_is_never_compacted(tmp_path: Path) -> None:
    store = Store.open(tmp_path, fsync=True, compact_min_ops=5, compact_ratio=0.0)
    storage = store.db.storage
    for n in range(10):
        write_unsynced(store, n)
    generation = storage.generation
    store.close()  # writes the batch itself
    storage.compact_if_due()  # a round still running at shutdown must not touch the file
    assert storage.generation == generation
    assert stored_numbers(tmp_path) == list(range(10))


async def test_waiters_are_cancelled_with_the_round_they_wait_on(
    store: Store, fsyncs: FsyncSpy
) -> None:
    waiter = await waiting_on_a_held_fsync(store, fsyncs, 1)
    rounds = store._group_commit._rounds
    assert rounds is not None
    rounds.cancel()  # as the loop's shutdown does
    with pytest.raises(asyncio.CancelledError):
        await waiter  # not left waiting for ever
    fsyncs.release.set()
    await synced(store)  # a later waiter starts a new round
    assert store.db.storage.durable == store.db.storage.appended
