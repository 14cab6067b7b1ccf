"""Send records and their state machine: compare-and-set transitions, each one audited."""

from __future__ import annotations

import asyncio
import enum
import heapq
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, TypedDict, cast

from typing_extensions import ReadOnly

from storage.audit import AuditLog, new_salt
from storage.clock import Clock, iso
from storage.content import content_digest
from storage.engine import LogDB, json_copy, normalized
from storage.errors import NotFoundError, StoreError

TABLE = "sends"
MAX_ID_LENGTH = 50  # the id is eSMS's RequestId
# Only create() and transition() may set these.
RESERVED_FIELDS = frozenset(
    {
        "id",
        "state",
        "version",
        "created_at",
        "updated_at",
        "final_at",
        "content_salt",
        "erased_at",
    }
)


class SendState(enum.StrEnum):
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    SUBMITTING = "submitting"
    ACCEPTED = "accepted"
    UNKNOWN = "unknown"
    DELIVERED = "delivered"
    FAILED = "failed"
    SANDBOXED = "sandboxed"  # checked and accepted by eSMS in sandbox mode: never delivered


FINAL_STATES = frozenset(
    {
        SendState.REJECTED,
        SendState.EXPIRED,
        SendState.CANCELLED,
        SendState.DELIVERED,
        SendState.FAILED,
        SendState.SANDBOXED,
    }
)
# A send's personal data: kept beside its audit events, outside their hashed bodies.
PERSONAL_FIELDS = ("phone", "params", "ordered_params", "order_id", "note")
# The rest of its content (storage.content), recorded in the body of its "created" event.
CREATED_DATA = ("template_id", "oaid", "is_journey", "campaign", "sandbox")

_S = SendState
TRANSITIONS: dict[SendState, frozenset[SendState]] = {
    _S.PENDING_APPROVAL: frozenset({_S.APPROVED, _S.REJECTED, _S.EXPIRED, _S.CANCELLED}),
    _S.APPROVED: frozenset({_S.SUBMITTING}),
    _S.SUBMITTING: frozenset({_S.ACCEPTED, _S.FAILED, _S.UNKNOWN, _S.SANDBOXED}),
    _S.UNKNOWN: frozenset({_S.ACCEPTED, _S.FAILED, _S.DELIVERED, _S.SANDBOXED}),
    # accepted -> unknown: polling gave up without an answer. accepted -> sandboxed: a
    # sandbox send a release before 0.2 left accepted for ever.
    _S.ACCEPTED: frozenset({_S.DELIVERED, _S.FAILED, _S.UNKNOWN, _S.SANDBOXED}),
    **{state: frozenset() for state in FINAL_STATES},
}


