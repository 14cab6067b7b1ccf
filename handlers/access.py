"""Who may request and who may approve: Slack user ids and user groups, resolved and cached."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterable

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.cache import SwrCache

log = logging.getLogger(__name__)
FETCH_WAIT_S = 1.5
# What a failed usergroups.users.list raises; a group we cannot read grants nothing.
_UNREADABLE: tuple[type[Exception], ...] = (
    SlackApiError,
    TimeoutError,
    aiohttp.ClientError,
    OSError,
)


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
        # Answer from the last list at once (acks have 3 s) and ask Slack again meanwhile;
        # an old answer is better than none when Slack fails.
        self._cache: SwrCache[str, frozenset[str]] = SwrCache(
            ttl=ttl, clock=clock, keep_on=_UNREADABLE
        )

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
            with contextlib.suppress(*_UNREADABLE):  # logged; the first click asks again
                await self._cache.refresh(group, functools.partial(self._fetch, group, client))

    async def settled(self) -> None:
        """Wait for background refreshes (for shutdown and tests)."""
        await self._cache.settled()

    async def _members(self, group: str, client: AsyncWebClient) -> frozenset[str]:
        try:
            return await self._cache.get(group, functools.partial(self._fetch, group, client))
        except _UNREADABLE:  # never read: logged by _fetch
            return frozenset()

    async def _fetch(self, group: str, client: AsyncWebClient) -> frozenset[str]:
        try:
            # Bounded: this may run before an ack, and Slack's retry handlers can sleep.
            response = await asyncio.wait_for(
                client.usergroups_users_list(usergroup=group), FETCH_WAIT_S
            )
        except _UNREADABLE as exc:
            error = exc.response.get("error") if isinstance(exc, SlackApiError) else exc
            log.warning("cannot list user group %s: %s", group, error or type(exc).__name__)
            raise
        return frozenset(response.get("users") or [])
