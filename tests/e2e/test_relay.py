"""The relay end to end: the real poster and the running bot against the Slack stand-in.

Slack misbehaves (429, then an outage, then a crash between "posted" and "marked done"),
and every message still reaches Slack exactly once. Nothing here sleeps a fixed time: tests
wait for conditions, and tune the running relay's pace and backoff down to keep fast.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.app import slack_client
from bot.jobs.relay import Relay
from bot.jobs.scheduler import kick_relay
from bot.posts import Kind, PostError
from handlers.poster import OUTBOX_EVENT, SlackPoster
from tests.harness import APPROVAL_CHANNEL, NOTIFY_CHANNEL, bot_settings, request_order, running_bot

RECORD = {
    "id": "zns-relay-1",
    "state": "failed",
    "phone": "0901888484",
    "template_name": "Order confirmation",
    "requester": "slack:U0AGENT01",
    "approver": "slack:U0APPROVER1",
    "error": "the phone has no Zalo account",
    "card_channel": APPROVAL_CHANNEL,
}


def tune(relay: Relay) -> None:
    """Quick pacing and retries for the test (the behaviour is the same, only faster)."""
    relay.pace = 0.05
    relay.base_backoff = 0.05
    relay.max_backoff = 0.2


async def until(condition: Callable[[], Any], kick: Callable[[], None], timeout: float = 10):
    """Wait for `condition`, nudging the relay job meanwhile (the job itself runs every 2 s)."""
    async with asyncio.timeout(timeout):
        while not condition():
            kick()
            await asyncio.sleep(0.02)


def kicker(bot: Any) -> Callable[[], None]:
    return lambda: kick_relay(bot.runtime.scheduler, bot.runtime.relay)


def thread_posts(slack_standin, card) -> Counter[str]:
    return Counter(
        c.args["text"]
        for c in slack_standin.calls("chat.postMessage")
        if c.ok and c.args.get("thread_ts") == card["ts"]
    )


def outbox_item(store, key: str) -> dict[str, Any]:
    for item_id in itertools.count(1):
        item = store.outbox.get(item_id)  # NotFoundError past the last one
        if item["key"] == key:
            return item
    raise AssertionError("unreachable")


def server_errors(slack_standin) -> int:
    return len([c for c in slack_standin.calls() if c.status == 500])


def one_each(posts: Counter[str], *needles: str) -> bool:
    return all(sum(n for text, n in posts.items() if needle in text) == 1 for needle in needles)


# --- the poster against the stand-in ------------------------------------------------------


@pytest.fixture
async def poster(tmp_path, slack_standin, esms_standin):
    settings = bot_settings(tmp_path / "data", slack_standin, esms_standin)
    client = slack_client(settings)  # the bot's own client, with its retry handlers
    card = await client.chat_postMessage(channel=APPROVAL_CHANNEL, text="card")
    yield SlackPoster(client, settings), {**RECORD, "card_ts": card["ts"]}


@pytest.mark.parametrize(
    ("kind", "looks_with"),
    [
        (Kind.THREAD, "conversations.replies"),
        (Kind.NOTIFY, "conversations.history"),
        (Kind.DM, "conversations.history"),
    ],
)
async def test_a_post_carries_its_key_and_a_retry_finds_it_instead_of_posting_again(
    poster, slack_standin, kind, looks_with
):
    slack, record = poster
    key = f"{record['id']}:{kind}:failed"
    first = await slack.post(kind, record, {"state": "failed"}, key=key)
    (posted,) = [c for c in slack_standin.calls("chat.postMessage") if c.ok][1:]
    assert posted.args["metadata"] == {"event_type": OUTBOX_EVENT, "event_payload": {"key": key}}

    tried_since = datetime.now(UTC) - timedelta(seconds=1)
    again = await slack.post(kind, record, {"state": "failed"}, key=key, tried_since=tried_since)

    assert again == {**first, "recovered": True}
    assert len([c for c in slack_standin.calls("chat.postMessage") if c.ok]) == 2  # card + one
    (look,) = slack_standin.calls(looks_with)
    assert look.ok and look.args["include_all_metadata"] in ("1", "true", True)


async def test_a_retry_posts_when_the_earlier_attempt_left_nothing(poster, slack_standin):
    slack, record = poster
    key = f"{record['id']}:thread:failed"
    slack_standin.inject("chat.postMessage", status=500)
    with pytest.raises(PostError):
        await slack.post(Kind.THREAD, record, {}, key=key)
    tried_since = datetime.now(UTC)
    result = await slack.post(Kind.THREAD, record, {}, key=key, tried_since=tried_since)
    assert "recovered" not in result
    assert [m["text"] for m in slack_standin.thread(APPROVAL_CHANNEL, record["card_ts"])] == [
        ":x: Not sent: the phone has no Zalo account"
    ]


async def test_a_5xx_is_left_to_the_relay_but_a_429_is_retried_inline(poster, slack_standin):
    """A 5xx may hide a message Slack did post: only the relay retries it, looking first."""
    slack, record = poster
    slack_standin.inject("chat.postMessage", status=500)
    with pytest.raises(PostError):
        await slack.post(Kind.NOTIFY, record, {}, key="k-500")
    assert [c.status for c in slack_standin.calls("chat.postMessage")][1:] == [500]

    slack_standin.inject("chat.postMessage", status=429, retry_after=0, times=3)
    with pytest.raises(PostError) as limited:
        await slack.post(Kind.NOTIFY, record, {}, key="k-429")
    assert limited.value.retry_after == 0.0  # Slack's Retry-After, for the relay to honour
    assert [c.status for c in slack_standin.calls("chat.postMessage")][2:] == [429, 429, 429]


async def test_when_slack_will_not_show_history_the_item_is_still_posted(
    poster, slack_standin, caplog
):
    slack, record = poster
    slack_standin.inject("conversations.history", error="missing_scope")
    caplog.set_level(logging.WARNING)
    result = await slack.post(
        Kind.NOTIFY, record, {}, key="k-notify", tried_since=datetime.now(UTC)
    )
    assert result["channel"] == NOTIFY_CHANNEL and "recovered" not in result
    assert len(slack_standin.messages(NOTIFY_CHANNEL)) == 1
    assert any("cannot look for k-notify" in r.getMessage() for r in caplog.records)


# --- the running bot ----------------------------------------------------------------------


async def test_429_then_an_outage_then_recovery_loses_and_duplicates_nothing(
    tmp_path, slack_standin, esms_standin
):
    settings = bot_settings(tmp_path / "data", slack_standin, esms_standin)
    async with running_bot(settings, slack_standin, esms_standin) as bot:
        tune(bot.runtime.relay)
        kick = kicker(bot)
        card = await request_order(bot)
        view = await bot.review(card)

        # The first reply after the approval is rate limited, then Slack goes down.
        slack_standin.inject("chat.postMessage", status=429, retry_after=1)
        assert (await bot.decide(view, "approve")).text == ""
        await slack_standin.await_for(lambda c: c.status == 429, method="chat.postMessage")
        slack_standin.outage(500)
        store = bot.store
        await until(lambda: bot.record_for(card)["state"] == "accepted", kick)
        await until(lambda: server_errors(slack_standin) >= 3, kick)  # retried, in vain
        assert store.outbox.depth() >= 3  # card update and both replies wait

        slack_standin.recover()
        await until(
            lambda: (
                store.outbox.depth() == 0
                and one_each(thread_posts(slack_standin, card), "Accepted by eSMS")
            ),
            kick,
        )
        metrics = (await bot.metrics()).text
        assert 'zns_slack_api_errors_total{error="internal_error",kind="thread"}' in metrics

    posts = thread_posts(slack_standin, card)
    assert one_each(posts, "Approved by", "Accepted by eSMS")
    assert sum(posts.values()) == 2  # exactly the two replies, each once
    replies = slack_standin.thread(APPROVAL_CHANNEL, card["ts"])
    assert sorted(r["text"] for r in replies) == sorted(posts)
    assert [m["ts"] for m in slack_standin.messages(APPROVAL_CHANNEL)] == [card["ts"]]
    final = slack_standin.message(APPROVAL_CHANNEL, card["ts"])
    assert "Accepted by eSMS" in str(final["blocks"])
    # the replies tried during the outage were looked for before they were posted
    assert any(c.ok for c in slack_standin.calls("conversations.replies"))


async def test_a_crash_between_posted_and_marked_done_posts_nothing_twice(
    tmp_path, slack_standin, esms_standin
):
    settings = bot_settings(tmp_path / "data", slack_standin, esms_standin)
    async with running_bot(settings, slack_standin, esms_standin) as bot:
        tune(bot.runtime.relay)
        card = await request_order(bot)
        view = await bot.review(card)
        outbox = bot.store.outbox
        mark_done = outbox.mark_done
        dead = asyncio.Event()

        def dies_after_the_first_reply(item_id: int, result: dict[str, Any]) -> None:
            # Slack has the reply; the process dies before its store says so, and stays dead.
            if dead.is_set() or outbox.get(item_id)["kind"] == Kind.THREAD:
                dead.set()
                raise RuntimeError("simulated crash")
            mark_done(item_id, result)

        outbox.mark_done = dies_after_the_first_reply  # type: ignore[method-assign]
        await bot.decide(view, "approve")
        await asyncio.wait_for(dead.wait(), 10)
        await until(lambda: bot.record_for(card)["state"] == "accepted", lambda: None)
        approved_key = next(
            k for k in bot.record_for(card)["outbox_tried"] if ":thread:approved" in k
        )
    assert one_each(thread_posts(slack_standin, card), "Approved by")

    # A new process over the same data: it must not post the reply again.
    async with running_bot(settings, slack_standin, esms_standin) as again:
        tune(again.runtime.relay)
        store = again.store
        await until(
            lambda: (
                store.outbox.depth() == 0
                and one_each(thread_posts(slack_standin, card), "Accepted by eSMS")
            ),
            kicker(again),
        )
        item = outbox_item(store, approved_key)

    posts = thread_posts(slack_standin, card)
    assert one_each(posts, "Approved by", "Accepted by eSMS") and sum(posts.values()) == 2
    assert [m["ts"] for m in slack_standin.messages(APPROVAL_CHANNEL)] == [card["ts"]]
    assert item["status"] == "done" and item["result"]["recovered"] is True
