"""What the workflow tells people, as outbox items, and the port Slack implements to say it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

# Outbox kinds. Each item names a send; the Slack side renders it from the send's current
# record when it is delivered, so a retried item never shows stale state.
CARD = "card"  # post the request card, or update it in place once posted
THREAD = "thread"  # a reply in the card's thread about one state change
DM = "dm"  # a direct message to the requester (failures)
NOTIFY = "notify"  # a line in the notification channel (final states)
EPHEMERAL = "ephemeral"  # a note only the requester sees (e.g. "your request is posted")


class DeliveryError(Exception):
    """Slack did not take an outbox item. `retry_after` is Slack's hint, in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Notifier(Protocol):
    """Delivers one outbox item to Slack and returns what Slack said (channel, ts, ...).

    Raises DeliveryError when Slack refused or could not be reached.
    """

    async def deliver(
        self, kind: str, record: Mapping[str, Any], payload: Mapping[str, Any]
    ) -> dict[str, Any]: ...
