"""What the bot's log holds: no phone, no secret, no body, at DEBUG too; refusals short."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest

from bot.ops.logs import MAX_MESSAGE
from standins import driver as driver_module
from standins.driver import SlackDriver
from standins.payloads import signed_headers
from standins.process import BOT_TOKEN, SIGNING_SECRET, BotProcess, standin_env
from tests.conftest import ESMS_API_KEY, ESMS_SECRET_KEY
from tests.harness import ORDER, bot_settings, open_order_modal, running_bot
from tests.logcheck import leaks

SECRETS = (ESMS_API_KEY, ESMS_SECRET_KEY, BOT_TOKEN, SIGNING_SECRET)
PHONE = "0901 888 484"
NAME = ORDER["customer_name"]
REFUSED = "refused a Slack request"


def signed_minutes_ago(monkeypatch: pytest.MonkeyPatch, minutes: int) -> None:
    """The driver signs genuinely from now on, with a timestamp `minutes` old."""

    def old(body: bytes, secret: str) -> dict[str, str]:
        return signed_headers(body, secret, timestamp=int(time.time()) - 60 * minutes)

    monkeypatch.setattr(driver_module, "signed_headers", old)


async def test_refused_requests_are_one_short_line_and_a_flood_is_summed_up(
    tmp_path, slack_standin, esms_standin, caplog, monkeypatch
):
    caplog.set_level(logging.DEBUG)  # before the bot is built: Bolt copies the root's level
    settings = bot_settings(tmp_path / "data", slack_standin, esms_standin)
    async with running_bot(settings, slack_standin, esms_standin) as bot:
        view = await open_order_modal(bot)
        with monkeypatch.context() as patched:
            signed_minutes_ago(patched, 7)  # genuinely signed, but too old: refused
            stale = await bot.submit_request(view, phone=PHONE, params=ORDER)
        assert stale.status_code == 401
        people = [{"phone": PHONE, "name": NAME}] * 1000
        body = b"payload=" + json.dumps({"type": "view_submission", "people": people}).encode()
        for _ in range(30):  # a flood of forgeries, each with a body full of personal data
            assert (await bot.post(body, secret="not-the-secret")).status_code == 401
        bot.runtime.refusals.flush()  # the minute is over

    refusals = [r for r in caplog.records if r.name == "bot.web.refusals"]
    first, summary = refusals  # not one line per refusal
    assert first.getMessage() == REFUSED
    assert first.__dict__["reason"] == "too old"
    assert first.__dict__["client"] == "127.0.0.1"
    assert summary.getMessage() == "refused 30 more Slack requests in the last 60 s"
    assert summary.__dict__["reasons"] == {"bad signature": 30}
    assert summary.__dict__["clients"] == {"127.0.0.1": 30}
    # The Slack gate refuses before Bolt sees the request; Bolt's own line, which held the
    # body, would be cut to its head and kept out of INFO (tests/bot/ops/test_logs.py).
    bolt = [r for r in caplog.records if "Invalid request signature" in r.getMessage()]
    assert all(r.levelno == logging.DEBUG for r in bolt)
    for record in caplog.records:
        message = record.getMessage()
        assert len(message) <= MAX_MESSAGE
        assert NAME not in message and not leaks(message, SECRETS), message


async def test_the_whole_slack_flow_at_debug_logs_no_phone_no_secret_and_no_body(
    tmp_path, slack_standin, esms_standin
):
    env = standin_env(
        slack_standin, esms_standin, tmp_path / "data", log_level="DEBUG", zns_slack_pace=0
    )
    process = BotProcess(env, cwd=tmp_path, log_path=tmp_path / "serve.log")
    process.env["PUBLIC_BASE_URL"] = process.url  # eSMS's callback reaches this bot
    await process.start()
    slack = SlackDriver(
        process.url, slack=slack_standin, esms=esms_standin, signing_secret=SIGNING_SECRET
    )
    try:
        view = await open_order_modal(slack)
        await slack.submit_request(view, phone=PHONE, params=ORDER, note=f"call {PHONE}")
        card = await slack.card()
        await slack.decide(await slack.review(card), "approve")
        await slack.thread_text(card, "Accepted by eSMS")
        sms_id = esms_standin.stored_sms_ids()[-1]
        esms_standin.deliver(sms_id)
        assert await esms_standin.fire_callback(sms_id, success=True) == 200
        await slack.thread_text(card, "Delivered")
        forged = json.dumps({"type": "view_submission", "phone": PHONE}).encode()
        assert (await slack.post(b"payload=" + forged, secret="forged")).status_code == 401
        await process.outbox_drained()
    finally:
        await slack.aclose()
        process.stop()

    lines = (tmp_path / "serve.log").read_text(encoding="utf-8").splitlines()
    events: list[dict[str, Any]] = [json.loads(line) for line in lines]
    loggers = {e["logger"].split(".")[0] for e in events}
    # DEBUG really was on, for the libraries that log bodies and phones when let.
    assert {"slack_sdk", "slack_bolt", "httpx", "bot"} <= loggers, loggers
    assert any(e["msg"].startswith("Sending a request - url: POST") for e in events)
    assert any(e["msg"] == REFUSED and e["client"] == "127.0.0.1" for e in events)
    for line in lines:
        assert len(line) <= 2 * MAX_MESSAGE, line[:300]
        assert NAME not in line and not leaks(line, SECRETS), line[:300]
