"""Raw eSMS delivery callbacks, kept for inspection and de-duplicated on (SMSID, status)."""

from __future__ import annotations

from collections.abc import Mapping
from json.encoder import encode_basestring_ascii as json_string
from typing import Any

from storage.clock import Clock, iso
from storage.engine import LogDB

TABLE = "callbacks"

# A refused callback is kept for a person to look at, not replayed: a bounded excerpt of each
# field says what it was without letting a hostile caller fill the disk (or the audit log).
EXCERPT_CHARS = 200
MAX_REFUSED_FIELDS = 40  # the documented callback has 17 fields


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """`value` as text, cut to `limit` characters and marked as cut when it was longer."""
    text = str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[cut: {len(text)} chars]"


class CallbackEvents:
    def __init__(self, db: LogDB, clock: Clock) -> None:
        self._clock = clock
        self._table = db.table(TABLE)
        for name in ("dedupe_key", "sms_id"):
            self._table.create_index(name)

    def record(
        self,
        sms_id: str | None,
        send_status: str | int | None,
        raw: Mapping[str, str],
        *,
        valid: bool = True,
        reason: str = "",
    ) -> bool:
        """Store a callback; False (nothing stored) when this valid one was seen before.

        Invalid callbacks are always stored, marked valid=False, for someone to look at;
        they never suppress a later valid one. Of those, only an excerpt of each field is
        kept (EXCERPT_CHARS, and the first MAX_REFUSED_FIELDS fields).
        """
        if not valid:
            return self._record_refused(sms_id, send_status, raw, reason)
        if not sms_id or send_status is None or send_status == "":
            raise ValueError("a valid callback needs an SMSID and a status")
        # eSMS sends statuses as text or numbers: "1" and 1 are the same status.
        # json.dumps([str(sms_id), str(status)]) to the byte, minus its set-up (one per
        # callback)
        key = f"[{json_string(str(sms_id))}, {json_string(str(send_status))}]"
        if self._table.find_ids_by("dedupe_key", key):
            return False
        self._table.add(
            {
                "sms_id": sms_id,
                "send_status": send_status,
                "raw": {str(name): str(value) for name, value in raw.items()},
                "valid": True,
                "reason": reason,
                "received_at": iso(self._clock()),
                "dedupe_key": key,
            },
            # built here of plain JSON values only (query text kept as text): nothing to
            # normalise
            plain=True,
        )
        return True

    def _record_refused(
        self,
        sms_id: str | None,
        send_status: str | int | None,
        raw: Mapping[str, str],
        reason: str,
    ) -> bool:
        kept: dict[str, str] = {}
        for name, value in raw.items():
            if len(kept) >= MAX_REFUSED_FIELDS:
                kept["…"] = f"[cut: {len(raw)} fields]"
                break
            kept[excerpt(name, 40)] = excerpt(value)
        self._table.add(
            {
                "sms_id": None if sms_id is None else excerpt(sms_id),
                # a parsed status is a 32-bit int (bot/esms/zalo.py): kept as is
                "send_status": send_status
                if isinstance(send_status, int | None)
                else excerpt(send_status),
                "raw": kept,
                "valid": False,
                "reason": excerpt(reason, 2 * EXCERPT_CHARS),
                "received_at": iso(self._clock()),
                "dedupe_key": None,
            },
            plain=True,
        )
        return True

    def for_sms(self, sms_id: str) -> list[dict[str, Any]]:
        """Every callback stored for this SMSID (valid or not), in arrival order."""
        return [dict(doc) for doc in self._table.find_by("sms_id", sms_id)]

    def count(self) -> int:
        return len(self._table)
