"""SendRecords.earliest: the few due sends out of many, found in chunks that yield the loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from storage.sends import SendState
from storage.store import Store

S = SendState
ROUTE: dict[SendState, list[SendState]] = {
    S.PENDING_APPROVAL: [],
    S.APPROVED: [S.APPROVED],
    S.REJECTED: [S.REJECTED],
    S.SUBMITTING: [S.APPROVED, S.SUBMITTING],
    S.ACCEPTED: [S.APPROVED, S.SUBMITTING, S.ACCEPTED],
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path, fsync=False) as opened:
        yield opened


def make_send(store: Store, state: SendState, due: str | None) -> str:
    send_id = store.sends.create({"phone": "0901888484", "next_poll_at": due}, actor="t")["id"]
    for step in ROUTE[state]:
        assert store.sends.transition(send_id, step, actor="t") is not None
    return send_id


def due_field(doc: Mapping[str, Any]) -> str | None:
    return doc.get("next_poll_at")


def ids(found: list[dict[str, Any]]) -> list[str]:
    return [send["id"] for send in found]


async def test_the_smallest_keys_first_ties_by_creation(store: Store) -> None:
    late = make_send(store, S.APPROVED, "2026-03-01T12:00")
    tie_old = make_send(store, S.APPROVED, "2026-03-01T10:00")
    soonest = make_send(store, S.APPROVED, "2026-03-01T09:00")
    tie_new = make_send(store, S.APPROVED, "2026-03-01T10:00")
    found, count = await store.sends.earliest({S.APPROVED}, due_field, 3)
    assert ids(found) == [soonest, tie_old, tie_new]
    assert count == 4  # every send with a key, not just the `limit` returned
    found, count = await store.sends.earliest({S.APPROVED}, due_field, 10)
    assert ids(found) == [soonest, tie_old, tie_new, late]
    assert count == 4


async def test_other_states_and_sends_without_a_key_are_left_out(store: Store) -> None:
    approved = make_send(store, S.APPROVED, "2026-03-01T11:00")
    accepted = make_send(store, S.ACCEPTED, "2026-03-01T10:00")
    make_send(store, S.APPROVED, None)  # in a wanted state, but not due
    make_send(store, S.PENDING_APPROVAL, "2026-03-01T08:00")
    make_send(store, S.REJECTED, "2026-03-01T08:00")
    make_send(store, S.SUBMITTING, "2026-03-01T08:00")
    found, count = await store.sends.earliest({S.APPROVED}, due_field, 10)
    assert (ids(found), count) == ([approved], 1)
    found, count = await store.sends.earliest({"approved", "accepted"}, due_field, 10)
    assert (ids(found), count) == ([accepted, approved], 2)
    assert [send["state"] for send in found] == ["accepted", "approved"]
    found, count = await store.sends.earliest({S.APPROVED}, due_field, 0)
    assert (found, count) == ([], 1)


async def test_the_results_are_copies(store: Store) -> None:
    send_id = make_send(store, S.APPROVED, "2026-03-01T09:00")
    before = store.sends.get(send_id)
    found, _ = await store.sends.earliest({S.APPROVED}, due_field, 1)
    found[0]["state"] = "delivered"
    found[0]["next_poll_at"] = None
    assert store.sends.get(send_id) == before
    again, _ = await store.sends.earliest({S.APPROVED}, due_field, 1)
    assert ids(again) == [send_id] and again[0]["next_poll_at"] == "2026-03-01T09:00"


@pytest.mark.parametrize("chunk", [1, 2, 3, 7])
async def test_small_chunks_find_the_same_as_one(store: Store, chunk: int) -> None:
    keys = ["09:30", "09:10", None, "09:10", "09:50", "09:00", "09:20"]
    for key in keys:
        make_send(store, S.APPROVED, key and f"2026-03-01T{key}")
    make_send(store, S.PENDING_APPROVAL, "2026-03-01T08:00")
    whole = await store.sends.earliest({S.APPROVED}, due_field, 4, chunk=100)
    assert await store.sends.earliest({S.APPROVED}, due_field, 4, chunk=chunk) == whole
    assert whole[1] == 6
    assert [send["next_poll_at"][-5:] for send in whole[0]] == ["09:00", "09:10", "09:10", "09:20"]


async def test_a_send_that_moves_during_the_scan_is_judged_when_reached(store: Store) -> None:
    all_ids = [make_send(store, S.APPROVED, f"2026-03-01T09:0{n}") for n in range(7)]
    seen: list[str] = []
    moved: dict[str, str] = {}

    def move_two() -> None:
        # runs while the scan yields after its first chunk: one send it has already
        # judged and one it has yet to reach both leave the wanted state
        moved["reached"] = seen[0]
        moved["unreached"] = next(i for i in all_ids if i not in seen)
        for send_id in moved.values():
            assert store.sends.transition(send_id, S.SUBMITTING, actor="t") is not None

    def due(doc: Mapping[str, Any]) -> str | None:
        if not seen:
            asyncio.get_running_loop().call_soon(move_two)
        seen.append(doc["id"])
        return doc["next_poll_at"]

    found, count = await store.sends.earliest({S.APPROVED}, due, 10, chunk=2)
    assert len(seen) == 6  # the unreached one was never offered to `due`
    assert moved["unreached"] not in seen
    assert count == 6
    assert ids(found) == [i for i in all_ids if i != moved["unreached"]]
    assert moved["reached"] in ids(found)
