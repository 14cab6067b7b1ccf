"""The relay against a fake Slack: pacing, Retry-After, order, backoff, and exactly once.

Time is a fake clock the tests move by hand; nothing here waits on the wall clock.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.jobs.relay import PASS_GAP, TRIED_FIELD, Relay
from bot.posts import Kind, PostError
from storage.store import Store

APPROVALS = "C0APPROVALS"
OTHER = "C0OTHER"
NOTES = "C0NOTES"


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


class FakeSlack:
    """A Poster that keeps what it "posted", as Slack would, and keeps Poster's contract:
    with `tried_since` set it looks for the key among its messages before posting."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.messages: list[dict[str, Any]] = []  # every post, in order
        self.attempts: list[tuple[str, datetime | None]] = []  # (key, tried_since)
        self.failures: dict[str, list[BaseException]] = {}  # key -> raised in turn
        self.lost_replies: set[str] = set()  # keys posted, but the reply never arrives
        self.down = False
        self.seen_records: dict[str, Mapping[str, Any]] = {}

    def pace_key(
        self, kind: str, record: Mapping[str, Any], payload: Mapping[str, Any]
    ) -> str | None:
        if kind == Kind.NOTIFY:
            return NOTES
        if kind == Kind.EPHEMERAL:
            return f"ephemeral:{payload.get('user')}"
        return record.get("card_channel") or payload.get("channel") or APPROVALS

    async def post(
        self,
        kind: str,
        record: Mapping[str, Any],
        payload: Mapping[str, Any],
        *,
        key: str,
        tried_since: datetime | None = None,
    ) -> dict[str, Any]:
        self.attempts.append((key, tried_since))
        self.seen_records[key] = record
        channel = self.pace_key(kind, record, payload)
        if self.down:
            raise PostError("Slack refused: internal_error")
        if self.failures.get(key):
            raise self.failures[key].pop(0)
        if tried_since is not None:
            for message in self.messages:
                if message["key"] == key:
                    return {"channel": message["channel"], "ts": message["ts"], "recovered": True}
        if kind == Kind.CARD and record.get("card_ts"):
            return {"channel": record["card_channel"], "ts": record["card_ts"]}  # an update
        ts = f"1790000000.{len(self.messages) + 1:06d}"
        self.messages.append({"key": key, "channel": channel, "ts": ts, "at": self.clock()})
        if key in self.lost_replies:
            self.lost_replies.discard(key)
            raise PostError("Slack unreachable for thread: ServerDisconnectedError")
        return {"channel": channel, "ts": ts}

    def posted(self, channel: str | None = None) -> list[str]:
        return [m["key"] for m in self.messages if channel is None or m["channel"] == channel]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path, clock) -> Iterator[Store]:
    with Store.open(tmp_path / "data", fsync=False, clock=clock) as opened:
        yield opened


@pytest.fixture
def slack(clock) -> FakeSlack:
    return FakeSlack(clock)


def relay_for(store: Store, slack: FakeSlack, clock: FakeClock, **kw: Any) -> Relay:
    kw.setdefault("base_backoff", 1.0)
    return Relay(store, slack, clock=clock, **kw)


def a_send(store: Store, send_id: str, *, channel: str | None = APPROVALS) -> str:
    """A send whose card is already posted in `channel` (None: not posted yet)."""
    store.sends.create({"id": send_id, "origin": "slack"}, actor="slack:U0AGENT01")
    if channel:
        store.sends.update_fields(send_id, card_channel=channel, card_ts=f"17.{send_id}")
    return send_id


def queue(store: Store, send_id: str, kind: str, name: str, **payload: Any) -> str:
    key = f"{send_id}:{kind}:{name}"
    assert store.outbox.add(kind, payload, key=key, send_id=send_id)
    return key


