"""TinyDB's private Table hooks that storage/engine.py's LogTable overrides are still there."""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from tinydb import Query, TinyDB
from tinydb.storages import MemoryStorage
from tinydb.table import Table

from storage.engine import LogTable

# LogTable overrides the first two with exactly these parameters, and its add() calls the
# third with none; TinyDB's public methods call all three positionally.
HOOKS = {
    "_read_table": ["self"],
    "_update_table": ["self", "updater"],
    "_get_next_id": ["self"],
}
OVERRIDDEN = {"_read_table", "_update_table"}


class CountingTable(Table):
    """A Table that counts its hook calls and records the doc id keys its updaters see."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.calls: Counter[str] = Counter()
        self.updater_keys: list[object] = []
        super().__init__(*args, **kwargs)

    def _read_table(self) -> dict[str, Mapping[str, Any]]:
        self.calls["_read_table"] += 1
        return super()._read_table()

    def _update_table(self, updater: Callable[[dict[int, Mapping[str, Any]]], None]) -> None:
        self.calls["_update_table"] += 1

        def spy(table: dict[int, Mapping[str, Any]]) -> None:
            updater(table)
            self.updater_keys.extend(table)

        super()._update_table(spy)

    def _get_next_id(self) -> int:
        self.calls["_get_next_id"] += 1
        next_id: int = super()._get_next_id()
        return next_id


class CountingDB(TinyDB):
    table_class = CountingTable


@pytest.fixture
def table() -> CountingTable:
    db = CountingDB(storage=MemoryStorage)
    made = db.table("sends")
    assert isinstance(made, CountingTable)
    made.calls.clear()
    return made


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_table_still_has_the_hook_with_the_signature_logtable_assumes(name: str) -> None:
    hook = getattr(Table, name, None)
    assert callable(hook), f"tinydb.table.Table.{name} is gone: storage/engine.py overrides it"
    assert list(inspect.signature(hook).parameters) == HOOKS[name]
    # Guards the test itself: it must check what LogTable really overrides.
    assert name not in OVERRIDDEN or name in vars(LogTable)


def test_insert_takes_the_next_id_and_writes_through_update_table(table: CountingTable) -> None:
    doc_id = table.insert({"phone": "84901234567"})

    assert table.calls["_get_next_id"] == 1
    assert table.calls["_update_table"] == 1
    # LogTable hands updaters a TrackedTable keyed by int doc ids, as TinyDB's own dict is.
    assert table.updater_keys == [doc_id]
    assert all(type(key) is int for key in table.updater_keys)


def test_search_get_and_iteration_read_through_read_table(table: CountingTable) -> None:
    table.insert({"phone": "84901234567"})
    table.calls.clear()

    assert len(table.search(Query().phone == "84901234567")) == 1
    assert table.calls["_read_table"] >= 1
    table.calls.clear()
    assert table.get(doc_id=1) is not None
    assert table.calls["_read_table"] >= 1
    table.calls.clear()
    assert [doc.doc_id for doc in table] == [1]
    assert table.calls["_read_table"] >= 1


def test_update_and_remove_write_through_update_table(table: CountingTable) -> None:
    table.insert({"phone": "84901234567", "status": "queued"})
    table.calls.clear()

    assert table.update({"status": "sent"}, Query().phone == "84901234567") == [1]
    assert table.calls["_update_table"] == 1
    assert table.remove(doc_ids=[1]) == [1]
    assert table.calls["_update_table"] == 2
    assert len(table) == 0


def test_next_id_is_a_cache_that_none_resets_from_read_table() -> None:
    # LogTable.put stores documents behind TinyDB's back and sets _next_id = None to say so.
    db = TinyDB(storage=MemoryStorage)
    table = db.table("sends")
    assert table._next_id is None
    db.storage.write({"sends": {"5": {"n": 5}}})

    assert table._get_next_id() == 6
    assert table._next_id == 7  # cached: the table is not read again
    db.storage.write({"sends": {"5": {"n": 5}, "9": {"n": 9}}})
    assert table._get_next_id() == 7
    table._next_id = None
    assert table._get_next_id() == 10


def test_table_and_db_keep_their_storage_in_storage_attribute() -> None:
    # LogTable and LogDB reach their LogStorage through the private `_storage` attribute.
    db = TinyDB(storage=MemoryStorage)
    table = db.table("sends")
    assert table._storage is db.storage
    assert db._storage is db.storage
