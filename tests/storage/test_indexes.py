"""Secondary indexes answer exactly what a full scan would, through every kind of change."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from tinydb import Query

from storage.engine import LogTable, open_db

Q = Query()


def _scan(table: LogTable, field: str, value: Any) -> list[int]:
    return sorted(
        doc.doc_id
        for doc in table.all()
        if field in doc and doc[field] == value and type(doc[field]) is type(value)
    )


def _assert_index_matches_scan(table: LogTable, values: list[Any]) -> None:
    for value in values:
        assert table.find_ids_by("k", value) == _scan(table, "k", value), value
        assert [d.doc_id for d in table.find_by("k", value)] == _scan(table, "k", value)
        assert table.count_by("k", value) == len(_scan(table, "k", value))


VALUES: list[Any] = ["a", "b", 1, 1.0, True, None, "c"]


def test_index_follows_random_changes_rollbacks_and_reopen(tmp_path: Path) -> None:
    rng = random.Random(7)
    path = tmp_path / "db"
    db = open_db(path, compact_min_ops=50)
    table = db.table("t")
    table.create_index("k")
    for round_ in range(300):
        action = rng.choice(["insert", "update", "remove", "drop_field", "rollback", "reopen"])
        if action == "insert":
            table.insert({"k": rng.choice(VALUES), "r": round_})
        elif action == "update":
            third = round_ % 3
            table.update({"k": rng.choice(VALUES)}, Q.r.test(lambda r, t=third: r % 3 == t))
        elif action == "remove" and len(table):
            table.remove(doc_ids=[rng.choice([d.doc_id for d in table.all()])])
        elif action == "drop_field":
            table.update(lambda doc: doc.pop("k", None), Q.k == rng.choice(VALUES))
        elif action == "rollback":
            with pytest.raises(RuntimeError), db.transaction():
                table.insert({"k": "a"})
                table.update({"k": "c"})
                raise RuntimeError
        elif action == "reopen":
            db.close()
            db = open_db(path, compact_min_ops=50)
            table = db.table("t")  # indexes are rebuilt on first use
        _assert_index_matches_scan(table, VALUES)
    db.close()


def test_index_after_truncate_drop_and_recreate(tmp_path: Path) -> None:
    with open_db(tmp_path / "db") as db:
        table = db.table("t")
        table.create_index("k")
        table.insert_multiple([{"k": "a"}, {"k": "a"}, {"k": "b"}])
        assert table.find_ids_by("k", "a") == [1, 2]
        table.truncate()
        assert table.find_ids_by("k", "a") == []
        table.insert({"k": "a"})
        assert table.find_ids_by("k", "a") == [1]
        db.drop_table("t")
        table = db.table("t")
        assert table.find_ids_by("k", "a") == []
        table.insert({"k": "b"})
        assert table.find_ids_by("k", "b") == [1]


def test_index_keeps_json_types_apart_and_handles_structures(tmp_path: Path) -> None:
    with open_db(tmp_path / "db") as db:
        table = db.table("t")
        table.insert_multiple(
            [{"k": 1}, {"k": 1.0}, {"k": True}, {"k": "1"}, {"k": {"b": 1, "a": [2]}}, {}]
        )
        assert table.find_ids_by("k", 1) == [1]
        assert table.find_ids_by("k", 1.0) == [2]
        assert table.find_ids_by("k", True) == [3]
        assert table.find_ids_by("k", "1") == [4]
        assert table.find_ids_by("k", {"a": [2], "b": 1}) == [5]
        assert table.find_ids_by("k", None) == []
