"""Who may request and who may approve: Slack user ids and user groups, resolved and cached."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)
FETCH_WAIT_S = 1.5


class AccessList:
    """A set of user ids and user-group ids (`S…`); groups expand via usergroups.users.list."""

    def __init__(
        self,
        entries: Iterable[str],
        *,
        ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.entries = [e for e in entries if e]
        self._users = {e for e in self.entries if not e.startswith("S")}
        self._groups = [e for e in self.entries if e.startswith("S")]
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._refreshing: dict[str, asyncio.Task[frozenset[str]]] = {}

    @property
    def empty(self) -> bool:
        return not self.entries

    async def contains(self, user_id: str, client: AsyncWebClient) -> bool:
        if user_id in self._users:
            return True
        for group in self._groups:
            if user_id in await self._members(group, client):
                return True
        return False

    async def warm(self, client: AsyncWebClient) -> None:
        """Fetch every group's members now, so the first click does not wait on Slack."""
        for group in self._groups:
            await self._fetch(group, client)

    async def _members(self, group: str, client: AsyncWebClient) -> frozenset[str]:
        cached = self._cache.get(group)
        if cached is None:
            return await self._fetch(group, client)
        if self._clock() - cached[0] >= self._ttl and group not in self._refreshing:
            # Answer from the last list now (acks have 3 s); ask Slack again meanwhile.
            task = asyncio.get_running_loop().create_task(self._fetch(group, client))
            self._refreshing[group] = task
            task.add_done_callback(lambda _: self._refreshing.pop(group, None))
        return cached[1]

    async def _fetch(self, group: str, client: AsyncWebClient) -> frozenset[str]:
        cached = self._cache.get(group)
        try:
            # Bounded: this may run before an ack, and Slack's retry handlers can sleep.
            response = await asyncio.wait_for(
                client.usergroups_users_list(usergroup=group), FETCH_WAIT_S
            )
        except (SlackApiError, TimeoutError, aiohttp.ClientError, OSError) as exc:
            # A group we cannot read grants nothing; an old answer is better than none.
            error = exc.response.get("error") if isinstance(exc, SlackApiError) else exc
            log.warning("cannot list user group %s: %s", group, error or type(exc).__name__)
            return cached[1] if cached else frozenset()
        members = frozenset(response.get("users") or [])
        self._cache[group] = (self._clock(), members)
        return members
