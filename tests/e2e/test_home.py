"""The App Home end to end: signed app_home_opened events, the real bot, the strict stand-in."""

from datetime import timedelta

import pytest

from standins.driver import HomeWatch, home_text
from standins.payloads import block_action_body, new_trigger_id
from tests.bot.test_home import request
from tests.harness import (
    AGENT,
    APPROVER,
    ORDER,
    STRANGER,
    open_order_modal,
    request_order,
)

WAITING = "Waiting for your approval"


@pytest.fixture
def bot(callback_bot):
    # Its callbacks reach it (deliveries). The 10 s between two publications to one
    # person is shortened here: tests/bot/test_home.py checks it with a clock of its own.
    callback_bot.runtime.service.homes.gap = timedelta(seconds=0.05)
    return callback_bot


def review_ids(view) -> list[str]:
    return [
        b["accessory"]["value"]
        for b in view["blocks"]
        if (b.get("accessory") or {}).get("action_id") == "zns_review"
    ]


def cancel_ids(view) -> list[str]:
    return [
        b["accessory"]["value"]
        for b in view["blocks"]
        if (b.get("accessory") or {}).get("action_id") == "zns_cancel"
    ]


def send_of(card) -> str:
    """The send a card is about: its Review button's value (the store may not yet have
    noted the card's ts when the stand-in has recorded the post)."""
    return next(
        e["value"]
        for b in card["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == "zns_review"
    )


async def opened(home: HomeWatch) -> dict:
    await home.open()
    return await home.next()


async def told(bot, user: str, needle: str) -> str:
    """A DM to `user` (a home click has no channel to answer in) containing `needle`."""
    call = await bot.slack.await_for(
        lambda c: needle in (c.args.get("text") or "") and c.ok,
        10.0,
        method="chat.postMessage",
    )
    return call.args["text"]


async def test_the_home_shows_each_person_their_own(bot):
    card = await request_order(bot)
    send_id = send_of(card)

    agent = await opened(bot.home(AGENT))
    assert WAITING not in home_text(agent)  # not an approver
    assert cancel_ids(agent) == [send_id] and "Order confirmation" in home_text(agent)
    assert "090****484" in home_text(agent) and "0901888484" not in home_text(agent)
    assert "|thread>" in home_text(agent)  # the card's permalink
    assert "waiting for approval: *1*" in home_text(agent)  # today's counts

    approver = await opened(bot.home(APPROVER))
    assert review_ids(approver) == [send_id] and f"{WAITING}* (1)" in home_text(approver)
    assert cancel_ids(approver) == []  # not theirs to cancel
    assert "0901888484" not in home_text(approver)

    stranger = await opened(bot.home(STRANGER))
    assert review_ids(stranger) == [] and cancel_ids(stranger) == []
    assert "made no requests lately" in home_text(stranger)


async def test_the_messages_tab_publishes_nothing(bot):
    home = bot.home(AGENT)
    await home.open(tab="messages")
    await opened(bot.home(STRANGER))  # a later event is handled: the first one was too
    assert home.published() == 0


async def test_the_home_follows_a_request_an_approval_and_a_delivery(bot, esms_standin):
    agent, approver = bot.home(AGENT), bot.home(APPROVER)
    first = await opened(agent)
    assert cancel_ids(first) == []
    await opened(approver)

    card = await request_order(bot)
    send_id = send_of(card)
    # the approver's home gains the request to review, the agent's their request
    view = await approver.until(lambda v: review_ids(v) == [send_id])
    assert f"{WAITING}* (1)" in home_text(view)
    # ... with a link to its thread once the card is posted
    await agent.until(lambda v: cancel_ids(v) == [send_id] and "|thread>" in home_text(v))

    # Review from the home: the card's modal, then approval
    trigger = new_trigger_id()
    await approver.click(view, "zns_review", send_id, trigger_id=trigger)
    modal = await bot.updated(await bot.opened(trigger))
    await bot.decide(modal, "approve")
    await approver.until(lambda v: review_ids(v) == [] and f"{WAITING}* (0)" in home_text(v))
    accepted = await agent.until(lambda v: "accepted by eSMS: *1*" in home_text(v))
    assert cancel_ids(accepted) == []  # no longer pending

    sms_id = bot.runtime.store.sends.get(send_id)["sms_id"]
    esms_standin.deliver(sms_id)
    assert await esms_standin.fire_callback(sms_id, success=True) == 200
    delivered = await agent.until(lambda v: "delivered: *1*" in home_text(v))
    assert "accepted by eSMS: *1*" not in home_text(delivered)


async def test_review_from_the_home_refuses_ones_own_request(bot):
    view = await open_order_modal(bot, user=APPROVER)
    response = await bot.submit_request(view, phone="0901888484", params=ORDER, user=APPROVER)
    assert response.status_code == 200, response.text
    card = await bot.card()
    send_id = send_of(card)
    home = bot.home(APPROVER)
    shown = await opened(home)
    assert review_ids(shown) == []  # not offered: it is their own
    # a forged (or stale) click is refused by the card's own rule, and audited
    body = block_action_body("zns_review", send_id, APPROVER, block_id="x", view=shown)
    assert (await bot.post(body)).status_code == 200
    assert "cannot approve your own request" in await told(bot, APPROVER, "own request")
    events = bot.runtime.store.audit.for_send(send_id)
    assert any(e["action"] == "review_refused" for e in events)
    assert bot.runtime.store.sends.get(send_id)["state"] == "pending_approval"


async def test_a_decided_request_cannot_be_reviewed_again_from_a_stale_home(bot):
    card = await request_order(bot)
    send_id = send_of(card)
    home = bot.home(APPROVER)
    stale = await opened(home)
    assert review_ids(stale) == [send_id]
    await bot.decide(await bot.review(card), "reject", "wrong number")
    opens = len(bot.slack.calls("views.open"))
    await home.click(stale, "zns_review", send_id, trigger_id=new_trigger_id())
    assert "already rejected" in await told(bot, APPROVER, "already rejected")
    assert len(bot.slack.calls("views.open")) == opens  # no second modal


async def test_only_the_requester_cancels_from_the_home(bot):
    card = await request_order(bot)
    send_id = send_of(card)
    agent = bot.home(AGENT)
    view = await opened(agent)
    # someone else, with the agent's home (a forged click): refused, still pending
    body = block_action_body("zns_cancel", send_id, STRANGER, block_id="x", view=view)
    assert (await bot.post(body)).status_code == 200
    await told(bot, STRANGER, "nly the person who made the request can cancel it")
    assert bot.runtime.store.sends.get(send_id)["state"] == "pending_approval"
    # the requester: cancelled, and the home says so
    await agent.click(view, "zns_cancel", send_id)
    after = await agent.until(lambda v: cancel_ids(v) == [])
    assert "cancelled" in home_text(after)
    assert bot.runtime.store.sends.get(send_id)["state"] == "cancelled"


async def test_more_pages_through_what_waits(bot):
    service = bot.runtime.service
    with service.store.db.transaction():  # 21 requests made from the command line
        made = [service.create(request(), actor="cli:agent")["id"] for _ in range(21)]
    home = bot.home(APPROVER)
    first = await opened(home)
    assert review_ids(first) == made[:20] and "1–20 of 21" in home_text(first)
    await home.click(first, "zns_home_next", "1")
    second = await home.until(lambda v: "21–21 of 21" in home_text(v))
    assert review_ids(second) == made[20:]
    await home.click(second, "zns_home_prev", "0")
    back = await home.until(lambda v: "1–20 of 21" in home_text(v))
    assert review_ids(back) == made[:20]


async def test_the_home_shows_esms_figures_and_survives_esms_failing(bot, esms_standin):
    esms_standin.inject("GetBalance_json", status=503, times=20)
    esms_standin.inject("ZNS/GetQuota", status=503, times=20)
    failing = await opened(bot.home(STRANGER))  # published all the same
    assert "eSMS balance: unavailable" in home_text(failing)
    assert "quota unavailable" in home_text(failing)
    esms_standin.reset()
    shown = await opened(bot.home(AGENT))  # the figures were never cached: asked again
    assert "VND" in home_text(shown) and "left today" in home_text(shown)
