"""What every listener needs, handed to it through Bolt's context."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot import policy
from bot.config import Settings
from bot.service import SendService
from handlers.access import AccessList

CONTEXT_KEY = "zns"
log = logging.getLogger(__name__)


@dataclass
class SlackDeps:
    settings: Settings
    service: SendService
    approvers: AccessList
    requesters: AccessList
    # empty (the default): nobody is an auditor
    auditors: AccessList = field(default_factory=lambda: AccessList(()))
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    async def roles(self, user: str, client: AsyncWebClient) -> policy.Roles:
        """What this person is, from the lists (user groups resolved, cached)."""
        return policy.Roles(
            # ZNS_REQUESTERS empty: everyone may request, so everyone is a requester
            requester=self.requesters.empty or await self.requesters.contains(user, client),
            approver=await self.approvers.contains(user, client),
            auditor=await self.auditors.contains(user, client),
        )

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run work after the ack; keep a reference so it is neither lost nor collected."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    async def drain_tasks(self) -> None:
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)


def deps_of(context: dict[str, Any]) -> SlackDeps:
    deps = context[CONTEXT_KEY]
    assert isinstance(deps, SlackDeps), "register_all() puts the deps in every context"
    return deps
