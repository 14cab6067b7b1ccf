"""The audit log is a hash chain: any edit, deletion or cut-off tail on disk is reported."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from storage.audit import GENESIS, canonical
from storage.store import Store
from tests.storage.storage_helpers import FakeClock, edit_table_on_disk


def _sha(event: dict[str, Any]) -> str:
    body = {k: v for k, v in event.items() if k != "hash"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _fill(data_dir: Path, count: int = 6, *, compact: bool = False) -> list[dict[str, Any]]:
    with Store.open(data_dir, clock=FakeClock()) as store:
        for i in range(1, count + 1):
            store.audit.append(
                f"U{i}",
                "note",
                send_id=f"s{i % 2}",
                reason=f"reason {i}",
                data={"i": i, "nested": [i]},
            )
        if compact:
            store.db.compact()
        return list(store.audit.iter_events())


def _verify(data_dir: Path):
    with Store.open(data_dir) as store:
        return store.audit.verify()


def test_events_form_a_chain(tmp_path: Path) -> None:
    events = _fill(tmp_path)
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5, 6]
    assert events[0]["prev"] == GENESIS
    for before, after in itertools.pairwise(events):
        assert after["prev"] == before["hash"]
    for event in events:
        assert event["hash"] == _sha(event)
        assert event["ts"] == "2026-03-01T09:00:00.000000+00:00"
    result = _verify(tmp_path)
    assert (result.ok, result.count, result.problems) == (True, 6, [])


def test_appending_after_reopen_continues_the_chain(tmp_path: Path) -> None:
    events = _fill(tmp_path, 3, compact=True)
    with Store.open(tmp_path) as store:
        event = store.audit.append("U9", "note", from_state="a", to_state="b")
        assert (event["seq"], event["prev"]) == (4, events[-1]["hash"])
        assert store.audit.verify().ok


def test_for_send_uses_the_send_id(tmp_path: Path) -> None:
    _fill(tmp_path)
    with Store.open(tmp_path) as store:
        assert [e["seq"] for e in store.audit.for_send("s1")] == [1, 3, 5]
        assert store.audit.for_send("nope") == []


def test_an_append_in_a_failed_transaction_leaves_the_chain_whole(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.audit.append("U1", "note")
        with pytest.raises(RuntimeError), store.db.transaction():
            store.audit.append("U2", "note")
            raise RuntimeError("the surrounding change failed")
        assert store.audit.append("U3", "note")["seq"] == 2
        assert store.audit.verify().ok
    assert _verify(tmp_path).ok


@pytest.fixture(params=[False, True], ids=["in-log", "in-snapshot"])
def filled(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    _fill(tmp_path, compact=request.param)
    return tmp_path


def test_events_whose_data_has_odd_values_verify_after_a_reopen(tmp_path: Path) -> None:
    odd = [
        {"fields": ("a", "b"), "n": 1.5},  # a tuple is stored as a list
        {2: "x", 10: "y"},  # non-str keys are stored as str
        {1: "int key", "1": "str key"},  # the same key twice once stored
    ]
    with Store.open(tmp_path) as store:
        for data in odd:
            store.audit.append("U1", "note", data=data)
        assert store.audit.verify().ok
    with Store.open(tmp_path) as store:
        check = store.audit.verify()
        assert (check.ok, check.count) == (True, 3), check.problems
        assert [e["data"] for e in store.audit.iter_events()][1] == {"2": "x", "10": "y"}


def test_an_edited_event_is_named(filled: Path) -> None:
    def edit(seq: int, event: dict[str, Any]) -> dict[str, Any]:
        return {**event, "reason": "nothing to see"} if seq == 3 else event

    edit_table_on_disk(filled / "live.db", "audit", edit)
    result = _verify(filled)
    assert not result.ok and result.count == 6
    assert result.problems == ["event seq 3 (send s1) was edited: its hash does not match it"]


def test_an_edited_and_rehashed_event_breaks_the_next_link(filled: Path) -> None:
    def edit(seq: int, event: dict[str, Any]) -> dict[str, Any]:
        if seq != 3:
            return event
        forged = {**event, "actor": "U_FORGED"}
        return {**forged, "hash": _sha(forged)}

    edit_table_on_disk(filled / "live.db", "audit", edit)
    problems = _verify(filled).problems
    assert problems[0].startswith("event seq 4 does not link to seq 3")


def test_a_deleted_middle_event_is_named(filled: Path) -> None:
    edit_table_on_disk(filled / "live.db", "audit", lambda seq, e: None if seq == 3 else e)
    result = _verify(filled)
    assert (result.ok, result.count) == (False, 5)
    assert result.problems == ["event seq 3 is missing (deleted before seq 4)"]


def test_a_removed_tail_is_named(filled: Path) -> None:
    edit_table_on_disk(filled / "live.db", "audit", lambda seq, e: None if seq >= 5 else e)
    result = _verify(filled)
    assert (result.ok, result.count) == (False, 4)
    assert result.problems == [
        "event seq 5 is missing: events after seq 4 were removed (the head records seq 6)"
    ]


def test_a_removed_head_record_is_reported(filled: Path) -> None:
    edit_table_on_disk(filled / "live.db", "meta", lambda doc_id, doc: None)
    assert _verify(filled).problems == ["the audit head record is missing (6 events)"]


@pytest.mark.parametrize(
    "value",
    [
        {"reason": 'line\nbreak\ttab\x01\x7f\u2028 é 🎉 \\ " / Nguyễn Văn An'},
        {"z": 1, "Z": 2, "é": 3, "ä": [None, True, False, -7, 2**40], "a": {"y": "", "b": {}}},
        {"data": {"version": 12, "fields": ["error", "error_code", "sms_id"]}, "seq": 1},
    ],
)
def test_hashes_are_taken_over_the_same_bytes_json_writes(value: dict[str, Any]) -> None:
    """Chains written before the fast encoder still verify: the canonical bytes are json's."""
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical(value) == expected.encode()
