"""The segment files of a data directory as the process holding the store writes them."""

# Where each step runs: `Segments` does file work (append, index, seal, compress) and is
# called from one worker thread at a time; it never touches the live store. The live
# store is read and written on the event loop's thread only (storage.archiver). So the
# store is touched from one thread, and a segment from one thread at a time.
#
# Crash safety, step by step (tests/storage/test_archive_crash.py kills the process at
# each one): events are appended to the segment and made durable, then indexed, and only
# then removed from the live log in one commit that also records how far the archive
# got. A crash in between leaves events in both places: the next pass sees the segment's
# last seq and removes them without copying them twice. A seal writes the compressed file
# under a temporary name and renames it, then the seal event is committed, then the plain
# file goes: at start-up a compressed file without its seal event is removed (the seal is
# redone), and a plain file whose seal was committed is removed.

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storage import logfile
from storage.errors import StoreError
from storage.segments import (
    BLOCK_BYTES,
    CODECS,
    DIR_NAME,
    SYNC_EVERY,
    RunningDigest,
    SegmentIndex,
    SegmentName,
    SegmentStorage,
    SegmentTable,
    finish_rewrites,
    header_line,
    keyed,
    read_block,
    stream_events,
)

log = logging.getLogger(__name__)

# Names passed to `on_step`, in order; tests crash the process at each one.
COPY_STEPS = ("appended", "indexed")
SEAL_STEPS = ("sealing", "compressed", "seal_committed", "sealed")

Block = tuple[int, int, int, int, str, str]  # first, last, offset, length, first_ts, last_ts


@dataclass(frozen=True)
class Seal:
    """What a seal event records of its segment."""

    segment: str
    file: str
    first: int
    last: int
    last_hash: str
    digest: str
    count: int

    def as_data(self) -> dict[str, Any]:
        return {
            "segment": self.segment,
            "file": self.file,
            "first": self.first,
            "last": self.last,
            "last_hash": self.last_hash,
            "digest": self.digest,
            "count": self.count,
        }


