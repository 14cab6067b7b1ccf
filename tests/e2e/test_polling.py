"""Polling and reconcile end to end: the running bot, both stand-ins over HTTP, and the jobs
run directly with a clock set ahead (the scheduler's own runs are not waited for)."""

from datetime import datetime, timedelta

from bot.jobs.polling import DeliveryPoller
from bot.jobs.scheduler import poll_job, reconcile_job
from tests.harness import APPROVAL_CHANNEL, request_order


def poller_at(bot, moment: datetime) -> DeliveryPoller:
    runtime = bot.runtime
    return DeliveryPoller(runtime.service, runtime.tracker, clock=lambda: moment)


async def test_the_callback_is_lost_and_the_poll_delivers(bot, slack_standin, esms_standin):
    card = await request_order(bot)
    await bot.decide(await bot.review(card), "approve")
    await bot.thread_text(card, "Accepted by eSMS")
    record = bot.record_for(card)
    esms_standin.deliver(record["sms_id"])  # delivered, but no callback ever reaches the bot

    accepted_at = datetime.fromisoformat(record["accepted_at"])
    assert await poll_job(poller_at(bot, accepted_at + timedelta(seconds=31))) == 1

    assert bot.record_for(card)["state"] == "delivered"
    delivered = await slack_standin.await_for(
        lambda c: c.args.get("thread_ts") == card["ts"] and "Delivered" in c.args.get("text", ""),
        method="chat.postMessage",
    )
    assert "090****484" in delivered.args["text"]
    assert esms_standin.requests_to("QueryZnsStatus")
    updated = slack_standin.message(APPROVAL_CHANNEL, card["ts"])
    assert "Delivered" in str(updated["blocks"])


async def test_no_report_within_the_window_says_outcome_unknown(bot, esms_standin):
    card = await request_order(bot)
    await bot.decide(await bot.review(card), "approve")
    await bot.thread_text(card, "Accepted by eSMS")
    accepted_at = datetime.fromisoformat(bot.record_for(card)["accepted_at"])

    await poll_job(poller_at(bot, accepted_at + timedelta(hours=3)))

    text = await bot.thread_text(card, "Outcome unknown")
    assert "no delivery report from eSMS within the template's 2 h delivery window" in text
    assert bot.record_for(card)["state"] == "unknown"


async def test_a_lost_submit_reply_is_reconciled_without_sending_twice(bot, esms_standin):
    card = await request_order(bot)
    esms_standin.inject("SendZaloMessage_V4_post_json", status=502, times=3)
    await bot.decide(await bot.review(card), "approve")
    await bot.thread_text(card, "Outcome unknown")
    record = bot.record_for(card)
    assert record["state"] == "unknown"

    await reconcile_job(poller_at(bot, datetime.fromisoformat(record["updated_at"])))

    text = await bot.thread_text(card, "Accepted by eSMS")
    (sms_id,) = esms_standin.stored_sms_ids()
    assert f"SMSID `{sms_id}`" in text
    assert {body["RequestId"] for body in esms_standin.sends()} == {record["id"]}
