"""The outbox queues each Slack post once and hands out due items oldest first."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bot.errors import NotFoundError
from storage.store import Store
from tests.storage.storage_helpers import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_add_is_idempotent_on_its_key(tmp_path: Path, clock: FakeClock) -> None:
    with Store.open(tmp_path, clock=clock) as store:
        assert store.outbox.add("card", {"a": 1}, key="s1:card:1", send_id="s1", channel="C1")
        size = store.path.stat().st_size
        assert not store.outbox.add("card", {"a": 2}, key="s1:card:1", send_id="s1")
        assert store.path.stat().st_size == size
        (item,) = store.outbox.due(clock.now, 10)
        assert {k: item[k] for k in ("kind", "payload", "send_id", "channel", "attempts")} == {
            "kind": "card",
            "payload": {"a": 1},
            "send_id": "s1",
            "channel": "C1",
            "attempts": 0,
        }
        store.outbox.mark_done(item["id"], {"ts": "1.2"})
        assert not store.outbox.add("card", {}, key="s1:card:1")  # done keys stay taken
    with Store.open(tmp_path, clock=clock) as store:
        assert not store.outbox.add("card", {}, key="s1:card:1")
        assert store.outbox.get(item["id"])["result"] == {"ts": "1.2"}


def test_due_is_oldest_first_skipping_done_and_later_retries(
    tmp_path: Path, clock: FakeClock
) -> None:
    with Store.open(tmp_path, clock=clock) as store:
        for n in range(5):
            store.outbox.add("thread", {"n": n}, key=f"k{n}")
            clock.advance(1)
        first, second, *_ = store.outbox.due(clock.now, 10)
        store.outbox.mark_done(first["id"], {"ok": True})
        clock.advance(1)
        store.outbox.mark_failed_attempt(
            second["id"], "ratelimited", clock.now + timedelta(seconds=30)
        )
        due = store.outbox.due(clock.now, 10)
        assert [i["payload"]["n"] for i in due] == [2, 3, 4]
        assert [i["payload"]["n"] for i in store.outbox.due(clock.now, 2)] == [2, 3]
        later = clock.now + timedelta(seconds=31)
        assert [i["payload"]["n"] for i in store.outbox.due(later, 10)] == [1, 2, 3, 4]
        retried = store.outbox.get(second["id"])
        assert (retried["attempts"], retried["last_error"]) == (1, "ratelimited")
        assert store.outbox.depth() == 4
    with Store.open(tmp_path, clock=clock) as store:  # the same answers from a reopened store
        assert [i["payload"]["n"] for i in store.outbox.due(clock.now, 10)] == [2, 3, 4]
        assert [i["payload"]["n"] for i in store.outbox.due(later, 10)] == [1, 2, 3, 4]


def test_a_retry_that_fails_again_waits_for_its_new_time(tmp_path: Path, clock: FakeClock) -> None:
    with Store.open(tmp_path, clock=clock) as store:
        store.outbox.add("thread", {}, key="k")
        (item,) = store.outbox.due(clock.now, 10)
        for attempt in (1, 2):
            retry_at = clock.now + timedelta(seconds=10 * attempt)
            store.outbox.mark_failed_attempt(item["id"], "server_error", retry_at)
            assert store.outbox.due_ids(retry_at - timedelta(microseconds=1)) == []
            assert store.outbox.due_ids(retry_at) == [item["id"]]
            clock.advance(10 * attempt)
        store.outbox.mark_done(item["id"], {"ok": True})
        assert store.outbox.due_ids(clock.now + timedelta(days=1)) == []


def test_depth_and_oldest_pending_age(tmp_path: Path, clock: FakeClock) -> None:
    with Store.open(tmp_path, clock=clock) as store:
        assert (store.outbox.depth(), store.outbox.oldest_pending_age(clock.now)) == (0, None)
        store.outbox.add("card", {}, key="a")
        clock.advance(10)
        store.outbox.add("card", {}, key="b")
        clock.advance(5)
        assert store.outbox.depth() == 2
        assert store.outbox.oldest_pending_age(clock.now) == 15.0
        (oldest, _) = store.outbox.due(clock.now, 10)
        store.outbox.mark_done(oldest["id"], {})
        assert store.outbox.oldest_pending_age(clock.now) == 5.0


def test_unknown_items_and_naive_times_are_refused(tmp_path: Path, clock: FakeClock) -> None:
    with Store.open(tmp_path, clock=clock) as store:
        with pytest.raises(NotFoundError):
            store.outbox.mark_done(42, {})
        store.outbox.add("card", {}, key="a")
        with pytest.raises(ValueError, match="timezone"):
            store.outbox.due(datetime(2026, 3, 1), 10)


def test_an_item_not_tried_yet_is_due_at_once(tmp_path: Path, clock: FakeClock) -> None:
    """Even to a clock that lags the one it was queued by (a relay's clock behind the store's)."""
    with Store.open(tmp_path, clock=clock) as store:
        store.outbox.add("thread", {}, key="k")
        (item_id,) = store.outbox.due_ids(clock.now)
        assert store.outbox.due_ids(clock.now - timedelta(seconds=5)) == [item_id]
