"""App Home figures: an approver's render on a busy day, publishes for a burst, counters' cost."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from bot.config import Settings
from bot.home import HomeBook, view_hash
from bot.jobs.relay import Relay
from bot.ops.heap import settle_long_lived
from bot.service import SendRequest, SendService
from handlers.ui.home import home_view
from storage.sends import SendState
from storage.store import Store

OA = "4097311281936189049"
APPROVER = "U00AGENT"  # an approver who also makes requests: both lists are full
START = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)  # 09:00 in Hanoi
# A delivered send's path, each step through SendService.move as the bot takes it.
TO_DELIVERED = (SendState.APPROVED, SendState.SUBMITTING, SendState.ACCEPTED, SendState.DELIVERED)


class SimClock:
    """The store's, the book's and the relay's time: the burst runs in simulated seconds."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class NoSlack:
    """The relay's send poster: nothing here posts a card (the requests come from the CLI)."""

    def pace_key(self, kind: Any, record: Any, payload: Mapping[str, Any]) -> str | None:
        return None

    async def post(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {}


class CountingHomes:
    """The HomePoster: renders for real (eSMS cached), counts each views.publish per person."""

    def __init__(self, book: HomeBook, clock: SimClock) -> None:
        self.book = book
        self.clock = clock
        self.published: dict[str, list[datetime]] = {}
        self.renders = 0

    async def render_home(self, user: str) -> dict[str, Any]:
        self.renders += 1
        return home_view(self.book.gather_now(user, approver=user == APPROVER))

    async def publish_home(self, user: str, view: Mapping[str, Any]) -> None:
        self.published.setdefault(user, []).append(self.clock())


def request(n: int) -> SendRequest:
    return SendRequest(
        phone=f"09{n:08d}",
        oaid=OA,
        template_id="205644",
        template_name="Xác nhận đơn hàng",
        params={"customer_name": "Nguyễn Văn A", "order_code": f"DH-{n}"},
        ordered_params=("Nguyễn Văn A", f"DH-{n}"),
    )


def service_on(data_dir: Path, clock: SimClock) -> SendService:
    store = Store.open(data_dir, fsync=False, clock=clock)
    settings = Settings(_env_file=None, esms_oaid=OA, zns_data_dir=data_dir)
    # eSMS excluded: the client is never called (figures read from the cache only)
    return SendService(settings=settings, store=store, client=None, catalogue=None)  # type: ignore[arg-type]


def build_day(service: SendService, clock: SimClock, sends: int, waiting: int) -> float:
    """`sends` delivered today and `waiting` pending, through the service's own writes."""
    began = time.perf_counter()
    for n in range(sends + waiting):
        clock.advance(0.5)
        record = service.create(request(n), actor=f"slack:U{n % 50:02d}AGENT")
        if n >= sends:
            continue
        for state in TO_DELIVERED:
            service.move(
                record["id"],
                state,
                actor="bench",
                reason="bench",
                expect={record_state(service, record["id"])},
            )
    return time.perf_counter() - began


def record_state(service: SendService, send_id: str) -> SendState:
    view = service.store.sends.view(send_id)
    assert view is not None
    return SendState(view["state"])


def render_figures(service: SendService, rounds: int) -> dict[str, float]:
    book = service.homes
    times, hashes = [], []
    view: dict[str, Any] = {}
    for _ in range(rounds):
        began = time.perf_counter()
        view = home_view(book.gather_now(APPROVER, approver=True))
        times.append(time.perf_counter() - began)
        began = time.perf_counter()
        view_hash(view)
        hashes.append(time.perf_counter() - began)
    times.sort()
    return {
        "median_ms": statistics.median(times) * 1000,
        "p95_ms": times[int(len(times) * 0.95) - 1] * 1000,
        "max_ms": times[-1] * 1000,
        "hash_median_ms": statistics.median(hashes) * 1000,
        "blocks": len(view["blocks"]),
        "bytes": len(orjson.dumps(view)),
    }


async def burst(
    service: SendService, clock: SimClock, people: int, changes: int, spread: float
) -> dict[str, Any]:
    """`changes` state changes over `spread` simulated seconds, seen by `people` who opened
    their home; the relay drains every 0.25 s (its least gap between passes)."""
    book = service.homes
    homes = CountingHomes(book, clock)
    relay = Relay(
        service.store,
        NoSlack(),
        clock=clock,
        pace=0.0,
        homes=homes,
        book=book,  # type: ignore[arg-type]
    )
    users = [f"U{n:02d}AGENT" for n in range(people)]  # the approver first
    for user in users:
        book.opened(user, approver=user == APPROVER)
    await relay.drain(limit=10_000)
    opened_publishes = sum(len(v) for v in homes.published.values())
    homes.published.clear()
    step = spread / changes
    pending = [r["id"] for r in service.store.sends.views_in_state(SendState.PENDING_APPROVAL)]
    next_pass = clock()
    began = time.perf_counter()
    for n in range(changes):
        clock.advance(step)
        if n % 2 == 0 or not pending:  # a new request, or a decision on a waiting one
            service.create(request(10**6 + n), actor=f"slack:{users[n % people]}")
        else:
            service.approve(pending.pop(), actor=f"slack:{APPROVER}", check_self=False)
        if clock() >= next_pass:
            await relay.drain(limit=10_000)
            next_pass = clock() + timedelta(seconds=0.25)
    for _ in range(60):  # then 15 s more of passes: whatever was deferred goes out
        clock.advance(0.25)
        await relay.drain(limit=10_000)
    wall = time.perf_counter() - began
    worst = 0
    for times in homes.published.values():
        for i, t in enumerate(times):
            worst = max(worst, sum(1 for u in times[i:] if u - t < timedelta(seconds=10)))
    counts = Counter({u: len(t) for u, t in homes.published.items()})
    return {
        "publishes_on_open": opened_publishes,
        "publishes": sum(counts.values()),
        "renders": homes.renders,
        "people_published": len(counts),
        "max_per_person": max(counts.values(), default=0),
        "max_per_person_per_10s": worst,
        "wall_s": wall,
    }


def counter_cost(service: SendService, clock: SimClock, oas: int, days: int) -> dict[str, Any]:
    """The counters' size in the live store for `days` days and `oas` OAs (the most kept)."""
    store = service.store

    def size(table: str) -> int:
        return len(orjson.dumps(dict(store.db.table(table).raw_docs())))

    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    with store.db.transaction():
        for day in range(days):
            for oa in range(oas):
                store.day_counts.bump(
                    f"2026-11-{day + 1:02d}",
                    f"{oa:019d}",
                    {str(s): 1000 + day for s in SendState},
                )
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return {
        "day_counts_docs": store.day_counts.count(),
        "day_counts_json_bytes": size("day_counts"),
        "added_heap_bytes": grown,
        "homes_json_bytes": size("homes"),
        "recent_requests_json_bytes": size("recent_requests"),
        "live_db_bytes": store.path.stat().st_size,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sends", type=int, default=10_000, help="delivered today")
    parser.add_argument("--waiting", type=int, default=500, help="waiting for approval")
    parser.add_argument("--rounds", type=int, default=200, help="renders timed")
    parser.add_argument("--people", type=int, default=50)
    parser.add_argument("--changes", type=int, default=1_000)
    parser.add_argument("--spread", type=float, default=60.0, help="simulated seconds")
    args = parser.parse_args()
    clock = SimClock(START)
    with tempfile.TemporaryDirectory() as tmp:
        service = service_on(Path(tmp) / "data", clock)
        try:
            built = build_day(service, clock, args.sends, args.waiting)
            print(
                f"built {args.sends:,} delivered + {args.waiting} waiting sends through "
                f"SendService in {built:.1f} s"
            )
            settle_long_lived()  # as `serve` does after loading: no full GC pass over the store
            counts = service.store.day_counts.of_day(service.homes.today(), [OA])
            print(f"today's counts ({service.homes.today()}, {OA}): {counts[OA]}")
            render = render_figures(service, args.rounds)
            print(
                f"render of the approver's home (gather + Block Kit, eSMS cached), "
                f"{args.rounds} rounds: median {render['median_ms']:.2f} ms, "
                f"p95 {render['p95_ms']:.2f} ms, max {render['max_ms']:.2f} ms "
                f"(target <= 50 ms); hash {render['hash_median_ms']:.2f} ms; "
                f"{render['blocks']} blocks, {render['bytes']:,} bytes"
            )
            published = await burst(service, clock, args.people, args.changes, args.spread)
            print(
                f"burst: {args.changes:,} changes over {args.spread:.0f} simulated s seen by "
                f"{args.people} people: {published['publishes']} views.publish "
                f"({published['renders']} renders; {published['publishes_on_open']} on open "
                f"before), at most {published['max_per_person']} per person and "
                f"{published['max_per_person_per_10s']} per person in any 10 s "
                f"(target <= 1); {published['wall_s']:.1f} s wall"
            )
            cost = counter_cost(service, clock, oas=5, days=7)
            print(
                f"counters: {cost['day_counts_docs']} documents (7 days x 5 OAs + today) "
                f"= {cost['day_counts_json_bytes']:,} bytes of JSON, "
                f"{cost['added_heap_bytes']:,} bytes of heap for 35 of them; "
                f"homes {cost['homes_json_bytes']:,} B, recent requests "
                f"{cost['recent_requests_json_bytes']:,} B (50 people); "
                f"live.db {cost['live_db_bytes']:,} B in all"
            )
        finally:
            service.store.close()


if __name__ == "__main__":
    asyncio.run(main())
