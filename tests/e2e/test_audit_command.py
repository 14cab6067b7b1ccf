"""`/zns audit` with the real bot: a CSV by DM, masked for an agent, unmasked for an auditor,
cut at 50,000 rows, and every query (refused ones too) in the audit log."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from bot.auditing import open_history
from handlers.listeners.audit import ROW_LIMIT
from standins.esms import EsmsStandIn
from standins.slack import SlackStandIn
from tests.harness import (
    AGENT,
    APPROVER,
    STRANGER,
    Bot,
    accepted_send,
    bot_settings,
    running_bot,
)

AUDITOR = "U0AUDITOR1"
PHONE = "0901888484"  # what accepted_send() sends to
MASKED = "090****484"


@pytest.fixture
async def bot(
    tmp_path: Path, slack_standin: SlackStandIn, esms_standin: EsmsStandIn
) -> AsyncIterator[Bot]:
    """Requesters are listed, so someone else has no role; one auditor."""
    settings = bot_settings(
        tmp_path / "data",
        slack_standin,
        esms_standin,
        zns_requesters=[AGENT],
        zns_auditors=[AUDITOR],
        zns_fsync=False,  # the cap test writes 50,001 events; durability is not under test
    )
    async with running_bot(settings, slack_standin, esms_standin) as running:
        yield running


async def audit(bot: Bot, text: str, user: str) -> str:
    """`/zns audit <text>`: the ephemeral answer Slack shows at once."""
    response = await bot.slash(f"audit {text}".strip(), user=user)
    assert response.status_code == 200, response.text
    return response.text


async def uploaded(bot: Bot, count: int) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """The CSV rows of the `count`-th completed upload, and the DM message carrying it."""
    call = await bot.slack.await_for(method="files.completeUploadExternal", count=count, timeout=30)
    assert call.ok, call.response
    (file,) = call.response["files"]
    text = bot.slack.file_bytes(file["id"]).decode("utf-8")
    (message,) = [
        m
        for m in bot.slack.messages(call.args["channel_id"])
        if file["id"] in [f["id"] for f in m.get("files", [])]
    ]
    return list(csv.DictReader(io.StringIO(text))), message


def audit_events(bot: Bot, action: str) -> list[Mapping[str, Any]]:
    history = open_history(bot.runtime.settings.zns_data_dir)
    return [e for e in history.live_events() if e["action"] == action]


async def test_an_agent_gets_masked_phones_and_an_auditor_full_ones(
    bot: Bot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = tmp_path / "tmp"  # where the bot writes the CSV before uploading it
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    _, record = await accepted_send(bot)
    assert record["phone"] == PHONE

    answer = await audit(bot, "phone=0901 888 484", AGENT)
    assert answer.startswith(":hourglass_flowing_sand: Building your audit export")
    assert MASKED in answer and PHONE not in answer
    rows, message = await uploaded(bot, 1)
    assert bot.slack.dms(AGENT) == [message]  # to the agent, by DM
    mine = [r for r in rows if r["send_id"] == record["id"]]
    assert {r["action"] for r in mine} >= {"created", "transition"}
    assert {r["phone"] for r in mine} == {MASKED}
    assert PHONE not in json.dumps(rows)
    assert f"export: {len(rows)} rows (phone {MASKED})." in message["text"]
    assert "Phones are masked." in message["text"] and "Cut at" not in message["text"]

    # the auditor types it with +84: the same send, full numbers, and the erasure warning
    answer = await audit(bot, "phone=+84901888484 state=accepted", AUDITOR)
    rows, message = await uploaded(bot, 2)
    assert bot.slack.dms(AUDITOR) == [message]
    assert [(r["send_id"], r["to"], r["phone"]) for r in rows] == [
        (record["id"], "accepted", PHONE)
    ]
    assert "Phones unmasked (you are an auditor)" in message["text"]
    assert "even if a customer's data is later erased" in message["text"]
    assert PHONE not in message["text"]  # the summary itself stays masked

    # both queries are in the audit log with their filters, the phone masked
    asked = audit_events(bot, "audit_export")
    assert [(e["actor"], e["reason"]) for e in asked] == [
        (f"slack:{AGENT}", f"filters (phone {MASKED}); phones masked"),
        (f"slack:{AUDITOR}", f"filters (phone {MASKED}, to state accepted); phones unmasked"),
    ]
    # once the uploads are done, the temporary CSVs are gone
    await bot.runtime.deps.drain_tasks()
    assert list(temp.iterdir()) == []


async def test_someone_without_a_role_and_a_bad_filter_are_refused_and_audited(
    bot: Bot,
) -> None:
    only = ":no_entry: Only requesters, approvers and auditors can export the audit log."
    assert await audit(bot, f"phone={PHONE}", STRANGER) == only
    assert await audit(bot, "colour=red", STRANGER) == only  # the role first
    answer = await audit(bot, "state=gone", AGENT)
    assert answer.startswith(":no_entry: state= takes one of pending_approval, approved")
    answer = await audit(bot, "phone=0901 888 484 failed", APPROVER)
    assert answer.startswith(":no_entry: 'failed' is not a filter")
    assert "Use `/zns audit phone=" in answer

    refused = audit_events(bot, "audit_export_refused")
    assert [(e["actor"], e["reason"]) for e in refused] == [
        (f"slack:{STRANGER}", f"not a requester, approver or auditor; asked for (phone {MASKED})"),
        (
            f"slack:{STRANGER}",
            "not a requester, approver or auditor; asked for (bad filter unknown)",
        ),
        (f"slack:{AGENT}", "bad filter state"),
        (f"slack:{APPROVER}", "bad filter text"),
    ]
    assert audit_events(bot, "audit_export") == []
    # refused at once: nothing was built or uploaded (no task was started to do it)
    assert bot.slack.calls("files.getUploadURLExternal") == []
    assert bot.slack.dms(STRANGER) == []


async def test_an_export_is_cut_at_50000_rows_and_says_how_many_matched(bot: Bot) -> None:
    # 50,001 refusals by one person, through the call every refusal makes
    refused_by = f"slack:{APPROVER}"
    for _ in range(ROW_LIMIT + 1):
        bot.runtime.service.note(refused_by, "request_refused", reason="not in ZNS_REQUESTERS")

    answer = await audit(bot, f"user=<@{APPROVER}|minh.le>", AUDITOR)
    assert f"by {refused_by}" in answer
    rows, message = await uploaded(bot, 1)
    assert len(rows) == ROW_LIMIT == 50_000
    assert {r["actor"] for r in rows} == {refused_by}
    assert [int(r["seq"]) for r in rows] == sorted(int(r["seq"]) for r in rows)  # oldest first
    assert f"50,000 rows (by {refused_by})" in message["text"]
    assert ":warning: Cut at 50,000 rows: 50,001 matched." in message["text"]


async def test_a_refused_upload_is_told_and_leaves_no_file(
    bot: Bot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    bot.slack.inject("files.completeUploadExternal", error="file_uploads_disabled")

    answer = await audit(bot, "state=failed", AGENT)
    assert answer.startswith(":hourglass_flowing_sand:")
    told = await bot.slack.await_for(method="chat.postEphemeral")
    assert told.args["user"] == AGENT and "file_uploads_disabled" in told.args["text"]
    assert "No export was made" in told.args["text"]
    await bot.runtime.deps.drain_tasks()
    assert list(temp.iterdir()) == []
    # the query was still audited: it was asked, whatever became of the upload
    assert [e["reason"] for e in audit_events(bot, "audit_export")] == [
        "filters (to state failed); phones masked"
    ]
