"""Crash-safe TinyDB: an append-only log Storage, a change-tracking Table, and `open_db()`."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any, cast, overload

from tinydb import TinyDB
from tinydb.queries import QueryLike
from tinydb.storages import Storage
from tinydb.table import Document, Table

from storage import logfile
from storage.errors import StoreError, StoreLockedError

log = logging.getLogger(__name__)

DEFAULT_COMPACT_MIN_OPS = 10_000
DEFAULT_COMPACT_RATIO = 1.0
# Names passed to `on_compaction_step`, in order; tests crash the process at each one.
# A background compaction passes them too: "started" in `begin_compaction`, "temp_written"
# and "temp_synced" in the worker thread (`CompactionJob.write`), the rest in
# `finish_compaction`.
COMPACTION_STEPS = ("started", "temp_written", "temp_synced", "replaced", "dir_synced")
# Background compaction: documents per snapshot line, so that no single encode (which holds
# the GIL, and so the event loop) takes long.
BACKGROUND_SNAPSHOT_CHUNK = 500
# The worker thread copies the lines the loop appended meanwhile until fewer than this many
# bytes are left: `finish_compaction` copies the rest on the loop's thread.
CATCH_UP_LEFT = 256 << 10
CATCH_UP_ROUNDS = 16  # a loop that appends faster than the copy must not keep it going


Doc = dict[str, Any]
_MISSING: Any = object()

_dumps = logfile.dumps
_loads = logfile.loads


@functools.lru_cache(maxsize=64)
def _name_json(table: str) -> bytes:
    """A table name as JSON, encoded once: it goes into every logged op."""
    return _dumps(table)


def json_copy(value: Any) -> Any:
    """Deep-copy a JSON value; much faster than copy.deepcopy for plain dicts and lists."""
    if type(value) is dict:
        # recursing only into containers: most values are strings and numbers
        return {k: json_copy(v) if type(v) in _CONTAINERS else v for k, v in value.items()}
    if type(value) is list:
        return [json_copy(v) if type(v) in _CONTAINERS else v for v in value]
    return value


_CONTAINERS = (dict, list)


def normalized(value: Any) -> Any:
    """`value` as a reopen would read it back (enums become strings, tuples lists...)."""
    return _loads(_dumps(value))


def index_key(value: Any) -> Any:
    """The hashable key a value is indexed under: equal JSON values, JSON types kept apart."""
    if isinstance(value, str):
        return str(value)  # a StrEnum finds what was stored as its plain string
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("int", int(value))
    if isinstance(value, float):
        return ("float", value)
    if value is None:
        return ("null",)
    return ("json", json.dumps(value, sort_keys=True, default=str))


class _Transaction:
    """Encoded ops to append as one line, and how to undo their in-memory effect."""

    __slots__ = ("ops", "undo")

    def __init__(self) -> None:
        self.ops: list[bytes] = []
        # ("doc", table, sid, old doc | _MISSING) or ("table", table, old dict | _MISSING)
        self.undo: list[tuple[Any, ...]] = []


class _Scope:
    """One `with storage.transaction():` block (a class: cheaper than a generator)."""

    __slots__ = ("_mark", "_outer", "_storage", "_sync")

    def __init__(self, storage: LogStorage, sync: bool) -> None:
        self._storage = storage
        self._sync = sync

    def __enter__(self) -> None:
        self._outer, self._mark = self._storage._begin()

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self._storage._end(self._outer, self._mark, exc_type is not None, self._sync)


class LogStorage(Storage):
    """A TinyDB Storage that keeps the data in memory and appends every change to a log."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync: bool = True,
        compact_min_ops: int = DEFAULT_COMPACT_MIN_OPS,
        compact_ratio: float = DEFAULT_COMPACT_RATIO,
        on_compaction_step: Callable[[str], None] | None = None,
        background_compaction: bool = False,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self._fsync = fsync
        self._compact_min_ops = compact_min_ops
        self._compact_ratio = compact_ratio
        self._on_step = on_compaction_step
        self._data: dict[str, dict[str, Doc]] = {}
        # table -> field -> index key -> doc ids (str, as stored)
        self._indexes: dict[str, dict[str, dict[Any, set[str]]]] = {}
        self._versions: dict[str, int] = {}
        self._tx: _Transaction | None = None
        self._fd = -1
        self._lock_fd = -1
        self._size = 0
        # Lines of sync=False transactions not written yet: the group commit writes a whole
        # batch with one write() just before its fsync (see `write_unwritten`).
        self._unwritten: list[bytes] = []
        self._appended = 0
        self._durable = 0
        self._gen = 0
        self._log_ops = 0
        self._live = 0
        self._compact_after = 0  # after a failed compaction: log size to wait for
        self._broken: str | None = None
        self._closed = False
        # Background mode starts after the open: a compaction due at open runs inline, before
        # anyone could be served anyway.
        self._background = False
        self._job: CompactionJob | None = None  # the background compaction under way
        self._compaction_listener: Callable[[], None] | None = None
        self._lock()
        try:
            self._load()
        except BaseException:
            self._release()
            raise
        self._background = background_compaction

    # ----------------------------------------------------------------- TinyDB Storage API

    def read(self) -> dict[str, dict[str, Any]]:
        # Only the table map is copied (TinyDB's drop_table deletes from what it reads).
        return dict(self._data)

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        """Generic whole-database write (TinyDB uses it only for drop_table/drop_tables)."""
        with self.transaction():
            for name in list(self._data):
                if name not in data:
                    self._drop(name)
            for name, docs in data.items():
                if docs is self._data.get(name):
                    continue
                if name in self._data:
                    self._clear(name)
                else:
                    self._create(name)
                for sid, doc in docs.items():
                    self._put(name, str(sid), doc)

    def close(self) -> None:
        if self._closed:
            return
        # Its thread has descriptors of its own and stops at its next write; the temp file
        # goes now, so nothing is left behind whatever the thread is doing.
        self._abandon_job()
        try:
            if not self._broken:
                self.write_unwritten()  # never fsynced, so never acknowledged: best effort
        except StoreError as exc:
            log.warning("closing the store lost writes nobody had been told were kept: %s", exc)
        finally:
            self._closed = True
            self._release()

    # ----------------------------------------------------------------- public extras

    @property
    def generation(self) -> int:
        return self._gen

    @property
    def log_ops(self) -> int:
        """Ops appended since the last snapshot."""
        return self._log_ops

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def background_compaction(self) -> bool:
        """Due compactions are left to `begin_compaction`/`finish_compaction`'s driver."""
        return self._background

    def table_data(self, name: str) -> dict[str, Doc]:
        """The live documents of a table (str doc id -> doc). Read only: never mutate."""
        return self._data.get(name) or {}

    def table_version(self, name: str) -> int:
        """A counter that changes whenever the table's content changes (or is rolled back)."""
        return self._versions.get(name, 0)

    def transaction(self, *, sync: bool = True) -> _Scope:
        """Group commits: all of them reach the log as one line (one fsync), or none do.

        Changes are visible in memory at once. If the block raises, or the write fails,
        they are undone. Nested blocks join the outer one (an inner failure that the outer
        block catches undoes only the inner block's changes).

        `sync=False` (outermost block only) does not wait for the disk: the line is kept in
        memory until the next write or the group commit's round, which writes every such
        line at once, so until then even a crash of the process (not only of the machine)
        loses it. The caller must wait for `GroupCommit` before telling anyone the change
        is kept. Never hold a transaction open across an `await`.
        """
        return _Scope(self, sync)

    def _begin(self) -> tuple[bool, tuple[int, int]]:
        self._check_open()
        outer = self._tx is None
        if outer:
            self._tx = _Transaction()
        tx = self._tx
        assert tx is not None
        return outer, (len(tx.ops), len(tx.undo))

    def _end(self, outer: bool, mark: tuple[int, int], failed: bool, sync: bool) -> None:
        tx = self._tx
        assert tx is not None
        if failed:
            self._rollback(tx, mark)
            if outer:
                self._tx = None
            return
        if not outer:
            return
        self._tx = None
        if not tx.ops:
            return
        line = b"[" + b",".join(tx.ops) + b"]\n"
        deferred = not sync and self._fsync
        try:
            if deferred:
                self._check_writable()
                self._unwritten.append(line)
                self._appended += len(line)
            else:
                self._append(line)
        except BaseException:
            self._rollback(tx, (0, 0))
            raise
        self._log_ops += len(tx.ops)
        if not deferred:  # a deferred line's round compacts (compacting writes and fsyncs)
            self._maybe_compact()

    # ----------------------------------------------------------------- durability

    @property
    def appended(self) -> int:
        """Bytes of log appended since the store was opened (grows across compactions)."""
        return self._appended

    @property
    def durable(self) -> int:
        """How much of `appended` is known to be on disk."""
        return self._durable

    def sync_handle(self) -> int:
        """A descriptor of the log file of its own, for an fsync outside the loop's thread.

        The caller closes it. Its own open file (not a dup) so that a failed writeback is
        reported to it and to the store's descriptor alike: Linux reports one error once
        per open file, and an inline fsync must not swallow the group commit's error. If
        compaction switches files meanwhile, it has made everything durable by itself.
        """
        self._check_writable()
        try:
            return os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise StoreError(f"cannot sync the store at {self.path}: {exc.strerror}") from exc

    def write_unwritten(self) -> None:
        """Write the lines `sync=False` transactions left in memory, with one write().

        They are visible in memory already and cannot be undone, so a failed write breaks
        the store: nothing more is accepted, and no waiter is told they were kept.
        """
        if not self._unwritten:
            return
        self._check_writable()
        data = b"".join(self._unwritten)
        self._unwritten.clear()
        try:
            self._write(data)
        except StoreError as exc:
            self._broken = self._broken or f"a write failed ({exc.__cause__})"
            raise
        self._size += len(data)

    def compact_if_due(self) -> None:
        """Compact now if the log has grown enough; the group commit's rounds ask this.

        In background mode this only tells the compaction listener (the driver) instead.
        """
        # `sync=False` writes never compact by themselves: compacting writes and fsyncs.
        if not (self._closed or self._broken):
            self._maybe_compact()

    def compaction_due(self) -> bool:
        """Whether the log has grown enough to be compacted, and could be right now."""
        return not (self._closed or self._broken) and self._tx is None and self._compaction_due()

    def set_compaction_listener(self, listener: Callable[[], None] | None) -> None:
        """In background mode, `listener` is called (on the loop's thread) whenever a write
        finds a compaction due: it is to start one with `begin_compaction`, off the loop."""
        self._compaction_listener = listener

    def mark_durable(self, upto: int) -> None:
        """An fsync that began when `appended` was `upto` has finished."""
        self._durable = max(self._durable, upto)

    def sync_failed(self, exc: OSError) -> StoreError:
        """Record a failed out-of-line fsync: the store accepts no more writes."""
        # After a failed fsync the kernel's view of the file cannot be trusted.
        self._broken = self._broken or f"fsync failed ({exc})"
        return StoreError(f"could not write to the store at {self.path}: {exc}")

    def commit_tracked(self, name: str, view: TrackedTable) -> None:
        """Apply what an updater did to a TrackedTable: only changed documents are logged."""
        with self.transaction():
            live = self._data.get(name)
            if live is None:
                # TinyDB creates a table on any write to it, even one that changes nothing.
                self._create(name)
                live = self._data[name]
            if view.cleared:
                self._clear(name)
                live = self._data[name]
            for doc_id in view.deleted:
                if str(doc_id) in live:
                    self._delete(name, str(doc_id))
            for doc_id, doc in view.puts.items():
                sid = str(doc_id)
                if live.get(sid, _MISSING) == doc:
                    continue  # read (or rewritten) but not changed
                self._put(name, sid, doc)

    def create_index(self, table: str, field: str) -> None:
        indexes = self._indexes.setdefault(table, {})
        if field not in indexes:
            indexes[field] = self._build_index(table, field)

    def lookup(self, table: str, field: str, value: Any) -> list[int]:
        """Doc ids whose `field` equals `value` (exact JSON type), ascending."""
        self.create_index(table, field)
        sids = self._indexes[table][field].get(index_key(value))
        return sorted(int(s) for s in sids) if sids else []

    def matching(self, table: str, field: str, value: Any) -> AbstractSet[str]:
        """The str doc ids whose `field` equals `value`, unsorted. Read only: never mutate."""
        self.create_index(table, field)
        return self._indexes[table][field].get(index_key(value)) or frozenset()

    def first(self, table: str, field: str, value: Any) -> int | None:
        """The lowest doc id whose `field` equals `value`, or None: no sorting for one match."""
        self.create_index(table, field)
        sids = self._indexes[table][field].get(index_key(value))
        if not sids:
            return None
        return int(next(iter(sids))) if len(sids) == 1 else min(int(s) for s in sids)

    def count(self, table: str, field: str, value: Any) -> int:
        """How many documents have `field` equal to `value`: O(1) once indexed."""
        self.create_index(table, field)
        return len(self._indexes[table][field].get(index_key(value), ()))

    def compact(self) -> None:
        """Write a snapshot of everything as a new generation and switch to it."""
        self._check_writable()
        if self._tx is not None:
            raise StoreError("cannot compact the store inside a transaction")
        self._abandon_job()  # it would copy from the file this one replaces
        self._write_generation(self._gen + 1)

    # ----------------------------------------------------------------- background compaction

    def begin_compaction(self) -> CompactionJob | None:
        """Start a compaction whose heavy part, `job.write()`, runs in a worker thread.

        On the loop's thread, quick: a shallow copy of each table is a consistent snapshot
        (documents are replaced, never changed in place). Then run `job.write()` in a
        thread and `finish_compaction(job)` back on the loop. None if one is under way.
        """
        self._check_writable()
        if self._tx is not None:
            raise StoreError("cannot compact the store inside a transaction")
        if self._job is not None:
            return None
        self.write_unwritten()  # so the snapshot is exactly the file's first `_size` bytes
        self._step("started")
        try:
            st = os.fstat(self._fd)
        except OSError as exc:
            raise StoreError(f"cannot compact the store at {self.path}: {exc}") from exc
        snapshot = {name: docs.copy() for name, docs in self._data.items()}
        self._job = CompactionJob(
            self, self._gen + 1, snapshot, self._size, self._log_ops, (st.st_dev, st.st_ino)
        )
        return self._job

    def finish_compaction(self, job: CompactionJob) -> bool:
        """Switch to the generation `job` wrote, once its thread is done; True if it did.

        On the loop's thread. It copies the lines appended since the thread's last copy
        (little), fsyncs and renames. A job whose store moved on (closed, broken, compacted
        otherwise) is discarded; a failed one is logged and retried later, as inline.
        """
        if job is not self._job:
            job.abandon()  # abandoned already (close, an explicit compact): nothing to do
            return False
        self._job = None
        if job.error is not None:
            job.abandon()
            self._compaction_failed(
                StoreError(f"cannot compact the store at {self.path}: {job.error}")
            )
            return False
        fd = job.take_fd()
        if fd < 0 or self._closed or self._broken or self._gen != job.gen - 1:
            job.abandon()
            if fd >= 0:
                os.close(fd)
            return False
        try:
            self._finish_generation(job, fd)
        except StoreError as exc:
            self._compaction_failed(exc)
            return False
        return True

    def _finish_generation(self, job: CompactionJob, fd: int) -> None:
        try:
            # Into the old file first (a failure there breaks the store, as in a round's):
            # then the old file is the whole log, and the tail below copies the rest of it.
            self.write_unwritten()
            tail = _pread_all(self._fd, job.caught, self._size)
            logfile.write_all(fd, tail)
            os.fsync(fd)  # little to flush: the thread has fsynced all but the tail
            os.replace(job.tmp, self.path)
        except (OSError, StoreError) as exc:
            os.close(fd)
            with contextlib.suppress(OSError):
                job.tmp.unlink()
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"cannot compact the store at {self.path}: {exc}") from exc
        self._switch_generation(
            fd, job.gen, job.size + len(tail), self._log_ops - job.mark_ops, retire_off_loop=True
        )

    def _abandon_job(self) -> None:
        job, self._job = self._job, None
        if job is not None:
            job.abandon()

    def check_writable(self) -> None:
        """Raise StoreError unless the store is open and its file in place (see also
        `probe_directory`)."""
        self._check_writable()
        try:
            st = os.fstat(self._fd)
            on_disk = os.stat(self.path)
        except OSError as exc:
            raise StoreError(f"the store file {self.path} is gone: {exc.strerror}") from exc
        if (st.st_dev, st.st_ino) != (on_disk.st_dev, on_disk.st_ino):
            raise StoreError(f"the store file {self.path} was replaced by another program")

    def probe_directory(self) -> None:
        """Raise StoreError unless a file can be created, written and removed beside the
        store. Safe from any thread: it touches no state of the store. While another thread
        fsyncs, the create and unlink can wait on the file system's journal (177 ms seen
        on the loop's thread: bench/history_bench.py), so `serve` calls it in a worker."""
        here = f"{os.getpid()}-{threading.get_ident()}"  # two probes at once stay apart
        probe = self.path.with_name(f".{self.path.name}.probe-{here}")
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, b"ok\n")
            finally:
                os.close(fd)
                os.unlink(probe)
        except OSError as exc:
            raise StoreError(
                f"cannot write in the store directory {self.path.parent}: {exc.strerror}"
            ) from exc

    # ----------------------------------------------------------------- in-memory changes

    def _tx_or_fail(self) -> _Transaction:
        if self._tx is None:
            raise RuntimeError("store changes must happen inside a transaction")
        return self._tx

    def _bump(self, table: str) -> None:
        self._versions[table] = self._versions.get(table, 0) + 1

    def _create(self, table: str) -> None:
        tx = self._tx_or_fail()
        tx.undo.append(("table", table, _MISSING))
        tx.ops.append(b'["n",' + _name_json(table) + b"]")
        self._data[table] = {}
        self._bump(table)

    def _put(self, table: str, sid: str, doc: Mapping[str, Any], *, plain: bool = False) -> None:
        tx = self._tx_or_fail()
        encoded = _dumps(doc)  # raises TypeError for non-JSON values before anything changes
        # Keep exactly what a reopen would read back (tuples become lists, keys strings...),
        # unless the caller vouches that the document already is that (`plain`).
        stored: Doc = cast("Doc", doc) if plain else _loads(encoded)
        live = self._data[table]
        old = live.get(sid, _MISSING)
        tx.undo.append(("doc", table, sid, old))
        tx.ops.append(b'["p",' + _name_json(table) + b',"' + sid.encode() + b'",' + encoded + b"]")
        live[sid] = stored
        self._reindex(table, sid, old, stored)
        if old is _MISSING:
            self._live += 1
        self._bump(table)

    def put_doc(self, table: str, sid: str, doc: Mapping[str, Any], *, plain: bool = False) -> None:
        """Insert or replace one document (joining the open transaction, if any)."""
        if self._tx is not None and table in self._data:
            # Inside a transaction already: `_put` refuses a document that is not JSON
            # before changing anything, so it needs no scope of its own to undo it.
            self._check_open()
            self._put(table, sid, doc, plain=plain)
            return
        with self.transaction():
            if table not in self._data:
                self._create(table)
            self._put(table, sid, doc, plain=plain)

    def delete_docs(self, table: str, sids: Iterable[str]) -> int:
        """Delete the documents that exist among `sids` (joining the open transaction, if
        any); how many were there. No copy of them is made, unlike TinyDB's remove()."""
        with self.transaction():
            live = self._data.get(table)
            if live is None:
                return 0
            gone = [sid for sid in sids if sid in live]
            for sid in gone:
                self._delete(table, sid)
            return len(gone)

    def _delete(self, table: str, sid: str) -> None:
        tx = self._tx_or_fail()
        live = self._data[table]
        old = live.pop(sid)
        tx.undo.append(("doc", table, sid, old))
        tx.ops.append(b'["d",' + _name_json(table) + b',"' + sid.encode() + b'"]')
        self._reindex(table, sid, old, _MISSING)
        self._live -= 1
        self._bump(table)

    def _clear(self, table: str) -> None:
        self._replace_table(table, {}, "c")

    def _drop(self, table: str) -> None:
        self._replace_table(table, _MISSING, "x")

    def _replace_table(self, table: str, new: Any, op: str) -> None:
        tx = self._tx_or_fail()
        old = self._data.get(table, _MISSING)
        tx.undo.append(("table", table, old))
        tx.ops.append(b'["' + op.encode() + b'",' + _name_json(table) + b"]")
        self._set_table(table, new)

    def _set_table(self, table: str, docs: Any) -> None:
        old = self._data.pop(table, None)
        self._live -= len(old or ())
        if docs is not _MISSING:
            self._data[table] = docs
            self._live += len(docs)
        for field in self._indexes.get(table, {}):
            self._indexes[table][field] = self._build_index(table, field)
        self._bump(table)

    def _rollback(self, tx: _Transaction, mark: tuple[int, int]) -> None:
        ops_mark, undo_mark = mark
        for entry in reversed(tx.undo[undo_mark:]):
            if entry[0] == "table":
                self._set_table(entry[1], entry[2])
                continue
            _, table, sid, old = entry
            live = self._data[table]
            current = live.get(sid, _MISSING)
            if old is _MISSING:
                del live[sid]
                self._live -= 1
            else:
                live[sid] = old
                if current is _MISSING:
                    self._live += 1
            self._reindex(table, sid, current, old)
            self._bump(table)
        del tx.undo[undo_mark:]
        del tx.ops[ops_mark:]

    def _build_index(self, table: str, field: str) -> dict[Any, set[str]]:
        # Runs over every document at open: kept tight (no per-doc set unless the key is new).
        index: dict[Any, set[str]] = {}
        bucket_of = index.get
        for sid, doc in self._data.get(table, {}).items():
            value = doc.get(field, _MISSING)
            if value is _MISSING:
                continue
            key = value if type(value) is str else index_key(value)
            bucket = bucket_of(key)
            if bucket is None:
                index[key] = {sid}
            else:
                bucket.add(sid)
        return index

    def _reindex(self, table: str, sid: str, old: Any, new: Any) -> None:
        for field, index in self._indexes.get(table, {}).items():
            old_value = _MISSING if old is _MISSING else old.get(field, _MISSING)
            new_value = _MISSING if new is _MISSING else new.get(field, _MISSING)
            if old_value is new_value:
                continue  # the common case: a rewrite that leaves this field as it was
            old_key = _MISSING if old_value is _MISSING else index_key(old_value)
            new_key = _MISSING if new_value is _MISSING else index_key(new_value)
            if old_key == new_key:
                continue
            if old_key is not _MISSING:
                bucket = index.get(old_key)
                if bucket is not None:
                    bucket.discard(sid)
                    if not bucket:
                        del index[old_key]
            if new_key is not _MISSING:
                index.setdefault(new_key, set()).add(sid)

    # ----------------------------------------------------------------- the file

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"the store at {self.path} is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self._broken:
            raise StoreError(f"the store at {self.path} cannot be written: {self._broken}")

    def _append(self, line: bytes) -> None:
        self._check_writable()
        self.write_unwritten()  # first: the log keeps the order transactions ended in
        self._write(line)
        if self._fsync:
            try:
                os.fsync(self._fd)
            except OSError as exc:
                self._cut_back()
                self._broken = self._broken or f"fsync failed ({exc})"
                raise StoreError(f"could not write to the store at {self.path}: {exc}") from exc
        self._size += len(line)
        self._appended += len(line)
        self._durable = self._appended

    def _write(self, data: bytes) -> None:
        """Append `data` at the end of the file; on failure, cut the file back to `_size`."""
        try:
            logfile.write_all(self._fd, data)
        except OSError as exc:
            self._cut_back()
            raise StoreError(f"could not write to the store at {self.path}: {exc}") from exc

    def _cut_back(self) -> None:
        # A half-written line followed by good ones would make the file unreadable.
        try:
            os.ftruncate(self._fd, self._size)
        except OSError as exc:
            self._broken = f"a failed write could not be cut off ({exc})"

    def _lock(self) -> None:
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot open the store at {self.path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise StoreLockedError(
                f"the store at {self.path} is in use by another zns-bot process{who}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _release(self) -> None:
        for fd in (self._fd, self._lock_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fd = self._lock_fd = -1

    def _load(self) -> None:
        for stale in self.path.parent.glob(f"{self.path.name}.*.tmp"):
            # Left by a compaction that crashed before its os.replace: never the live data.
            with contextlib.suppress(OSError):
                stale.unlink()
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            raw = b""
        except OSError as exc:
            raise StoreError(f"cannot read the store at {self.path}: {exc.strerror}") from exc
        if not raw or raw.isspace():
            self._data = {}
            self._write_generation(1)
            return
        parsed = logfile.parse(raw, self.path)
        self._data = parsed.data
        self._live = sum(len(docs) for docs in self._data.values())
        self._gen = parsed.gen
        if parsed.legacy:
            log.warning("converting the TinyDB JSON file %s to the log format", self.path)
            self._write_generation(1)
            return
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
            if parsed.good_len < len(raw):
                log.warning(
                    "dropping %d bytes of an unfinished write at the end of %s",
                    len(raw) - parsed.good_len,
                    self.path,
                )
                os.ftruncate(self._fd, parsed.good_len)
                os.fsync(self._fd)
        except OSError as exc:
            raise StoreError(f"cannot open the store at {self.path}: {exc.strerror}") from exc
        self._size = parsed.good_len
        self._log_ops = parsed.log_ops
        self._maybe_compact()

    def _compaction_due(self) -> bool:
        threshold = max(self._compact_min_ops, self._compact_ratio * self._live)
        return self._log_ops >= max(threshold, self._compact_after)

    def _maybe_compact(self) -> None:
        if self._tx is not None or not self._compaction_due():
            return
        if self._background:
            # Never inline: whoever listens starts a background compaction, off the loop.
            if self._compaction_listener is not None and self._job is None:
                try:
                    self._compaction_listener()
                except Exception:
                    # the commit that got us here is durable: it must not look failed
                    log.exception("could not start a background compaction")
            return
        try:
            self._write_generation(self._gen + 1)
        except StoreError as exc:
            self._compaction_failed(exc)

    def _compaction_failed(self, exc: StoreError) -> None:
        # The commit that got us here is durable; keep appending and try again later.
        self._compact_after = self._log_ops + self._compact_min_ops
        log.warning("store compaction failed, will retry later: %s", exc)

    def _step(self, name: str) -> None:
        if self._on_step is not None:
            self._on_step(name)

    def _write_generation(self, gen: int) -> None:
        self._step("started")
        tmp = self.path.with_name(f"{self.path.name}.{gen}.tmp")
        try:
            fd = os.open(
                tmp, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600
            )
        except OSError as exc:
            raise StoreError(f"cannot compact the store at {self.path}: {exc}") from exc
        try:
            size = logfile.write_lines(fd, logfile.snapshot_lines(self._data, gen))
            self._step("temp_written")
            os.fsync(fd)  # even with fsync=False: a rename before the data could lose it all
            self._step("temp_synced")
            os.replace(tmp, self.path)
        except OSError as exc:
            os.close(fd)
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise StoreError(f"cannot compact the store at {self.path}: {exc}") from exc
        self._switch_generation(fd, gen, size, 0)

    def _switch_generation(
        self, fd: int, gen: int, size: int, log_ops: int, *, retire_off_loop: bool = False
    ) -> None:
        """`fd`, renamed into place and fsynced, holds every write so far: switch to it.

        `retire_off_loop`: the replaced file is freed by a thread of its own (`_retire`).
        """
        # The new generation is the store from here on: switch before anything else can fail.
        old_fd, self._fd = self._fd, fd
        if old_fd >= 0 and not retire_off_loop:
            os.close(old_fd)
            old_fd = -1
        self._gen, self._size, self._log_ops, self._compact_after = gen, size, log_ops, 0
        self._unwritten.clear()  # the snapshot holds them
        self._durable = self._appended  # the snapshot holds every write so far, fsynced
        try:
            self._step("replaced")
            try:
                logfile.fsync_dir(self.path.parent)
            except OSError as exc:
                self._broken = f"the directory could not be synced after compaction ({exc})"
                raise StoreError(f"cannot compact the store at {self.path}: {exc}") from exc
            if old_fd >= 0:
                _retire(old_fd)  # only now: until the rename is durable, the old file is live
                old_fd = -1
        finally:
            if old_fd >= 0:
                os.close(old_fd)
        self._step("dir_synced")


def _retire(fd: int) -> None:
    """Free a replaced generation's file in a thread of its own, then close `fd`.

    Whoever drops the last reference to an unlinked file pays for freeing its blocks and
    page cache: ~15 ms for 20 MB, measured, on the loop's thread. Truncating it here first
    makes every later close cheap (a round's sync handle may still be open on it).
    """

    def free() -> None:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        with contextlib.suppress(OSError):
            os.close(fd)

    threading.Thread(target=free, name="zns-store-retire", daemon=True).start()


def _pread_all(fd: int, start: int, end: int) -> bytes:
    """Bytes [start, end) of the file; OSError if it is shorter (it never should be)."""
    pieces = []
    while start < end:
        piece = os.pread(fd, min(end - start, logfile.WRITE_BUFFER), start)
        if not piece:
            raise OSError(f"the store file ended at byte {start}, before byte {end}")
        pieces.append(piece)
        start += len(piece)
    return b"".join(pieces)


class _Abandoned(Exception):
    """Stops the worker thread of a job its store has given up on."""


class CompactionJob:
    """A compaction whose snapshot is written in a worker thread: see `begin_compaction`.

    The thread owns the descriptors it opens until `write()` returns; the loop's thread
    only sets flags and unlinks the temp file (under `_guard`), so neither closes a
    descriptor the other may still use. States: pending -> writing -> written (the temp
    descriptor waits for `finish_compaction`), or failed, or abandoned from any of them.
    """

    def __init__(
        self,
        storage: LogStorage,
        gen: int,
        snapshot: dict[str, dict[str, Doc]],
        mark: int,
        mark_ops: int,
        source_id: tuple[int, int],
    ) -> None:
        self.gen = gen
        self.tmp = storage.path.with_name(f"{storage.path.name}.{gen}.tmp")
        self.mark = mark  # the snapshot is the old file's first `mark` bytes replayed
        self.mark_ops = mark_ops  # the store's `log_ops` at that point
        self.caught = mark  # how far the old file has been copied into the temp file
        self.size = 0  # bytes written to the temp file
        self.error: Exception | None = None
        self._storage = storage
        self._snapshot = snapshot
        self._source_id = source_id  # (st_dev, st_ino) of the file the job copies from
        self._guard = threading.Lock()
        self._state = "pending"
        self._fd = -1

    def write(self) -> None:
        """The slow part, for a worker thread: snapshot and copied log into the temp file.

        Paced (small lines, an fdatasync every MiB) so that neither the GIL nor the disk is
        held long. Failures are kept in `error` for `finish_compaction` to report.
        """
        with self._guard:
            if self._state != "pending":
                return  # abandoned before it began: never create the temp file
            try:
                self._fd = os.open(
                    self.tmp,
                    os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                    0o600,
                )
            except OSError as exc:
                self._state, self.error = "failed", exc
                return
            self._state = "writing"
        try:
            self._write_temp()
        except BaseException as exc:
            with self._guard:
                os.close(self._fd)
                self._fd = -1
                if self._state == "writing":  # else the abandoner has unlinked it
                    with contextlib.suppress(OSError):
                        self.tmp.unlink()
                    self._state = "failed"
            if isinstance(exc, _Abandoned):
                return
            if not isinstance(exc, Exception):
                raise  # KeyboardInterrupt, or a test's simulated crash
            self.error = exc
            return
        finally:
            self._snapshot = {}  # the job may outlive the write: do not keep the documents
        with self._guard:
            if self._state == "writing":
                self._state = "written"
                return
        os.close(self._fd)  # abandoned meanwhile, the temp file unlinked already
        self._fd = -1

    def _write_temp(self) -> None:
        storage = self._storage
        path = storage.path
        source = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            st = os.fstat(source)
            if (st.st_dev, st.st_ino) != self._source_id:
                raise OSError(f"{path} was replaced during its compaction")
            lines = logfile.snapshot_lines(self._snapshot, self.gen, BACKGROUND_SNAPSHOT_CHUNK)
            self.size = logfile.write_paced(self._fd, lines, before_write=self._check)
            # Catch up with what the loop appended meanwhile. `_size` (a plain int, read
            # once) only ever covers complete lines: a failed append is cut back beyond it.
            for _ in range(CATCH_UP_ROUNDS):
                end = storage._size
                if end - self.caught < CATCH_UP_LEFT:
                    break
                pieces = self._pieces(source, self.caught, end)
                self.size += logfile.write_paced(self._fd, pieces, before_write=self._check)
                self.caught = end
        finally:
            os.close(source)
        storage._step("temp_written")
        self._check()
        os.fsync(self._fd)  # what `finish_compaction` then fsyncs is only its short tail
        storage._step("temp_synced")
        self._check()

    @staticmethod
    def _pieces(fd: int, start: int, end: int) -> Iterator[bytes]:
        while start < end:
            piece = _pread_all(fd, start, min(end, start + logfile.WRITE_BUFFER))
            yield piece
            start += len(piece)

    def _check(self) -> None:
        if self._state == "abandoned":
            raise _Abandoned

    def take_fd(self) -> int:
        """The temp file's descriptor, now the caller's; -1 unless the write succeeded."""
        with self._guard:
            if self._state != "written":
                return -1
            fd, self._fd, self._state = self._fd, -1, "finished"
            return fd

    def abandon(self) -> None:
        """Give the job up: its temp file goes now, its thread stops at its next write."""
        with self._guard:
            state, self._state = self._state, "abandoned"
            self._snapshot = {}  # a running thread holds on to what it iterates already
            if state == "written":
                os.close(self._fd)  # the thread is done with it
                self._fd = -1
            if state in ("pending", "writing", "written"):
                with contextlib.suppress(OSError):
                    self.tmp.unlink()
            elif state in ("failed", "finished"):
                self._state = state  # nothing of ours is left: keep what happened


class TrackedTable(MutableMapping[int, Doc]):
    """What a TinyDB updater sees: the live table behind a copy-on-access overlay.

    Reading a document hands out a private copy (TinyDB's update() mutates what it reads),
    so the live data is untouched until the commit compares and applies the overlay.
    A failing updater therefore changes nothing.
    """

    def __init__(self, live: Mapping[str, Doc]) -> None:
        self._live = live
        self.cleared = False
        self.puts: dict[int, Doc] = {}
        self.deleted: set[int] = set()

    def _in_live(self, doc_id: int) -> bool:
        return not self.cleared and doc_id not in self.deleted and str(doc_id) in self._live

    def __getitem__(self, doc_id: int) -> Doc:
        doc = self.puts.get(doc_id)
        if doc is not None:
            return doc
        if not self._in_live(doc_id):
            raise KeyError(doc_id)
        copied: Doc = json_copy(self._live[str(doc_id)])
        self.puts[doc_id] = copied
        return copied

    def __setitem__(self, doc_id: int, doc: Doc) -> None:
        self.deleted.discard(doc_id)
        self.puts[doc_id] = doc

    def __delitem__(self, doc_id: int) -> None:
        existed = self._in_live(doc_id)
        if self.puts.pop(doc_id, None) is None and not existed:
            raise KeyError(doc_id)
        if existed:
            self.deleted.add(doc_id)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self.puts or (isinstance(doc_id, int) and self._in_live(doc_id))

    def __iter__(self) -> Iterator[int]:
        if not self.cleared:
            for sid in self._live:
                doc_id = int(sid)
                if doc_id not in self.deleted:
                    yield doc_id
        for doc_id in self.puts:
            if self.cleared or str(doc_id) not in self._live:
                yield doc_id

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def clear(self) -> None:
        self.cleared = True
        self.puts.clear()
        self.deleted.clear()


class LogTable(Table):
    """A TinyDB Table over LogStorage: O(changed docs) writes, isolated reads, indexes."""

    _storage: LogStorage

    def __init__(
        self,
        storage: Storage,
        name: str,
        cache_size: int = Table.default_query_cache_capacity,
        persist_empty: bool = False,
    ) -> None:
        if not isinstance(storage, LogStorage):
            raise TypeError("LogTable needs a LogStorage")
        self._seen_version = -1
        super().__init__(storage, name, cache_size=cache_size, persist_empty=persist_empty)

    def _read_table(self) -> dict[str, Mapping[str, Any]]:
        return self._storage.table_data(self.name)  # type: ignore[return-value]

    def _update_table(self, updater: Callable[[dict[int, Mapping[str, Any]]], None]) -> None:
        view = TrackedTable(self._storage.table_data(self.name))
        updater(view)  # type: ignore[arg-type]
        self._storage.commit_tracked(self.name, view)
        self.clear_cache()

    # Reads hand out deep copies: the live documents must never be mutated by callers.

    def search(self, cond: QueryLike) -> list[Document]:
        version = self._storage.table_version(self.name)
        if version != self._seen_version:
            # A rolled-back transaction can change a table without a _update_table call.
            self.clear_cache()
            self._seen_version = version
        return [_copy_doc(doc) for doc in super().search(cond)]

    @overload  # type: ignore[override]  # TinyDB's NoReturn get() has no use here
    def get(self, cond: QueryLike) -> Document | None: ...
    @overload
    def get(self, *, doc_id: int) -> Document | None: ...
    @overload
    def get(self, *, doc_ids: list[int]) -> list[Document]: ...
    def get(
        self,
        cond: QueryLike | None = None,
        doc_id: int | None = None,
        doc_ids: list[int] | None = None,
    ) -> Document | list[Document] | None:
        if doc_ids is not None:
            return [_copy_doc(doc) for doc in super().get(doc_ids=doc_ids)]
        if doc_id is not None:
            found = super().get(doc_id=doc_id)
        elif cond is not None:
            found = super().get(cond)
        else:
            raise RuntimeError("get() needs cond, doc_id or doc_ids")
        return None if found is None else _copy_doc(found)

    def __iter__(self) -> Iterator[Document]:
        for sid, doc in list(self._read_table().items()):
            yield Document(json_copy(doc), int(sid))

    def raw_docs(self) -> Mapping[str, Mapping[str, Any]]:
        """The live documents by str doc id, uncopied: for fast scans that never mutate."""
        return self._storage.table_data(self.name)

    # Secondary indexes: in memory, built on first use, maintained on every commit.

    def create_index(self, field: str) -> None:
        self._storage.create_index(self.name, field)

    def find_ids_by(self, field: str, value: Any) -> list[int]:
        return self._storage.lookup(self.name, field, value)

    def count_by(self, field: str, value: Any) -> int:
        return self._storage.count(self.name, field, value)

    def sids_by(self, field: str, value: Any) -> AbstractSet[str]:
        """The str doc ids (as `raw_docs` keys them) whose `field` equals `value`, unsorted."""
        return self._storage.matching(self.name, field, value)

    def first_id_by(self, field: str, value: Any) -> int | None:
        return self._storage.first(self.name, field, value)

    def peek(self, doc_id: int) -> Mapping[str, Any] | None:
        """The live document, uncopied: read only. Writes replace a stored document with a
        new object and never change one in place, so it stays as it was when peeked."""
        return self._storage.table_data(self.name).get(str(doc_id))

    def put(self, doc_id: int, doc: Mapping[str, Any], *, plain: bool = False) -> None:
        """Store `doc` as document `doc_id`, inserting or replacing it: one logged op.

        `plain`: the caller hands over a document that is exactly what JSON decoding yields
        (str keys; str, int, float, bool, None, list and dict values) and never touches it
        again, so it is kept as it is instead of being decoded back from its encoding.
        """
        self._storage.put_doc(self.name, str(doc_id), doc, plain=plain)
        next_id = cast("int | None", self._next_id)  # TinyDB annotates it as always None
        if next_id is not None and doc_id >= next_id:
            self._next_id = None
        self.clear_cache()

    def add(self, doc: Mapping[str, Any], *, plain: bool = False) -> int:
        """Insert `doc` under the next free doc id and return the id (`plain`: see `put`)."""
        doc_id: int = self._get_next_id()  # type: ignore[no-untyped-call]  # TinyDB's
        self.put(doc_id, doc, plain=plain)
        return doc_id

    def delete(self, doc_ids: Iterable[int]) -> int:
        """Delete these documents (those that exist) in one commit, without copying them."""
        deleted = self._storage.delete_docs(self.name, [str(i) for i in doc_ids])
        self.clear_cache()
        return deleted

    def find_by(self, field: str, value: Any) -> list[Document]:
        """Documents whose `field` equals `value`, by doc id (indexes the field if needed)."""
        return self.get_many(self.find_ids_by(field, value))

    def get_many(self, doc_ids: Iterable[int]) -> list[Document]:
        """The existing documents among `doc_ids`, in the order given: O(len(doc_ids))."""
        live = self._read_table()
        return [
            Document(json_copy(live[str(doc_id)]), doc_id)
            for doc_id in doc_ids
            if str(doc_id) in live
        ]


def _copy_doc(doc: Document) -> Document:
    return Document(json_copy(dict(doc)), doc.doc_id)


class LogDB(TinyDB):
    """TinyDB on a LogStorage, with LogTables, transactions and compaction."""

    table_class = LogTable
    # TinyDB builds its default storage from the path alone; LogStorage takes the same path.
    default_storage_class = LogStorage  # type: ignore[assignment]

    @property
    def storage(self) -> LogStorage:
        return self._storage  # type: ignore[return-value]

    def table(self, name: str, **kwargs: Any) -> LogTable:
        return super().table(name, **kwargs)  # type: ignore[return-value]

    def transaction(self, *, sync: bool = True) -> contextlib.AbstractContextManager[None]:
        return self.storage.transaction(sync=sync)

    def compact(self) -> None:
        self.storage.compact()


def open_db(
    path: str | os.PathLike[str],
    *,
    fsync: bool = True,
    compact_min_ops: int = DEFAULT_COMPACT_MIN_OPS,
    compact_ratio: float = DEFAULT_COMPACT_RATIO,
    on_compaction_step: Callable[[str], None] | None = None,
    background_compaction: bool = False,
) -> LogDB:
    """Open (or create) the store file at `path`, locked against other processes.

    `background_compaction`: once open, compact in a worker thread (driven by the group
    commit, see storage.group_commit) instead of inline on the caller's thread.
    """
    return LogDB(
        path,
        storage=LogStorage,
        fsync=fsync,
        compact_min_ops=compact_min_ops,
        compact_ratio=compact_ratio,
        on_compaction_step=on_compaction_step,
        background_compaction=background_compaction,
    )
