"""Slack listeners and Block Kit builders: parse the payload, call bot/, render the answer."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from handlers import failures
from handlers.deps import CONTEXT_KEY, SlackDeps
from handlers.listeners import actions, commands, home, options, views


def register_all(app: AsyncApp, deps: SlackDeps) -> None:
    """Hand every listener its dependencies through the context, then register them."""

    async def inject(context: dict[str, Any], next: Any) -> None:  # Bolt injects by name
        context[CONTEXT_KEY] = deps
        await next()

    app.use(inject)
    for module in (commands, actions, home, options, views, failures):
        module.register(app)
