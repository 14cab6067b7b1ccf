"""Run the real bot (ASGI app under uvicorn) against both stand-ins for end-to-end tests."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.app import Runtime, build_runtime
from bot.config import Settings
from standins.driver import AGENT, APPROVAL_CHANNEL, APPROVER, NOTIFY_CHANNEL, SlackDriver
from standins.esms import ORDER_TEMPLATE, EsmsStandIn
from standins.process import BOT_TOKEN, SIGNING_SECRET, standin_settings
from standins.servers import serve_in_loop
from standins.slack import SlackStandIn
from standins.socket_driver import SocketModeDriver

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
    metrics_url: str  # /metrics is served on its own listener, not at `url`

    async def metrics(self) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.metrics_url) as http:
            return await http.get("/metrics")


class SocketBot(SocketModeDriver, Bot):
    """The bot driven over the stand-in's Socket Mode link instead of signed HTTP."""


def bot_settings(
    data_dir: Path, slack: SlackStandIn, esms: EsmsStandIn, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "esms_timeout": 0.5,
        "esms_retry_backoff": 0.01,
        "zns_approvers": [APPROVER, APPROVER_GROUP],
        "zns_slack_pace": 0.0,  # pacing has its own tests (tests/bot/jobs/test_relay.py)
        "public_base_url": "https://zns-bot.example",  # PUBLIC_URL_FROM_SERVER: the real one
    }
    values.update(overrides)
    return standin_settings(slack, esms, data_dir, **values)


@contextlib.asynccontextmanager
async def running_bot(
    settings: Settings, slack: SlackStandIn, esms: EsmsStandIn, *, over_socket: bool = False
) -> AsyncIterator[Bot]:
    """The bot serving on loopback; `over_socket`: the driver speaks Socket Mode to it."""
    runtime = build_runtime(settings)
    async with (
        serve_in_loop(runtime.asgi) as url,
        serve_in_loop(runtime.metrics_asgi, lifespan="off") as metrics_url,
    ):
        if settings.public_base_url == PUBLIC_URL_FROM_SERVER:
            # The port is known only now; this is the URL eSMS's callbacks would reach.
            runtime.settings.public_base_url = url
        driver = SocketBot if over_socket else Bot
        bot = driver(
            url, store=runtime.store, slack=slack, esms=esms, signing_secret=SIGNING_SECRET
        )
        bot.runtime = runtime
        bot.metrics_url = metrics_url
        try:
            yield bot
        finally:
            await bot.aclose()


# --- factories shared by the end-to-end tests ---------------------------------------------

ORDER = {  # a valid filling of the stand-in's order template
    "customer_name": "Nguyễn Văn A",
    "order_code": "DH-1001",
    "order_date": "27/11/2026",
    "amount": "150000",
    "tracking_url": "https://shop.example/t/DH-1001",
}


def texts(view: Any) -> str:
    """Every human-readable string in a view or message, joined."""
    return json.dumps(view, ensure_ascii=False)


async def open_order_modal(bot: SlackDriver, text: str = "", user: str = AGENT) -> dict[str, Any]:
    """/zns, then the order template chosen: the modal ready to fill in."""
    response = await bot.slash(text, user=user)
    assert response.status_code == 200
    view = await bot.modal()
    return await bot.choose(view, "template_select", ORDER_TEMPLATE, user=user)


async def request_order(bot: SlackDriver, phone: str = "0901 888 484", **kw: Any) -> dict[str, Any]:
    """A valid order request submitted: its card in the approvals channel."""
    view = await open_order_modal(bot)
    response = await bot.submit_request(view, phone=phone, params=ORDER, **kw)
    assert response.status_code == 200 and response.text == "", response.text
    return await bot.card()


async def accepted_send(bot: Bot) -> tuple[dict[str, Any], dict[str, Any]]:
    """A request approved and accepted by eSMS: its card and its send record."""
    card = await request_order(bot)
    await bot.decide(await bot.review(card), "approve")
    await bot.thread_text(card, "Accepted by eSMS")
    return card, bot.record_for(card)


def run_inner_session(pytester: pytest.Pytester, conftest: str, tests: str) -> pytest.RunResult:
    """`tests` with `conftest` in a pytest session of its own process, as this suite runs.

    A process of its own: an in-process session drops the modules it imported on the way
    out, and the stand-in servers of later tests then ran from a second copy of standins/.
    """
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makeconftest(conftest)
    pytester.makepyfile(test_inner=tests)
    pytester.syspathinsert(str(Path(__file__).resolve().parents[1]))
    return pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:xdist", "-q")
