"""The outbox: Slack posts still to make, each idempotent on a key and retried until done."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tinydb.table import Document

from storage.clock import Clock, iso
from storage.engine import LogDB
from storage.errors import NotFoundError

TABLE = "outbox"
PENDING = "pending"
DONE = "done"


class Outbox:
    """Items {id, key, kind, payload, send_id, channel, status, attempts, ...} by doc id."""

    def __init__(self, db: LogDB, clock: Clock) -> None:
        self._clock = clock
        self._table = db.table(TABLE)
        for name in ("key", "status", "send_id", "attempts", "deferred"):
            self._table.create_index(name)

    def add(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        key: str,
        send_id: str | None = None,
        channel: str | None = None,
        due_at: datetime | None = None,
    ) -> int | None:
        """Queue a post; its id, or None (nothing queued) when an item with this key exists.

        The item is due at once, or at `due_at` if later (a deferred item, see `defer`).
        """
        if self._table.find_ids_by("key", key):
            return None
        now = iso(self._clock())
        return self._table.add(
            {
                "key": key,
                "kind": kind,
                "payload": payload,
                "send_id": send_id,
                "channel": channel,
                "status": PENDING,
                "attempts": 0,
                "created_at": now,
                "next_attempt_at": now,
                "last_error": None,
                "result": None,
                "done_at": None,
                **self._deferral(now, due_at),
            }
        )

    def _deferral(self, now: str, due_at: datetime | None) -> dict[str, Any]:
        if due_at is None or iso(due_at) <= now:
            return {"deferred": False}
        return {"deferred": True, "next_attempt_at": iso(due_at)}

    def defer(self, item_id: int, due_at: datetime) -> None:
        """Make a pending item due at `due_at` (sooner or later), not counting an attempt."""
        item = self._live(item_id)
        if item["status"] == DONE:
            return
        when = self._deferral(iso(self._clock()), due_at)
        self._table.put(item_id, {**item, "next_attempt_at": iso(due_at), **when})

    def due(self, now: datetime, limit: int = 100) -> list[dict[str, Any]]:
        """Pending items whose next attempt is due, oldest (first queued) first (copies)."""
        return [_item(doc) for doc in self._table.get_many(self.due_ids(now)[:limit])]

    def due_ids(self, now: datetime) -> list[int]:
        """The ids of every pending item whose next attempt is due, oldest first: each one not
        tried yet (due from the moment it was queued) and each retry whose time has come."""
        cutoff = iso(now)
        pending = self._table.sids_by("status", PENDING)
        if not pending:
            return []
        # The indexes answer for the items not tried yet, most of any backlog, without
        # reading them: the relay asks several times a second, and reading every pending
        # item of a long backlog scattered over a large heap took milliseconds each time.
        untried = self._table.sids_by("attempts", 0)
        due = set(pending & untried) if untried else set()
        # An item deferred on purpose (an App Home refresh, at most one per person per
        # 10 s) is untried and yet not due: its time decides, as a retry's does.
        deferred = self._table.sids_by("deferred", True)
        if deferred:
            due -= deferred
        docs = self._table.raw_docs()
        due.update(sid for sid in pending - due if docs[sid]["next_attempt_at"] <= cutoff)
        return sorted(map(int, due))

    def view(self, item_id: int) -> Mapping[str, Any] | None:
        """The item as stored, uncopied and read only (see `SendRecords.view`)."""
        return self._table.peek(item_id)

    def first_pending(self, send_id: str | None) -> int | None:
        """The id of the send's oldest item not yet done (due or not), or None."""
        docs = self._table.raw_docs()
        pending = [
            int(sid)
            for sid in self._table.sids_by("send_id", send_id)
            if docs[sid]["status"] == PENDING
        ]
        return min(pending) if pending else None

    def get(self, item_id: int) -> dict[str, Any]:
        doc = self._table.get(doc_id=item_id)
        if doc is None:
            raise NotFoundError(f"no outbox item {item_id}")
        return _item(doc)

    def mark_done(self, item_id: int, result: dict[str, Any]) -> None:
        item = self._live(item_id)
        if item["status"] == DONE:
            return
        self._table.put(
            item_id, {**item, "status": DONE, "result": result, "done_at": iso(self._clock())}
        )

    def mark_failed_attempt(self, item_id: int, error: str, retry_at: datetime) -> None:
        item = self._live(item_id)
        if item["status"] == DONE:
            return
        self._table.put(
            item_id,
            {
                **item,
                "attempts": item["attempts"] + 1,
                "last_error": error,
                "last_attempt_at": iso(self._clock()),
                "next_attempt_at": iso(retry_at),
            },
        )

    def _live(self, item_id: int) -> Mapping[str, Any]:
        doc = self.view(item_id)
        if doc is None:
            raise NotFoundError(f"no outbox item {item_id}")
        return doc

    def depth(self) -> int:
        """How many items are not done yet."""
        return len(self._table.find_ids_by("status", PENDING))

    def oldest_pending_age(self, now: datetime) -> float | None:
        """Seconds since the oldest not-done item was queued; None when there is none."""
        docs = self._table.raw_docs()
        created = [
            docs[str(doc_id)]["created_at"] for doc_id in self._table.find_ids_by("status", PENDING)
        ]
        if not created:
            return None
        return (now - datetime.fromisoformat(min(created))).total_seconds()


def _item(doc: Document) -> dict[str, Any]:
    return {**doc, "id": doc.doc_id}