def item(store: Store, key: str) -> dict[str, Any]:
    """The outbox item queued under `key` (ids count up from 1)."""
    for item_id in itertools.count(1):
        found = store.outbox.get(item_id)  # NotFoundError past the last one
        if found["key"] == key:
            return found
    raise AssertionError("unreachable")


# --- pacing ------------------------------------------------------------------------------


async def test_one_post_per_second_per_channel_while_other_channels_go_out(store, slack, clock):
    first = queue(store, a_send(store, "s1"), Kind.THREAD, "approved")
    second = queue(store, a_send(store, "s2"), Kind.THREAD, "approved")
    elsewhere = queue(store, a_send(store, "s3", channel=OTHER), Kind.THREAD, "approved")
    relay = relay_for(store, slack, clock)

    assert await relay.drain() == 2
    assert slack.posted() == [first, elsewhere]
    waiting = item(store, second)
    assert waiting["status"] == "pending" and waiting["attempts"] == 0  # waits, not a failure

    clock.advance(0.9)
    assert await relay.drain() == 0
    clock.advance(0.1)
    assert await relay.drain() == 1
    assert slack.posted(APPROVALS) == [first, second]
    gaps = [b["at"] - a["at"] for a, b in zip(slack.messages, slack.messages[1:], strict=False)]
    assert all(gap >= timedelta(0) for gap in gaps)
    approvals = [m["at"] for m in slack.messages if m["channel"] == APPROVALS]
    assert approvals[1] - approvals[0] >= timedelta(seconds=1)


async def test_a_paced_channels_backlog_does_not_hide_other_channels(store, slack, clock):
    """Far more items wait for one channel than a pass posts; another channel's item,
    queued last, still goes out in the first pass."""
    backlog = [queue(store, a_send(store, f"s{n}"), Kind.THREAD, "approved") for n in range(150)]
    other = queue(store, a_send(store, "late", channel=OTHER), Kind.THREAD, "approved")
    relay = relay_for(store, slack, clock)
    assert await relay.drain(limit=10) == 2
    assert slack.posted() == [backlog[0], other]
    clock.advance(1.0)
    assert await relay.drain(limit=10) == 1
    assert slack.posted(APPROVALS) == backlog[:2]


async def test_a_paced_backlog_is_skipped_unread_once_its_lane_is_known(
    store, slack, clock, monkeypatch
):
    """Passes come several times a second: items of a lane that waits are not read again."""
    backlog = [queue(store, a_send(store, f"s{n}"), Kind.THREAD, "approved") for n in range(150)]
    relay = relay_for(store, slack, clock)
    assert await relay.drain() == 1  # the first pass reads every item, once
    reads: list[int] = []
    view = store.outbox.view
    monkeypatch.setattr(
        store.outbox, "view", lambda item_id: reads.append(item_id) or view(item_id)
    )
    late = queue(store, a_send(store, "late", channel=OTHER), Kind.THREAD, "approved")
    assert await relay.drain() == 1  # the channel still waits; the new one goes out
    assert slack.posted() == [backlog[0], late]
    assert len(reads) <= 3  # the first waiting item, and the new one (read, then posted)
    clock.advance(1.0)
    assert await relay.drain() == 1  # the lane is free again: its next item, in order
    assert slack.posted(APPROVALS) == backlog[:2]


