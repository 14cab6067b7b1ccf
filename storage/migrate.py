"""Upgrade a data directory written by release 0.1 (everything in one `zns.db`).

Release 0.1 kept sends, audit events, callbacks, the outbox and the chain's head in one log
file, loaded whole. This release keeps a small live store (`live.db`) and the audit log in
monthly segments (audit/). `Store.open` calls `migrate_if_needed` first; it does nothing
unless `zns.db` is there.
"""

# Phases (each ends with an `on_step` name; tests/storage/test_migrate.py kills the process
# at every one of them and at the archive's own steps):
#
# 1. scan: `zns.db` is read line by line, never whole. Audit events (only ever added, in
#    seq order) go straight into one segment per UTC month of their `ts`, 2,000 per append,
#    through the chain checker; the latest version of every send, callback and pending
#    outbox item goes into a scratch SQLite file in .migration/. Every CHECKPOINT_BYTES of
#    input, the scratch commits the offset reached with the checker's state, after the
#    segment appends before it are durable: a restart reads on from there, and skips the
#    events a segment holds already (`Segments.last_seq`).
# 2. build, in the new live store, through its own code, each step one commit that also
#    records how far it got (meta document MIGRATION_DOC_ID): the old head and "archived up
#    to" go in first, so the chain continues; the old segments of past months are sealed
#    (seal events at the end of the chain), the last one stays current if its month is not
#    over; then the sends, a batch at a time: each is put back with its callbacks and
#    pending outbox items, a release 0.1 sandbox send moves to `sandboxed`, and one that may
#    leave (final for `live_hours`, no pending post) leaves at once through the archive's
#    own "archived" event; the archive then copies the new events to the segment. Callbacks
#    and pending posts of no send follow. The live store is compacted at the end, so that it
#    holds no copy of what left.
# 3. cleanup: everything is durable already; `zns.db` goes (and release 0.1's lock and
#    compaction leftovers), then .migration/. Until `zns.db` is gone it is the source of
#    truth: whatever a crash interrupts is redone from it, from the last checkpoint.
#
# What is recorded where: .migration/progress.json (fsynced before live.db exists) says a
# migration is under way, and holds the identity of the `zns.db` it reads; the scratch holds
# the scan's checkpoint; the live store holds the build's progress and, once done, a short
# record of the migration (counts, old head) that stays.

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from storage import logfile
from storage.archiver import PassReport, drive, may_leave
from storage.audit import GENESIS, HEAD_DOC_ID, ChainChecker
from storage.clock import Clock, iso
from storage.engine import open_db
from storage.errors import StoreError
from storage.outbox import PENDING
from storage.segments import DIR_NAME, SegmentName, month_of
from storage.sends import SendState

if TYPE_CHECKING:
    from storage.store import Store

log = logging.getLogger(__name__)

OLD_FILE = "zns.db"  # release 0.1's store
WORK_DIR = ".migration"
PROGRESS_FILE = "progress.json"
SCRATCH_FILE = "scratch.db"
MIGRATION_DOC_ID = 10  # meta document of the live store: the build's progress, then a record
ACTOR = "migration"
SANDBOX_REASON = "sandbox: accepted by eSMS, nothing delivered"

EVENT_BATCH = 2_000  # events per segment append
SEND_BATCH = 1_000  # sends per live-store commit (then the archive copies their events)
ORPHAN_BATCH = 2_000  # callbacks or outbox items of no send per commit
CHECKPOINT_BYTES = 32 << 20  # input read between two checkpoints of the scan
SCRATCH_CACHE_KIB = 32 << 10  # SQLite page cache of the scratch file: bounds its memory

# Names passed to `on_step`, in order. Those marked (each) come once per checkpoint, sealed
# segment or batch; "scan:*" and "archive:*" are the segment writer's and the archive's own
# steps (storage.archive COPY_STEPS and SEAL_STEPS) during the scan and the build.
MIGRATION_STEPS = (
    "prepared",  # .migration/ recorded, live.db open
    "scan:appended",  # (each) events appended to a segment, not yet indexed
    "scan:indexed",  # (each) and indexed
    "scan_checkpoint",  # (each) the scratch committed how far the scan got
    "scanned",  # the old file read through; the build begins
    "head_set",  # the live store continues the old chain
    "archive:sealing",  # (each) the archive's seal steps, for each past month
    "archive:compressed",
    "archive:seal_committed",
    "archive:sealed",
    "segment_sealed",  # (each) one old segment sealed
    "sealed",  # every past month sealed, the current segment chosen
    "batch_moved",  # (each) a batch of sends put back or archived, in one commit
    "archive:appended",  # (each) the archive's copy steps for the new events
    "archive:indexed",
    "batch_copied",  # (each) the batch's events copied to the segment
    "moved",  # every send done
    "orphans_moved",  # callbacks and posts of no send done
    "built",  # the live store complete and compacted, migration recorded in it
    "old_removed",  # zns.db gone
    "cleaned",  # .migration/ gone: done
)

