"""What the workflow tells people, as outbox items, and the port Slack implements to say it."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from storage.sends import SendRecord


class Kind(enum.StrEnum):
    """What an outbox item posts. Each item names a send; the Slack side renders it from the
    send's current record when it is posted, so a retried item never shows stale state.
    The values are stored in the outbox: kept as they are."""

    CARD = "card"  # post the request card, or update it in place once posted
    THREAD = "thread"  # a reply in the card's thread about one state change
    DM = "dm"  # a direct message to the requester (failures)
    NOTIFY = "notify"  # a line in the notification channel (final states)
    EPHEMERAL = "ephemeral"  # a note only the requester sees (e.g. "your request is posted")
    HOME = "home"  # publish one person's App Home (names a user, not a send)


def posts_new_message(kind: Kind, record: SendRecord) -> bool:
    """True when posting this item adds a message Slack keeps and can show us again.

    Such an item is posted exactly once: the relay notes each attempt before it starts,
    and a later attempt first looks for the message an earlier one may have posted. A card
    already posted is updated in place (idempotent by nature), and an ephemeral cannot be
    looked up afterwards, so neither needs this.
    """
    if kind == Kind.CARD:
        return not record.get("card_ts")
    return kind in (Kind.THREAD, Kind.DM, Kind.NOTIFY)


class PostError(Exception):
    """Slack did not take an outbox item. `retry_after` is Slack's hint, in seconds."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, error: str = "error"
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.error = error  # Slack's short error code (e.g. ratelimited), for metrics


class Poster(Protocol):
    """Posts outbox items to Slack."""

    def pace_key(self, kind: Kind, record: SendRecord, payload: Mapping[str, Any]) -> str | None:
        """Where the item will post, for pacing: a channel id, or a per-user lane for DMs and
        ephemerals. Items with the same key go out about one per second. None: no pacing.
        Once the send has its card (`card_ts`) an item's key must not change: the relay
        remembers it from then on."""
        ...

    async def post(
        self,
        kind: Kind,
        record: SendRecord,
        payload: Mapping[str, Any],
        *,
        key: str,
        tried_since: datetime | None = None,
    ) -> dict[str, Any]:
        """Post one outbox item and return what Slack said (channel, ts, ...).

        `key` is the item's outbox key; a posted message carries it so that it can be found
        again. `tried_since` is set when an earlier attempt, begun at that time, may have
        reached Slack (a crash or a lost reply since): the notifier then looks for a message
        carrying `key` first and, when there is one, returns it with `"recovered": True`
        instead of posting again.

        Raises PostError when Slack refused or could not be reached.
        """
        ...


class HomePoster(Protocol):
    """Renders and publishes a person's App Home (the Slack side of `Kind.HOME` items)."""

    async def render_home(self, user: str) -> dict[str, Any]:
        """The person's home view as it would be published now."""
        ...

    async def publish_home(self, user: str, view: Mapping[str, Any]) -> None:
        """views.publish; raises PostError when Slack refused or could not be reached."""
        ...
