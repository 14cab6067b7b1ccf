"""Run the real bot (ASGI app under uvicorn) against both stand-ins for end-to-end tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bot.app import Runtime, build_runtime
from bot.config import Settings
from bot.esms_standin import DEMO_OAID, EsmsStandIn
from bot.serving import serve_in_loop
from bot.slack_driver import AGENT, APPROVAL_CHANNEL, APPROVER, NOTIFY_CHANNEL, SlackDriver
from bot.slack_standin import SlackStandIn

__all__ = ["AGENT", "APPROVAL_CHANNEL", "APPROVER", "NOTIFY_CHANNEL", "Bot", "running_bot"]

SIGNING_SECRET = "e2e-signing-secret-3f7a"
BOT_TOKEN = "xoxb-e2e-bot-token"
GROUP_APPROVER = "U0APPROVER2"
APPROVER_GROUP = "S0APPROVERS"
STRANGER = "U0STRANGER"
PUBLIC_URL_FROM_SERVER = "http://bot-under-test.invalid"


class Bot(SlackDriver):
    """The driver plus the bot's runtime, for tests that look inside."""

    runtime: Runtime


def bot_settings(
    data_dir: Path, slack: SlackStandIn, esms: EsmsStandIn, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "slack_bot_token": BOT_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": slack.api_url,
        "esms_api_key": esms.api_key,
        "esms_secret_key": esms.secret_key,
        "esms_base_url": esms.base_url,
        "esms_callback_api_url": esms.callback_api_url,
        "esms_oaid": DEMO_OAID,
        "esms_timeout": 0.5,
        "esms_retry_backoff": 0.01,
        "zns_approval_channel": APPROVAL_CHANNEL,
        "zns_notify_channel": NOTIFY_CHANNEL,
        "zns_approvers": [APPROVER, APPROVER_GROUP],
        "zns_data_dir": data_dir,
        "zns_slack_pace": 0.0,  # pacing has its own tests (tests/bot/test_relay.py)
        "public_base_url": "https://zns-bot.example",  # PUBLIC_URL_FROM_SERVER: the real one
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@contextlib.asynccontextmanager
async def running_bot(
    settings: Settings, slack: SlackStandIn, esms: EsmsStandIn
) -> AsyncIterator[Bot]:
    runtime = build_runtime(settings)
    async with serve_in_loop(runtime.asgi) as url:
        if settings.public_base_url == PUBLIC_URL_FROM_SERVER:
            # The port is known only now; this is the URL eSMS's callbacks would reach.
            runtime.settings.public_base_url = url
        bot = Bot(url, store=runtime.store, slack=slack, esms=esms, signing_secret=SIGNING_SECRET)
        bot.runtime = runtime
        try:
            yield bot
        finally:
            await bot.aclose()
