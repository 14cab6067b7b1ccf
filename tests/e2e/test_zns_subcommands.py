"""`/zns status`, `templates`, `balance` and `help` through the real bot: signed slash
commands, the strict Slack stand-in, roles and their audited refusals."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from standins import blockkit
from standins.catalogue import use_big_catalogue
from standins.driver import AGENT, APPROVAL_CHANNEL, APPROVER, REQUEST_CHANNEL
from standins.esms import DEMO_OAID
from standins.payloads import block_action_body
from tests.e2e.test_history import accepted, until_archived, zns
from tests.harness import (
    PUBLIC_URL_FROM_SERVER,
    STRANGER,
    Bot,
    bot_settings,
    running_bot,
)

AUDITOR = "U0AUDITOR1"
PHONE = "0901888472"
MASKED = "090****472"


@pytest.fixture
async def bot(tmp_path: Path, slack_standin: Any, esms_standin: Any) -> AsyncIterator[Bot]:
    """Requesters: the agent only; one auditor; a final send leaves the live store at the
    next archive pass, which comes every second."""
    settings = bot_settings(
        tmp_path / "data",
        slack_standin,
        esms_standin,
        public_base_url=PUBLIC_URL_FROM_SERVER,
        zns_requesters=[AGENT],
        zns_auditors=[AUDITOR],
        zns_live_hours=0,
        zns_archive_every=1,
    )
    async with running_bot(settings, slack_standin, esms_standin) as running:
        yield running


def answer(response: httpx.Response) -> dict[str, Any]:
    """The slash command's ack: what only the person sees, as Slack would take it."""
    assert response.status_code == 200, response.text
    if not response.headers.get("content-type", "").startswith("application/json"):
        return {"text": response.text}  # Bolt answers an ack of text alone as plain text
    body = response.json()
    assert blockkit.check_message_blocks(body.get("blocks", [])) == []
    assert blockkit.blocks_text_length(body.get("blocks", [])) <= blockkit.BLOCKS_TEXT_MAX
    assert body.get("response_type", "ephemeral") == "ephemeral"
    return dict(body)