_MONTH = re.compile(r"^\d{4}-\d{2}")
OnStep = Callable[[str], None]


@dataclass
class MigrationReport:
    """What a migration did (all of it, across the runs a crash split it into)."""

    sends: int = 0  # sends in the old store
    live_sends: int = 0  # kept in the live store
    archived_sends: int = 0  # left through an "archived" event
    sandboxed: int = 0  # release 0.1 sandbox sends moved to `sandboxed`
    events: int = 0  # old audit events moved into segments
    segments: list[str] = field(default_factory=list)  # the segments holding them
    sealed: list[str] = field(default_factory=list)  # those sealed by the migration
    callbacks: int = 0  # callbacks in the old store
    callbacks_live: int = 0  # kept in the live store (the rest are in archived events)
    orphan_callbacks: int = 0  # of all callbacks, those matching no send
    outbox_pending: int = 0  # pending outbox items in the old store, all kept live
    outbox_done: int = 0  # done outbox items, dropped
    chain_problems: list[str] = field(default_factory=list)  # the old chain's, kept as is
    resumed: bool = False  # this run finished a migration a crash had interrupted

    @property
    def chain_ok(self) -> bool:
        return not self.chain_problems


def migrate_if_needed(
    data_dir: Path,
    *,
    clock: Clock,
    live_hours: float,
    compression: str | None,
    on_step: OnStep | None = None,
) -> MigrationReport | None:
    """Migrate a release 0.1 data directory (or finish an interrupted migration); None when
    there is nothing to migrate. StoreError when it cannot be done (nothing is lost then:
    the old file stays until the very end)."""
    data_dir = Path(data_dir)
    old, work = data_dir / OLD_FILE, data_dir / WORK_DIR
    if not old.exists():
        if work.exists():
            _remove_work(data_dir)  # a crash after zns.db went: only the cleanup was left
        return None
    if (data_dir / _live_name()).exists() and not (work / PROGRESS_FILE).exists():
        raise StoreError(
            f"{data_dir} holds both a release 0.1 store ({OLD_FILE}) and a live store "
            f"({_live_name()}), and no migration is under way: move {OLD_FILE} away "
            "(it was migrated already, or restored into a newer data directory by mistake)"
        )
    lock_fd = _lock(old)
    try:
        if not old.exists():  # another process finished it while we waited for nothing
            _remove_work(data_dir)
            return None
        return _Migration(data_dir, clock, live_hours, compression, on_step).run()
    finally:
        os.close(lock_fd)


def _live_name() -> str:
    from storage.store import FILE_NAME

    return FILE_NAME


def _lock(old: Path) -> int:
    """Release 0.1's own lock on its store: neither it nor a second migration runs beside."""
    lock_path = old.with_name(old.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StoreError(f"cannot open the store at {old}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreError(
            f"the store at {old} is in use by another zns-bot process (release 0.1, or a "
            "migration under way)"
        ) from None
    return fd


def _remove_work(data_dir: Path) -> None:
    shutil.rmtree(data_dir / WORK_DIR, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        (data_dir / f"{OLD_FILE}.lock").unlink()
    logfile.fsync_dir(data_dir)


def _identity(path: Path) -> dict[str, Any]:
    """What tells the same old file from another: release 0.1 run on it meanwhile appends
    (the size, the tail) or compacts (the header's generation). Content only, so that a
    copy of the data directory (new inode, new mtime) resumes too."""
    with path.open("rb") as f:
        first = f.readline(4096)
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - 65536))
        tail = hashlib.sha256(f.read()).hexdigest()
    return {"size": size, "header": first.decode("latin-1"), "tail": tail}


def _check_format(path: Path) -> None:
    """Refuse a file release 0.1 did not write (or an older TinyDB file it never opened)."""
    with path.open("rb") as f:
        first = f.readline(4096)
    if not first.strip():
        return  # empty: nothing to migrate
    try:
        header = logfile.loads(first)
    except ValueError:
        header = None
    if not (isinstance(header, dict) and header.get("format") == logfile.FORMAT):
        raise StoreError(_not_ours(path))
    if header.get("version") != logfile.FORMAT_VERSION:
        raise StoreError(f"the store at {path} has unsupported format {header!r}")


