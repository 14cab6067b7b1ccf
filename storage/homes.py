"""What the App Home needs kept: who looks at it, sends counted per day, recent requests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from storage.clock import Clock, iso
from storage.engine import LogDB, normalized

HOMES = "homes"
DAY_COUNTS = "day_counts"
RECENT = "recent_requests"
RECENT_MAX = 20  # a person's last requests the home lists


class Homes:
    """One record per person who opened their App Home lately: {user, opened_at, approver,
    oas, hash, published_at, queued, pages}. Swept a day after the last open."""

    def __init__(self, db: LogDB, clock: Clock) -> None:
        self._clock = clock
        self._table = db.table(HOMES)
        self._table.create_index("user")

    def get(self, user: str) -> Mapping[str, Any] | None:
        """The person's record as stored (read only), or None."""
        doc_id = self._table.first_id_by("user", user)
        return None if doc_id is None else self._table.peek(doc_id)

    def update(self, user: str, **fields: Any) -> Mapping[str, Any]:
        """Set `fields` on the person's record, creating it when missing."""
        doc_id = self._table.first_id_by("user", user)
        old = None if doc_id is None else self._table.peek(doc_id)
        if old is not None and all(old.get(k) == v for k, v in fields.items()):
            return old  # nothing changed: no write
        doc = {**(old or {"user": user, "hash": None, "published_at": None, "queued": None})}
        doc.update(fields)
        if doc_id is None:
            self._table.add(doc)
        else:
            self._table.put(doc_id, doc)
        found = self.get(user)
        assert found is not None
        return found

    def opened(self, user: str, *, approver: bool) -> Mapping[str, Any]:
        """The person opened their home now: they see changes for the next day."""
        return self.update(user, opened_at=iso(self._clock()), approver=approver)

    def active(self, since: datetime) -> list[Mapping[str, Any]]:
        """The records of everyone who opened their home at or after `since` (read only)."""
        cutoff = iso(since)
        return [d for d in self._table.raw_docs().values() if (d.get("opened_at") or "") >= cutoff]

    def sweep(self, opened_before: datetime) -> int:
        """Forget who has not opened their home since `opened_before`; return how many.

        An item still queued for them is published all the same (it needs no record)."""
        cutoff = iso(opened_before)
        old = [
            int(sid)
            for sid, doc in self._table.raw_docs().items()
            if (doc.get("opened_at") or "") < cutoff
        ]
        return self._table.delete(old) if old else 0

    def count(self) -> int:
        return len(self._table.raw_docs())


class DayCounts:
    """Sends counted by state, per day (as the caller names it) and OA: {day, oaid, counts}.

    Kept apart from the sends so that a send archived out of the live store still counts;
    only a few days are kept (`prune`), one small document per day and OA.
    """

    def __init__(self, db: LogDB) -> None:
        self._table = db.table(DAY_COUNTS)
        self._table.create_index("key")

    def bump(self, day: str, oaid: str, changes: Mapping[str, int]) -> None:
        """Add `changes` ({state: +1 or -1}) to the day's counts for the OA."""
        key = f"{day}|{oaid}"
        doc_id = self._table.first_id_by("key", key)
        old = None if doc_id is None else self._table.peek(doc_id)
        counts = dict((old or {}).get("counts") or {})
        for state, delta in changes.items():
            counts[state] = max(0, counts.get(state, 0) + delta)
        doc = {"key": key, "day": day, "oaid": oaid, "counts": counts}
        # plain: a fresh document of str and int, written on every change of every send
        if doc_id is None:
            self._table.add(doc, plain=True)
        else:
            self._table.put(doc_id, doc, plain=True)

    def of_day(self, day: str, oaids: Iterable[str]) -> dict[str, dict[str, int]]:
        """{oaid: {state: count}} for the day, an empty count for an OA with none."""
        found: dict[str, dict[str, int]] = {}
        for oaid in oaids:
            doc_id = self._table.first_id_by("key", f"{day}|{oaid}")
            doc = None if doc_id is None else self._table.peek(doc_id)
            found[oaid] = {k: v for k, v in ((doc or {}).get("counts") or {}).items() if v}
        return found

    def prune(self, before_day: str) -> int:
        """Forget the days before `before_day` (days compare as ISO dates)."""
        old = [int(sid) for sid, d in self._table.raw_docs().items() if d["day"] < before_day]
        return self._table.delete(old) if old else 0

    def count(self) -> int:
        return len(self._table.raw_docs())


class RecentRequests:
    """A requester's last RECENT_MAX requests, newest first, as the home lists them:
    {user, items: [{id, template, phone, oaid, state, created_at, card_channel, card_ts}]}.

    The sends leave the live store when archived; this short list keeps what the home
    shows of them (the phone masked by the caller). Swept with the homes' day counts.
    """

    def __init__(self, db: LogDB, clock: Clock) -> None:
        self._clock = clock
        self._table = db.table(RECENT)
        self._table.create_index("user")

    def note(self, user: str, item: Mapping[str, Any]) -> None:
        """Put `item` (keyed by its "id") at its place in the user's list, newest first."""
        doc_id = self._table.first_id_by("user", user)
        old = None if doc_id is None else self._table.peek(doc_id)
        items = list((old or {}).get("items") or [])
        at = next((n for n, i in enumerate(items) if i["id"] == item["id"]), None)
        if at is None:
            items.insert(0, normalized(item))  # the newest, also among requests made at once
        else:
            items[at] = normalized(item)
        items.sort(key=lambda i: i["created_at"], reverse=True)  # stable: ties keep their order
        doc = {"user": user, "items": items[:RECENT_MAX], "updated_at": iso(self._clock())}
        # plain: the kept items are stored (plain) documents, never changed; the new one is
        # normalised first
        if doc_id is None:
            self._table.add(doc, plain=True)
        else:
            self._table.put(doc_id, doc, plain=True)

    def of(self, user: str) -> list[Mapping[str, Any]]:
        doc_id = self._table.first_id_by("user", user)
        doc = None if doc_id is None else self._table.peek(doc_id)
        return list((doc or {}).get("items") or [])

    def sweep(self, updated_before: datetime) -> int:
        """Forget the lists of people who requested nothing since `updated_before`."""
        cutoff = iso(updated_before)
        old = [int(s) for s, d in self._table.raw_docs().items() if d["updated_at"] < cutoff]
        return self._table.delete(old) if old else 0
