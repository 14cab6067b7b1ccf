"""The append-only audit log: every event hash-chained to the one before it."""

# An event's personal fields (phone, parameters, OrderId, note, a callback's phone number)
# are kept beside it, outside the hashed body: `personal = {"salt": ..., "fields": {...}}`.
# The body carries `pd`, a digest of the fields salted per send, instead. Deleting the salt
# and the fields later (erasure) leaves every hash, and so the whole chain, checkable.

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from storage.clock import Clock, iso
from storage.engine import LogDB, normalized

EVENTS_TABLE = "audit"
META_TABLE = "meta"
HEAD_DOC_ID = 1  # the meta document holding the chain's head (seq + hash)
ARCHIVED_DOC_ID = 3  # the last event copied to a segment and removed from the live log
GENESIS = "0" * 64  # `prev` of the first event


def canonical(obj: Mapping[str, Any]) -> bytes:
    """Sorted-key compact UTF-8 JSON: the bytes an event's hash is taken over.

    Byte for byte what json.dumps(sort_keys=True, separators=(",", ":"),
    ensure_ascii=False) gives for every value an event holds (tests/storage check it;
    only floats could be spelled differently, and events hold none), at ~15x the speed.
    """
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


UNHASHED = frozenset({"hash", "personal"})


def event_hash(event: Mapping[str, Any]) -> str:
    """SHA-256 of the event's canonical JSON without its own `hash` and personal fields."""
    return _digest(canonical({k: v for k, v in event.items() if k not in UNHASHED}))


def new_salt() -> str:
    """A send's salt for the digest of its personal fields: one per send, random."""
    return secrets.token_hex(16)


def personal_digest(salt: str, fields: Mapping[str, Any]) -> str:
    """`pd`: what the hashed body holds of the personal fields kept beside it."""
    return _digest(bytes.fromhex(salt) + canonical(fields))


def _digest(body: bytes) -> str:
    """The hash of an event's canonical bytes: what `append` writes and `verify` checks."""
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class AuditVerification:
    ok: bool
    count: int
    problems: list[str] = field(default_factory=list)