def _not_ours(path: Path) -> str:
    return (
        f"{path} is not a zns-bot 0.1 store (no log header): open it once with release 0.1, "
        "which converts older files, then upgrade"
    )


def _starts_with_data(path: Path) -> bool:
    with path.open("rb") as f:
        return bool(f.read(4096).strip())


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        logfile.write_all(fd, orjson.dumps(value))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    logfile.fsync_dir(path.parent)


# --------------------------------------------------------------------- the scratch file


class _Scratch:
    """The latest version of every send, callback and pending outbox item, on disk."""

    def __init__(self, path: Path) -> None:
        fresh = not path.exists()
        self.db = sqlite3.connect(path, isolation_level=None)
        if fresh:
            os.chmod(path, 0o600)
        self.db.executescript(
            f"""
            PRAGMA journal_mode=WAL;
            PRAGMA synchronous=FULL;
            PRAGMA cache_size=-{SCRATCH_CACHE_KIB};
            CREATE TABLE IF NOT EXISTS sends (
                doc_id INTEGER PRIMARY KEY, send_id TEXT, sms_id TEXT, doc BLOB NOT NULL);
            CREATE TABLE IF NOT EXISTS callbacks (
                doc_id INTEGER PRIMARY KEY, sms_id TEXT, doc BLOB NOT NULL);
            CREATE TABLE IF NOT EXISTS outbox (
                doc_id INTEGER PRIMARY KEY, send_id TEXT, doc BLOB NOT NULL);
            CREATE TABLE IF NOT EXISTS outbox_done (doc_id INTEGER PRIMARY KEY);
            CREATE TABLE IF NOT EXISTS state (k TEXT PRIMARY KEY, v BLOB NOT NULL);
            """
        )

    def close(self) -> None:
        self.db.close()

    def load(self, key: str) -> Any:
        row = self.db.execute("SELECT v FROM state WHERE k = ?", (key,)).fetchone()
        return None if row is None else orjson.loads(row[0])

    def save(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (key, orjson.dumps(value)))

    def begin(self) -> None:
        self.db.execute("BEGIN")

    def commit(self) -> None:
        self.db.execute("COMMIT")

    def put(self, table: str, docs: list[tuple[int, dict[str, Any]]]) -> None:
        # generators: each document is encoded as SQLite takes it, never all at once
        if table == "sends":
            self.db.executemany(
                "INSERT OR REPLACE INTO sends VALUES (?, ?, ?, ?)",
                ((i, d.get("id"), d.get("sms_id"), orjson.dumps(d)) for i, d in docs),
            )
        elif table == "callbacks":
            self.db.executemany(
                "INSERT OR REPLACE INTO callbacks VALUES (?, ?, ?)",
                ((i, d.get("sms_id"), orjson.dumps(d)) for i, d in docs),
            )
        else:  # the outbox: pending items are kept, done ones only counted (and dropped)
            pending = [(i, d) for i, d in docs if d.get("status") == PENDING]
            done = [(i,) for i, d in docs if d.get("status") != PENDING]
            self.db.executemany("DELETE FROM outbox WHERE doc_id = ?", done)
            self.db.executemany("INSERT OR IGNORE INTO outbox_done VALUES (?)", done)
            self.db.executemany(
                "DELETE FROM outbox_done WHERE doc_id = ?", [(i,) for i, _ in pending]
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO outbox VALUES (?, ?, ?)",
                ((i, d.get("send_id"), orjson.dumps(d)) for i, d in pending),
            )

    def delete(self, table: str, doc_id: int) -> None:
        self.db.execute(f"DELETE FROM {table} WHERE doc_id = ?", (doc_id,))  # noqa: S608
        if table == "outbox":
            self.db.execute("DELETE FROM outbox_done WHERE doc_id = ?", (doc_id,))

    def clear(self, table: str) -> None:
        self.db.execute(f"DELETE FROM {table}")  # noqa: S608  (one of SCRATCH_TABLES)
        if table == "outbox":
            self.db.execute("DELETE FROM outbox_done")

    def index(self) -> None:
        self.db.executescript(
            """
            CREATE INDEX IF NOT EXISTS sends_send_id ON sends (send_id);
            CREATE INDEX IF NOT EXISTS sends_sms_id ON sends (sms_id);
            CREATE INDEX IF NOT EXISTS callbacks_sms_id ON callbacks (sms_id);
            CREATE INDEX IF NOT EXISTS outbox_send_id ON outbox (send_id);
            """
        )

    def count(self, table: str) -> int:
        row = self.db.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
        return int(row[0])

    def rows(self, sql: str, *args: Any) -> list[tuple[int, dict[str, Any]]]:
        return [(int(i), orjson.loads(doc)) for i, doc in self.db.execute(sql, args)]