class SendRecord(TypedDict, total=False):
    """A send as the store keeps it: the sends table's one schema.

    Read only: `view` and the writes hand out the stored document itself, uncopied. Every
    key but the first five may be missing: a send gains keys as it moves on, and a store
    written by an older version lacks the newer ones.
    """

    # Set by create() and transition() only (RESERVED_FIELDS).
    id: ReadOnly[str]
    state: ReadOnly[str]  # a SendState value
    version: ReadOnly[int]
    created_at: ReadOnly[str]  # ISO times, as storage.clock.iso writes them
    updated_at: ReadOnly[str]
    final_at: ReadOnly[str]  # when it reached a final state: it leaves the live store later
    content_salt: ReadOnly[str]  # salts its content digest and personal fields' digest
    erased_at: ReadOnly[str]  # its personal data and salt were erased (privacy erase)
    # The request, as SendService.create stores it.
    phone: ReadOnly[str]  # 0xxxxxxxxx
    oaid: ReadOnly[str]
    template_id: ReadOnly[str]
    template_name: ReadOnly[str]
    params: ReadOnly[dict[str, str]]  # by parameter name
    ordered_params: ReadOnly[list[str]]  # eSMS's positional Params
    is_journey: ReadOnly[bool]
    order_id: ReadOnly[str | None]
    campaign: ReadOnly[str | None]
    note: ReadOnly[str | None]
    sandbox: ReadOnly[bool]
    extra: ReadOnly[dict[str, Any]]
    requester: ReadOnly[str]  # an actor: "slack:U…" or "cli:…"
    origin: ReadOnly[str]  # "slack" or "cli"
    estimate: ReadOnly[dict[str, Any] | None]
    estimate_pending: ReadOnly[bool]  # stored before eSMS priced it; the card says so
    callback_token: ReadOnly[str]  # the secret in its eSMS CallbackUrl
    # The decision.
    approver: ReadOnly[str]
    decided_at: ReadOnly[str]
    reject_reason: ReadOnly[str]
    # eSMS's answers.
    sms_id: ReadOnly[str]
    accepted_at: ReadOnly[str]
    error: ReadOnly[str]  # in plain words
    error_code: ReadOnly[int | None]
    error_category: ReadOnly[str]
    suggestion: ReadOnly[str]
    check_error: ReadOnly[str]
    unknown_reason: ReadOnly[str]
    price: ReadOnly[float]
    progress: ReadOnly[int]  # the last intermediate SendStatus
    timeout_ms: ReadOnly[int]  # the template's Timeout, once learnt
    # Polling and reconcile.
    next_poll_at: ReadOnly[str]
    poll_count: ReadOnly[int]
    poll_gave_up_at: ReadOnly[str]
    next_reconcile_at: ReadOnly[str]
    reconcile_count: ReadOnly[int]
    reconcile_since: ReadOnly[str]
    reconcile_stopped: ReadOnly[str]
    # Slack.
    card_channel: ReadOnly[str]
    card_ts: ReadOnly[str]
    outbox_tried: ReadOnly[dict[str, str]]  # outbox key -> when its first post began


SEND_FIELDS = frozenset(SendRecord.__annotations__)


def as_record(doc: Mapping[str, Any]) -> SendRecord:
    """A stored send document, typed; nothing is checked or copied."""
    return cast(SendRecord, doc)


