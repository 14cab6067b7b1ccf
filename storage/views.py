"""The modals the bot opened, by Slack view id: what a submission is checked against."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from storage.clock import Clock, iso
from storage.engine import LogDB

TABLE = "views"
REQUEST = "request"  # a /zns request modal: who opened it, and where /zns was typed
REVIEW = "review"  # an approval modal: the send under review and the digest shown


class OpenedViews:
    """Records {view_id, kind, user, channel, send_id, digest, opened_at, used_by} by doc id.

    A record lives until `sweep` removes it (a TTL): a modal never submitted leaves
    nothing behind for good, so the live store stays bounded.
    """

    def __init__(self, db: LogDB, clock: Clock) -> None:
        self._clock = clock
        self._table = db.table(TABLE)
        self._table.create_index("view_id")

    def opened(
        self,
        view_id: str,
        kind: str,
        *,
        user: str,
        channel: str | None = None,
        send_id: str | None = None,
        digest: str | None = None,
    ) -> None:
        """Record a view the bot just opened (a re-open under the same id replaces it)."""
        doc = {
            "view_id": view_id,
            "kind": kind,
            "user": user,
            "channel": channel,
            "send_id": send_id,
            "digest": digest,
            "opened_at": iso(self._clock()),
            "used_by": None,
        }
        existing = self._table.first_id_by("view_id", view_id)
        if existing is None:
            self._table.add(doc)
        else:
            self._table.put(existing, doc)

    def get(self, view_id: str) -> Mapping[str, Any] | None:
        """The view's record as stored (read only), or None if never opened or swept."""
        doc_id = self._table.first_id_by("view_id", view_id)
        return None if doc_id is None else self._table.peek(doc_id)

    def use(self, view_id: str, send_id: str) -> bool:
        """Mark a request view as having made `send_id`; False if it already made one.

        A compare-and-set with no await inside: the event loop's thread owns the store.
        """
        doc_id = self._table.first_id_by("view_id", view_id)
        doc = None if doc_id is None else self._table.peek(doc_id)
        if doc_id is None or doc is None or doc.get("used_by"):
            return False
        self._table.put(doc_id, {**doc, "used_by": send_id})
        return True

    def sweep(self, opened_before: datetime) -> int:
        """Forget every view opened before `opened_before`; return how many."""
        cutoff = iso(opened_before)
        old = [int(sid) for sid, doc in self._table.raw_docs().items() if doc["opened_at"] < cutoff]
        return self._table.delete(old) if old else 0

    def count(self) -> int:
        return len(self._table.raw_docs())