SCRATCH_TABLES = frozenset({"sends", "callbacks", "outbox"})


# --------------------------------------------------------------------- phase 1: the scan


class _ScanState:
    """Where the scan is: saved with each checkpoint, in the same commit as the scratch."""

    def __init__(self, saved: Mapping[str, Any] | None) -> None:
        saved = saved or {}
        self.offset: int = saved.get("offset", 0)
        self.part: str = saved.get("part", "header")  # header, snapshot, log, done
        self.gen: int = saved.get("gen", 0)
        self.snapshot_docs: int = saved.get("snapshot_docs", 0)
        self.checker = ChainChecker(start=saved.get("expected", 1), prev=saved.get("prev", GENESIS))
        self.checker.count = saved.get("count", 0)
        self.checker.problems = list(saved.get("problems", []))
        self.month: str | None = saved.get("month")  # of the segment being appended to
        self.segments: list[str] = list(saved.get("segments", []))
        self.head: dict[str, Any] | None = saved.get("head")  # the old meta document 1
        self.last: dict[str, Any] | None = saved.get("last")  # seq and hash of the last event
        self.ignored: dict[str, int] = dict(saved.get("ignored", {}))

    def saved(self) -> dict[str, Any]:
        return {
            "offset": self.offset,
            "part": self.part,
            "gen": self.gen,
            "snapshot_docs": self.snapshot_docs,
            "expected": self.checker.expected,
            "prev": self.checker.prev,
            "count": self.checker.count,
            "problems": self.checker.problems,
            "month": self.month,
            "segments": self.segments,
            "head": self.head,
            "last": self.last,
            "ignored": self.ignored,
        }


