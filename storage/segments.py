"""Audit segments: one UTC month of events per file, as TinyDB documents, one per line."""

# A segment file (UTF-8, one JSON value per line):
#
#     {"format": "zns-audit-segment", "version": 1, "segment": "2026-12.0"}     header
#     {"seq": 901, "ts": "...", ..., "hash": "...", "personal": {...}}        one event
#
# The current segment only grows: lines are appended and made durable in paced chunks.
# A sealed one is read-only (mode 0444) and may be compressed whole-file as a series of
# independent members (gzip, bz2 and xz all read such a file as one stream), one per
# block of lines, so that a lookup decompresses one block, never the whole month.
# Beside each segment, `<name>.idx` (SQLite) holds the block map and salted-hash keys
# (send id, SMSID, phone, callback token) -> seq: history is found without reading it.

from __future__ import annotations

import bz2
import contextlib
import glob
import gzip
import hashlib
import hmac
import lzma
import os
import re
import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn

from tinydb.storages import Storage
from tinydb.table import Document, Table

from storage import logfile
from storage.content import ERASED_ACTION
from storage.errors import StoreError

DIR_NAME = "audit"
FORMAT = "zns-audit-segment"
FORMAT_VERSION = 1
TABLE = "audit"
# Lines per block: a lookup reads (and maybe decompresses) one block of about this size.
BLOCK_BYTES = 256 * 1024
# Suffix of a segment's data file and index while an erasure rewrites them.
REWRITING = ".erasing"
# Paced durability: never let more than this much written data wait for the disk, so a
# large copy never makes the event loop's own small fsyncs wait behind it.
SYNC_EVERY = 1 << 20

# compression name -> (file suffix, compress one member, decompress one member)
_Codec = tuple[str, Callable[[bytes], bytes], Callable[[bytes], bytes]]
CODECS: dict[str, _Codec] = {
    "gzip": (".gz", lambda b: gzip.compress(b, 6, mtime=0), gzip.decompress),
    "bz2": (".bz2", bz2.compress, bz2.decompress),
    "xz": (".xz", lzma.compress, lzma.decompress),
}
# Each reads a whole-file stream (all members): callers close what they open.
_OPENERS: dict[str, Callable[[Path], IO[bytes]]] = {
    "": lambda p: p.open("rb"),
    ".gz": lambda p: gzip.open(p, "rb"),  # type: ignore[dict-item,return-value]  # noqa: SIM115
    ".bz2": lambda p: bz2.open(p, "rb"),  # noqa: SIM115
    ".xz": lambda p: lzma.open(p, "rb"),  # noqa: SIM115
}
_NAME = re.compile(r"^(\d{4}-\d{2})\.(\d+)\.jsonl(\.gz|\.bz2|\.xz)?$")


@dataclass(frozen=True, order=True)
class SegmentName:
    """`2026-12.0`: the month's events from the start or from the previous seal on."""

    month: str  # YYYY-MM, UTC
    part: int

    def __str__(self) -> str:
        return f"{self.month}.{self.part}"

    @classmethod
    def parse(cls, text: str) -> SegmentName:
        month, _, part = text.partition(".")
        if not re.fullmatch(r"\d{4}-\d{2}", month) or not part.isdigit():
            raise ValueError(f"not a segment name: {text!r}")
        return cls(month, int(part))

    @classmethod
    def of_file(cls, file_name: str) -> tuple[SegmentName, str] | None:
        """The segment a data file holds and its compression suffix, or None."""
        found = _NAME.match(file_name)
        if found is None:
            return None
        return cls(found.group(1), int(found.group(2))), found.group(3) or ""

    def data_file(self, suffix: str = "") -> str:
        return f"{self}.jsonl{suffix}"

    def index_file(self) -> str:
        return f"{self}.idx"

    def next_part(self) -> SegmentName:
        return SegmentName(self.month, self.part + 1)


def month_of(ts: str) -> str:
    """The UTC month of a stored time (`storage.clock.iso` text): its first 7 characters."""
    return ts[:7]


