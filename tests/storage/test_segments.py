"""Segment files: TinyDB documents one per line, appended, streamed, read by block."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from tinydb import Query

from storage.archive import Segments, find_events
from storage.errors import StoreError
from storage.segments import (
    RunningDigest,
    SegmentIndex,
    SegmentName,
    SegmentStorage,
    SegmentTable,
    key_hash,
    read_block,
    stream_events,
)

SECRET = bytes(32)


def _event(seq: int, **extra: object) -> dict[str, object]:
    return {
        "seq": seq,
        "ts": f"2026-12-01T00:00:{seq % 60:02d}.000000+00:00",
        "hash": f"{seq:064x}",
        **extra,
    }


def test_names_sort_by_month_then_part() -> None:
    names = [SegmentName.parse(t) for t in ("2026-12.1", "2026-11.0", "2026-12.0", "2027-01.0")]
    assert [str(n) for n in sorted(names)] == ["2026-11.0", "2026-12.0", "2026-12.1", "2027-01.0"]
    assert SegmentName.of_file("2026-11.0.jsonl.xz") == (SegmentName("2026-11", 0), ".xz")
    assert SegmentName.of_file("notes.txt") is None
    with pytest.raises(ValueError, match="not a segment name"):
        SegmentName.parse("2026-1.0")


def test_a_segment_is_a_tinydb_table_that_only_grows(tmp_path: Path) -> None:
    storage = SegmentStorage(tmp_path / "2026-12.0.jsonl", writable=True)
    table = SegmentTable(storage)
    assert table.insert(_event(1)) == 1
    assert table.insert_multiple([_event(2), _event(3)]) == [2, 3]
    assert [doc.doc_id for doc in table] == [1, 2, 3]
    assert len(table) == 3
    assert [doc.doc_id for doc in table.search(Query().hash == f"{2:064x}")] == [2]
    with pytest.raises(StoreError, match="streamed"):
        storage.read()
    with pytest.raises(StoreError, match="append-only"):
        table.update({"hash": "x"})
    with pytest.raises(StoreError, match="append-only"):
        table.remove(doc_ids=[1])
    storage.close()


def test_a_torn_last_line_is_never_read_and_is_cut_by_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "2026-12.0.jsonl"
    storage = SegmentStorage(path, writable=True)
    SegmentTable(storage).insert_multiple([_event(1), _event(2)])
    storage.close()
    with path.open("ab") as f:
        f.write(b'{"seq":3,"ts":"2026-12')  # a crash in the middle of an append
    assert [e["seq"] for e in stream_events(path)] == [1, 2]
    reopened = SegmentStorage(path, writable=True)
    assert path.read_bytes().endswith(b"\n")
    assert reopened.last_line() is not None and b'"seq":2' in (reopened.last_line() or b"")
    reopened.close()


def test_a_file_that_is_not_a_segment_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "2026-12.0.jsonl"
    path.write_bytes(b'{"format":"zns-store-log","version":1,"gen":1}\n')
    with pytest.raises(StoreError, match="not an audit segment"):
        SegmentStorage(path, writable=True)


def test_lookups_read_one_block_and_keys_hide_phones(tmp_path: Path) -> None:
    segments = Segments(tmp_path, SECRET)
    segments.recover(None, [])
    name = SegmentName("2026-12", 0)
    segments.open(name)
    phone = "0901888484"
    events = [
        _event(
            n,
            send_id=f"s{n % 50}",
            personal={"salt": "00", "fields": {"phone": phone}} if n == 777 else None,
            pad="x" * 400,
        )
        for n in range(1, 3001)
    ]
    for start in range(0, 3000, 500):
        segments.append(events[start : start + 500])
    index = SegmentIndex(tmp_path / "audit" / name.index_file())
    blocks = index.blocks(name.data_file())
    assert len(blocks) > 3  # 3000 events of ~500 bytes: several 256 KiB blocks
    seqs = index.seqs(key_hash(SECRET, "phone", phone))
    assert seqs == [777]
    offset, length = index.block_of(name.data_file(), 777) or (0, 0)
    assert length < os.path.getsize(tmp_path / "audit" / name.data_file()) / 3
    path = tmp_path / "audit" / name.data_file()
    whole = [e["seq"] for e in read_block(path, offset, length)]
    assert 777 in whole and 77 not in whole and len(whole) > 100
    # asked for seqs, it decodes only those lines (no prefix of another seq matches)
    assert [e["seq"] for e in read_block(path, offset, length, {777})] == [777]
    assert [e["seq"] for e in read_block(path, offset, length, {77, 7777})] == []
    index.close()
    assert phone.encode() not in (tmp_path / "audit" / name.index_file()).read_bytes()
    segments.close()


def test_a_current_index_caught_before_its_tables_exist_holds_nothing(tmp_path: Path) -> None:
    """The archive pass creates the current segment's index in a worker thread: a lookup
    (the bot's `/zns status`, or the audit tools) may open it between the file and its
    tables. It holds nothing then; a sealed index without tables is still an error."""
    name = SegmentName("2026-12", 0)
    (tmp_path / name.index_file()).touch()  # what sqlite3.connect leaves, before any table
    h = key_hash(SECRET, "send", "zns-1")
    assert find_events(tmp_path, [(name, name.data_file(), False)], h) == []
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        find_events(tmp_path, [(name, name.data_file(), True)], h)


def test_a_crash_between_append_and_index_is_reindexed_at_open(tmp_path: Path) -> None:
    segments = Segments(tmp_path, SECRET)
    segments.recover(None, [])
    name = SegmentName("2026-12", 0)
    segments.open(name)
    segments.append([_event(1, send_id="a")])
    segments.close()
    storage = SegmentStorage(tmp_path / "audit" / name.data_file(), writable=True)
    SegmentTable(storage).insert(_event(2, send_id="b"))  # durable, never indexed
    storage.close()
    segments.open(name)
    assert segments.last_seq == 2
    index = SegmentIndex(tmp_path / "audit" / name.index_file())
    assert index.seqs(key_hash(SECRET, "send", "b")) == [2]
    index.close()
    segments.close()


def test_a_segment_indexed_without_a_running_digest_is_folded_at_its_seal(
    tmp_path: Path,
) -> None:
    segments = Segments(tmp_path, SECRET)
    segments.recover(None, [])
    name = SegmentName("2026-12", 0)
    segments.open(name)
    segments.append([_event(1, send_id="a"), _event(2, send_id="b")])
    segments.close()
    index = SegmentIndex(tmp_path / "audit" / name.index_file(), writable=True)
    index._db.execute("DELETE FROM info WHERE k IN ('digest', 'count')")  # an older build's
    index.close()
    segments.open(name)
    segments.append([_event(3, send_id="c")])
    seal = segments.seal(None)
    assert (seal.first, seal.last, seal.count) == (1, 3, 3)
    expected = RunningDigest()
    for seq in (1, 2, 3):
        expected.update(f"{seq:064x}")
    assert seal.digest == expected.hexdigest()
    segments.close()