async def test_run_until_idle_waits_out_the_pace_without_blocking_other_channels(
    store, slack, clock
):
    """The relay naps for the paced channel; new items for other channels wake it (after
    the short gap it keeps between passes, which a real sleep would take)."""
    napping = asyncio.Event()
    gaps: list[float] = []

    async def nap_until_cancelled(seconds: float) -> None:
        if seconds <= PASS_GAP.total_seconds():
            gaps.append(seconds)
            clock.advance(seconds)
            return
        napping.set()
        await asyncio.Event().wait()

    first = queue(store, a_send(store, "s1"), Kind.THREAD, "approved")
    second = queue(store, a_send(store, "s2"), Kind.THREAD, "approved")
    # a 5 s pace: its waits cannot be mistaken for the gap between passes
    relay = relay_for(store, slack, clock, sleep=nap_until_cancelled, pace=5.0)
    running = asyncio.create_task(relay.run_until_idle())
    await asyncio.wait_for(napping.wait(), 5)
    assert slack.posted() == [first] and relay.busy

    napping.clear()
    elsewhere = queue(store, a_send(store, "s3", channel=OTHER), Kind.THREAD, "approved")
    assert relay.request_run() is True  # the running drain takes it
    await asyncio.wait_for(napping.wait(), 5)
    assert slack.posted() == [first, elsewhere]  # out while the approvals channel still waits
    assert gaps and set(gaps) <= {PASS_GAP.total_seconds()}

    clock.advance(5.0)
    relay.request_run()
    assert await asyncio.wait_for(running, 5) == 3
    assert slack.posted() == [first, elsewhere, second]
    assert store.outbox.depth() == 0


async def test_run_until_idle_naps_the_pace_between_posts(store, slack, clock):
    naps: list[float] = []

    async def nap(seconds: float) -> None:
        naps.append(seconds)
        clock.advance(seconds)

    keys = [queue(store, a_send(store, f"s{n}"), Kind.THREAD, "approved") for n in range(3)]
    relay = relay_for(store, slack, clock, sleep=nap)
    assert await relay.run_until_idle() == 3
    assert slack.posted() == keys
    posted_at = [m["at"] for m in slack.messages]
    assert [b - a for a, b in itertools.pairwise(posted_at)] == [
        timedelta(seconds=1.0)
    ] * 2  # exactly the pace: the gap between passes is part of it, not added to it
    assert naps and all(0 < n <= 1.0 for n in naps)


async def test_a_burst_allowance_lets_a_few_posts_out_at_once(store, slack, clock):
    keys = [queue(store, a_send(store, f"s{n}"), Kind.THREAD, "approved") for n in range(4)]
    relay = relay_for(store, slack, clock, burst=3)
    assert await relay.drain() == 3
    clock.advance(1.0)
    assert await relay.drain() == 1
    assert slack.posted() == keys


async def test_ephemerals_are_paced_per_user_and_dms_per_dm(store, slack, clock):
    one = queue(store, a_send(store, "s1"), Kind.EPHEMERAL, "posted", user="U1")
    two = queue(store, a_send(store, "s2"), Kind.EPHEMERAL, "posted", user="U2")
    again = queue(store, a_send(store, "s3"), Kind.EPHEMERAL, "posted", user="U1")
    relay = relay_for(store, slack, clock)
    assert await relay.drain() == 2
    assert slack.posted() == [one, two]
    clock.advance(1.0)
    assert await relay.drain() == 1
    assert slack.posted()[-1] == again


# --- Retry-After, order, backoff, outage -------------------------------------------------


async def test_retry_after_holds_the_item_and_its_channel(store, slack, clock):
    limited = queue(store, a_send(store, "s1"), Kind.THREAD, "approved")
    same_channel = queue(store, a_send(store, "s2"), Kind.THREAD, "approved")
    elsewhere = queue(store, a_send(store, "s3", channel=OTHER), Kind.THREAD, "approved")
    slack.failures[limited] = [PostError("Slack refused thread: ratelimited", retry_after=5)]
    relay = relay_for(store, slack, clock)
    start = clock()

    assert await relay.drain() == 1
    assert slack.posted() == [elsewhere]
    held = item(store, limited)
    assert held["attempts"] == 1 and "ratelimited" in held["last_error"]
    assert datetime.fromisoformat(held["next_attempt_at"]) == start + timedelta(seconds=5)

    clock.advance(4.9)
    assert await relay.drain() == 0  # the channel too waits out Slack's Retry-After
    clock.advance(0.1)
    assert await relay.drain() == 1
    clock.advance(1.0)
    assert await relay.drain() == 1
    assert slack.posted(APPROVALS) == [limited, same_channel]


