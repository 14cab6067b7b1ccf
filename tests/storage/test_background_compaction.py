"""Background compaction: the snapshot is written off the loop, and no write is ever lost.

Run as a script, this module is the writer the crash tests SIGKILL (see `_writer`):

    python test_background_compaction.py STORE_FILE PAUSE_AT_STEP
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from storage import logfile
from storage.engine import COMPACTION_STEPS, LogDB, open_db
from storage.errors import StoreError
from storage.group_commit import GroupCommit
from tests.storage.storage_helpers import log_lines, state_of

# Small thresholds, so that a few writes make a compaction due.
COMPACT: dict[str, Any] = {"compact_min_ops": 20, "compact_ratio": 0.5}
FILLER = "x" * 400  # makes documents big enough for the catch-up copy to have work


class Gate:
    """Holds a compaction at one step (in whichever thread reaches it) until released."""

    def __init__(self, step: str) -> None:
        self.step = step
        self.armed = False  # not during the open, whose compaction runs inline
        self.reached = threading.Event()
        self.release = threading.Event()
        self.thread: threading.Thread | None = None

    def __call__(self, at: str) -> None:
        if not (self.armed and at == self.step):
            return
        self.thread = threading.current_thread()
        self.reached.set()
        # bounded, so a broken test fails instead of hanging a worker thread for ever
        if not self.release.wait(timeout=10):
            raise AssertionError(f"the test never released the compaction at {at!r}")

    async def wait_reached(self) -> None:
        assert await asyncio.to_thread(self.reached.wait, 10), f"{self.step!r} never reached"


def _open(path: Path, on_step: Callable[[str], None] | None = None, **options: Any) -> LogDB:
    return open_db(
        path,
        background_compaction=True,
        on_compaction_step=on_step,
        **{**COMPACT, **options},
    )


def _fill(db: LogDB, count: int, *, sync: bool = True, start: int = 0) -> None:
    table = db.table("t")
    for n in range(start, start + count):
        with db.transaction(sync=sync):
            table.insert({"n": n, "pad": FILLER})


def _numbers(path: Path) -> list[int]:
    with open_db(path) as db:
        return sorted(doc["n"] for doc in db.table("t"))


def _temp_files(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.*.tmp"))


def _snapshot_of(path: Path) -> tuple[int, dict[str, dict[str, Any]], list[Any]]:
    """The file's generation, the documents of its snapshot part, and its log lines."""
    lines = log_lines(path)
    gen = lines[0]["gen"]
    snapshot: dict[str, dict[str, Any]] = {}
    for i, value in enumerate(lines[1:], start=1):
        if "snapshot_end" in value:
            return gen, snapshot, lines[i + 1 :]
        snapshot.setdefault(value["table"], {}).update(value["docs"])
    raise AssertionError("no end of snapshot")


def _raw(db: LogDB) -> dict[str, dict[str, Any]]:
    return {name: dict(db.storage.table_data(name)) for name in db.tables()}


@pytest.fixture
def db(tmp_path: Path) -> Iterator[LogDB]:
    opened = _open(tmp_path / "db")
    yield opened
    opened.close()


# ----------------------------------------------------------------- the mode


def test_inline_is_the_default(tmp_path: Path) -> None:
    with open_db(tmp_path / "db", **COMPACT) as db:
        assert not db.storage.background_compaction
        _fill(db, 30)
        assert db.storage.generation > 1  # compacted by the writes themselves


def test_background_mode_never_compacts_inline(db: LogDB) -> None:
    storage = db.storage
    GroupCommit(storage)  # its listener: outside a running loop it can start nothing
    assert storage.background_compaction
    _fill(db, 30)
    storage.compact_if_due()  # what a round asks
    assert storage.generation == 1
    assert storage.compaction_due()