class Segments:
    """Appends events to the current segment with their index, and seals segments."""

    def __init__(self, data_dir: Path, secret: bytes, *, on_step: Any = None) -> None:
        self.dir = data_dir / DIR_NAME
        self.secret = secret
        self._on_step = on_step
        self.current: SegmentName | None = None
        self._storage: SegmentStorage | None = None
        self._table: SegmentTable | None = None
        self._index: SegmentIndex | None = None
        self._block: list[Any] | None = None  # the open block: first, last, offset, len, ts..
        self._last: dict[str, Any] | None = None
        self._first_seq: int | None = None
        self._digest: RunningDigest | None = RunningDigest()

    def _step(self, name: str) -> None:
        if self._on_step is not None:
            self._on_step(name)

    # ----------------------------------------------------------------- opening

    def recover(self, current: str | None, sealed: Sequence[Mapping[str, Any]]) -> None:
        """Finish or undo what a crash interrupted, and open the current segment (if any)."""
        try:
            self.dir.mkdir(mode=0o700, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the audit directory {self.dir}: {exc}") from exc
        finish_rewrites(self.dir)
        for seal in sealed:
            self._finish_files(SegmentName.parse(seal["segment"]), seal["file"])
        if current is not None:
            name = SegmentName.parse(current)
            for codec in CODECS.values():
                stale = self.dir / name.data_file(codec[0])
                if stale.exists():  # a seal that never committed: it is redone later
                    with contextlib.suppress(OSError):
                        stale.unlink()
            self.open(name)

    def open(self, name: SegmentName) -> None:
        """Make `name` the segment appended to (creating it), re-indexing an unindexed tail."""
        self.close()
        path = self.dir / name.data_file()
        storage = SegmentStorage(path, writable=True)
        index = SegmentIndex(self.dir / name.index_file(), writable=True)
        self.current, self._storage, self._index = name, storage, index
        self._table = SegmentTable(storage)
        blocks = index.blocks(path.name)
        self._block = list(blocks[-1]) if blocks else None
        last = storage.last_line()
        self._last = logfile.loads(last) if last else None
        self._first_seq = blocks[0][0] if blocks else None
        # the seal's digest so far, committed with the index rows it covers; a segment
        # indexed without it (by a development build) is folded at its seal instead
        digest, indexed_any = index.info("digest"), index.info("indexed_to")
        self._digest = None if indexed_any and not digest else RunningDigest()
        if digest:
            self._digest = RunningDigest(digest, int(index.info("count") or 0))
        indexed = int(index.info("indexed_to") or 0)
        if indexed < storage.size:
            self._reindex(path, indexed or len(header_line(name)))

    def _reindex(self, path: Path, start: int) -> None:
        """Index lines appended before a crash cut the index's commit short."""
        assert self._storage is not None
        lines = list(self._storage.lines(start))
        if lines:
            events = [logfile.loads(line) for _, line in lines]
            self._record(events, [len(line) for _, line in lines], lines[0][0])

    def close(self) -> None:
        if self._storage is not None:
            self._storage.close()
        if self._index is not None:
            self._index.close()
        self._storage = self._index = self._table = None
        self.current = None

    # ----------------------------------------------------------------- appending

    @property
    def last_seq(self) -> int:
        """The seq of the last event in the current segment, 0 when it holds none."""
        return int(self._last["seq"]) if self._last else 0

    @property
    def last_event(self) -> Mapping[str, Any] | None:
        return self._last

    @property
    def size(self) -> int:
        return self._storage.size if self._storage is not None else 0

    def append(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Append events (in seq order, after `last_seq`): durable, then indexed."""
        if not events:
            return
        if self._table is None or self._storage is None:
            raise StoreError("no audit segment is open for writing")
        lines = [logfile.dumps(event) + b"\n" for event in events]
        offset = self._storage.append(lines)
        self._step("appended")
        self._record(events, [len(line) for line in lines], offset)
        self._step("indexed")

    def _record(self, events: Sequence[Mapping[str, Any]], sizes: list[int], offset: int) -> None:
        assert self._index is not None and self._storage is not None and self.current
        file = self.current.data_file()
        changed: dict[int, Block] = {}
        keys: list[tuple[int, int]] = []
        block = self._block
        for event, size in zip(events, sizes, strict=True):
            seq, ts = int(event["seq"]), str(event.get("ts") or "")
            if block is None or block[3] >= BLOCK_BYTES or block[2] + block[3] != offset:
                block = [seq, seq, offset, 0, ts, ts]
            block[1], block[3], block[5] = seq, block[3] + size, ts
            changed[block[0]] = (block[0], block[1], block[2], block[3], block[4], block[5])
            keys.extend(keyed(self.secret, event))
            if self._digest is not None:
                self._digest.update(str(event.get("hash", "")))
            offset += size
        info = {"indexed_to": str(offset)}
        if self._digest is not None:
            info.update(digest=self._digest.hexdigest(), count=str(self._digest.count))
        self._index.record(file, changed.values(), keys, info)
        self._block = block
        self._last = dict(events[-1])
        if self._first_seq is None:
            self._first_seq = int(events[0]["seq"])

    # ----------------------------------------------------------------- sealing

    def seal(self, compression: str | None) -> Seal:
        """Digest the current segment and write its compressed copy (if asked); the caller
        then commits the seal event and calls `finish_seal`. Reads the segment once."""
        if self.current is None or self._storage is None or self._index is None:
            raise StoreError("there is no audit segment to seal")
        self._step("sealing")
        name, plain = self.current, self.dir / self.current.data_file()
        last = self._last
        if last is None or self._first_seq is None:
            raise StoreError(f"the audit segment {name} holds no events: nothing to seal")
        file = plain.name
        if compression:
            file = self._compress(name, plain, compression)
        self._step("compressed")
        digest = self._digest or _fold(plain)
        return Seal(
            str(name),
            file,
            self._first_seq,
            int(last["seq"]),
            str(last["hash"]),
            digest.hexdigest(),
            digest.count,
        )

    def _compress(self, name: SegmentName, plain: Path, compression: str) -> str:
        if compression not in CODECS:
            raise StoreError(f"unknown compression {compression!r}")
        suffix, compress, _ = CODECS[compression]
        target = self.dir / name.data_file(suffix)
        tmp = target.with_name(target.name + ".tmp")
        blocks: list[Block] = []
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            offset = unsynced = 0
            for block, raw in self._plain_blocks(plain):
                member = compress(raw)
                logfile.write_all(fd, member)
                if block is not None:
                    blocks.append((block[0], block[1], offset, len(member), block[4], block[5]))
                offset += len(member)
                unsynced += len(member)
                if unsynced >= SYNC_EVERY:
                    os.fdatasync(fd)  # paced: the loop's own fsyncs never wait behind this
                    unsynced = 0
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
        logfile.fsync_dir(self.dir)
        assert self._index is not None
        self._index.record(target.name, blocks, (), {})
        return target.name

    def _plain_blocks(self, plain: Path) -> Iterator[tuple[Block | None, bytes]]:
        """The header, then each indexed block of the plain file, as raw bytes."""
        assert self._index is not None
        blocks = self._index.blocks(plain.name)
        with plain.open("rb") as f:
            header = f.readline()
            yield None, header
            for block in blocks:
                f.seek(block[2])
                yield block, f.read(block[3])

    def finish_seal(self, seal: Seal) -> None:
        """After the seal event is committed: the file read-only, the plain copy gone."""
        self._step("seal_committed")
        self.close()
        self._finish_files(SegmentName.parse(seal.segment), seal.file)
        self._step("sealed")

    def _finish_files(self, name: SegmentName, file: str) -> None:
        sealed = self.dir / file
        plain = self.dir / name.data_file()
        if sealed != plain and sealed.exists():
            with contextlib.suppress(FileNotFoundError):
                plain.unlink()
        for path in (sealed, self.dir / name.index_file()):
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mode & 0o222:
                    path.chmod(0o444)
        logfile.fsync_dir(self.dir)


def _fold(plain: Path) -> RunningDigest:
    """The seal digest of a whole segment file, read once (in the worker thread)."""
    digest = RunningDigest()
    for event in stream_events(plain):
        digest.update(str(event.get("hash", "")))
    return digest


def find_events(
    directory: Path,
    segments: Sequence[tuple[SegmentName, str, bool]],
    h: int,
) -> list[dict[str, Any]]:
    """Events whose index key is `h`, from the given (name, file, sealed) segments, reading
    only the blocks that hold them. The caller checks each event really matches (a 64-bit
    key can collide)."""
    found: list[dict[str, Any]] = []
    for name, file, sealed in segments:
        index_path = directory / name.index_file()
        if not index_path.exists():
            continue
        index = SegmentIndex(index_path, sealed=sealed)
        try:
            seqs = set(index.seqs(h))
            blocks = {index.block_of(file, seq) for seq in seqs}
        except sqlite3.OperationalError as exc:
            if sealed or "no such table" not in str(exc):
                raise
            # The current segment's index, created this instant by the archive pass in
            # its worker thread: no tables yet, so nothing committed to it yet either.
            continue
        finally:
            index.close()
        for block in sorted(b for b in blocks if b is not None):
            found.extend(read_block(directory / file, *block, seqs))
    return sorted(found, key=lambda e: int(e["seq"]))
