"""Compaction keeps the log short and never loses an acknowledged write, wherever it stops."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from bot.errors import StoreError
from storage.engine import COMPACTION_STEPS, open_db
from tests.storage.storage_helpers import log_lines, state_of


class Crash(BaseException):
    """Stands for the process dying: nothing in the engine may catch it."""


def _inserted(path: Path, count: int, **options: object) -> None:
    with open_db(path, **options) as db:  # type: ignore[arg-type]
        db.table("t").insert_multiple({"n": i} for i in range(count))


def test_compaction_happens_when_the_log_outgrows_the_data(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with open_db(path, compact_min_ops=20, compact_ratio=1.0) as db:
        table = db.table("t")
        table.insert_multiple({"n": i, "v": 0} for i in range(10))
        assert db.storage.generation == 1
        assert db.storage.log_ops == 11  # a create-table op and 10 puts
        table.update({"v": 1})  # 21 >= max(20, 1.0 * 10 live documents)
        assert (db.storage.generation, db.storage.log_ops) == (2, 0)
        table.update({"v": 2})
        assert (db.storage.generation, db.storage.log_ops) == (2, 10)
        header, snapshot = log_lines(path)[:2]
        assert header["gen"] == 2
        assert snapshot["docs"]["1"] == {"n": 0, "v": 1}
        expected = state_of(db)
    with open_db(path) as db:
        assert state_of(db) == expected


def test_compaction_on_open_when_worthwhile(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with open_db(path, compact_min_ops=1000) as db:
        table = db.table("t")
        table.insert({"n": 0})
        for i in range(50):
            table.update({"n": i + 1}, doc_ids=[1])
    size = path.stat().st_size
    with open_db(path, compact_min_ops=10) as db:
        assert db.storage.generation == 2
        assert db.table("t").all() == [{"n": 50}]
    assert path.stat().st_size < size / 5


def test_compacting_many_documents_writes_them_all(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with open_db(path) as db:
        db.table("big").insert_multiple({"n": i} for i in range(12_345))
        db.table("empty", persist_empty=True)
        db.compact()
    with open_db(path) as db:
        assert len(db.table("big")) == 12_345
        assert db.table("big").get(doc_id=12_345) == {"n": 12_344}
        assert "empty" in db.tables()


@pytest.mark.parametrize("step", COMPACTION_STEPS)
def test_a_crash_at_any_compaction_step_loses_nothing(tmp_path: Path, step: str) -> None:
    path = tmp_path / "db"
    armed = False

    def crash(at: str) -> None:
        if armed and at == step:
            raise Crash(at)

    db = open_db(path, compact_min_ops=1000, on_compaction_step=crash)
    table = db.table("t")
    table.insert_multiple({"n": i} for i in range(20))
    table.remove(doc_ids=[3])
    table.update({"x": 1}, doc_ids=[5])
    expected = state_of(db)
    armed = True
    with pytest.raises(Crash):
        db.compact()
    db.close()  # only releases the lock and descriptors, writes nothing
    temp_left = list(tmp_path.glob("db.*.tmp"))
    assert bool(temp_left) == (step in ("temp_written", "temp_synced"))

    with open_db(path) as db:
        assert state_of(db) == expected
        assert db.storage.generation == (
            1 if step in ("started", "temp_written", "temp_synced") else 2
        )
        db.table("t").insert({"after": "crash"})
    assert list(tmp_path.glob("db.*.tmp")) == []  # leftovers are cleared on open
    with open_db(path) as db:
        assert len(db.table("t")) == 20


def test_a_failed_compaction_is_logged_and_writes_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "db"
    with open_db(path, compact_min_ops=5, compact_ratio=0.0) as db:
        table = db.table("t")
        real_replace = os.replace

        def refuse(src: str, dst: str) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "replace", refuse)
        with caplog.at_level(logging.WARNING, logger="storage.engine"):
            for i in range(8):
                table.insert({"n": i})  # the 5th write triggers the failed compaction
        assert "compaction failed" in caplog.text
        assert db.storage.generation == 1
        assert list(tmp_path.glob("db.*.tmp")) == []
        monkeypatch.setattr(os, "replace", real_replace)
        for i in range(8, 20):
            table.insert({"n": i})
        assert db.storage.generation > 1  # retried once more ops piled up
    with open_db(path) as db:
        assert [d["n"] for d in db.table("t")] == list(range(20))


def test_explicit_compaction_inside_a_transaction_is_refused(tmp_path: Path) -> None:
    with open_db(tmp_path / "db") as db, db.transaction():
        db.table("t").insert({"n": 1})
        with pytest.raises(StoreError, match="inside a transaction"):
            db.compact()


def test_no_compaction_inside_a_transaction(tmp_path: Path) -> None:
    with open_db(tmp_path / "db", compact_min_ops=3, compact_ratio=0.0) as db:
        with db.transaction():
            for i in range(10):
                db.table("t").insert({"n": i})
            assert db.storage.generation == 1
        assert db.storage.generation == 2
