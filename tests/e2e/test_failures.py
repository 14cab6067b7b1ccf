"""No silent failure: a Slack call that fails inside a listener is told to the person."""

import logging

from tests.harness import (
    AGENT,
    STRANGER,
    request_order,
)


async def test_a_modal_slack_refuses_to_update_is_told_with_slacks_reason(
    bot, slack_standin, caplog
):
    caplog.set_level(logging.INFO, logger="handlers.failures")
    slack_standin.inject("views.update", error="invalid_arguments")
    assert (await bot.slash()).status_code == 200
    told = await slack_standin.await_for(
        lambda c: c.args.get("user") == AGENT, method="chat.postEphemeral"
    )
    text = told.args["text"]
    assert "Slack refused" in text and "invalid_arguments" in text and "Nothing was sent" in text
    logged = [r.getMessage() for r in caplog.records if r.name == "handlers.failures"]
    assert any(
        "listener command /zns failed" in m and "views.update: invalid_arguments" in m
        for m in logged
    ), logged


async def test_without_a_channel_to_answer_in_the_person_gets_a_dm(bot, slack_standin):
    slack_standin.inject("views.update", error="internal_error")
    slack_standin.inject("chat.postEphemeral", error="channel_not_found")
    assert (await bot.slash()).status_code == 200
    dm = await slack_standin.await_for(
        lambda c: str(c.args.get("channel", "")).startswith("D") and c.ok,
        method="chat.postMessage",
    )
    assert "Slack refused" in dm.args["text"] and "internal_error" in dm.args["text"]
    opened = slack_standin.calls("conversations.open")
    assert opened and opened[-1].args.get("users") == AGENT


async def test_a_refused_cancel_is_told_by_the_one_error_handler(bot, slack_standin):
    card = await request_order(bot)
    response = await bot.click("zns_cancel", card, STRANGER)
    assert response.status_code == 200
    told = await slack_standin.await_for(
        lambda c: c.args.get("user") == STRANGER, method="chat.postEphemeral"
    )
    assert "Only the person who made the request can cancel it." in told.args["text"]
    assert bot.record_for(card)["state"] == "pending_approval"
