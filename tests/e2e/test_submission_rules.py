"""Every rule where the decision is made (issue 16): signed submissions to the running bot."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

from bot import policy
from standins.driver import REQUEST_CHANNEL, SlackDriver
from standins.esms import ORDER_TEMPLATE
from standins.payloads import view_submission_body
from standins.process import SIGNING_SECRET, BotProcess, standin_env
from storage.store import Store
from tests.harness import (
    AGENT,
    APPROVER,
    ORDER,
    Bot,
    bot_settings,
    open_order_modal,
    request_order,
    running_bot,
    texts,
)

SUMMARY = "SummaryZaloMessage_V4_post_json"


def audited(bot: Bot, action: str) -> list[dict[str, Any]]:
    assert bot.store is not None
    return [e for e in bot.store.audit.iter_events() if e["action"] == action]


def with_metadata(view: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The view as a forger would submit it: its private_metadata edited."""
    meta = json.loads(view["private_metadata"])
    return {**view, "private_metadata": json.dumps({**meta, **changes})}


def by_phone(bot: Bot, phone: str) -> dict[str, Any]:
    assert bot.store is not None
    (record,) = [r for r in bot.store.sends.in_states({"pending_approval"}) if r["phone"] == phone]
    return dict(record)


def sends_count(bot: Bot) -> int:
    assert bot.store is not None
    return bot.store.sends.count()


async def test_a_requester_removed_after_opening_the_modal_is_refused_and_audited(
    tmp_path, slack_standin, esms_standin
):
    data = tmp_path / "data"
    allowed = bot_settings(data, slack_standin, esms_standin, zns_requesters=[AGENT])
    async with running_bot(allowed, slack_standin, esms_standin) as bot:
        view = await open_order_modal(bot)
    # an admin removes the agent and restarts the bot; the agent's modal is still open
    removed = bot_settings(data, slack_standin, esms_standin, zns_requesters=[APPROVER])
    async with running_bot(removed, slack_standin, esms_standin) as bot:
        response = await bot.submit_request(view, phone="0901888484", params=ORDER)
        (error,) = response.json()["errors"].values()
        assert "not allowed to request" in error
        assert sends_count(bot) == 0
        (event,) = audited(bot, "request_refused")
        assert event["actor"] == f"slack:{AGENT}"
        assert event["reason"] == policy.Refusal.NOT_A_REQUESTER


async def test_a_request_modal_the_bot_never_opened_is_refused_and_audited(bot):
    view = await open_order_modal(bot)
    forged = {**view, "id": "V0FORGED"}
    response = await bot.submit_request(forged, phone="0901888484", params=ORDER)
    (error,) = response.json()["errors"].values()
    assert "expired" in error
    assert sends_count(bot) == 0
    (event,) = audited(bot, "request_refused")
    assert event["reason"] == policy.Refusal.UNKNOWN_VIEW


async def test_an_expired_view_record_is_refused(bot):
    view = await open_order_modal(bot)
    assert bot.store is not None
    later = bot.store.clock() + policy.VIEW_TTL + timedelta(seconds=1)
    # the expire job's sweep, as it runs once the TTL has passed
    assert bot.runtime.service.sweep_views(now=later) == 1
    assert bot.store.views.count() == 0
    response = await bot.submit_request(view, phone="0901888484", params=ORDER)
    (error,) = response.json()["errors"].values()
    assert "expired" in error and "type /zns again" in error
    assert sends_count(bot) == 0
    (event,) = audited(bot, "request_refused")
    assert event["reason"] == policy.Refusal.UNKNOWN_VIEW