async def test_a_sends_items_keep_their_order_behind_a_failure(store, slack, clock):
    send = a_send(store, "s1", channel=None)
    card = queue(store, send, Kind.CARD, "created")
    approved = queue(store, send, Kind.THREAD, "approved")
    accepted = queue(store, send, Kind.THREAD, "accepted")
    failed_dm = queue(store, send, Kind.DM, "failed")
    slack.failures[approved] = [PostError("Slack refused thread: internal_error")]
    relay = relay_for(store, slack, clock, pace=0)

    assert await relay.drain() == 1  # the card; its thread waits behind the failed reply
    assert slack.posted() == [card]
    assert store.sends.get(send)["card_ts"] == slack.messages[0]["ts"]
    assert [k for k, _ in slack.attempts] == [card, approved]

    clock.advance(1.0)
    assert await relay.drain() == 3
    assert slack.posted() == [card, approved, accepted, failed_dm]


async def test_thread_replies_wait_for_the_card(store, slack, clock):
    send = a_send(store, "s1", channel=None)
    card = queue(store, send, Kind.CARD, "created")
    reply = queue(store, send, Kind.THREAD, "approved")
    slack.failures[card] = [PostError("Slack refused card: internal_error")]
    relay = relay_for(store, slack, clock, pace=0)
    assert await relay.drain() == 0
    assert [k for k, _ in slack.attempts] == [card]  # no reply without a card to hang it on
    clock.advance(1.0)
    assert await relay.run_until_idle() == 2
    assert slack.posted() == [card, reply]


async def test_an_item_of_a_kind_nothing_can_post_is_settled_and_holds_nothing_up(
    store, slack, clock
):
    send = a_send(store, "s1", channel=None)
    card = queue(store, send, Kind.CARD, "created")
    fax = queue(store, send, "fax", "sent")  # written by a version with more kinds
    reply = queue(store, send, Kind.THREAD, "approved")
    relay = relay_for(store, slack, clock, pace=0)
    assert await relay.run_until_idle() == 2
    assert slack.posted() == [card, reply]
    assert item(store, fax)["status"] == "done"
    assert item(store, fax)["result"] == {"skipped": "unknown kind fax"}


async def test_backoff_doubles_and_is_capped(store, slack, clock):
    key = queue(store, a_send(store, "s1"), Kind.THREAD, "approved")
    relay = relay_for(store, slack, clock, base_backoff=1.0, max_backoff=8.0)
    slack.down = True
    delays = []
    for _ in range(6):
        now = clock()
        assert await relay.drain() == 0
        due = datetime.fromisoformat(item(store, key)["next_attempt_at"])
        delays.append((due - now).total_seconds())
        clock.now = due
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert item(store, key)["attempts"] == 6


async def test_an_outage_loses_nothing_and_the_backlog_goes_out_once_in_order(store, slack, clock):
    sends = [a_send(store, f"s{n}", channel=APPROVALS if n % 2 else OTHER) for n in range(4)]
    keys = {s: [queue(store, s, Kind.THREAD, st) for st in ("approved", "accepted")] for s in sends}
    keys |= {s: [*keys[s], queue(store, s, Kind.NOTIFY, "delivered")] for s in sends}
    relay = relay_for(store, slack, clock)
    slack.down = True
    for _ in range(5):
        await relay.drain()
        clock.advance(60)
    assert slack.messages == [] and store.outbox.depth() == 12

    slack.down = False

    async def nap(seconds: float) -> None:
        clock.advance(seconds)

    relay.sleep = nap
    assert await relay.run_until_idle() == 12
    assert store.outbox.depth() == 0
    assert sorted(slack.posted()) == sorted(k for ks in keys.values() for k in ks)  # each once
    for send, expected in keys.items():
        assert [k for k in slack.posted() if k.startswith(f"{send}:")] == expected