class _Scanner:
    """Reads the old file from the last checkpoint to its last complete line."""

    def __init__(
        self,
        path: Path,
        scratch: _Scratch,
        segments: Any,  # storage.archive.Segments
        step: OnStep,
        fallback_month: str,
    ) -> None:
        self.path = path
        self.scratch = scratch
        self.segments = segments
        self.step = step
        self.fallback_month = fallback_month
        self.state = _ScanState(scratch.load("scan"))
        self.pending: list[dict[str, Any]] = []  # events not yet appended
        self.bad_at: int | None = None  # an unreadable log line, fine only if nothing follows

    def run(self) -> _ScanState:
        state = self.state
        if state.part == "done":
            return state
        if state.month is not None:
            self.segments.open(SegmentName(state.month, 0))
        read = 0
        self.scratch.begin()
        with self.path.open("rb") as f:
            f.seek(state.offset)
            for line in f:
                if not line.endswith(b"\n"):
                    break  # a write release 0.1 never acknowledged: ignored, as it did
                self._line(line[:-1])
                state.offset += len(line)
                read += len(line)
                if read >= CHECKPOINT_BYTES and self.bad_at is None:
                    self._checkpoint()
                    self.step("scan_checkpoint")
                    self.scratch.begin()
                    read = 0
        if state.part == "snapshot":
            raise StoreError(f"the store at {self.path} is corrupt: its snapshot is incomplete")
        if state.part == "header" and _starts_with_data(self.path):
            raise StoreError(_not_ours(self.path))  # one JSON value, no newline: plain TinyDB
        state.checker.finish(state.head)
        state.part = "done"
        self._checkpoint()
        self.scratch.index()
        return state

    def _checkpoint(self) -> None:
        self._flush()  # the segments first: a checkpoint never runs ahead of them
        self.scratch.save("scan", self.state.saved())
        self.scratch.commit()

    def _corrupt(self, what: str = "") -> StoreError:
        return StoreError(f"the store at {self.path} is corrupt at byte {self.state.offset}{what}")

    def _line(self, raw: bytes) -> None:
        state = self.state
        if state.part == "log":
            ops = logfile.decode_ops(raw)
            if ops is None:
                self.bad_at = state.offset if self.bad_at is None else self.bad_at
                return
            if self.bad_at is not None:
                raise StoreError(
                    f"the store at {self.path} is corrupt at byte {self.bad_at} (valid data "
                    "follows it)"
                )
            for op in ops:
                self._op(op)
            return
        try:
            entry = logfile.loads(raw)
        except ValueError:
            entry = None
        if not isinstance(entry, dict):
            if state.part == "header":
                raise StoreError(_not_ours(self.path))
            raise self._corrupt()
        if state.part == "header":
            self._header(entry)
        elif "snapshot_end" in entry:
            if entry.get("snapshot_end") != state.gen or entry.get("docs") != state.snapshot_docs:
                raise StoreError(f"the store at {self.path} is corrupt: snapshot totals differ")
            state.part = "log"
        else:
            docs = entry.get("docs")
            if not isinstance(docs, dict) or not isinstance(entry.get("table"), str):
                raise self._corrupt()
            state.snapshot_docs += len(docs)
            self._docs(entry["table"], docs)

    def _header(self, header: Mapping[str, Any]) -> None:
        if header.get("format") != logfile.FORMAT:
            raise StoreError(_not_ours(self.path))
        if header.get("version") != logfile.FORMAT_VERSION:
            raise StoreError(f"the store at {self.path} has unsupported format {header!r}")
        self.state.gen = int(header["gen"])
        self.state.part = "snapshot"

    def _docs(self, table: str, docs: Mapping[str, Any]) -> None:
        try:
            items = [(int(sid), doc) for sid, doc in docs.items()]
        except ValueError:
            raise self._corrupt(f" (a {table} document id is not a number)") from None
        if any(not isinstance(doc, dict) for _, doc in items):
            raise self._corrupt(f" (a {table} document is not an object)")
        if table in SCRATCH_TABLES:
            self.scratch.put(table, items)
        elif table == "audit":
            for _, event in items:
                self._event(event)
        elif table == "meta":
            for doc_id, doc in items:
                if doc_id == HEAD_DOC_ID:
                    self.state.head = doc
                else:
                    self._ignore(table)
        else:
            for _ in items:
                self._ignore(table)

    def _ignore(self, table: str) -> None:
        self.state.ignored[table] = self.state.ignored.get(table, 0) + 1

    def _op(self, op: list[Any]) -> None:
        kind, table = op[0], op[1]
        if kind == "p":
            self._docs(table, {op[2]: op[3]})
        elif kind == "n":
            return
        elif table in SCRATCH_TABLES:
            if kind == "d":
                self.scratch.delete(table, int(op[2]))
            else:
                self.scratch.clear(table)
        elif table == "audit":
            # Release 0.1 never removed an event: what was written stays in the segment.
            what = f"event seq {op[2]}" if kind == "d" else "every event"
            self.state.checker.problems.append(
                f"the old store removed {what} after writing it (kept in the segments)"
            )
        elif table == "meta" and (kind != "d" or str(op[2]) == str(HEAD_DOC_ID)):
            self.state.head = None

    def _event(self, event: dict[str, Any]) -> None:
        state = self.state
        seq = event.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            state.checker.feed(event)  # reported as an event without a valid seq
            return
        if state.last is not None and seq <= state.last["seq"]:
            raise StoreError(
                f"the audit log in {self.path} holds event seq {seq} again after seq "
                f"{state.last['seq']}: release 0.1 never wrote that, so it is not migrated; "
                f"the file is unchanged"
            )
        state.checker.feed(event)
        ts = event.get("ts")
        month = month_of(ts) if isinstance(ts, str) and _MONTH.match(ts) else None
        month = month or state.month or self.fallback_month
        # Months only go forward: an event stamped earlier (a clock set back) stays in the
        # segment of the one before it, so seqs keep rising from segment to segment.
        if state.month is None or month > state.month:
            self._flush()
            name = SegmentName(month, 0)
            self.segments.open(name)
            state.month = month
            if str(name) not in state.segments:
                state.segments.append(str(name))
        if self.pending or seq > self.segments.last_seq:  # else appended before a crash
            self.pending.append(event)
            if len(self.pending) >= EVENT_BATCH:
                self._flush()
        state.last = {"seq": seq, "hash": event.get("hash")}

    def _flush(self) -> None:
        if self.pending:
            self.segments.append(self.pending)
            self.pending = []


# --------------------------------------------------------------------- phase 2: the build


