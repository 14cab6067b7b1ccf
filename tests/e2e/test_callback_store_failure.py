"""A callback the store cannot make durable gets 503, so eSMS keeps it and calls again."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from standins.esms import EsmsStandIn
from standins.slack import SlackStandIn
from tests.harness import PUBLIC_URL_FROM_SERVER, Bot, accepted_send, bot_settings, running_bot

CANNOT_STORE = "cannot store the callback now"


@pytest.fixture
async def bot(
    tmp_path: Path, slack_standin: SlackStandIn, esms_standin: EsmsStandIn
) -> AsyncIterator[Bot]:
    settings = bot_settings(
        tmp_path / "data", slack_standin, esms_standin, public_base_url=PUBLIC_URL_FROM_SERVER
    )
    assert settings.zns_fsync  # without fsync nothing is ever waited for
    async with running_bot(settings, slack_standin, esms_standin) as running:
        yield running


def failing_fsync(fd: int) -> None:
    raise OSError(5, "Input/output error")


async def test_an_unstorable_callback_gets_503_and_health_says_why(
    bot: Bot,
    esms_standin: EsmsStandIn,
    slack_standin: SlackStandIn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _card, record = await accepted_send(bot)
    # nothing else may write meanwhile: the failure must meet the callback's own fsync
    await bot.runtime.relay.run_until_idle()
    assert (await bot.http.get("/healthz")).status_code == 200
    # The URL the bot gave eSMS, with a "delivered" report, as eSMS would call it.
    url = esms_standin.sends()[0]["CallbackUrl"]
    query = f"SMSID={record['sms_id']}&SendStatus=5&SendSuccess=1&SendFailed=0"
    callback = f"{url}{'&' if '?' in url else '?'}{query}"
    # The disk fails: every fsync, the group commit's (in its worker thread) and the
    # engine's own alike. storage.group_commit.os is this same module.
    monkeypatch.setattr(os, "fsync", failing_fsync)
    slack_calls_before = len(slack_standin.calls())

    async with httpx.AsyncClient(timeout=10) as esms:
        first = await esms.get(callback)
        assert (first.status_code, first.text) == (503, CANNOT_STORE)
        # eSMS retries: the first copy is in memory but not on disk, so no "ok (duplicate)"
        retry = await esms.get(callback)
        assert (retry.status_code, retry.text) == (503, CANNOT_STORE)

    health = await bot.http.get("/healthz")
    assert health.status_code == 503
    report = health.json()
    assert report["ok"] is False
    assert "fsync failed" in report["store"] and "Input/output error" in report["store"]
    # Slack is never told "Delivered" for a change the disk did not keep.
    await bot.runtime.relay.run_until_idle()
    told = [c.method for c in slack_standin.calls()[slack_calls_before:]]
    assert not [m for m in told if m in ("chat.update", "chat.postMessage")], told
