"""Run the real bot (ASGI app under uvicorn) against both stand-ins for end-to-end tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bot.app import Runtime, build_runtime
from bot.config import Settings
from bot.esms_standin import EsmsStandIn
from bot.serving import serve_in_loop
from bot.slack_driver import AGENT, APPROVAL_CHANNEL, APPROVER, NOTIFY_CHANNEL, SlackDriver
from bot.slack_standin import SlackStandIn
from bot.standins import BOT_TOKEN, SIGNING_SECRET, standin_settings

__all__ = [
    "AGENT",
    "APPROVAL_CHANNEL",
    "APPROVER",
    "BOT_TOKEN",
    "NOTIFY_CHANNEL",
    "SIGNING_SECRET",
    "Bot",
    "running_bot",
]

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
        "esms_timeout": 0.5,
        "esms_retry_backoff": 0.01,
        "zns_approvers": [APPROVER, APPROVER_GROUP],
        "zns_slack_pace": 0.0,  # pacing has its own tests (tests/bot/test_relay.py)
        "public_base_url": "https://zns-bot.example",  # PUBLIC_URL_FROM_SERVER: the real one
    }
    values.update(overrides)
    return standin_settings(slack, esms, data_dir, **values)


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