def key_hash(secret: bytes, kind: str, value: str) -> int:
    """The index key of one lookup value: keyed BLAKE2b, so a phone is never stored in clear
    and cannot be found by trying every number without the store's secret."""
    digest = hashlib.blake2b(f"{kind}\0{value}".encode(), key=secret, digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def token_digest(token: str) -> str:
    """What the archive keeps of a callback token: enough to recognise it, not to use it."""
    return hashlib.sha256(token.encode()).hexdigest()


def codec_of(file: str) -> _Codec | None:
    """The codec of a segment file by its name's suffix; None for a plain file."""
    found = SegmentName.of_file(file)
    suffix = found[1] if found else ""
    return next((c for c in CODECS.values() if c[0] == suffix), None) if suffix else None


def header_line(name: SegmentName) -> bytes:
    return (
        logfile.dumps({"format": FORMAT, "version": FORMAT_VERSION, "segment": str(name)}) + b"\n"
    )


def _check_header(line: bytes, path: Path) -> None:
    try:
        header = logfile.loads(line)
    except ValueError:
        header = None
    if not (isinstance(header, dict) and header.get("format") == FORMAT):
        raise StoreError(f"{path} is not an audit segment")
    if header.get("version") != FORMAT_VERSION:
        raise StoreError(f"{path} has an unsupported segment version")


class SegmentStorage(Storage):
    """TinyDB Storage over one segment file: appended and streamed, never loaded whole.

    `read()`/`write()` (TinyDB's whole-database calls) refuse: a month of events does not
    fit in memory. `SegmentTable` uses `append` and `lines` instead.
    """

    def __init__(self, path: Path, *, writable: bool = False) -> None:
        super().__init__()
        self.path = path
        self.writable = writable
        self._fd = -1
        self._size = 0
        if writable:
            self._open_for_append()

    def read(self) -> NoReturn:
        raise StoreError(f"the audit segment {self.path.name} is streamed, never loaded whole")

    def write(self, data: dict[str, dict[str, Any]]) -> NoReturn:
        raise StoreError(f"the audit segment {self.path.name} is append-only")

    def close(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1

    @property
    def size(self) -> int:
        """Bytes of complete lines (writer only)."""
        return self._size

    def _open_for_append(self) -> None:
        name = SegmentName.of_file(self.path.name)
        if name is None:
            raise StoreError(f"{self.path} is not named like an audit segment")
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot open the audit segment {self.path}: {exc.strerror}") from exc
        self._fd = fd
        size = os.fstat(fd).st_size
        if size == 0:
            logfile.write_all(fd, header_line(name[0]))
            os.fsync(fd)
            logfile.fsync_dir(self.path.parent)
            self._size = os.fstat(fd).st_size
            return
        good = _complete_length(fd, size)
        if good < size:
            # an append that never finished was never acknowledged: cut it off
            os.ftruncate(fd, good)
            os.fsync(fd)
        self._size = good
        _check_header(os.pread(fd, 4096, 0).split(b"\n", 1)[0], self.path)

    def append(self, lines: Sequence[bytes]) -> int:
        """Append whole lines, durable when this returns; the offset of the first one."""
        if self._fd < 0:
            raise StoreError(f"the audit segment {self.path.name} is not open for writing")
        start = self._size
        chunk: list[bytes] = []
        pending = 0
        try:
            for line in lines:
                chunk.append(line)
                pending += len(line)
                if pending >= SYNC_EVERY:
                    self._write(chunk, pending)
                    chunk, pending = [], 0
            self._write(chunk, pending)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)  # a torn line must not stay
            raise StoreError(f"cannot write the audit segment {self.path}: {exc}") from exc
        return start

    def _write(self, chunk: list[bytes], size: int) -> None:
        if not chunk:
            return
        logfile.write_all(self._fd, b"".join(chunk))
        os.fdatasync(self._fd)
        self._size += size

    def last_line(self) -> bytes | None:
        """The last complete line after the header, or None (writer only)."""
        if self._size == 0:
            return None
        start = max(0, self._size - 65536)
        while True:
            tail = os.pread(self._fd, self._size - start, start)
            cut = tail.rfind(b"\n", 0, len(tail) - 1)
            if cut >= 0 or start == 0:
                line = tail[cut + 1 : -1]
                return None if line.startswith(b'{"format"') else line
            start = max(0, start - 65536)

    def lines(self, start: int = 0) -> Iterator[tuple[int, bytes]]:
        """(offset, line) of every complete line from `start` (plain files only)."""
        offset = start
        with self.path.open("rb") as f:
            f.seek(start)
            for line in f:
                if not line.endswith(b"\n"):
                    return  # being written, or torn: not part of the segment yet
                yield offset, line
                offset += len(line)


def _complete_length(fd: int, size: int) -> int:
    """The length of the file up to its last newline."""
    start = size
    while start > 0:
        start = max(0, start - 65536)
        tail = os.pread(fd, size - start, start)
        cut = tail.rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
    return 0


def stream_events(path: Path) -> Iterator[dict[str, Any]]:
    """Every event of a segment file (plain or compressed), in order, in bounded memory.

    Stops at the last complete line: a line still being appended is not read.
    """
    found = SegmentName.of_file(path.name)
    suffix = found[1] if found else ""
    with _OPENERS[suffix](path) as f:
        first = True
        for line in f:
            if not line.endswith(b"\n"):
                return
            if first:
                _check_header(line, path)
                first = False
                continue
            yield logfile.loads(line)


def read_block(
    path: Path, offset: int, length: int, seqs: Collection[int] | None = None
) -> list[dict[str, Any]]:
    """The events of one block (a byte range of a plain file or one compressed member);
    with `seqs`, only those events: the other lines of the block are never decoded."""
    with path.open("rb") as f:
        f.seek(offset)
        raw = f.read(length)
    codec = codec_of(path.name)
    if codec is not None:
        raw = codec[2](raw)
    lines = [line for line in raw.split(b"\n") if line and not line.startswith(b'{"format"')]
    if seqs is not None:
        # A line is compact JSON with sorted keys, so its own "seq" is written exactly so;
        # a nested value that looks alike only costs a decode (the seq is checked below).
        marks = [b'"seq":%d%s' % (seq, end) for seq in seqs for end in (b",", b"}")]
        lines = [line for line in lines if any(mark in line for mark in marks)]
    events = [logfile.loads(line) for line in lines]
    return events if seqs is None else [e for e in events if e.get("seq") in seqs]


class SegmentTable(Table):
    """One segment's events as a TinyDB table: `insert` appends, reads stream, doc id = seq."""

    _storage: SegmentStorage

    def __init__(self, storage: SegmentStorage, name: str = TABLE) -> None:
        if not isinstance(storage, SegmentStorage):
            raise TypeError("SegmentTable needs a SegmentStorage")
        super().__init__(storage, name)

    def insert(self, document: Mapping[str, Any]) -> int:
        return self.insert_multiple([document])[0]

    def insert_multiple(self, documents: Iterable[Mapping[str, Any]]) -> list[int]:
        docs = list(documents)
        self._storage.append([logfile.dumps(doc) + b"\n" for doc in docs])
        return [int(doc["seq"]) for doc in docs]

    def __iter__(self) -> Iterator[Document]:
        for event in stream_events(self._storage.path):
            yield Document(event, int(event["seq"]))

    def __len__(self) -> int:
        return sum(1 for _ in stream_events(self._storage.path))

    def search(self, cond: Any) -> list[Document]:
        """The matching events, found by streaming the file (no query cache: it only grows)."""
        return [doc for doc in self if cond(doc)]

    def _read_table(self) -> NoReturn:
        raise StoreError("an audit segment is streamed: iterate over it instead")

    def _update_table(self, updater: Callable[[dict[int, Any]], None]) -> NoReturn:
        raise StoreError("an audit segment is append-only: events are never changed")


class SegmentIndex:
    """`<segment>.idx`: block map and lookup keys of one segment, in SQLite.

    The writer (the bot's archive pass) commits it after the segment's lines are durable;
    readers open it read-only, and a sealed one immutable (no locks at all). On the current
    segment's index a reader holds SQLite's shared lock for one query at a time: the only
    lock the audit tools take, and the writer, in its worker thread, waits it out.
    """

    def __init__(self, path: Path, *, writable: bool = False, sealed: bool = False) -> None:
        self.path = path
        if writable:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.executescript(
                """
                PRAGMA journal_mode=DELETE;
                PRAGMA synchronous=FULL;
                PRAGMA busy_timeout=5000;
                CREATE TABLE IF NOT EXISTS keys (
                    h INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (h, seq)
                ) WITHOUT ROWID;
                CREATE TABLE IF NOT EXISTS blocks (
                    file TEXT NOT NULL, first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,
                    offset INTEGER NOT NULL, length INTEGER NOT NULL,
                    first_ts TEXT NOT NULL, last_ts TEXT NOT NULL,
                    PRIMARY KEY (file, first_seq)
                );
                CREATE TABLE IF NOT EXISTS info (k TEXT PRIMARY KEY, v TEXT NOT NULL);
                """
            )
        else:
            if not path.exists():
                raise StoreError(f"the index {path} of an audit segment is missing")
            mode = "ro&immutable=1" if sealed else "ro"
            self._db = sqlite3.connect(
                f"file:{path}?mode={mode}", uri=True, check_same_thread=False
            )
            self._db.execute("PRAGMA busy_timeout=2000")

    def close(self) -> None:
        self._db.close()

    def info(self, key: str) -> str | None:
        row = self._db.execute("SELECT v FROM info WHERE k = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def record(
        self,
        file: str,
        blocks: Iterable[tuple[int, int, int, int, str, str]],
        keys: Iterable[tuple[int, int]],
        info: Mapping[str, str],
    ) -> None:
        """One commit: blocks (first, last, offset, length, first_ts, last_ts), keys, info."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO blocks VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(file, *block) for block in blocks],
            )
            self._db.executemany("INSERT OR IGNORE INTO keys VALUES (?, ?)", keys)
            self._db.executemany("INSERT OR REPLACE INTO info VALUES (?, ?)", info.items())

    def replace(
        self,
        file: str,
        blocks: Iterable[tuple[int, int, int, int, str, str]],
        drop_keys: Iterable[int],
        info: Mapping[str, str],
    ) -> None:
        """One commit: `file`'s block map replaced, the keys `drop_keys` gone; then VACUUM,
        so that no free page keeps what was dropped (an erasure rewrote the segment)."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM blocks WHERE file = ?", (file,))
            self._db.executemany(
                "INSERT INTO blocks VALUES (?, ?, ?, ?, ?, ?, ?)", [(file, *b) for b in blocks]
            )
            self._db.executemany("DELETE FROM keys WHERE h = ?", [(h,) for h in drop_keys])
            self._db.executemany("INSERT OR REPLACE INTO info VALUES (?, ?)", info.items())
        self._db.execute("VACUUM")

    def seqs(self, h: int) -> list[int]:
        return [row[0] for row in self._db.execute("SELECT seq FROM keys WHERE h = ?", (h,))]

    def blocks(self, file: str) -> list[tuple[int, int, int, int, str, str]]:
        """(first_seq, last_seq, offset, length, first_ts, last_ts) of `file`, in order."""
        return list(
            self._db.execute(
                "SELECT first_seq, last_seq, offset, length, first_ts, last_ts FROM blocks "
                "WHERE file = ? ORDER BY first_seq",
                (file,),
            )
        )

    def block_of(self, file: str, seq: int) -> tuple[int, int] | None:
        """(offset, length) of the block of `file` holding `seq`."""
        row = self._db.execute(
            "SELECT offset, length FROM blocks WHERE file = ? AND first_seq <= ? "
            "AND last_seq >= ? ",
            (file, seq, seq),
        ).fetchone()
        return None if row is None else (int(row[0]), int(row[1]))


