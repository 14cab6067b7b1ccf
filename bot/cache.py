"""A per-key TTL cache that serves a stale value while it refetches, and keeps it on failure."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SwrCache(Generic[K, V]):
    """Values per key, each fetched by the `fetch` its caller passes and kept `ttl` seconds.

    - A miss waits for `fetch`.
    - A stale value is returned at once while one background refresh per key runs
      (stale-while-revalidate); with `background=False` it is refetched before answering.
    - A fetch that raises one of `keep_on` keeps the last good value (its age too, so the next
      call tries again) and calls `on_kept(key, error)`; with no value yet, the error
      propagates. Anything else always propagates.
    - With `coalesce`, concurrent refreshes of one key make one fetch: who waited for the
      lock gets the value fetched meanwhile. Without it, each refresh fetches.
    """

    def __init__(
        self,
        *,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
        keep_on: tuple[type[Exception], ...] = (),
        on_kept: Callable[[K, Exception], None] | None = None,
        coalesce: bool = False,
        background: bool = True,
    ) -> None:
        self._ttl = ttl
        self._clock = clock
        self._keep_on = keep_on
        self._on_kept = on_kept
        self._coalesce = coalesce
        self._background = background
        self._entries: dict[K, tuple[float, V]] = {}  # key -> (fetched at, value)
        self._locks: dict[K, asyncio.Lock] = {}
        # The tasks are held here too: the event loop keeps only weak references to them.
        self._refreshing: dict[K, asyncio.Task[V]] = {}

    async def get(self, key: K, fetch: Callable[[], Awaitable[V]]) -> V:
        """The value for `key`: cached if fresh, stale while a refresh runs, else fetched."""
        entry = self._entries.get(key)
        if entry is None:
            return await self.refresh(key, fetch)
        fetched_at, value = entry
        if self._clock() - fetched_at < self._ttl:
            return value
        if not self._background:
            return await self.refresh(key, fetch)
        if key not in self._refreshing:
            task = asyncio.get_running_loop().create_task(self.refresh(key, fetch))
            self._refreshing[key] = task
            task.add_done_callback(lambda _: self._refreshing.pop(key, None))
        return value

    def peek(self, key: K) -> V | None:
        """The cached value, fresh or stale, without fetching; None when there is none."""
        entry = self._entries.get(key)
        return None if entry is None else entry[1]

    async def refresh(self, key: K, fetch: Callable[[], Awaitable[V]]) -> V:
        """Fetch the value for `key` now, whatever the cache holds (see the class for errors)."""
        if not self._coalesce:
            return await self._fetch(key, fetch, self._entries.get(key))
        asked_at = self._clock()
        async with self._locks.setdefault(key, asyncio.Lock()):
            entry = self._entries.get(key)
            if entry is not None and entry[0] >= asked_at:
                return entry[1]  # fetched by whoever held the lock while we waited
            return await self._fetch(key, fetch, entry)

    async def settled(self) -> None:
        """Wait for the background refreshes (for shutdown and tests)."""
        while self._refreshing:
            await asyncio.gather(*list(self._refreshing.values()), return_exceptions=True)

    async def _fetch(
        self, key: K, fetch: Callable[[], Awaitable[V]], entry: tuple[float, V] | None
    ) -> V:
        try:
            value = await fetch()
        except self._keep_on as exc:
            if entry is None:
                raise
            if self._on_kept is not None:
                self._on_kept(key, exc)
            return entry[1]
        self._entries[key] = (self._clock(), value)
        return value
