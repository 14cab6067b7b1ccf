"""SwrCache: TTL, stale-while-revalidate, the last good value on failure, one fetch at a time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.cache import SwrCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Source:
    """Counts fetches; answers `value`, or raises `error`; `gate` holds a fetch until set."""

    def __init__(self) -> None:
        self.calls = 0
        self.value = "v1"
        self.error: Exception | None = None
        self.gate: asyncio.Event | None = None

    async def fetch(self) -> str:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        return self.value


def cache(clock: Clock, **options: Any) -> SwrCache[str, str]:
    return SwrCache(ttl=60, clock=clock, keep_on=(LookupError,), **options)


async def test_a_miss_fetches_and_a_fresh_value_is_served_from_the_cache() -> None:
    clock, source = Clock(), Source()
    swr = cache(clock)
    assert await swr.get("k", source.fetch) == "v1"
    clock.now = 59.9
    source.value = "v2"
    assert await swr.get("k", source.fetch) == "v1"
    assert source.calls == 1


async def test_keys_are_cached_apart() -> None:
    clock, a, b = Clock(), Source(), Source()
    b.value = "b"
    swr = cache(clock)
    assert await swr.get("a", a.fetch) == "v1"
    assert await swr.get("b", b.fetch) == "b"
    assert await swr.get("a", a.fetch) == "v1"
    assert (a.calls, b.calls) == (1, 1)


async def test_a_stale_value_is_served_at_once_while_one_refresh_runs() -> None:
    clock, source = Clock(), Source()
    swr = cache(clock)
    await swr.get("k", source.fetch)
    clock.now = 60  # an age of exactly ttl is stale
    source.value, source.gate = "v2", asyncio.Event()
    assert await swr.get("k", source.fetch) == "v1"
    assert await swr.get("k", source.fetch) == "v1"  # the refresh is still held
    await asyncio.sleep(0)
    assert source.calls == 2  # one background refresh for both stale reads
    source.gate.set()
    await swr.settled()
    assert await swr.get("k", source.fetch) == "v2"
    assert source.calls == 2  # fresh again: fetched at 60


async def test_a_failed_refresh_keeps_the_last_value_and_its_age() -> None:
    clock, source = Clock(), Source()
    kept: list[tuple[str, Exception]] = []
    swr = cache(clock, on_kept=lambda key, exc: kept.append((key, exc)))
    await swr.get("k", source.fetch)
    clock.now = 120
    source.error = KeyError("down")
    assert await swr.refresh("k", source.fetch) == "v1"
    assert [(key, type(exc)) for key, exc in kept] == [("k", KeyError)]
    assert await swr.get("k", source.fetch) == "v1"  # still stale: tries again meanwhile
    await swr.settled()
    assert source.calls == 3
    source.error = None
    assert await swr.get("k", source.fetch) == "v1"
    await swr.settled()
    assert await swr.get("k", source.fetch) == "v1"
    assert source.calls == 4  # refreshed at last, fresh from then on


async def test_without_a_value_the_error_propagates() -> None:
    source = Source()
    source.error = KeyError("down")
    with pytest.raises(KeyError):
        await cache(Clock()).get("k", source.fetch)


async def test_an_error_not_in_keep_on_propagates_even_with_a_value() -> None:
    clock, source = Clock(), Source()
    swr = cache(clock)
    await swr.get("k", source.fetch)
    source.error = RuntimeError("a bug, not an outage")
    with pytest.raises(RuntimeError):
        await swr.refresh("k", source.fetch)


async def test_without_background_a_stale_value_is_refetched_before_answering() -> None:
    clock, source = Clock(), Source()
    swr = cache(clock, background=False)
    await swr.get("k", source.fetch)
    clock.now, source.value = 60, "v2"
    assert await swr.get("k", source.fetch) == "v2"
    clock.now, source.error = 120, KeyError("down")
    assert await swr.get("k", source.fetch) == "v2"  # a failure serves the stale value
    assert source.calls == 3


async def test_coalesced_refreshes_make_one_fetch() -> None:
    clock, source = Clock(), Source()
    swr = cache(clock, coalesce=True)
    source.gate = asyncio.Event()
    waiting = [asyncio.create_task(swr.get("k", source.fetch)) for _ in range(5)]
    await asyncio.sleep(0)
    source.gate.set()
    assert await asyncio.gather(*waiting) == ["v1"] * 5
    assert source.calls == 1


async def test_coalesced_waiters_fetch_again_after_a_failed_fetch() -> None:
    clock, source = Clock(), Source()
    swr = cache(clock, coalesce=True)
    source.gate, source.error = asyncio.Event(), KeyError("down")
    first = asyncio.create_task(swr.get("k", source.fetch))
    second = asyncio.create_task(swr.get("k", source.fetch))
    await asyncio.sleep(0)
    source.gate.set()
    with pytest.raises(KeyError):
        await first
    with pytest.raises(KeyError):
        await second
    assert source.calls == 2  # nothing was cached for the second to take


async def test_without_coalescing_each_refresh_fetches() -> None:
    clock, source = Clock(), Source()
    swr = cache(clock)
    source.gate = asyncio.Event()
    waiting = [asyncio.create_task(swr.get("k", source.fetch)) for _ in range(3)]
    await asyncio.sleep(0)
    source.gate.set()
    assert await asyncio.gather(*waiting) == ["v1"] * 3
    assert source.calls == 3