def finish_rewrites(directory: Path) -> None:
    """After a crash while an erasure rewrote a segment (storage.erasure): an index whose
    data file was renamed already is renamed too; otherwise both temp files go, and the
    old files stand (the erasure, run again, redoes it)."""
    for index_tmp in directory.glob(f"*.idx{REWRITING}"):
        segment = index_tmp.name[: -len(f".idx{REWRITING}")]
        data_tmps = list(directory.glob(f"{glob.escape(segment)}.jsonl*{REWRITING}"))
        if data_tmps:
            for path in (*data_tmps, index_tmp):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        else:
            os.replace(index_tmp, directory / f"{segment}.idx")
    for data_tmp in directory.glob(f"*.jsonl*{REWRITING}"):
        with contextlib.suppress(FileNotFoundError):
            data_tmp.unlink()  # its index was never written: the old files stand
    logfile.fsync_dir(directory)


def index_keys(event: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """The lookups an event answers: its send, and the SMSID, phone and token it carries."""
    send_id = event.get("send_id")
    if send_id:
        yield "send", str(send_id)
    data = event.get("data")
    if isinstance(data, Mapping) and event.get("action") == ERASED_ACTION:
        for erased in data.get("send_ids") or ():  # found with the sends it erased
            yield "send", str(erased)
    if isinstance(data, Mapping):
        for kind, field in (("sms", "sms_id"), ("token", "token_digest")):
            value = data.get(field)
            if value:
                yield kind, str(value)
    personal = event.get("personal")
    if isinstance(personal, Mapping):
        fields = personal.get("fields")
        if isinstance(fields, Mapping) and fields.get("phone"):
            yield "phone", str(fields["phone"])


def keyed(secret: bytes, event: Mapping[str, Any]) -> list[tuple[int, int]]:
    seq = int(event["seq"])
    return [(key_hash(secret, kind, value), seq) for kind, value in index_keys(event)]


class RunningDigest:
    """A seal's digest over a segment's event hashes, in order (not over its bytes, so that
    erasing personal fields later leaves the seal checkable): d = SHA-256(d || hash), from
    32 zero bytes. Foldable one event at a time, so the writer keeps it as it appends and a
    seal needs no second read of the month; `audit verify` folds it again from the file."""

    __slots__ = ("count", "state")

    def __init__(self, state: str = "00" * 32, count: int = 0) -> None:
        self.state = bytes.fromhex(state)
        self.count = count

    def update(self, event_hash: str) -> None:
        try:
            raw = bytes.fromhex(event_hash)
        except ValueError:  # an edited hash still folds in, and then fails to match
            raw = event_hash.encode()
        self.state = hashlib.sha256(self.state + raw).digest()
        self.count += 1

    def hexdigest(self) -> str:
        return self.state.hex()


def same_digest(a: str, b: str) -> bool:
    return hmac.compare_digest(a, b)
