"""The store's one spelling of time: fixed-width UTC ISO-8601 with microseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from storage.clock import iso

HANOI = timezone(timedelta(hours=7))


def test_utc_and_other_zones_are_spelled_the_same_way() -> None:
    moment = datetime(2026, 11, 27, 5, 4, 3, tzinfo=UTC)
    assert iso(moment) == "2026-11-27T05:04:03.000000+00:00"
    assert iso(moment.astimezone(HANOI)) == iso(moment)
    assert iso(datetime(2026, 1, 1, 6, 0, 0, 1, tzinfo=HANOI)) == "2025-12-31T23:00:00.000001+00:00"


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        iso(datetime(2026, 11, 27, 5, 4, 3))