async def test_a_notifier_bug_is_retried_later_and_stalls_nothing_else(store, slack, clock):
    broken = queue(store, a_send(store, "s1"), Kind.THREAD, "approved")
    fine = queue(store, a_send(store, "s2", channel=OTHER), Kind.THREAD, "approved")
    slack.failures[broken] = [KeyError("card_ts")]
    relay = relay_for(store, slack, clock)
    assert await relay.drain() == 1
    assert slack.posted() == [fine]
    assert item(store, broken)["attempts"] == 1
    assert "KeyError" in item(store, broken)["last_error"]


async def test_a_second_run_while_one_is_busy_waits_for_it(store, slack, clock):
    naps = asyncio.Event()

    async def nap(seconds: float) -> None:
        naps.set()
        await asyncio.sleep(0)
        clock.advance(seconds)

    keys = [queue(store, a_send(store, f"s{n}"), Kind.THREAD, "approved") for n in range(2)]
    relay = relay_for(store, slack, clock, sleep=nap)
    first = asyncio.create_task(relay.run_until_idle())
    await asyncio.wait_for(naps.wait(), 5)
    assert await relay.run_until_idle() == 0  # returns once the running drain is idle
    assert slack.posted() == keys and store.outbox.depth() == 0
    assert await first == 2


# --- exactly once ---------------------------------------------------------------------------


async def test_the_first_attempt_is_noted_before_slack_is_called(store, slack, clock):
    key = queue(store, a_send(store, "s1"), Kind.THREAD, "approved")
    relay = relay_for(store, slack, clock)
    await relay.drain()
    assert slack.attempts == [(key, None)]  # nothing to look for the first time
    # what the poster was handed was already persisted: a crash now would leave the mark
    assert key in slack.seen_records[key][TRIED_FIELD]
    assert store.sends.get("s1")[TRIED_FIELD] == {key: clock().isoformat(timespec="microseconds")}


def crash_once_after_posting(store: Store, key: str) -> Callable[[], bool]:
    """Make marking `key` done fail once, as if the process died right after Slack said ok."""
    mark_done = store.outbox.mark_done
    crashed: list[int] = []

    def crashing(item_id: int, result: dict[str, Any]) -> None:
        if not crashed and store.outbox.get(item_id)["key"] == key:
            crashed.append(item_id)
            raise SystemExit("simulated crash between posted and marked done")
        mark_done(item_id, result)

    store.outbox.mark_done = crashing  # type: ignore[method-assign]
    return lambda: bool(crashed)


@pytest.mark.parametrize("kind", [Kind.THREAD, Kind.NOTIFY, Kind.DM])
async def test_a_crash_between_posted_and_marked_done_posts_nothing_twice(
    store, slack, clock, kind
):
    key = queue(store, a_send(store, "s1"), kind, "failed")
    after = queue(store, "s1", Kind.NOTIFY if kind != Kind.NOTIFY else Kind.DM, "after")
    crashed = crash_once_after_posting(store, key)
    with pytest.raises(SystemExit):
        await relay_for(store, slack, clock).drain()
    assert crashed() and slack.posted() == [key]
    assert item(store, key)["status"] == "pending"
    first_try = clock()

    clock.advance(30)  # a new process: nothing carried over in memory
    restarted = relay_for(store, slack, clock, pace=0)
    assert await restarted.run_until_idle() == 2
    assert slack.attempts[-2] == (key, first_try)  # it knew to look first
    assert slack.posted() == [key, after]  # and did not post again
    done = item(store, key)
    assert done["status"] == "done" and done["result"]["recovered"] is True
    assert done["result"]["ts"] == slack.messages[0]["ts"]


