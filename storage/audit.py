"""The append-only audit log: every event hash-chained to the one before it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from storage.clock import Clock, iso
from storage.engine import LogDB, normalized

EVENTS_TABLE = "audit"
META_TABLE = "meta"
HEAD_DOC_ID = 1  # the meta document holding the chain's head (seq + hash)
GENESIS = "0" * 64  # `prev` of the first event


def canonical(obj: Mapping[str, Any]) -> bytes:
    """Sorted-key compact UTF-8 JSON: the bytes an event's hash is taken over.

    Byte for byte what json.dumps(sort_keys=True, separators=(",", ":"),
    ensure_ascii=False) gives for every value an event holds (tests/storage check it;
    only floats could be spelled differently, and events hold none), at ~15x the speed.
    """
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def event_hash(event: Mapping[str, Any]) -> str:
    """SHA-256 of the event's canonical JSON without its own `hash`."""
    return _digest(canonical({k: v for k, v in event.items() if k != "hash"}))


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
    ) -> Mapping[str, Any]:
        """Append one event; returns it as stored (read only, like `SendRecords.view`)."""
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
        # Hash exactly what a reopen reads back (enums become strings, tuples lists...): the
        # canonical bytes decode to the stored event, which encodes back to the same bytes.
        try:
            body = canonical(event)
        except TypeError:
            # non-str keys in `data`: stored with str keys, so hash it as stored
            body = canonical(normalized(event))
        event = orjson.loads(body)
        event["hash"] = _digest(body)
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
        live = self._events.raw_docs()
        problems: list[str] = []
        expected, count = 1, 0
        prev: str | None = GENESIS
        for doc_id in sorted(int(sid) for sid in live):
            event = live[str(doc_id)]
            count += 1
            gap = doc_id != expected
            if gap:
                missing = str(expected) if doc_id == expected + 1 else f"{expected}-{doc_id - 1}"
                problems.append(f"event seq {missing} is missing (deleted before seq {doc_id})")
            if event.get("seq") != doc_id:
                problems.append(f"event seq {doc_id} was edited: it claims seq {event.get('seq')}")
            elif event_hash(event) != event.get("hash"):
                problems.append(f"event seq {doc_id} was edited: its hash does not match it")
            elif not gap and event.get("prev") != prev:
                problems.append(
                    f"event seq {doc_id} does not link to seq {doc_id - 1} "
                    f"(one of them was altered or replaced)"
                )
            prev, expected = event.get("hash"), doc_id + 1
        problems.extend(self._check_head(count, expected - 1, prev))
        return AuditVerification(ok=not problems, count=count, problems=problems)

    def _check_head(self, count: int, last_seq: int, last_hash: str | None) -> list[str]:
        head = self._meta.get(doc_id=HEAD_DOC_ID)
        if head is None:
            return [f"the audit head record is missing ({count} events)"] if count else []
        if head["seq"] > last_seq:
            first = last_seq + 1
            return [
                f"event seq {first} is missing: events after seq {last_seq} were removed "
                f"(the head records seq {head['seq']})"
            ]
        if head["seq"] < last_seq:
            return [f"event seq {head['seq'] + 1} onward were added behind the log's back"]
        if head["hash"] != last_hash:
            return [f"event seq {last_seq} does not match the head hash (it was replaced)"]
        return []

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
