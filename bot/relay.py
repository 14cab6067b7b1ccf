"""Drains the outbox into Slack through a Notifier, in order per send, keeping what failed."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.notify import CARD, DeliveryError, Notifier
from storage.store import Store

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 300.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Relay:
    """Delivers due outbox items. An item stays in the outbox until Slack has confirmed it."""

    def __init__(
        self,
        store: Store,
        notifier: Notifier,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.clock = clock
        self.busy = False
        self._again = False

    def request_run(self) -> bool:
        """Note that new items wait; True when a running drain will pick them up itself."""
        self._again = True
        return self.busy

    async def run_until_idle(self) -> int:
        """Drain until nothing more is deliverable now, including items added meanwhile."""
        self.busy = True
        total = 0
        try:
            while True:
                self._again = False
                sent = await self.drain()
                total += sent
                if sent == 0 and not self._again:
                    return total
        finally:
            self.busy = False

    async def drain(self, limit: int = 100) -> int:
        """Deliver what is due now; return how many items Slack confirmed."""
        now = self.clock()
        delivered = 0
        blocked: set[str] = set()  # sends whose earlier item failed: keep their order
        carded: set[str] = set()  # sends whose card was already refreshed in this pass
        for item in self.store.outbox.due(now, limit):
            send_id = item.get("send_id") or ""
            if send_id in blocked:
                continue
            record = self.store.sends.find(send_id) if send_id else None
            if record is None:
                self.store.outbox.mark_done(item["id"], {"skipped": "the send no longer exists"})
                continue
            kind = item["kind"]
            if kind == CARD and send_id in carded:
                # A card renders the send's current state, so one refresh covers them all.
                self.store.outbox.mark_done(item["id"], {"coalesced": True})
                continue
            if kind != CARD and not record.get("card_ts"):
                blocked.add(send_id)  # thread replies and links need the card first
                continue
            try:
                result = await self.notifier.deliver(kind, record, item.get("payload") or {})
            except DeliveryError as exc:
                blocked.add(send_id)
                self._retry_later(item, exc, now)
                continue
            if kind == CARD:
                carded.add(send_id)
                if not record.get("card_ts") and result.get("ts"):
                    self.store.sends.update_fields(
                        send_id, card_channel=result["channel"], card_ts=result["ts"]
                    )
            self.store.outbox.mark_done(item["id"], result)
            delivered += 1
        return delivered

    def _retry_later(self, item: dict[str, Any], exc: DeliveryError, now: datetime) -> None:
        attempts = int(item.get("attempts") or 0) + 1
        delay = exc.retry_after if exc.retry_after else min(MAX_BACKOFF_S, 2.0**attempts)
        log.warning(
            "slack delivery failed item=%s kind=%s send=%s attempt=%d retry_in=%.1fs: %s",
            item["id"],
            item["kind"],
            item.get("send_id"),
            attempts,
            delay,
            exc,
        )
        self.store.outbox.mark_failed_attempt(item["id"], str(exc), now + timedelta(seconds=delay))
