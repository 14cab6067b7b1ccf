"""The log engine keeps TinyDB's behaviour, persists every op, and survives bad files."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tinydb import Query, TinyDB
from tinydb.operations import delete, increment
from tinydb.table import Document

from bot.errors import StoreError
from storage.engine import LogDB, open_db
from tests.storage.storage_helpers import log_lines, state_of

Q = Query()


def _nested_bump(doc: dict[str, Any]) -> None:
    # Mutates a nested value in place: the change must still be noticed and logged.
    if "nested" in doc:
        doc["nested"]["k"] += 1


STEPS: list[tuple[str, Callable[[TinyDB], Any]]] = [
    ("insert", lambda db: db.table("t").insert({"a": 1, "tags": ["x"], "nested": {"k": 1}})),
    (
        "insert_multiple",
        lambda db: db.table("t").insert_multiple({"a": i, "b": i % 3} for i in range(2, 12)),
    ),
    ("update cond", lambda db: db.table("t").update({"c": True}, Q.b == 1)),
    ("update callable", lambda db: db.table("t").update(increment("a"), Q.a > 8)),
    ("update nested", lambda db: db.table("t").update(_nested_bump, Q.a == 1)),
    ("update doc_ids", lambda db: db.table("t").update({"d": 1}, doc_ids=[2, 3, 99])),
    ("update all", lambda db: db.table("t").update({"all": 1})),
    ("update delete field", lambda db: db.table("t").update(delete("all"), Q.a < 4)),
    (
        "update_multiple",
        lambda db: db.table("t").update_multiple([({"m": 1}, Q.a == 2), ({"m": 2}, Q.a == 3)]),
    ),
    ("upsert insert", lambda db: db.table("t").upsert({"a": 100, "u": 1}, Q.a == 100)),
    ("upsert update", lambda db: db.table("t").upsert({"u": 2}, Q.a == 100)),
    ("upsert doc_id", lambda db: db.table("t").upsert(Document({"z": 1}, doc_id=50))),
    ("insert Document", lambda db: db.table("t").insert(Document({"y": 1}, doc_id=60))),
    ("remove cond", lambda db: db.table("t").remove(Q.b == 2)),
    ("remove doc_ids", lambda db: db.table("t").remove(doc_ids=[1, 1000])),
    ("insert after remove", lambda db: db.table("t").insert({"after": "remove"})),
    ("second table", lambda db: db.table("u").insert_multiple([{"x": 1}, {"x": 2}])),
    ("truncate", lambda db: db.table("u").truncate()),
    ("insert after truncate", lambda db: db.table("u").insert({"x": 3})),
    ("default table", lambda db: db.insert({"default": True})),
    ("doomed table", lambda db: db.table("v").insert({"gone": 1})),
    ("drop_table", lambda db: db.drop_table("v")),
    ("empty table", lambda db: len(db.table("empty", persist_empty=True))),
    ("search", lambda db: db.table("t").search(Q.a > 5)),
    ("get cond", lambda db: db.table("t").get(Q.a == 3)),
    ("get doc_id", lambda db: db.table("t").get(doc_id=2)),
    ("get doc_ids", lambda db: db.table("t").get(doc_ids=[2, 3, 4])),
    ("contains", lambda db: db.table("t").contains(Q.u == 2)),
    ("count", lambda db: db.table("t").count(Q.c == True)),  # noqa: E712
    ("len", lambda db: len(db.table("t"))),
    ("all", lambda db: db.table("u").all()),
    ("tables", lambda db: sorted(db.tables())),
]


def _open_reference(path: Path) -> TinyDB:
    return TinyDB(path)


def _comparable(result: Any) -> Any:
    if isinstance(result, Document):
        return (result.doc_id, dict(result))
    if isinstance(result, list):
        return [_comparable(r) for r in result]
    return result


def test_every_tinydb_op_matches_plain_tinydb_and_survives_reopen(tmp_path: Path) -> None:
    # Plain TinyDB on JSONStorage is the reference: same results, same data after reopen.
    ref_path, path = tmp_path / "ref.json", tmp_path / "log.db"
    for name, step in STEPS:
        ref, db = _open_reference(ref_path), open_db(path)
        assert _comparable(step(db)) == _comparable(step(ref)), name
        assert state_of(db) == state_of(ref), name
        ref.close()
        db.close()
        with open_db(path) as db, _open_reference(ref_path) as ref:
            assert state_of(db) == state_of(ref), f"after reopen: {name}"


def test_drop_tables_is_persisted(tmp_path: Path) -> None:
    with open_db(tmp_path / "db") as db:
        db.table("a").insert({"x": 1})
        db.table("b").insert({"x": 2})
        db.drop_tables()
        db.table("c").insert({"x": 3})
    with open_db(tmp_path / "db") as db:
        assert state_of(db) == {"c": {1: {"x": 3}}}


def _lines_after(path: Path, before: int) -> list[Any]:
    return log_lines(path)[before:]


def test_a_write_appends_only_the_changed_documents(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with open_db(path) as db:
        table = db.table("t")
        table.insert_multiple({"n": i, "even": i % 2 == 0} for i in range(100))
        before = len(log_lines(path))
        # The condition reads every document; only the 50 that change are written.
        table.update({"flag": 1}, Q.even == True)  # noqa: E712
        (line,) = _lines_after(path, before)
        assert len(line) == 50
        assert {op[0] for op in line} == {"p"}

        before = len(log_lines(path))
        table.update({"flag": 1}, Q.even == True)  # noqa: E712  (nothing changes now)
        assert _lines_after(path, before) == []

        table.remove(Q.n < 3)
        assert _lines_after(path, before) == [[["d", "t", "1"], ["d", "t", "2"], ["d", "t", "3"]]]


def test_a_failing_updater_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with open_db(path) as db:
        table = db.table("t")
        table.insert({"a": 1})
        size = path.stat().st_size
        with pytest.raises(ValueError, match="not a Mapping"):
            table.insert_multiple([{"a": 2}, "oops"])  # type: ignore[list-item]

        def half_update(doc: dict[str, Any]) -> None:
            doc["a"] = 99
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            table.update(half_update)
        with pytest.raises(TypeError):
            table.insert({"not json": object()})
        assert table.all() == [{"a": 1}]
        assert path.stat().st_size == size
    with open_db(path) as db:
        assert db.table("t").all() == [{"a": 1}]


def test_a_refused_put_inside_a_transaction_leaves_the_rest_of_it(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with open_db(path) as db:
        table = db.table("t")
        table.put(1, {"a": 1})
        with db.transaction():
            table.put(1, {"a": 2})
            with pytest.raises(TypeError):
                table.put(1, {"a": object()})  # joins the transaction; refused whole
            table.put(2, {"b": 1})
        assert (table.peek(1), table.peek(2)) == ({"a": 2}, {"b": 1})
    with open_db(path) as db:
        assert db.table("t").all() == [{"a": 2}, {"b": 1}]


def test_documents_handed_out_are_copies(tmp_path: Path) -> None:
    with open_db(tmp_path / "db") as db:
        table = db.table("t")
        original = {"nested": {"k": [1]}}
        table.insert(original)
        original["nested"]["k"].append(2)  # the caller keeps using its dict
        for doc in (table.get(doc_id=1), table.all()[0], table.search(Q.nested.exists())[0]):
            assert doc is not None
            doc["nested"]["k"].append(3)
        assert table.find_by("nested", {"k": [1]})[0]["nested"]["k"] == [1]
        assert table.get(doc_id=1) == {"nested": {"k": [1]}}


def test_stored_documents_read_back_as_json(tmp_path: Path) -> None:
    with open_db(tmp_path / "db") as db:
        db.table("t").insert({"tuple": (1, 2), "keys": {1: "one"}})
        expected = {"tuple": [1, 2], "keys": {"1": "one"}}
        assert db.table("t").get(doc_id=1) == expected
    with open_db(tmp_path / "db") as db:
        assert db.table("t").get(doc_id=1) == expected


def test_transaction_is_one_line_and_all_or_nothing(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with open_db(path) as db:
        a, b = db.table("a"), db.table("b")
        before = len(log_lines(path))
        with db.transaction():
            a.insert({"x": 1})
            b.insert({"y": 1})
            a.update({"x": 2}, doc_ids=[1])
        assert len(_lines_after(path, before)) == 1
        before = len(log_lines(path))
        with pytest.raises(RuntimeError), db.transaction():
            a.insert({"x": 3})
            b.remove(doc_ids=[1])
            db.drop_table("a")
            raise RuntimeError("abort")
        assert _lines_after(path, before) == []
        assert state_of(db) == {"a": {1: {"x": 2}}, "b": {1: {"y": 1}}}
        assert a.search(Q.x == 3) == []  # no stale query-cache entry either


def test_inner_block_failure_undoes_only_the_inner_block(tmp_path: Path) -> None:
    with open_db(tmp_path / "db") as db:
        table = db.table("t")
        with db.transaction():
            table.insert({"keep": 1})
            with pytest.raises(KeyError), db.transaction():
                table.insert({"drop": 1})
                raise KeyError("inner")
            table.insert({"keep": 2})
    with open_db(tmp_path / "db") as db:
        assert [dict(d) for d in db.table("t")] == [{"keep": 1}, {"keep": 2}]


def test_a_failed_disk_write_is_refused_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "db"
    with open_db(path) as db:
        table = db.table("t")
        table.insert({"a": 1})
        size = path.stat().st_size
        real_write = os.write

        def full_disk(fd: int, data: bytes) -> int:
            real_write(fd, bytes(data)[:7])  # a partial line reaches the file first
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "write", full_disk)
        with pytest.raises(StoreError, match="No space left"):
            table.insert({"a": 2})
        monkeypatch.setattr(os, "write", real_write)
        assert path.stat().st_size == size  # the partial line was cut off
        assert table.all() == [{"a": 1}]
        table.insert({"a": 3})
    with open_db(path) as db:
        assert [d["a"] for d in db.table("t")] == [1, 3]


def test_torn_last_line_is_dropped_and_cut_off(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with open_db(path) as db:
        db.table("t").insert_multiple([{"n": 1}, {"n": 2}])
    good = path.read_bytes()
    for torn in (b'[["p","t","3",{"n":', b'[["p","t","3",{"n":3}]]', b"\0\0\0\0"):
        path.write_bytes(good + torn)
        with open_db(path) as db:
            assert [d["n"] for d in db.table("t")] == [1, 2]
            assert path.read_bytes() == good
            db.table("t").insert({"n": 4})
        with open_db(path) as db:
            assert [d["n"] for d in db.table("t")] == [1, 2, 4]
        path.write_bytes(good)


def test_a_bad_line_followed_by_good_ones_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with open_db(path) as db:
        db.table("t").insert({"n": 1})
        db.table("t").insert({"n": 2})
    lines = path.read_bytes().split(b"\n")
    lines[-3] = lines[-3][:10]  # damage the first log line, not the last
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(StoreError, match="corrupt"):
        open_db(path)


def test_not_a_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db"
    path.write_text("hello\n")
    with pytest.raises(StoreError, match="not a zns-bot store"):
        open_db(path)


def test_a_plain_tinydb_file_is_imported(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with TinyDB(path) as old:
        old.table("t").insert_multiple([{"a": 1}, {"a": 2}])
    with open_db(path) as db:
        assert state_of(db) == {"t": {1: {"a": 1}, 2: {"a": 2}}}
        db.table("t").insert({"a": 3})
    with open_db(path) as db:
        assert [d["a"] for d in db.table("t")] == [1, 2, 3]


def test_a_second_opener_in_this_process_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with open_db(path), pytest.raises(StoreError, match="in use by another zns-bot process"):
        open_db(path)
    open_db(path).close()  # released on close


def test_a_second_process_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "db"
    script = (
        "import sys\n"
        "from bot.errors import StoreError\n"
        "from storage.engine import open_db\n"
        "try:\n"
        "    open_db(sys.argv[1])\n"
        "except StoreError as exc:\n"
        "    print(exc)\n"
        "    sys.exit(3)\n"
    )
    with open_db(path) as db:
        db.table("t").insert({"a": 1})
        done = subprocess.run(
            [sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 3, done.stderr
        assert done.stdout.strip() == (
            f"the store at {path} is in use by another zns-bot process (pid {os.getpid()})"
        )
        assert db.table("t").all() == [{"a": 1}]


def test_writes_after_close_are_refused(tmp_path: Path) -> None:
    db = open_db(tmp_path / "db")
    db.close()
    with pytest.raises(StoreError, match="closed"):
        db.table("t").insert({"a": 1})


def test_fsync_can_be_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd) or real_fsync(fd))
    with open_db(tmp_path / "on") as db:
        calls.clear()
        db.table("t").insert({"a": 1})
        assert len(calls) == 1
    with open_db(tmp_path / "off", fsync=False) as db:
        calls.clear()
        db.table("t").insert({"a": 1})
        assert calls == []


def test_log_lines_carry_table_id_and_document_or_delete_marker(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with open_db(path) as db:
        db.table("t").insert({"a": 1})
        db.table("t").remove(doc_ids=[1])
    *_, put, remove = log_lines(path)
    assert put == [["n", "t"], ["p", "t", "1", {"a": 1}]]
    assert remove == [["d", "t", "1"]]
    assert json.loads(path.read_text().splitlines()[0])["format"] == "zns-store-log"


def test_log_db_is_a_tinydb(tmp_path: Path) -> None:
    with open_db(tmp_path / "db") as db:
        assert isinstance(db, LogDB) and isinstance(db, TinyDB)


def test_delete_removes_existing_documents_in_one_commit_and_rolls_back(tmp_path: Path) -> None:
    db = open_db(tmp_path / "s.db")
    table = db.table("t")
    ids = [table.add({"n": n}) for n in range(5)]
    table.create_index("n")
    assert table.delete([ids[0], ids[1], 999]) == 2
    assert sorted(doc.doc_id for doc in table) == ids[2:]
    assert table.find_ids_by("n", 0) == []
    with pytest.raises(RuntimeError), db.transaction():
        table.delete([ids[2]])
        raise RuntimeError("undo")
    assert table.find_ids_by("n", 2) == [ids[2]]
    db.close()
    reopened = open_db(tmp_path / "s.db")
    assert sorted(doc.doc_id for doc in reopened.table("t")) == ids[2:]
    reopened.close()
