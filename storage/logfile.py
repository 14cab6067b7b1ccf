"""The store's file format: a snapshot followed by a log of transactions."""

# File format (one file, UTF-8, one JSON value per line):
#
#     {"format": "zns-store-log", "version": 1, "gen": 7}          header
#     {"table": "sends", "docs": {"1": {...}, "2": {...}}}           snapshot chunk (0..n)
#     {"snapshot_end": 7, "docs": 2}                                 end of snapshot
#     [["p", "sends", "3", {...}], ["p", "audit", "9", {...}]]       one committed transaction
#     [["d", "sends", "2"]]                                          ...
#
# Log ops: ``p`` put a whole document, ``d`` delete a document, ``c`` clear a table,
# ``x`` drop a table, ``n`` create an empty table. A line is written with one ``os.write``
# and fsynced before the commit returns, or, for a ``sync=False`` commit, written and fsynced
# with its batch by the group commit before anyone is told; a line without its newline was
# never acknowledged.
# Compaction writes ``<file>.<gen>.tmp``, fsyncs it, ``os.replace``s it over the file and
# fsyncs the directory, so the file on disk is always either the old or the new generation.
# A background compaction writes the same thing: the snapshot as it was at some line of the
# log, followed by a byte-for-byte copy of the log lines appended after that line.

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

from storage.errors import StoreError

FORMAT = "zns-store-log"
FORMAT_VERSION = 1
SNAPSHOT_CHUNK = 5_000  # docs per snapshot line: bounds the size of one encoded line
WRITE_BUFFER = 1 << 20
# A background compaction fdatasyncs after about this much: a big write left for the kernel
# to flush at once would stall every other fsync on the file system (the loop's own) behind it.
SYNC_EVERY = 1 << 20

Doc = dict[str, Any]


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON, as the file holds it; TypeError for what JSON cannot hold.

    orjson: the store encodes every document it writes, several times faster than json.
    """
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def loads(data: bytes | str) -> Any:
    """Parse one JSON value; ValueError when it is not one."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        # NaN and Infinity, which files written with the json module may hold
        return json.loads(data)


class Parsed:
    __slots__ = ("data", "gen", "good_len", "legacy", "log_ops")

    def __init__(self) -> None:
        self.data: dict[str, dict[str, Doc]] = {}
        self.gen = 0
        self.good_len = 0
        self.log_ops = 0
        self.legacy = False


def parse(raw: bytes, path: Path, tables: frozenset[str] | None = None) -> Parsed:
    """The store's data as of its last complete line. With `tables`, only those tables are
    decoded (the read-only audit tools need a few small ones of a large live store)."""
    parsed = Parsed()
    lines = raw.split(b"\n")
    try:
        header = loads(lines[0])
    except ValueError:
        header = None
    if not (isinstance(header, dict) and header.get("format") == FORMAT):
        return _parse_legacy(raw, path)
    if header.get("version") != FORMAT_VERSION:
        raise StoreError(f"the store at {path} has unsupported format version {header!r}")
    parsed.gen = int(header["gen"])
    data = parsed.data
    i, offset = _parse_snapshot(lines, parsed, path, tables)
    parsed.good_len = offset
    bad_at: int | None = None
    # The last piece has no newline: an unacknowledged (torn) write, or empty.
    for line in lines[i:-1]:
        ops = decode_ops(line)
        if ops is None:
            bad_at = offset if bad_at is None else bad_at
        elif bad_at is not None:
            raise StoreError(
                f"the store at {path} is corrupt at byte {bad_at} (valid data follows it)"
            )
        else:
            _replay(data, ops if tables is None else [op for op in ops if op[1] in tables])
            parsed.log_ops += len(ops)
            parsed.good_len = offset + len(line) + 1
        offset += len(line) + 1
    return parsed


def _parse_snapshot(
    lines: list[bytes], parsed: Parsed, path: Path, tables: frozenset[str] | None
) -> tuple[int, int]:
    """Read the snapshot into `parsed.data`; the index and offset of the first log line.

    The snapshot was written whole before an os.replace: any fault in it is corruption.
    """
    offset = len(lines[0]) + 1
    i = 1
    snapshot_docs = 0
    while True:
        if i >= len(lines) - 1:
            raise StoreError(f"the store at {path} is corrupt: its snapshot is incomplete")
        try:
            if tables is not None and _other_table(lines[i], tables):
                continue
            entry = loads(lines[i])
            if "snapshot_end" in entry:
                totals = tables is None and entry["docs"] != snapshot_docs
                if entry["snapshot_end"] != parsed.gen or totals:
                    raise StoreError(f"the store at {path} is corrupt: snapshot totals differ")
                return i + 1, offset + len(lines[i]) + 1
            parsed.data.setdefault(entry["table"], {}).update(entry["docs"])
            snapshot_docs += len(entry["docs"])
        except (ValueError, TypeError, KeyError, AttributeError):
            raise StoreError(f"the store at {path} is corrupt at byte {offset}") from None
        finally:
            offset += len(lines[i]) + 1
            i += 1