def shown(body: Mapping[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False)


def audit(data_dir: Path) -> list[dict[str, str]]:
    """The audit log as `zns-bot audit export` writes it, beside the running bot."""
    result = zns(data_dir, "audit", "export", "--csv", "-")
    assert result.returncode == 0, result.stderr
    return list(csv.DictReader(io.StringIO(result.stdout)))


async def test_status_finds_a_send_by_each_key_live_and_archived(
    bot: Bot, esms_standin: Any, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    card, sent = await accepted(bot, esms_standin, PHONE)
    send_id = sent["RequestId"]
    (sms_id,) = esms_standin.stored_sms_ids()
    link = f"/archives/{APPROVAL_CHANNEL}/p{card['ts'].replace('.', '')}"

    for key in (send_id, sms_id):
        body = answer(await bot.slash(f"status {key}"))
        text = shown(body)
        assert body["text"] == f"ZNS send {send_id}: accepted"
        assert "accepted: accepted by eSMS, waiting for the delivery report" in text
        assert "Order confirmation" in text and sms_id in text
        assert f"<@{AGENT}>" in text and f"<@{APPROVER}>" in text
        assert MASKED in text and PHONE not in text
        assert link in text and "live store" in text
    by_phone = answer(await bot.slash("status 0901 888 472"))
    assert by_phone["text"] == f"1 send(s) to {MASKED}, newest first"
    assert send_id in shown(by_phone) and PHONE not in shown(by_phone)

    # delivered, then archived: the same three keys find it in the archive
    esms_standin.deliver(sms_id)
    assert await esms_standin.fire_callback(sms_id, success=True) == 200
    await bot.thread_text(card, "Delivered")
    await until_archived(data_dir, send_id)
    for key in (send_id, sms_id):
        text = shown(answer(await bot.slash(f"status {key}")))
        assert "delivered: delivered to the customer" in text
        assert "archive (left the live store)" in text
        assert MASKED in text and PHONE not in text and link in text
    by_phone = answer(await bot.slash(f"status {PHONE}"))
    assert send_id in shown(by_phone) and "delivered" in shown(by_phone)

    # every lookup is in the audit log, by whom and for what; the phone masked in it
    lookups = [r for r in audit(data_dir) if r["action"] == "status_lookup"]
    assert len(lookups) == 6 and {r["actor"] for r in lookups} == {f"slack:{AGENT}"}
    reasons = [r["reason"] for r in lookups]
    assert reasons[0] == f"send id {send_id}: 1 send(s) found"
    assert reasons[1] == f"SMSID {sms_id}: 1 send(s) found"
    assert reasons[2] == f"phone {MASKED}: 1 send(s) found"
    assert not any(PHONE in r for r in reasons)


async def test_status_of_nothing_or_a_bad_key_answers_in_one_line(bot: Bot) -> None:
    missing = answer(await bot.slash("status zns-" + "0" * 32))
    assert missing["text"].startswith("no send found for send id zns-0000")
    unknown_phone = answer(await bot.slash("status 0901888999"))
    assert "090****999" in unknown_phone["text"] and "0901888999" not in shown(unknown_phone)
    bad = answer(await bot.slash("status not/a key"))
    assert bad["text"].startswith(":no_entry: 'not/a key' is not a send id")
    usage = answer(await bot.slash("status"))
    assert "Usage: `/zns status" in usage["text"]


async def test_someone_with_no_role_is_refused_in_one_line_and_audited(
    bot: Bot, slack_standin: Any, esms_standin: Any, tmp_path: Path
) -> None:
    for command in ("status 0901888472", "templates", "balance"):
        refused = answer(await bot.slash(command, user=STRANGER))
        assert refused["text"].startswith(":no_entry: You have no ZNS role")
        assert "\n" not in refused["text"] and "blocks" not in refused
    # the approver and the auditor (on neither requesters' list) may look up
    for user in (APPROVER, AUDITOR):
        looked = answer(await bot.slash("status 0901888472", user=user))
        assert looked["text"].startswith("no send found for phone 090****472")
    assert slack_standin.ephemerals(STRANGER) == []
    assert esms_standin.requests_to("GetBalance_json") == []  # refused before eSMS was asked

    rows = audit(tmp_path / "data")
    refusals = [r for r in rows if r["action"].endswith("_refused")]
    assert [(r["actor"], r["action"], r["reason"]) for r in refusals] == [
        (f"slack:{STRANGER}", action, "not a requester, approver or auditor")
        for action in ("status_refused", "templates_refused", "balance_refused")
    ]
    lookups = [r["actor"] for r in rows if r["action"] == "status_lookup"]
    assert lookups == [f"slack:{APPROVER}", f"slack:{AUDITOR}"]
    assert "0901888472" not in json.dumps(rows)


async def test_templates_and_balance_answer_ephemerally(
    bot: Bot, slack_standin: Any, esms_standin: Any
) -> None:
    response = await bot.slash("templates")
    assert response.status_code == 200 and response.text == ""  # acked; the answer follows
    call = await slack_standin.await_for(method="chat.postEphemeral")
    assert call.args["user"] == AGENT and call.args["channel"] == REQUEST_CHANNEL
    (page,) = slack_standin.ephemerals(AGENT)
    text = shown(page)
    assert f"Templates of OA Demo Shop (`{DEMO_OAID}`)" in page["text"]
    assert "Order confirmation" in text and "`231001`" in text
    assert "customer_name (text, max 30)" in text and "order_date (date dd/MM/yyyy" in text

    await bot.slash("balance")
    await slack_standin.await_for(method="chat.postEphemeral", count=2)
    balance = slack_standin.ephemerals(AGENT)[-1]
    assert balance["text"] == "*eSMS balance*: 5,000,000 VND"
    assert "daily quota left: 500 of 500" in shown(balance)

    # eSMS down: said as such, nothing else
    esms_standin.inject("GetBalance_json", status=500, times=10)
    esms_standin.inject("ZNS/GetQuota", status=500, times=10)
    await bot.slash("balance")
    await slack_standin.await_for(method="chat.postEphemeral", count=3)
    failed = shown(slack_standin.ephemerals(AGENT)[-1])
    assert "eSMS did not answer with the balance" in failed
    assert "eSMS did not answer with the OA's quota" in failed


async def test_a_big_catalogue_pages_with_a_more_button(
    tmp_path: Path, slack_standin: Any, esms_standin: Any
) -> None:
    use_big_catalogue(esms_standin)
    settings = bot_settings(tmp_path / "data", slack_standin, esms_standin, esms_timeout=10.0)
    async with running_bot(settings, slack_standin, esms_standin) as bot:
        await bot.slash("templates")
        await slack_standin.await_for(method="chat.postEphemeral", timeout=20.0)
        (first,) = slack_standin.ephemerals(AGENT)
        assert ", page 1 of " in first["text"]
        (button,) = [e for b in first["blocks"] if b["type"] == "actions" for e in b["elements"]]
        body = block_action_body(
            button["action_id"],
            button["value"],
            AGENT,
            channel_id=REQUEST_CHANNEL,
            container={"type": "message", "channel_id": REQUEST_CHANNEL, "is_ephemeral": True},
        )
        assert (await bot.post(body)).status_code == 200
        await slack_standin.await_for(method="chat.postEphemeral", count=2)
        second = slack_standin.ephemerals(AGENT)[-1]
        assert ", page 2 of " in second["text"]
        typed = await bot.slash("templates 2")
        assert typed.status_code == 200
        await slack_standin.await_for(method="chat.postEphemeral", count=3)
        assert slack_standin.ephemerals(AGENT)[-1]["blocks"] == second["blocks"]


async def test_help_lists_every_subcommand_and_junk_gets_help_not_a_modal(
    bot: Bot, slack_standin: Any
) -> None:
    for typed in ("help", "--help"):
        text = answer(await bot.slash(typed))["text"]
        for usage in (
            "`/zns 0901888484`",
            "`/zns status <send id | SMSID | phone>`",
            "`/zns audit ",
            "`/zns templates [page]`",
            "`/zns balance`",
            "`/zns help`",
        ):
            assert usage in text, usage
    junk = answer(await bot.slash("stauts 0901888472"))["text"]
    assert junk.startswith(":grey_question: `/zns stauts` is not a subcommand")
    assert slack_standin.calls("views.open") == []
    await bot.slash("+84 901 888 472")  # a phone still opens the request modal
    await slack_standin.await_for(method="views.open")
