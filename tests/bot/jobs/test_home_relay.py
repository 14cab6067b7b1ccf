"""App Home items through the real relay: coalesced, 10 s apart, kept through an outage."""

# Time is the test's clock; nothing waits on the wall clock.

from collections.abc import Mapping
from typing import Any

import pytest

from bot.jobs.relay import Relay
from bot.posts import PostError
from storage.store import Store
from tests.bot.test_home import OA, OTHER, START, Clock, make, service_on


@pytest.fixture
def clock():
    return Clock(START)


@pytest.fixture
def store(tmp_path, clock):
    with Store.open(tmp_path / "data", clock=clock, fsync=False) as opened:
        yield opened


@pytest.fixture
def service(tmp_path, store):
    return service_on(tmp_path / "data", store)


class NoPosts:
    def pace_key(self, *args: Any) -> None:
        return None

    async def post(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {}


class Homes:
    """Renders from the store's counts; records what was published, fails when told to."""

    def __init__(self, book_of) -> None:
        self.service = book_of
        self.published: list[dict[str, Any]] = []
        self.failures = 0

    async def render_home(self, user: str) -> dict[str, Any]:
        data = self.service.homes.gather_now(user, approver=False)
        return {"type": "home", "blocks": [], "counts": data.counts}

    async def publish_home(self, user: str, view: Mapping[str, Any]) -> None:
        if self.failures:
            self.failures -= 1
            raise PostError("Slack unreachable for home", error="unreachable")
        self.published.append(dict(view))


@pytest.fixture
def homes(service):
    return Homes(service)


@pytest.fixture
def relay(store, service, homes, clock):
    async def no_sleep(seconds: float) -> None:
        return None

    return Relay(
        store, NoPosts(), clock=clock, sleep=no_sleep, pace=0, homes=homes, book=service.homes
    )


def waiting_count(view) -> int:
    return view["counts"][OA].get("pending_approval", 0)


async def test_changes_within_10_s_make_one_publication_with_the_latest(
    service, relay, homes, clock
):
    service.homes.opened(OTHER, approver=False)
    service.store.homes.update(OTHER, oas=[OA])
    await relay.drain()
    assert len(homes.published) == 1  # on open
    for _ in range(5):
        clock.tick(1)
        make(service)
        await relay.drain()
    assert len(homes.published) == 1  # held back: the last one was under 10 s ago
    clock.tick(5)
    await relay.drain()
    assert len(homes.published) == 2 and waiting_count(homes.published[-1]) == 5


async def test_an_unchanged_home_is_not_published_again(service, relay, homes, clock):
    service.homes.opened(OTHER, approver=False)
    await relay.drain()
    clock.tick(60)
    service.homes.opened(OTHER, approver=False)  # opened again, nothing changed
    await relay.drain()
    assert len(homes.published) == 1
    assert service.store.outbox.depth() == 0


async def test_a_slack_outage_delays_the_home_and_loses_nothing(service, relay, homes, clock):
    service.homes.opened(OTHER, approver=False)
    service.store.homes.update(OTHER, oas=[OA])
    homes.failures = 3
    await relay.drain()
    make(service)  # a change meanwhile joins the item being retried
    for _ in range(10):
        clock.tick(30)
        await relay.drain()
    assert len(homes.published) == 1 and waiting_count(homes.published[0]) == 1
    assert service.store.outbox.depth() == 0