def _other_table(line: bytes, tables: frozenset[str]) -> bool:
    """Whether a snapshot line holds a table not asked for (told from its first bytes)."""
    if not line.startswith(b'{"table":"'):
        return False
    name = line[10 : line.find(b'"', 10)].decode()
    return name not in tables


def decode_ops(line: bytes) -> list[list[Any]] | None:
    """One log line's ops, or None when the line is not a whole, valid transaction."""
    try:
        ops = loads(line)
    except ValueError:
        return None
    if not isinstance(ops, list) or not ops:
        return None
    for op in ops:
        if not (isinstance(op, list) and len(op) >= 2 and op[0] in "pdcxn"):
            return None
        if op[0] == "p" and not (len(op) == 4 and isinstance(op[3], dict)):
            return None
    return ops


def _replay(data: dict[str, dict[str, Doc]], ops: list[list[Any]]) -> None:
    for op in ops:
        kind, table = op[0], op[1]
        if kind == "p":
            data.setdefault(table, {})[op[2]] = op[3]
        elif kind == "d":
            data.get(table, {}).pop(op[2], None)
        elif kind == "c":
            data[table] = {}
        elif kind == "x":
            data.pop(table, None)
        else:
            data.setdefault(table, {})


def _parse_legacy(raw: bytes, path: Path) -> Parsed:
    """A plain TinyDB JSONStorage file: import it whole."""
    try:
        data = loads(raw)
    except ValueError:
        data = None
    if not (isinstance(data, dict) and all(isinstance(t, dict) for t in data.values())):
        raise StoreError(f"{path} is not a zns-bot store (unknown format)")
    parsed = Parsed()
    parsed.data = data
    parsed.legacy = True
    return parsed


def snapshot_lines(
    data: Mapping[str, Mapping[str, Doc]], gen: int, chunk: int = SNAPSHOT_CHUNK
) -> Iterable[bytes]:
    """The snapshot part of a generation: header, `chunk` documents per line, end marker."""
    yield dumps({"format": FORMAT, "version": FORMAT_VERSION, "gen": gen}) + b"\n"
    total = 0
    for table, docs in data.items():
        # islice, not a list of every item: a worker thread runs this while the loop waits
        # for the GIL, so no single step may take long.
        items = iter(docs.items())
        docs_chunk = dict(itertools.islice(items, chunk))
        while True:
            total += len(docs_chunk)
            yield dumps({"table": table, "docs": docs_chunk}) + b"\n"  # an empty table too
            docs_chunk = dict(itertools.islice(items, chunk))
            if not docs_chunk:
                break
    yield dumps({"snapshot_end": gen, "docs": total}) + b"\n"


def write_lines(fd: int, lines: Iterable[bytes]) -> int:
    size = 0
    buffer: list[bytes] = []
    pending = 0
    for line in lines:
        buffer.append(line)
        pending += len(line)
        if pending >= WRITE_BUFFER:
            write_all(fd, b"".join(buffer))
            size, buffer, pending = size + pending, [], 0
    write_all(fd, b"".join(buffer))
    return size + pending


def write_paced(
    fd: int, pieces: Iterable[bytes], *, before_write: Callable[[], None] | None = None
) -> int:
    """Write `pieces` in about `WRITE_BUFFER` at a time, fdatasyncing every `SYNC_EVERY`.

    For a writer in a worker thread: dirty pages never pile up, so the fsyncs of others on
    the same file system stay short. `before_write` runs before each write (it may raise to
    stop). Returns the bytes written; the caller makes the last ones durable itself.
    """
    size = unsynced = pending = 0
    buffer: list[bytes] = []
    for piece in pieces:
        buffer.append(piece)
        pending += len(piece)
        if pending < WRITE_BUFFER:
            continue
        if before_write is not None:
            before_write()
        write_all(fd, b"".join(buffer))
        size, unsynced, buffer, pending = size + pending, unsynced + pending, [], 0
        if unsynced >= SYNC_EVERY:
            os.fdatasync(fd)
            unsynced = 0
    if pending:
        if before_write is not None:
            before_write()
        write_all(fd, b"".join(buffer))
    return size + pending


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
