"""What a send is: its canonical content, the digest the chain binds, and its checker."""

# The canonical content of a send, version 1, is this JSON object, encoded as the audit
# log encodes events (storage.audit.canonical: sorted keys, no spaces, UTF-8):
#
#     {"campaign": str|null, "journey": bool, "named": {name: value}, "oaid": str|null,
#      "order_id": str|null, "params": [value, ...], "phone": "0xxxxxxxxx",
#      "sandbox": bool, "template_id": str, "v": 1}
#
# `params` are the values in eSMS's order (what is sent), `named` the same by template
# parameter name (what people saw). Its digest is SHA-256 over the send's 16-byte salt
# (`content_salt`) followed by those bytes, in hex: salted, so that the digest of a phone
# and a template cannot be found by trying every number. The "created" event records it,
# and the approval's transition records the digest of what was approved.

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from storage.audit import canonical

CONTENT_VERSION = 1
ERASED_ACTION = "erased"  # the audit event recording a customer's erasure


def canonical_content(send: Mapping[str, Any]) -> dict[str, Any]:
    """The content of a send (a stored record, or a "created" event's data and fields)."""
    return {
        "v": CONTENT_VERSION,
        "phone": send.get("phone"),
        "oaid": send.get("oaid"),
        "template_id": send.get("template_id"),
        "params": send.get("ordered_params") or [],
        "named": send.get("params") or {},
        "journey": bool(send.get("is_journey")),
        "order_id": send.get("order_id") or None,
        "campaign": send.get("campaign") or None,
        "sandbox": bool(send.get("sandbox")),
    }


def content_digest(salt: str, send: Mapping[str, Any]) -> str:
    """The digest the chain binds: SHA-256(salt bytes || canonical content), hex."""
    return hashlib.sha256(bytes.fromhex(salt) + canonical(canonical_content(send))).hexdigest()


def _personal(event: Mapping[str, Any]) -> tuple[str | None, Mapping[str, Any] | None]:
    kept = event.get("personal")
    if not isinstance(kept, Mapping) or not kept.get("salt"):
        return None, None
    fields = kept.get("fields")
    return str(kept["salt"]), fields if isinstance(fields, Mapping) else {}


@dataclass
class _Chained:
    digest: str
    seq: int
    content: bytes | None  # the created event's canonical content, to name what changed


@dataclass
class ContentChecker:
    """Checks each send's record against the content its "created" event chained.

    Fed every event in seq order, then `finish` with the live sends: a send is pending from
    its "created" event to its "archived" one (about two days), so memory stays bounded by
    the live store, not the history. Counts `checked`, `unbound` (created before content
    binding) and `erased` sends; `problems` name the send.
    """

    checked: int = 0
    unbound: int = 0
    erased: int = 0
    problems: list[str] = field(default_factory=list)
    _pending: dict[str, _Chained] = field(default_factory=dict)
    _bare: dict[str, int] = field(default_factory=dict)  # personal data gone: send -> seq
    _erased: set[str] = field(default_factory=set)  # sends an erasure event names

    def feed(self, event: Mapping[str, Any]) -> None:
        action, send_id = event.get("action"), event.get("send_id")
        data = event.get("data") if isinstance(event.get("data"), Mapping) else {}
        assert isinstance(data, Mapping)
        if action == ERASED_ACTION:
            for erased in map(str, data.get("send_ids") or ()):
                if erased not in self._erased and self._bare.pop(erased, None) is not None:
                    self.erased += 1
                self._erased.add(erased)
            return
        if not send_id:
            return
        send_id, seq = str(send_id), int(event.get("seq") or 0)
        if action == "created":
            self._created(send_id, seq, event, data)
        elif action == "transition" and data.get("content") and send_id in self._pending:
            chained = self._pending[send_id]
            if data["content"] != chained.digest:
                self.problems.append(
                    f"send {send_id}: the content approved at seq {seq} is not the content "
                    f"chained when it was created (seq {chained.seq})"
                )
        elif action == "archived":
            chained_or_none = self._pending.pop(send_id, None)
            if chained_or_none is None:
                return  # unbound (counted at its creation) or created before the walk
            salt, fields = _personal(event)
            send = data.get("send") if isinstance(data.get("send"), Mapping) else {}
            assert isinstance(send, Mapping)
            self._check(send_id, chained_or_none, salt, {**send, **(fields or {})}, seq)

    def _created(self, send_id: str, seq: int, event: Mapping[str, Any], data: Any) -> None:
        digest = data.get("content")
        if not digest:
            self.unbound += 1
            return
        _, fields = _personal(event)
        # compact bytes, not a dict: about 10k sends are pending at any point of the walk
        content = canonical(canonical_content({**data, **fields})) if fields is not None else None
        self._pending[send_id] = _Chained(str(digest), seq, content)

    def _check(
        self,
        send_id: str,
        chained: _Chained,
        salt: str | None,
        record: Mapping[str, Any],
        seq: int,
    ) -> None:
        if salt is None:
            if send_id in self._erased:
                self.erased += 1
            else:
                self._bare[send_id] = seq  # erased, if a later erasure event says so
            return
        self.checked += 1
        try:
            good = content_digest(salt, record) == chained.digest
        except (ValueError, TypeError):
            good = False
        if good:
            return
        what = ""
        if chained.content is not None:
            was, now = orjson.loads(chained.content), canonical_content(record)
            fields = [k for k, v in was.items() if now.get(k) != v]
            what = f" ({', '.join(fields)} changed)" if fields else ""
        where = f"archived at seq {seq}" if seq else "in the live store"
        self.problems.append(
            f"send {send_id}: its content{what} is not what was chained when it was created "
            f"(seq {chained.seq}); the record {where} was edited"
        )

    def finish(self, live_sends: Iterable[Mapping[str, Any]]) -> None:
        """Check the sends still live, then report what no event explains."""
        for doc in live_sends:
            send_id = str(doc.get("id"))
            chained = self._pending.pop(send_id, None)
            if chained is None:
                continue  # created before content binding (counted), or after the head read
            salt = doc.get("content_salt")
            if salt is None and not doc.get("erased_at"):
                self.problems.append(f"send {send_id}: its content salt was removed")
                continue
            self._check(send_id, chained, salt, doc, 0)
        for send_id, chained in self._pending.items():
            self.problems.append(
                f"send {send_id} (created at seq {chained.seq}) has no record: it was deleted "
                "from the live store without being archived"
            )
        for send_id, seq in self._bare.items():
            where = f"archived at seq {seq}" if seq else "in the live store"
            self.problems.append(
                f"send {send_id}: its personal data ({where}) is gone, and no erasure in the "
                "chain records it"
            )
        self._pending.clear()
        self._bare.clear()