class SendRecords:
    """The sends table, indexed by id, sms_id, state and callback token."""

    def __init__(self, db: LogDB, audit: AuditLog, clock: Clock) -> None:
        self._db = db
        self._audit = audit
        self._clock = clock
        self._table = db.table(TABLE)
        for name in ("id", "sms_id", "state", "callback_token"):
            self._table.create_index(name)

    def create(self, fields: Mapping[str, Any], *, actor: str, reason: str = "") -> SendRecord:
        """Store a new send in pending_approval (audited "created"); `id` is generated if absent."""
        reserved = (RESERVED_FIELDS - {"id"}) & fields.keys()
        if reserved:
            raise ValueError(f"create() sets these itself: {', '.join(sorted(reserved))}")
        _refuse_unknown(fields)
        send_id = fields.get("id") or f"zns-{uuid.uuid4().hex}"
        if not isinstance(send_id, str) or len(send_id) > MAX_ID_LENGTH:
            raise ValueError(f"a send id must be a string of at most {MAX_ID_LENGTH} characters")
        if self._table.find_ids_by("id", send_id):
            raise StoreError(f"a send with id {send_id} already exists")
        now = iso(self._clock())
        salt = new_salt()
        record = {
            **fields,
            "id": send_id,
            "state": SendState.PENDING_APPROVAL,
            "created_at": now,
            "updated_at": now,
            "version": 1,
            "content_salt": salt,
        }
        personal = {name: fields[name] for name in PERSONAL_FIELDS if fields.get(name)}
        stored = normalized(record)
        # The content is bound into the chain: its non-personal part in the event's body,
        # the personal part beside it (digested with the salt), and the digest of the whole
        data = {name: stored.get(name) for name in CREATED_DATA}
        data["content"] = content_digest(salt, stored)
        with self._db.transaction():
            self._table.add(record)
            self._audit.append(
                actor,
                "created",
                send_id=send_id,
                to_state=SendState.PENDING_APPROVAL,
                reason=reason,
                data=data,
                personal=personal or None,
                salt=salt,
            )
        return self.get(send_id)

    def get(self, send_id: str) -> SendRecord:
        record = self.find(send_id)
        if record is None:
            raise NotFoundError(f"no send with id {send_id}")
        return record

    def find(self, send_id: str) -> SendRecord | None:
        return self._copy(self._table.first_id_by("id", send_id))

    def view(self, send_id: str) -> SendRecord | None:
        """The send as stored, uncopied and read only: for hot paths that only look.

        A write replaces the stored document rather than changing it, so a view stays the
        send as it was when taken. Anything to change or keep needs `get`/`find`.
        """
        doc_id = self._table.first_id_by("id", send_id)
        return None if doc_id is None else self._peek(doc_id)

    def by_sms_id(self, sms_id: str) -> SendRecord | None:
        """The send eSMS knows by this SMSID (the latest one, should eSMS ever reuse it)."""
        found = self._table.find_by("sms_id", sms_id)
        return as_record(dict(found[-1])) if found else None

    def by_callback_token(self, token: str) -> SendRecord | None:
        """The send whose eSMS CallbackUrl carries this token, as stored (see `view`)."""
        doc_id = self._table.first_id_by("callback_token", token)
        return None if doc_id is None else self._peek(doc_id)

    def transition(
        self,
        send_id: str,
        to: SendState | str,
        *,
        actor: str,
        reason: str = "",
        expect: Collection[SendState | str] | None = None,
        **fields: Any,
    ) -> SendRecord | None:
        """Compare-and-set the state; None (and nothing written) when the move is not allowed.

        Losing a race is normal: a second click or a replayed callback finds the send
        already moved on and gets None. `fields` are stored with the new state. Returns the
        send as stored, read only (see `view`): most callers only look, and `get` copies.
        """
        target = SendState(to)
        _refuse_reserved(fields)
        doc_id, doc = self._live(send_id)
        current = SendState(doc["state"])
        if target not in TRANSITIONS[current]:
            return None
        if expect is not None and current not in {SendState(s) for s in expect}:
            return None
        version = doc["version"] + 1
        data: dict[str, Any] = {"version": version}
        if fields:
            # Names only: values may be personal data, and the record itself holds them.
            data["fields"] = sorted(fields)
        if target == SendState.APPROVED and doc.get("content_salt"):
            data["content"] = content_digest(doc["content_salt"], doc)  # what was approved
        now = iso(self._clock())
        changes = normalized({**fields, "state": target, "version": version, "updated_at": now})
        if target in FINAL_STATES:
            changes["final_at"] = now
        stored = {**doc, **changes}
        with self._db.transaction():
            # the stored document is plain JSON already: only the changes need normalising
            # (and `plain` keeps this very dict, which is what the caller gets back)
            self._table.put(doc_id, stored, plain=True)
            self._audit.append(
                actor,
                "transition",
                send_id=send_id,
                from_state=current,
                to_state=target,
                reason=reason,
                data=data,
            )
        return as_record(stored)

    def update_fields(
        self, send_id: str, *, actor: str = "system", reason: str = "", **fields: Any
    ) -> SendRecord:
        """Change non-state data. Audited (action "update") only when a reason is given.

        Bookkeeping such as the card's Slack ts needs no reason and leaves no audit event;
        a change a person should be able to trace later should pass one. Returns the send as
        stored, read only (see `view`).
        """
        _refuse_reserved(fields)
        doc_id, doc = self._live(send_id)
        changed = {k: v for k, v in fields.items() if k not in doc or doc[k] != v}
        if not changed:
            return as_record(doc)
        version = doc["version"] + 1
        changes = normalized({**changed, "version": version, "updated_at": iso(self._clock())})
        stored = {**doc, **changes}
        with self._db.transaction():
            self._table.put(doc_id, stored, plain=True)
            if reason:
                self._audit.append(
                    actor,
                    "update",
                    send_id=send_id,
                    reason=reason,
                    data={"version": version, "fields": sorted(changed)},
                )
        return as_record(stored)

    def in_states(self, states: Iterable[SendState | str]) -> list[SendRecord]:
        """Sends in any of `states`, oldest (first created) first."""
        doc_ids: set[int] = set()
        for state in states:
            doc_ids.update(self._table.find_ids_by("state", str(SendState(state))))
        return [as_record(dict(doc)) for doc in self._table.get_many(sorted(doc_ids))]

    def views_in_state(self, state: SendState | str) -> list[SendRecord]:
        """Sends in `state` as stored (read only, see `view`), oldest (first created) first."""
        docs = self._table.raw_docs()
        sids = sorted(self._table.sids_by("state", str(SendState(state))), key=int)
        return [as_record(docs[sid]) for sid in sids if sid in docs]

    async def earliest(
        self,
        states: Iterable[SendState | str],
        due: Callable[[SendRecord], str | None],
        limit: int,
        *,
        chunk: int = 2_000,
    ) -> tuple[list[SendRecord], int]:
        """The `limit` sends in `states` with the smallest `due` key, smallest first (ties:
        oldest first), copied; and how many had a key at all.

        `due` sees the live documents (read only) and returns None for a send that is not
        due, so scanning 100k sends for the few that are due copies only those few. The
        scan lets the event loop run between chunks of `chunk` sends: it never holds the
        loop for long, and a send that moves meanwhile is judged as it is when reached.
        """
        wanted = {str(SendState(state)) for state in states}
        sids = [sid for state in wanted for sid in self._table.sids_by("state", state)]
        best: list[tuple[str, int]] = []
        count = 0
        for start in range(0, len(sids), chunk):
            if start:
                await asyncio.sleep(0)
            docs = self._table.raw_docs()
            found = []
            for sid in sids[start : start + chunk]:
                doc = docs.get(sid)
                if doc is not None and doc["state"] in wanted:
                    key = due(as_record(doc))
                    if key is not None:
                        found.append((key, int(sid)))
            count += len(found)
            best = heapq.nsmallest(limit, [*best, *found])
        docs = self._table.raw_docs()
        return [as_record(json_copy(docs[str(i)])) for _, i in best if str(i) in docs], count

    def count_by_state(self) -> dict[str, int]:
        return {str(state): self._table.count_by("state", str(state)) for state in SendState}

    def count(self) -> int:
        return len(self._table)

    def _live(self, send_id: str) -> tuple[int, Mapping[str, Any]]:
        """The send's doc id and live document (read only)."""
        doc_id = self._table.first_id_by("id", send_id)
        doc = None if doc_id is None else self._table.peek(doc_id)
        if doc_id is None or doc is None:
            raise NotFoundError(f"no send with id {send_id}")
        return doc_id, doc

    def _copy(self, doc_id: int | None) -> SendRecord | None:
        """A private copy of the document, for callers to keep (or None)."""
        doc = None if doc_id is None else self._table.peek(doc_id)
        return None if doc is None else as_record(json_copy(doc))

    def _peek(self, doc_id: int) -> SendRecord | None:
        doc = self._table.peek(doc_id)
        return None if doc is None else as_record(doc)


def _refuse_reserved(fields: Mapping[str, Any]) -> None:
    reserved = RESERVED_FIELDS & fields.keys()
    if reserved:
        raise ValueError(f"these fields cannot be set here: {', '.join(sorted(reserved))}")
    _refuse_unknown(fields)


def _refuse_unknown(fields: Mapping[str, Any]) -> None:
    """The schema is SendRecord's: a field it does not name is a bug, refused at the write."""
    unknown = fields.keys() - SEND_FIELDS
    if unknown:
        raise ValueError(f"not fields of SendRecord: {', '.join(sorted(unknown))}")