class _Build:
    """Phase 2: the live store and the rest of the chain, through the store's own code."""

    def __init__(self, run: _Migration, store: Store, scratch: _Scratch, scan: _ScanState):
        self.run_ = run
        self.store = store
        self.scratch = scratch
        self.scan = scan
        self.meta = store.db.table("meta")
        self.archive = store.archive

    def run(self) -> MigrationReport:
        peeked = self.meta.peek(MIGRATION_DOC_ID)
        doc = dict(peeked) if peeked is not None else None
        if doc is None:
            doc = self._continue_chain()
            self.run_.step("head_set")
        if doc["stage"] == "seal":
            self._seal_old()
            doc = self._progress(doc, stage="move")
            self.run_.step("sealed")
        if doc["stage"] == "move":
            doc = self._move_sends(doc)
            doc = self._progress(doc, stage="orphans")
            self.run_.step("moved")
        if doc["stage"] == "orphans":
            doc = self._move_orphans(doc)
            doc = self._progress(doc, stage="copy")
            self.run_.step("orphans_moved")
        if doc["stage"] == "copy":
            drive(self.archive.copy_events(PassReport()))
            report = self._report(doc)
            data = {k: v for k, v in vars(report).items() if k != "resumed"}
            doc = self._progress(doc, stage="done", finished_at=iso(self.run_.now), report=data)
        # No copy of what left stays in the live file (the puts of the sends archived).
        self.store.db.compact()
        self.run_.step("built")
        return MigrationReport(**doc["report"])

    def _progress(self, doc: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
        new = {**doc, **changes}
        self.meta.put(MIGRATION_DOC_ID, new)
        return new

    def _continue_chain(self) -> dict[str, Any]:
        """The old head, and how far the segments hold the chain, in one commit."""
        head, last = self.scan.head, self.scan.last
        if not (
            isinstance(head, dict)
            and isinstance(head.get("seq"), int)
            and isinstance(head.get("hash"), str)
        ):
            head = None
        if last is not None and (head is None or head["seq"] < last["seq"]):
            # Events after the recorded head (the checker reported it): new events follow
            # them, never reuse their seqs.
            head = {"key": "audit_head", "seq": last["seq"], "hash": last["hash"]}
        doc = {
            "key": "migration",
            "from": f"{OLD_FILE} (release 0.1)",
            "stage": "seal",
            "old_head": head,
            "started_at": iso(self.run_.now),
            "sends_upto": 0,
            "callbacks_upto": 0,
            "outbox_upto": 0,
            "sandboxed": 0,
        }
        with self.store.db.transaction():
            if head is not None:
                self.meta.put(HEAD_DOC_ID, head)
            if last is not None:
                self.store.audit.archived_upto(int(last["seq"]), str(last["hash"]))
            self.meta.put(MIGRATION_DOC_ID, doc)
        return doc

    def _seal_old(self) -> None:
        """Seal each old segment of a past month (the last one stays current otherwise)."""
        archive = self.archive
        now_month = month_of(iso(self.run_.now))
        names = [SegmentName.parse(n) for n in self.scan.segments]
        for n, name in enumerate(names):
            state = archive.state
            assert state is not None
            if str(name) in {s["segment"] for s in state["sealed"]}:
                continue
            if state["current"] != str(name):
                drive(archive.start_segment(name))
            elif archive.segments.current != name:
                archive.segments.open(name)
            if n == len(names) - 1 and name.month >= now_month:
                return  # this month's: the archive appends to it from here on
            drive(archive.seal_segment(self.run_.now, PassReport()))
            self.run_.step("segment_sealed")

    def _move_sends(self, doc: dict[str, Any]) -> dict[str, Any]:
        while True:
            rows = self.scratch.rows(
                "SELECT doc_id, doc FROM sends WHERE doc_id > ? ORDER BY doc_id LIMIT ?",
                doc["sends_upto"],
                SEND_BATCH,
            )
            if not rows:
                return doc
            with self.store.db.transaction():
                sandboxed = sum(self._move_send(doc_id, send) for doc_id, send in rows)
                doc = self._progress(
                    doc, sends_upto=rows[-1][0], sandboxed=doc["sandboxed"] + sandboxed
                )
            self.run_.step("batch_moved")
            drive(self.archive.copy_events(PassReport()))
            self.run_.step("batch_copied")

    def _move_send(self, doc_id: int, send: dict[str, Any]) -> int:
        """Put one send back with its callbacks, then archive it or keep its pending posts;
        1 if it was a sandbox send moved to `sandboxed`. Joins the batch's commit."""
        db, scratch = self.store.db, self.scratch
        send_id, sms_id = send.get("id"), send.get("sms_id")
        if sms_id:
            callbacks = db.table("callbacks")
            for cb_id, callback in scratch.rows(
                "SELECT doc_id, doc FROM callbacks WHERE sms_id = ? ORDER BY doc_id", sms_id
            ):
                callbacks.put(cb_id, callback, plain=True)
        db.table("sends").put(doc_id, send, plain=True)
        if not isinstance(send_id, str):
            return 0  # unreadable: kept as it is, for someone to look at
        sandboxed = 0
        if send.get("state") == SendState.ACCEPTED and send.get("sandbox") is True:
            moved = self.store.sends.transition(
                send_id, SendState.SANDBOXED, actor=ACTOR, reason=SANDBOX_REASON
            )
            if moved is not None:
                send, sandboxed = dict(moved), 1
        pending = scratch.rows(
            "SELECT doc_id, doc FROM outbox WHERE send_id = ? ORDER BY doc_id", send_id
        )
        if not pending and may_leave(send, self.run_.cutoff):
            self.archive.archive_send(send_id)
        else:
            outbox = db.table("outbox")
            for item_id, item in pending:
                outbox.put(item_id, item, plain=True)
        return sandboxed

    def _move_orphans(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Callbacks and pending posts that belong to no send: kept, as the bot keeps them
        (the archive keeps callbacks of no live send in the log once they are old)."""
        while rows := self.scratch.rows(_ORPHAN_CALLBACKS, doc["callbacks_upto"], ORPHAN_BATCH):
            callbacks = self.store.db.table("callbacks")
            with self.store.db.transaction():
                for doc_id, callback in rows:
                    callbacks.put(doc_id, callback, plain=True)
                doc = self._progress(doc, callbacks_upto=rows[-1][0])
            drive(self.archive.archive_orphan_callbacks(self.run_.cutoff))
        while rows := self.scratch.rows(_ORPHAN_OUTBOX, doc["outbox_upto"], ORPHAN_BATCH):
            outbox = self.store.db.table("outbox")
            with self.store.db.transaction():
                for doc_id, item in rows:
                    outbox.put(doc_id, item, plain=True)
                doc = self._progress(doc, outbox_upto=rows[-1][0])
        return doc

    def _report(self, doc: Mapping[str, Any]) -> MigrationReport:
        scratch, db = self.scratch, self.store.db
        state = self.archive.state
        assert state is not None
        sealed = {s["segment"] for s in state["sealed"]}
        sends = scratch.count("sends")
        live = len(db.table("sends"))
        orphans = scratch.db.execute(
            f"SELECT count(*) FROM callbacks c WHERE {_NO_SEND}"  # noqa: S608  (constants)
        ).fetchone()[0]
        return MigrationReport(
            sends=sends,
            live_sends=live,
            archived_sends=sends - live,
            sandboxed=int(doc["sandboxed"]),
            events=self.scan.checker.count,
            segments=list(self.scan.segments),
            sealed=[name for name in self.scan.segments if name in sealed],
            callbacks=scratch.count("callbacks"),
            callbacks_live=len(db.table("callbacks")),
            orphan_callbacks=int(orphans),
            outbox_pending=scratch.count("outbox"),
            outbox_done=scratch.count("outbox_done"),
            chain_problems=list(self.scan.checker.problems),
        )


# A callback or an outbox item of no send (matched as `_archive_send` and the relay do).
_NO_SEND = "(c.sms_id IS NULL OR NOT EXISTS (SELECT 1 FROM sends s WHERE s.sms_id = c.sms_id))"
_ORPHAN_CALLBACKS = (
    f"SELECT c.doc_id, c.doc FROM callbacks c WHERE c.doc_id > ? AND {_NO_SEND} "  # noqa: S608
    "ORDER BY c.doc_id LIMIT ?"
)
_ORPHAN_OUTBOX = (
    "SELECT o.doc_id, o.doc FROM outbox o WHERE o.doc_id > ? AND (o.send_id IS NULL "
    "OR NOT EXISTS (SELECT 1 FROM sends s WHERE s.send_id = o.send_id)) ORDER BY o.doc_id LIMIT ?"
)


# --------------------------------------------------------------------- the whole run


class _Migration:
    def __init__(
        self,
        data_dir: Path,
        clock: Clock,
        live_hours: float,
        compression: str | None,
        on_step: OnStep | None,
    ) -> None:
        self.data_dir = data_dir
        self.clock = clock
        self.live_hours = live_hours
        self.compression = compression
        self.on_step = on_step
        self.old = data_dir / OLD_FILE
        self.work = data_dir / WORK_DIR
        self.now: datetime = clock()
        self.cutoff = iso(self.now - timedelta(hours=live_hours))

    def step(self, name: str) -> None:
        if self.on_step is not None:
            self.on_step(name)

    def run(self) -> MigrationReport:
        started = time.monotonic()
        resumed = self._prepare()
        store = self._open_live()
        try:
            self.step("prepared")
            scratch = _Scratch(self.work / SCRATCH_FILE)
            try:
                scan = _ScanState(scratch.load("scan"))
                if scan.part != "done":
                    scan = self._scan(store, scratch)
                    self.step("scanned")
                scratch.index()
                report = _Build(self, store, scratch, scan).run()
            finally:
                scratch.close()
        finally:
            store.close()
        report.resumed = resumed
        self._cleanup()
        _log_done(self.data_dir, report, time.monotonic() - started, scan.ignored)
        return report

    def _prepare(self) -> bool:
        """Record that a migration is under way (before live.db exists); True if one was."""
        progress = self.work / PROGRESS_FILE
        if progress.exists():
            recorded = orjson.loads(progress.read_bytes())
            if recorded.get("old") != _identity(self.old):
                raise StoreError(
                    f"{self.old} changed since its migration began (was release 0.1 run on "
                    f"it?): to start over, move {WORK_DIR}/, {_live_name()} and {DIR_NAME}/ "
                    f"out of {self.data_dir}"
                )
            log.info("resuming the interrupted migration of %s from release 0.1", self.data_dir)
            return True
        audit_dir = self.data_dir / DIR_NAME
        if (self.data_dir / _live_name()).exists() or (
            audit_dir.is_dir() and any(audit_dir.iterdir())
        ):
            raise StoreError(
                f"{self.data_dir} holds release 0.1's {OLD_FILE} and files of a newer release "
                f"({_live_name()} or {DIR_NAME}/) with no migration under way: move them out"
            )
        _check_format(self.old)  # before anything is created
        shutil.rmtree(self.work, ignore_errors=True)  # a start that never got recorded
        self.work.mkdir(mode=0o700)
        _write_json(progress, {"version": 1, "old": _identity(self.old), "began": iso(self.now)})
        logfile.fsync_dir(self.data_dir)
        log.info(
            "migrating %s from release 0.1 (%s, %.1f MiB): streamed, resumed if interrupted",
            self.data_dir,
            OLD_FILE,
            self.old.stat().st_size / (1 << 20),
        )
        return False

    def _open_live(self) -> Store:
        from storage.store import FILE_NAME, Store

        db = open_db(self.data_dir / FILE_NAME)
        try:
            store = Store(
                db,
                self.data_dir,
                self.clock,
                live_hours=self.live_hours,
                compression=self.compression,
                on_archive_step=lambda name: self.step(f"archive:{name}"),
            )
        except BaseException:
            db.close()
            raise
        return store

    def _scan(self, store: Store, scratch: _Scratch) -> _ScanState:
        from storage.archive import Segments

        segments = Segments(
            self.data_dir, store.archive.secret, on_step=lambda name: self.step(f"scan:{name}")
        )
        try:
            scanner = _Scanner(self.old, scratch, segments, self.step, month_of(iso(self.now)))
            return scanner.run()
        finally:
            segments.close()

    def _cleanup(self) -> None:
        """Everything is durable: the old file goes, then the scratch."""
        logfile.fsync_dir(self.data_dir / DIR_NAME)
        logfile.fsync_dir(self.data_dir)
        self.old.unlink()
        for stale in self.data_dir.glob(f"{OLD_FILE}.*.tmp"):  # release 0.1's compactions
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        logfile.fsync_dir(self.data_dir)
        self.step("old_removed")
        _remove_work(self.data_dir)
        self.step("cleaned")


def _log_done(
    data_dir: Path, report: MigrationReport, seconds: float, ignored: Mapping[str, int]
) -> None:
    log.info(
        "migrated %s from release 0.1 in %.1f s: %d sends (%d live, %d archived, %d sandboxed), "
        "%d audit events in %d segments (%d sealed), %d callbacks (%d live, %d of no send), "
        "%d pending posts kept, %d done posts dropped; old audit chain %s",
        data_dir,
        seconds,
        report.sends,
        report.live_sends,
        report.archived_sends,
        report.sandboxed,
        report.events,
        len(report.segments),
        len(report.sealed),
        report.callbacks,
        report.callbacks_live,
        report.orphan_callbacks,
        report.outbox_pending,
        report.outbox_done,
        "intact" if report.chain_ok else f"with {len(report.chain_problems)} problem(s)",
    )
    if report.chain_problems:
        log.warning(
            "the old audit chain was migrated as it was, problems included: %s",
            "; ".join(report.chain_problems[:20]),
        )
    if ignored:
        log.warning(
            "documents of tables release 0.1 never wrote were left out: %s",
            ", ".join(f"{table} ({count})" for table, count in sorted(ignored.items())),
        )