async def test_a_card_recovered_after_a_crash_is_the_one_threads_go_under(store, slack, clock):
    send = a_send(store, "s1", channel=None)
    card = queue(store, send, Kind.CARD, "created")
    reply = queue(store, send, Kind.THREAD, "approved")
    crash_once_after_posting(store, card)
    with pytest.raises(SystemExit):
        await relay_for(store, slack, clock).drain()
    assert "card_ts" not in store.sends.get(send)

    clock.advance(5)
    assert await relay_for(store, slack, clock, pace=0).run_until_idle() == 2
    assert slack.posted() == [card, reply]
    assert store.sends.get(send)["card_ts"] == slack.messages[0]["ts"]


async def test_a_lost_reply_is_looked_for_not_posted_again(store, slack, clock):
    key = queue(store, a_send(store, "s1"), Kind.THREAD, "approved")
    slack.lost_replies.add(key)
    relay = relay_for(store, slack, clock)
    assert await relay.drain() == 0
    assert item(store, key)["attempts"] == 1 and slack.posted() == [key]
    clock.advance(1.0)
    assert await relay.drain() == 1
    assert slack.posted() == [key]
    assert item(store, key)["result"]["recovered"] is True


async def test_a_failed_attempt_that_posted_nothing_is_posted_on_retry(store, slack, clock):
    key = queue(store, a_send(store, "s1"), Kind.THREAD, "approved")
    slack.failures[key] = [PostError("Slack refused thread: internal_error")]
    relay = relay_for(store, slack, clock)
    await relay.drain()
    clock.advance(1.0)
    assert await relay.drain() == 1
    assert [since is not None for _, since in slack.attempts] == [False, True]
    assert slack.posted() == [key]
    assert "recovered" not in item(store, key)["result"]


async def test_card_updates_and_ephemerals_are_not_looked_for(store, slack, clock):
    update = queue(store, a_send(store, "s1"), Kind.CARD, "3")
    note = queue(store, a_send(store, "s2"), Kind.EPHEMERAL, "posted", user="U1")
    slack.failures[update] = [PostError("Slack refused card: internal_error")]
    slack.failures[note] = [PostError("Slack refused ephemeral: internal_error")]
    relay = relay_for(store, slack, clock, pace=0)
    await relay.drain()
    clock.advance(1.0)
    await relay.drain()
    # an update re-renders the card in place; an ephemeral cannot be found again
    assert slack.attempts == [(update, None), (note, None), (update, None), (note, None)]
    assert TRIED_FIELD not in store.sends.get("s1") and TRIED_FIELD not in store.sends.get("s2")
    assert store.outbox.depth() == 0


async def test_a_recovered_message_takes_no_turn_in_the_pace(store, slack, clock):
    key = queue(store, a_send(store, "s1"), Kind.THREAD, "approved")
    slack.lost_replies.add(key)
    relay = relay_for(store, slack, clock)
    await relay.drain()
    clock.advance(1.0)
    nxt = queue(store, a_send(store, "s2"), Kind.THREAD, "approved")
    assert await relay.drain() == 2  # the found one posted nothing, so the next goes at once
    assert slack.posted() == [key, nxt]


async def test_aclose_ends_a_pacing_wait_and_later_runs_do_nothing(store, slack, clock):
    napping = asyncio.Event()

    async def nap_until_cancelled(seconds: float) -> None:
        napping.set()
        await asyncio.Event().wait()

    first = queue(store, a_send(store, "s1"), Kind.THREAD, "approved")
    queue(store, a_send(store, "s2"), Kind.THREAD, "approved")
    relay = relay_for(store, slack, clock, sleep=nap_until_cancelled)
    running = asyncio.create_task(relay.run_until_idle())
    await asyncio.wait_for(napping.wait(), 5)
    await asyncio.wait_for(relay.aclose(), 5)
    assert running.done() and await running == 1
    clock.advance(10)
    assert await relay.run_until_idle() == 0
    assert slack.posted() == [first] and store.outbox.depth() == 1  # kept for the next process