async def test_sandbox_submitted_while_disallowed_is_refused_and_audited(
    tmp_path, slack_standin, esms_standin
):
    settings = bot_settings(tmp_path / "d", slack_standin, esms_standin, zns_allow_sandbox=False)
    async with running_bot(settings, slack_standin, esms_standin) as bot:
        view = await open_order_modal(bot)
        assert all(b.get("block_id") != "sandbox" for b in view["blocks"])  # not offered
        # a forged form that ticks it anyway
        sandbox_block = {
            "type": "input",
            "block_id": "sandbox",
            "label": {"type": "plain_text", "text": "Sandbox"},
            "element": {
                "type": "checkboxes",
                "action_id": "value",
                "options": [{"text": {"type": "plain_text", "text": "Sandbox"}, "value": "yes"}],
            },
        }
        forged = {**view, "blocks": [*view["blocks"], sandbox_block]}
        response = await bot.submit_request(forged, phone="0901888484", params=ORDER, sandbox=True)
        errors = response.json()["errors"]
        assert "ZNS_ALLOW_SANDBOX" in errors["sandbox"]
        assert sends_count(bot) == 0
        (event,) = audited(bot, "request_refused")
        assert event["reason"] == policy.Refusal.SANDBOX_NOT_ALLOWED


async def test_a_forged_notice_channel_is_ignored_for_the_recorded_one(bot, slack_standin):
    view = await open_order_modal(bot)
    forged = with_metadata(view, channel="C0ELSEWHERE")
    response = await bot.submit_request(forged, phone="0901888484", params=ORDER)
    assert response.text == ""
    await bot.card()
    told = await slack_standin.await_for(
        lambda c: c.args.get("user") == AGENT, method="chat.postEphemeral"
    )
    assert told.args["channel"] == REQUEST_CHANNEL  # where /zns was typed
    assert not [c for c in slack_standin.calls() if c.args.get("channel") == "C0ELSEWHERE"]
    (event,) = audited(bot, "notice_channel_ignored")
    assert event["actor"] == f"slack:{AGENT}"


async def test_the_same_submission_replayed_three_times_makes_one_request(bot, monkeypatch):
    view = await open_order_modal(bot)
    sent: list[bytes] = []
    post = bot.post

    async def keep(body: bytes, **kw: Any) -> Any:
        sent.append(body)
        return await post(body, **kw)

    with monkeypatch.context() as patch:
        patch.setattr(bot, "post", keep)
        first = await bot.submit_request(view, phone="0901888484", params=ORDER)
    (body,) = sent
    replays = await asyncio.gather(*(bot.post(body) for _ in range(2)))
    assert [r.text for r in (first, *replays)] == ["", "", ""]  # each answered as the first
    card = await bot.card()
    assert sends_count(bot) == 1
    assert bot.record_for(card)["state"] == "pending_approval"
    assert len(audited(bot, "created")) == 1


async def test_concurrent_replays_of_one_submission_make_one_request(bot):
    view = await open_order_modal(bot)
    responses = await asyncio.gather(
        *(bot.submit_request(view, phone="0901888484", params=ORDER) for _ in range(3))
    )
    assert [r.text for r in responses] == ["", "", ""]
    await bot.card()
    assert sends_count(bot) == 1


def decision_without_choice(view: dict[str, Any]) -> bytes:
    """The approval modal submitted with no decision at all."""
    values = {"reason": {"value": None}}
    return view_submission_body("zns_approval", values, APPROVER, view=view)


async def test_a_decision_other_than_approve_or_reject_is_refused(bot, esms_standin):
    card = await request_order(bot)
    view = await bot.review(card)
    maybe = await bot.decide(view, "maybe")
    missing = await bot.post(decision_without_choice(view))
    for response in (maybe, missing):
        assert "Choose Approve or Reject" in response.json()["errors"]["decision"]
    assert bot.record_for(card)["state"] == "pending_approval"
    assert esms_standin.sends() == []
    assert [e["reason"] for e in audited(bot, "decision_refused")] == [
        policy.Refusal.BAD_DECISION
    ] * 2
    assert (await bot.decide(view, "approve")).text == ""  # the same modal still works


