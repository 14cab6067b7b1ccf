"""The loop-lag probe sees a pause of the event loop whole, and /metrics shows it."""

from __future__ import annotations

import asyncio
import time

from bot.ops.loop_lag import watch_loop_lag
from bot.ops.metrics import Metrics


async def test_a_blocked_loop_is_seen_as_late_by_at_least_the_block() -> None:
    seen: list[float] = []
    probe = asyncio.create_task(watch_loop_lag(seen.append, every=0.001))
    while not seen:  # the probe is running
        await asyncio.sleep(0.001)
    time.sleep(0.08)  # the point: hold the loop, as a bug would
    count = len(seen)
    while len(seen) == count:
        await asyncio.sleep(0.001)
    probe.cancel()
    # time.sleep returns no earlier than asked, so the wake-up after it is that late at least
    assert max(seen) >= 0.08 - 0.001


def test_metrics_keep_every_observation_and_the_longest() -> None:
    metrics = Metrics()
    for lag in (0.002, 0.3, 0.01):
        metrics.loop_lag(lag)
    text = metrics.registry.get_sample_value
    assert text("zns_event_loop_lag_seconds_count") == 3
    assert text("zns_event_loop_lag_max_seconds") == 0.3
    assert text("zns_event_loop_lag_seconds_bucket", {"le": "0.25"}) == 2
