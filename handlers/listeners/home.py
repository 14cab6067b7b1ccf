"""The App Home: published when the person opens it, and paged through its buttons."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from handlers.deps import deps_of
from handlers.failures import told
from handlers.ui.home import HOME_NEXT_ACTION, HOME_PREV_ACTION

HOME_TAB = "home"


async def handle_home_opened(
    ack: AsyncAck, event: dict[str, Any], client: AsyncWebClient, context: dict[str, Any]
) -> None:
    """The Home tab was opened: publish it now (through the outbox), follow it for a day."""
    await ack()
    if event.get("tab") != HOME_TAB:  # the Messages tab: nothing to publish
        return
    deps = deps_of(context)
    user = event["user"]
    # Who is an approver decides who is refreshed when a request waits (bot/home.py).
    approver = await deps.approvers.contains(user, client)
    deps.service.homes.opened(user, approver=approver)


async def handle_page(ack: AsyncAck, body: dict[str, Any], context: dict[str, Any]) -> None:
    """Previous / more on the waiting requests: the home is published at that page."""
    await ack()
    try:
        page = int(body["actions"][0].get("value") or 0)
    except ValueError:  # not a value the bot wrote: show the first page
        page = 0
    deps_of(context).service.homes.turn_page(body["user"]["id"], page)


def register(app: AsyncApp) -> None:
    app.event("app_home_opened")(told(handle_home_opened))
    app.action(HOME_PREV_ACTION)(told(handle_page))
    app.action(HOME_NEXT_ACTION)(told(handle_page))