async def test_a_review_for_one_send_cannot_decide_another(bot, esms_standin):
    card_a = await request_order(bot)
    await request_order(bot, phone="0912345678")
    a, b = by_phone(bot, "0901888484"), by_phone(bot, "0912345678")
    view_a = await bot.review(card_a)
    forged = with_metadata(view_a, send_id=b["id"])
    response = await bot.decide(forged, "approve")
    assert "another request" in response.json()["errors"]["decision"]
    after = by_phone(bot, "0912345678")
    assert after["state"] == "pending_approval"
    assert "approver" not in after and after["requester"] == b["requester"]  # B undecided
    assert by_phone(bot, "0901888484")["state"] == "pending_approval"
    assert esms_standin.sends() == []
    (event,) = audited(bot, "decision_refused")
    assert event["send_id"] == b["id"] and event["actor"] == f"slack:{APPROVER}"
    assert event["reason"] == policy.Refusal.OTHER_SEND
    assert a["id"] != b["id"]


async def test_a_digest_other_than_the_one_shown_is_refused_and_audited(bot, esms_standin):
    card = await request_order(bot)
    view = await bot.review(card)
    response = await bot.decide(with_metadata(view, digest="0" * 64), "approve")
    assert "changed since this review opened" in response.json()["errors"]["decision"]
    assert bot.record_for(card)["state"] == "pending_approval"
    assert esms_standin.sends() == []
    (event,) = audited(bot, "decision_refused")
    assert event["reason"] == policy.Refusal.DIGEST_MISMATCH


async def test_content_changed_after_the_review_opened_is_refused(bot, esms_standin):
    card = await request_order(bot)
    view = await bot.review(card)
    record = bot.record_for(card)
    assert bot.store is not None
    # the stored send edited behind the approver's back (a bug, or a hand in the file)
    bot.store.sends.update_fields(record["id"], ordered_params=["someone else", "x", "y"])
    response = await bot.decide(view, "approve")
    assert "changed since this review opened" in response.json()["errors"]["decision"]
    assert esms_standin.sends() == []


async def test_the_request_is_stored_before_the_estimate_and_the_card_gets_it_later(
    bot, esms_standin
):
    # the first estimate call held past the bot's eSMS timeout (0.5 s here); its retry answers
    esms_standin.inject(SUMMARY, delay=30)
    view = await open_order_modal(bot)
    response = await bot.submit_request(view, phone="0901888484", params=ORDER)
    assert response.text == ""  # acked while eSMS still prices it
    # in the store at once, while the estimate call is held
    record = by_phone(bot, "0901888484")
    assert record["estimate_pending"] is True and record.get("estimate") is None
    card = await bot.card(priced=False)
    assert "estimating…" in texts(card)
    # the estimate joins the card afterwards
    priced = await bot.card(after=0, wait=15)
    assert "330 VND" in texts(priced) and "estimating…" not in texts(priced)
    assert by_phone(bot, "0901888484")["estimate_pending"] is False


async def test_a_request_survives_a_crash_right_after_the_ack(
    tmp_path, slack_standin, esms_standin
):
    data_dir = tmp_path / "data"
    env = standin_env(slack_standin, esms_standin, data_dir, esms_timeout=30, zns_slack_pace=0)
    bot = BotProcess(env, cwd=tmp_path)
    await bot.start()
    driver = SlackDriver(
        bot.url, slack=slack_standin, esms=esms_standin, signing_secret=SIGNING_SECRET
    )
    try:
        await driver.slash()
        view = await driver.choose(await driver.modal(), "template_select", ORDER_TEMPLATE)
        esms_standin.inject(SUMMARY, delay=30)
        response = await driver.submit_request(view, phone="0901888484", params=ORDER)
        assert response.text == ""  # the agent was told it was received
        bot.kill()  # before the estimate returned
    finally:
        bot.stop()
        await driver.aclose()
    with Store.open(data_dir) as store:
        (record,) = store.sends.in_states({"pending_approval"})
        assert record["requester"] == f"slack:{AGENT}" and record["phone"] == "0901888484"
        assert record.get("estimate") is None and record["estimate_pending"] is True