def test_a_compaction_due_at_open_still_runs_inline(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with open_db(path, compact_min_ops=1000) as db:
        _fill(db, 30)
    with _open(path) as db:
        assert db.storage.generation == 2
        assert not db.storage.compaction_due()


def test_begin_compaction_inside_a_transaction_is_refused(db: LogDB) -> None:
    with db.transaction():
        db.table("t").insert({"n": 1})
        with pytest.raises(StoreError, match="inside a transaction"):
            db.storage.begin_compaction()
    job = db.storage.begin_compaction()  # outside, it starts
    assert job is not None
    assert db.storage.begin_compaction() is None  # one at a time
    db.storage.finish_compaction(job)


# ----------------------------------------------------------------- what the new file holds


def test_synced_writes_during_the_job_are_all_kept(tmp_path: Path, db: LogDB) -> None:
    path = tmp_path / "db"
    storage = db.storage
    _fill(db, 10)
    db.table("t").remove(doc_ids=[2])
    at_begin = _raw(db)
    job = storage.begin_compaction()
    assert job is not None
    ops_at_begin = storage.log_ops
    # more than the thread leaves for the loop: it copies these itself
    _fill(db, 1_000, start=10)
    db.table("t").update({"n": -1}, doc_ids=[1])
    job.write()
    assert job.caught > job.mark
    # after the thread's copy, before the switch: `finish_compaction` copies these
    _fill(db, 5, start=1_010)
    db.table("t").remove(doc_ids=[3])
    assert storage.generation == 1
    ops_since_begin = storage.log_ops - ops_at_begin
    assert storage.finish_compaction(job)

    assert storage.generation == 2
    assert _temp_files(path) == []
    gen, snapshot, log = _snapshot_of(path)
    assert gen == 2
    assert snapshot == at_begin  # the snapshot is the store as it was at begin_compaction
    assert storage.log_ops == ops_since_begin == sum(len(line) for line in log)
    expected = state_of(db)
    assert _raw(db) == logfile.parse(path.read_bytes(), path).data  # exactly the live data
    db.table("t").insert({"n": 2_000})  # appends to the new generation
    db.close()
    with open_db(path) as reopened:
        assert reopened.storage.generation == 2
        expected["t"][max(expected["t"]) + 1] = {"n": 2_000}
        assert state_of(reopened) == expected


async def test_unsynced_writes_during_the_job_are_all_kept(tmp_path: Path, db: LogDB) -> None:
    path = tmp_path / "db"
    storage = db.storage
    commits = GroupCommit(storage)
    _fill(db, 10)
    job = storage.begin_compaction()
    assert job is not None
    _fill(db, 700, sync=False, start=10)
    await commits.wait()  # written and fsynced to the old file by a round
    await asyncio.get_running_loop().run_in_executor(None, job.write)
    assert job.caught > job.mark
    _fill(db, 5, sync=False, start=710)  # still in memory: finish writes them first
    assert storage.durable < storage.appended
    assert storage.finish_compaction(job)
    # the new file was fsynced with them in it: nobody needs to wait for a round
    assert storage.durable == storage.appended
    await commits.wait()
    assert storage.generation == 2
    assert _raw(db) == logfile.parse(path.read_bytes(), path).data
    db.close()
    assert _numbers(path) == list(range(715))


def test_an_explicit_compaction_abandons_the_background_job(tmp_path: Path, db: LogDB) -> None:
    _fill(db, 10)
    job = db.storage.begin_compaction()
    assert job is not None
    _fill(db, 3, start=10)
    db.compact()  # inline: the job would copy from the file this replaces
    job.write()
    assert not db.storage.finish_compaction(job)
    assert db.storage.generation == 2
    assert _temp_files(tmp_path / "db") == []
    db.close()
    assert _numbers(tmp_path / "db") == list(range(13))


# ----------------------------------------------------------------- failures


async def test_a_failed_replace_keeps_the_old_generation_and_retries_later(
    tmp_path: Path, db: LogDB, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "db"
    storage = db.storage
    commits = GroupCommit(storage)

    def refuse(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    _fill(db, 30)
    assert storage.compaction_due()
    monkeypatch.setattr(os, "replace", refuse)
    with caplog.at_level(logging.WARNING, logger="storage.engine"):
        await commits.compact_in_background()
    assert "compaction failed" in caplog.text
    assert storage.generation == 1
    assert _temp_files(path) == []
    assert not storage.compaction_due()  # not at every write: once more have piled up
    monkeypatch.undo()
    _fill(db, 5, start=30)
    assert storage.generation == 1  # the old generation takes the writes
    _fill(db, 30, start=35)
    assert storage.compaction_due()
    await commits.compact_in_background()
    assert storage.generation == 2
    db.close()
    assert _numbers(path) == list(range(65))


def test_a_failed_write_in_the_thread_keeps_the_old_generation(
    tmp_path: Path, db: LogDB, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "db"
    _fill(db, 30)

    def disk_full(*_: object, **__: object) -> int:
        raise OSError(28, "No space left on device")

    job = db.storage.begin_compaction()
    assert job is not None
    monkeypatch.setattr(logfile, "write_paced", disk_full)
    job.write()  # never raises: the error is the loop's to report
    assert isinstance(job.error, OSError)
    assert _temp_files(path) == []  # the thread removed its own temp file
    with caplog.at_level(logging.WARNING, logger="storage.engine"):
        assert not db.storage.finish_compaction(job)
    assert "No space left on device" in caplog.text
    assert db.storage.generation == 1
    assert not db.storage.compaction_due()
    _fill(db, 3, start=30)
    db.close()
    assert _numbers(path) == list(range(33))


def test_close_before_the_thread_starts_leaves_no_temp_file(tmp_path: Path, db: LogDB) -> None:
    _fill(db, 10)
    job = db.storage.begin_compaction()
    assert job is not None
    db.close()
    job.write()  # the executor got round to it late: it must not create the file
    assert not db.storage.finish_compaction(job)
    assert _temp_files(tmp_path / "db") == []
    assert _numbers(tmp_path / "db") == list(range(10))


async def test_close_during_a_running_job_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "db"
    gate = Gate("temp_written")
    db = _open(path, gate)
    commits = GroupCommit(db.storage)
    _fill(db, 50)
    gate.armed = True
    compaction = asyncio.create_task(commits.compact_in_background(force=True))
    await gate.wait_reached()
    assert gate.thread is not threading.current_thread()  # the worker thread, not the loop
    assert _temp_files(path) != []
    _fill(db, 2, start=50)
    db.close()
    assert _temp_files(path) == []
    gate.release.set()
    await compaction  # the thread stops; finishing after close does nothing
    assert _temp_files(path) == []
    with open_db(path) as reopened:
        assert reopened.storage.generation == 1
        assert sorted(d["n"] for d in reopened.table("t")) == list(range(52))


# ----------------------------------------------------------------- the driver


async def test_a_round_starts_a_compaction_that_no_waiter_waits_for(tmp_path: Path) -> None:
    path = tmp_path / "db"
    gate = Gate("temp_written")
    db = _open(path, gate)
    storage = db.storage
    commits = GroupCommit(storage)
    gate.armed = True
    _fill(db, 30, sync=False)  # sync=False writes never start one by themselves
    await commits.wait()  # the round finds the compaction due and starts it
    await gate.wait_reached()  # ... held in its thread, while:
    _fill(db, 3, sync=False, start=30)
    await commits.wait()  # a waiter is served while the compaction is held
    assert storage.durable == storage.appended
    assert storage.generation == 1
    gate.release.set()
    await commits.compact_in_background()  # waits for the running one
    assert storage.generation == 2
    assert not storage.compaction_due()
    db.close()
    assert _numbers(path) == list(range(33))


async def test_a_synced_write_that_makes_it_due_starts_a_compaction(tmp_path: Path) -> None:
    path = tmp_path / "db"
    db = _open(path)
    commits = GroupCommit(db.storage)
    _fill(db, 30)
    assert db.storage.generation == 1  # not inline
    await commits.compact_in_background()  # the task the write started, already running
    assert db.storage.generation == 2
    db.close()
    assert _numbers(path) == list(range(30))


async def test_the_loop_keeps_serving_while_the_snapshot_is_written(tmp_path: Path) -> None:
    """Iterations of a ticking task while the worker thread writes, not wall-clock time."""
    path = tmp_path / "db"
    wanted = 200
    ticks = 0
    ticks_at: dict[str, int] = {}
    enough = threading.Event()
    armed = False  # not for the inline compaction that creates the file

    def on_step(step: str) -> None:
        if not armed:
            return
        ticks_at[step] = ticks
        if step == "temp_written":
            # in the worker thread: had the write run on the loop, nothing would tick now
            assert enough.wait(timeout=10), "the loop stood still while the thread wrote"

    # never due by itself: the one compaction is the forced one below
    db = open_db(
        path, background_compaction=True, on_compaction_step=on_step, compact_min_ops=10**9
    )
    storage = db.storage
    commits = GroupCommit(storage)
    with db.transaction():
        table = db.table("t")
        for n in range(20_000):
            table.insert({"n": n, "pad": FILLER[:100]})
    armed = True
    stop = False

    async def ticker() -> None:
        # a stream of callbacks: one unsynced write every tenth iteration, then its round
        nonlocal ticks
        while not stop:
            ticks += 1
            if "started" in ticks_at and ticks - ticks_at["started"] >= wanted:
                enough.set()
            if ticks % 10 == 0:
                with db.transaction(sync=False):
                    table.insert({"n": 20_000 + ticks // 10})
                await commits.wait()
            await asyncio.sleep(0)

    ticking = asyncio.create_task(ticker())
    await commits.compact_in_background(force=True)
    stop = True
    await ticking
    assert storage.generation == 2
    assert ticks_at["replaced"] - ticks_at["started"] >= wanted
    expected = state_of(db)
    db.close()
    with open_db(path) as reopened:
        assert state_of(reopened) == expected


# ----------------------------------------------------------------- crashes


def _emit(text: str) -> None:
    # one write(): the loop and the worker thread both print, lines must not interleave
    os.write(1, (text + "\n").encode())


def _writer(path: Path, pause_at: str) -> None:
    """Write forever, printing each write once acknowledged; pause inside a compaction."""

    async def main() -> None:
        armed = False

        def on_step(step: str) -> None:
            if armed and step == pause_at:
                _emit(f"paused {step}")
                sys.stdin.readline()  # blocks this thread (the loop's or the worker's)

        db = _open(path, on_step)
        commits = GroupCommit(db.storage)
        armed = True  # only a background compaction, not one at open
        table = db.table("t")
        i = 0
        while True:
            # sync=True writes start compactions through the listener, rounds through theirs
            sync = i % 2 == 0
            with db.transaction(sync=sync):
                table.insert({"n": i, "pad": FILLER})
                db.table("c").put(1, {"i": i})  # rewritten: the log grows, the data does not
            if not sync:
                await commits.wait()
            _emit(f"acked {i}")
            await asyncio.sleep(0)
            i += 1

    asyncio.run(main())


def _run_and_kill(path: Path, step: str, stderr: Path, *, acks_after_pause: int) -> list[int]:
    """Start the writer, SIGKILL it once paused at `step` (and `acks_after_pause` more
    writes were acknowledged), return the writes it acked."""
    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    with stderr.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, __file__, str(path), step],
            cwd=root,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    assert proc.stdout is not None and proc.stdin is not None
    acked: list[int] = []
    paused = False
    after_pause = 0
    try:
        for line in proc.stdout:
            if line.startswith("paused "):
                paused = True
            else:
                acked.append(int(line.split()[1]))
                after_pause += paused
            if paused and after_pause >= acks_after_pause:
                break
        proc.kill()
        # Lines already in the pipe were printed after their write returned: acked too.
        # (Paused in the worker thread, the loop goes on writing until the kill.)
        for line in proc.stdout.read().splitlines(keepends=True):
            if line.startswith("acked ") and line.endswith("\n"):
                acked.append(int(line.split()[1]))
    finally:
        proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stdin.close()
    assert paused, stderr.read_text()
    assert proc.returncode == -signal.SIGKILL, stderr.read_text()
    return acked


@pytest.mark.parametrize("step", COMPACTION_STEPS)
def test_sigkill_at_each_background_compaction_step(tmp_path: Path, step: str) -> None:
    path = tmp_path / "db"
    in_thread = step in ("temp_written", "temp_synced")
    # Paused in the worker thread, the loop goes on: writes acknowledged meanwhile must be
    # in the store too, whichever file it reopens.
    acked = _run_and_kill(
        path, step, tmp_path / "stderr.txt", acks_after_pause=20 if in_thread else 0
    )
    assert acked
    assert bool(_temp_files(path)) == in_thread
    replaced = step in ("replaced", "dir_synced")
    assert log_lines(path)[0]["gen"] == (2 if replaced else 1)
    with _open(path) as db:
        numbers = {doc["n"] for doc in db.table("t")}
        missing = set(acked) - numbers
        assert not missing, f"acknowledged writes lost: {sorted(missing)[:10]}"
        counter = db.table("c").get(doc_id=1)
        assert counter is not None and counter["i"] >= max(acked)
        db.table("t").insert({"n": -1})
    assert _temp_files(path) == []  # leftovers are cleared on open
    assert -1 in _numbers(path)


if __name__ == "__main__":
    _writer(Path(sys.argv[1]), sys.argv[2])
