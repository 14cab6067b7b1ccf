"""The store's notion of time: an injectable clock and the one ISO-8601 UTC form it stores."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """Fixed-width UTC text, so stored times also sort and compare correctly as strings."""
    if moment.tzinfo is None:
        raise ValueError("the store needs timezone-aware datetimes")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")