class AuditLog:
    """Events {seq, ts, actor, action, send_id, from_state, to_state, reason, data, prev, hash}.

    `prev` is the previous event's `hash` (GENESIS for seq 1), so editing, deleting or
    reordering any event breaks the chain; the head (last seq and hash) is also kept in
    the meta table, so cutting events off the end is detected too.
    """

    def __init__(self, db: LogDB, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._events = db.table(EVENTS_TABLE)
        self._meta = db.table(META_TABLE)
        self._events.create_index("send_id")

    def append(
        self,
        actor: str,
        action: str,
        *,
        send_id: str | None = None,
        from_state: str | None = None,
        to_state: str | None = None,
        reason: str = "",
        data: Mapping[str, Any] | None = None,
        personal: Mapping[str, Any] | None = None,
        salt: str | None = None,
    ) -> Mapping[str, Any]:
        """Append one event; returns it as stored (read only, like `SendRecords.view`).

        `personal` fields are kept beside the event, hashed only through their digest
        salted with `salt` (the send's own; a new one when not given).
        """
        seq, prev = self._head()
        event: dict[str, Any] = {
            "seq": seq + 1,
            "ts": iso(self._clock()),
            "actor": actor,
            "action": action,
            "send_id": send_id,
            "from_state": from_state,
            "to_state": to_state,
            "reason": reason,
            "data": data,
            "prev": prev,
        }
        kept: dict[str, Any] | None = None
        if personal:
            salt = salt or new_salt()
            fields = normalized(dict(personal))
            event["pd"] = personal_digest(salt, fields)
            kept = {"salt": salt, "fields": fields}
        # Hash exactly what a reopen reads back (enums become strings, tuples lists...): the
        # canonical bytes decode to the stored event, which encodes back to the same bytes.
        try:
            body = canonical(event)
        except TypeError:
            # non-str keys in `data`: stored with str keys, so hash it as stored
            body = canonical(normalized(event))
        event = orjson.loads(body)
        event["hash"] = _digest(body)
        if kept is not None:
            event["personal"] = kept
        with self._db.transaction():
            # both fresh from JSON decoding and handed over: stored as they are
            self._events.put(event["seq"], event, plain=True)
            self._meta.put(
                HEAD_DOC_ID,
                {"key": "audit_head", "seq": event["seq"], "hash": event["hash"]},
                plain=True,
            )
        return event

    def iter_events(self) -> Iterator[dict[str, Any]]:
        """Every event in seq order (copies)."""
        live = self._events.raw_docs()
        for doc_id in sorted(int(sid) for sid in live):
            doc = self._events.get(doc_id=doc_id)
            if doc is not None:
                yield dict(doc)

    def for_send(self, send_id: str) -> list[dict[str, Any]]:
        return [dict(doc) for doc in self._events.find_by("send_id", send_id)]

    def count(self) -> int:
        return len(self._events)

    def verify(self) -> AuditVerification:
        """Check the events still in the live store, from the first one it holds.

        Events archived to segments are checked by `storage.history`, which walks the
        segments and then these; here the chain starts where the archive left it.
        """
        live = self._events.raw_docs()
        start = self._meta.peek(ARCHIVED_DOC_ID)
        checker = ChainChecker(
            start=(start or {}).get("seq", 0) + 1, prev=(start or {}).get("hash", GENESIS)
        )
        for doc_id in sorted(int(sid) for sid in live):
            checker.feed(live[str(doc_id)])
        checker.finish(self._meta.peek(HEAD_DOC_ID))
        return AuditVerification(
            ok=not checker.problems, count=checker.count, problems=checker.problems
        )

    def archived_upto(self, seq: int, last_hash: str) -> None:
        """Record that events up to `seq` live in segments now (join the caller's
        transaction: the events leave the live log in the same commit)."""
        self._meta.put(
            ARCHIVED_DOC_ID, {"key": "audit_archived", "seq": seq, "hash": last_hash}, plain=True
        )

    def head(self) -> tuple[int, str]:
        """The last event's seq and hash (0 and GENESIS before the first)."""
        return self._head()

    def live_events(self) -> Mapping[str, Mapping[str, Any]]:
        """The events not yet archived, by str seq: read only."""
        return self._events.raw_docs()

    def _head(self) -> tuple[int, str]:
        head = self._meta.peek(HEAD_DOC_ID)
        if head is not None:
            return head["seq"], head["hash"]
        live = self._events.raw_docs()
        if not live:
            return 0, GENESIS
        # No head record but events: damaged; carry on from the last event (verify reports it).
        last = live[str(max(int(sid) for sid in live))]
        return last["seq"], last["hash"]


def event_problem(event: Mapping[str, Any]) -> str | None:
    """What is wrong with one event on its own (its hash, its personal fields), or None."""
    where = f"event seq {event.get('seq')}{of_send(event)}"
    if event_hash(event) != event.get("hash"):
        return f"{where} was edited: its hash does not match it"
    kept = event.get("personal")
    if not isinstance(kept, Mapping) or "salt" not in kept:
        return None  # none, or erased: the hash covers the digest either way
    try:
        good = personal_digest(kept["salt"], kept.get("fields") or {}) == event.get("pd")
    except (ValueError, TypeError):
        good = False
    return None if good else f"{where}: its personal fields were edited"


def of_send(event: Mapping[str, Any]) -> str:
    """ " (send X)" for an event about a send: what a problem report names."""
    send_id = event.get("send_id")
    return f" (send {send_id})" if send_id else ""


class ChainChecker:
    """Checks events fed in seq order, in constant memory: links, hashes, personal digests.

    `start`/`prev`: where the chain picks up (1 and GENESIS for the whole log). Events
    beyond `stop` (appended after the head the caller read) are ignored, not reported.
    """

    def __init__(self, *, start: int = 1, prev: str = GENESIS, stop: int | None = None) -> None:
        self.expected = start
        self.prev: str | None = prev
        self.stop = stop
        self.count = 0
        self.problems: list[str] = []

    @property
    def last_seq(self) -> int:
        return self.expected - 1

    def feed(self, event: Mapping[str, Any]) -> bool:
        """Check one event; False when it is beyond `stop` (and so was not checked)."""
        seq = event.get("seq")
        if not isinstance(seq, int):
            self.problems.append(f"an event after seq {self.last_seq} has no valid seq")
            return True
        if self.stop is not None and seq > self.stop:
            return False
        if seq < self.expected:
            self.problems.append(f"event seq {seq} appears twice (or out of order)")
            return True
        self.count += 1
        gap = seq != self.expected
        if gap:
            missing = (
                str(self.expected) if seq == self.expected + 1 else f"{self.expected}-{seq - 1}"
            )
            self.problems.append(f"event seq {missing} is missing (deleted before seq {seq})")
        problem = event_problem(event)
        if problem is not None:
            self.problems.append(problem)
        elif not gap and event.get("prev") != self.prev:
            self.problems.append(
                f"event seq {seq} does not link to seq {seq - 1} "
                f"(one of them was altered or replaced)"
            )
        self.prev, self.expected = event.get("hash"), seq + 1
        return True

    def feed_all(self, events: Iterable[Mapping[str, Any]]) -> None:
        for event in events:
            self.feed(event)

    def finish(self, head: Mapping[str, Any] | None) -> None:
        """Compare where the chain ended with the head record read before the walk."""
        last_seq, last_hash = self.last_seq, self.prev
        if head is None:
            if self.count:
                self.problems.append(f"the audit head record is missing ({self.count} events)")
            return
        if head["seq"] > last_seq:
            self.problems.append(
                f"event seq {last_seq + 1} is missing: events after seq {last_seq} were "
                f"removed (the head records seq {head['seq']})"
            )
        elif head["seq"] < last_seq:
            self.problems.append(
                f"event seq {head['seq'] + 1} onward were added behind the log's back"
            )
        elif head["hash"] != last_hash:
            self.problems.append(
                f"event seq {last_seq} does not match the head hash (it was replaced)"
            )
