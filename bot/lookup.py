"""Find sends by send id, SMSID or phone in the read-only history: live and archived alike."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bot.delivery import PROGRESS
from bot.errors import InputError, PhoneError
from bot.esms.zalo import suggestion, zalo_reason
from bot.ops.logs import mask_phones
from bot.phones import mask_phone, normalize_phone
from storage.content import ERASED_ACTION
from storage.history import History
from storage.sends import MAX_ID_LENGTH, SendState
from storage.store import Store

KeyKind = Literal["send", "sms", "phone"]

# The bot's own send ids, which are also eSMS's RequestId: `zns-` and a uuid4's hex.
SEND_ID = re.compile(r"zns-[0-9a-f]{32}")
# What an SMSID (eSMS's: a GUID; older accounts: digits) or an older send id may look like.
TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
DEFAULT_LIMIT = 20  # a phone's sends shown; the CLI's cap (Slack's `/zns status` shows 10)
DETAIL_CHARS = 100  # an audit event's reason in the trail, cut: the export has it whole

STATE_MEANINGS: dict[str, str] = {
    SendState.PENDING_APPROVAL: "waiting for an approver; nothing sent yet",
    SendState.APPROVED: "approved, about to go to eSMS",
    SendState.REJECTED: "an approver rejected it; nothing was sent",
    SendState.EXPIRED: "nobody approved it in time; nothing was sent",
    SendState.CANCELLED: "the requester cancelled it; nothing was sent",
    SendState.SUBMITTING: "being handed to eSMS",
    SendState.ACCEPTED: "accepted by eSMS, waiting for the delivery report",
    SendState.UNKNOWN: (
        "eSMS's answer was lost; the bot keeps asking eSMS whether it was sent (do not resend)"
    ),
    SendState.DELIVERED: "delivered to the customer's Zalo",
    SendState.FAILED: "not delivered",
    SendState.SANDBOXED: "checked by eSMS in sandbox mode: never delivered, not charged",
}


@dataclass(frozen=True)
class Key:
    """One way to read what was typed: a send id, an SMSID or a phone (normalised)."""

    kind: KeyKind
    value: str

    def __repr__(self) -> str:
        # Logged or printed, a phone shows masked, also when it is read as an SMSID
        shown = mask_phone(self.value) if self.kind == "phone" else mask_phones(self.value)
        return f"Key({self.kind!r}, {shown!r})"


@dataclass(frozen=True)
class TrailEntry:
    """One audit event of a send, shortened for people: the export has it whole."""

    ts: str  # ISO, UTC, as stored
    kind: str  # the event's action: created, transition, update, archived...
    actor: str  # slack:U…, cli:user, system, esms-callback
    detail: str  # phones masked, cut to DETAIL_CHARS


@dataclass(frozen=True)
class SendView:
    """What a person asks about a send, from its live record or its archived one.

    `phone` is the full number (or "" when unknown): formatters mask it.
    """

    send_id: str
    where: Literal["live", "archived"]
    state: str
    meaning: str
    template_id: str
    template_name: str
    phone: str = field(repr=False)  # a logged or printed view never shows it in the clear
    phone_erased: bool
    requester: str
    approver: str
    sms_id: str
    sandbox: bool
    result: str  # the outcome in plain words ("" while there is none yet)
    suggestion: str  # what to do about a failure ("" when nothing)
    error_code: int | None
    created_at: str
    updated_at: str
    trail: tuple[TrailEntry, ...] = ()
    oaid: str = ""
    # the approval card (channel id, message ts): Slack's `/zns status` links its thread
    card: tuple[str, str] | None = None


@dataclass(frozen=True)
class Lookup:
    """What a key found: its sends newest first (at most the limit) and how many there are."""

    # the readings of the key, in the order tried (not the text as typed: a phone in it
    # would be in the clear for whoever prints or logs a Lookup)
    tried: tuple[Key, ...]
    key: Key | None  # the reading that found something
    views: list[SendView] = field(default_factory=list)
    total: int = 0

    @property
    def more(self) -> int:
        return self.total - len(self.views)


def parse_key(text: str) -> tuple[Key, ...]:
    """The readings of a key, in the order to try them; InputError when it can be none.

    Order: a bot send id (`zns-` + 32 hex) is only that. Otherwise a Vietnamese mobile
    number is a phone first; then, if it is a plain token, an SMSID, then a send id (made
    by an older release or another tool). So `0901888484` finds the phone's sends, and an
    all-digit SMSID that is not a valid mobile (`90000`) is looked up as an SMSID.
    """
    value = (text or "").strip()
    if not value:
        raise InputError("give a send id (zns-…), an SMSID or a customer's phone number")
    if SEND_ID.fullmatch(value):
        return (Key("send", value),)
    keys: list[Key] = []
    with contextlib.suppress(PhoneError):  # not a phone: maybe an SMSID all the same
        keys.append(Key("phone", normalize_phone(value)))
    if TOKEN.fullmatch(value) and len(value) <= MAX_ID_LENGTH:
        keys += [Key("sms", value), Key("send", value)]
    if not keys:
        raise InputError(
            f"'{mask_phones(value)}' is not a send id (zns- and 32 hex digits), an SMSID "
            "(letters, digits and dashes, up to 50) or a Vietnamese mobile number"
        )
    return tuple(keys)


def find_sends(history: History, text: str, *, limit: int = DEFAULT_LIMIT) -> Lookup:
    """The sends a key names, newest first, at most `limit` (a phone may have many).

    Uses the history's own lookups (`send_ids`, `for_sends`: the ones `audit export` uses),
    which answer from the live store and from the archive's indexes alike.
    """
    tried = parse_key(text)
    for key in tried:
        if key.kind == "send":
            ids = {key.value}
        elif key.kind == "sms":
            ids = history.send_ids(sms_id=key.value)
        else:
            ids = history.send_ids(phone=key.value)
        views = build_views(history, ids)
        if views:
            views.sort(key=lambda v: (v.created_at, v.send_id), reverse=True)
            return Lookup(tried, key, views[:limit], len(views))
    return Lookup(tried, None)


async def look_up(store: Store, text: str, *, limit: int = DEFAULT_LIMIT) -> Lookup:
    """`find_sends` for the running bot: from its store's memory, never re-reading the
    file, and off the event loop (archive segments are files to open and decompress)."""
    parse_key(text)  # a malformed key fails here, before any copy or thread
    history = History.of_store(store)  # on the loop: the store's own thread
    return await asyncio.to_thread(find_sends, history, text, limit=limit)


def build_views(history: History, send_ids: Iterable[str]) -> list[SendView]:
    """A view of each of these sends that the store knows (the others are left out)."""
    wanted = set(send_ids)
    if not wanted:
        return []
    events: dict[str, list[Mapping[str, Any]]] = {sid: [] for sid in wanted}
    for event in history.for_sends(sorted(wanted)):
        for sid in _sends_of(event, wanted):
            events[sid].append(event)
    live = {str(doc["id"]): doc for doc in history.live_sends().values() if doc.get("id") in wanted}
    views = [_view(sid, live.get(sid), events[sid]) for sid in sorted(wanted)]
    return [v for v in views if v is not None]


def _sends_of(event: Mapping[str, Any], wanted: set[str]) -> list[str]:
    """The wanted sends an event belongs to: an erasure names all the sends it erased."""
    if event.get("action") == ERASED_ACTION:
        data = event.get("data")
        named = data.get("send_ids") if isinstance(data, Mapping) else None
        return [str(s) for s in named or () if s in wanted]
    send_id = event.get("send_id")
    return [str(send_id)] if send_id in wanted else []


def _view(
    send_id: str, live: Mapping[str, Any] | None, events: Sequence[Mapping[str, Any]]
) -> SendView | None:
    record, phone, erased = _record(live, events)
    if record is None:
        return None
    state = str(record.get("state") or "")
    result, advice, code = _result(record)
    result = mask_phones(result)  # free text (eSMS's error, a reason) may quote a phone
    return SendView(
        send_id=send_id,
        where="live" if live is not None else "archived",
        state=state,
        meaning=STATE_MEANINGS.get(state, "a state this release does not know"),
        template_id=str(record.get("template_id") or ""),
        template_name=str(record.get("template_name") or ""),
        phone=phone,
        phone_erased=erased,
        requester=str(record.get("requester") or ""),
        approver=str(record.get("approver") or ""),
        sms_id=str(record.get("sms_id") or ""),
        sandbox=bool(record.get("sandbox")),
        result=result,
        suggestion=advice,
        error_code=code,
        created_at=str(record.get("created_at") or ""),
        updated_at=str(record.get("updated_at") or ""),
        trail=tuple(_entry(e) for e in events),
        oaid=str(record.get("oaid") or ""),
        card=_card(record),
    )


def _card(record: Mapping[str, Any]) -> tuple[str, str] | None:
    channel, ts = record.get("card_channel"), record.get("card_ts")
    return (str(channel), str(ts)) if channel and ts else None


def _record(
    live: Mapping[str, Any] | None, events: Sequence[Mapping[str, Any]]
) -> tuple[Mapping[str, Any] | None, str, bool]:
    """(the send's fields, its phone, whether it was erased) from the live store, else its
    "archived" event, else (its archive not copied yet, or lost) its "created" event."""
    if live is not None:
        return live, str(live.get("phone") or ""), bool(live.get("erased_at"))
    archived = [e for e in events if e.get("action") == "archived"]
    if archived:
        event = archived[-1]
        data = event.get("data") if isinstance(event.get("data"), Mapping) else {}
        send = data.get("send") if isinstance(data, Mapping) else None
        phone, erased = _personal_phone(event)
        return (send if isinstance(send, Mapping) else {}), phone, erased
    created = [e for e in events if e.get("action") == "created"]
    if not created:
        return None, "", False
    first = created[0]
    data = first.get("data") if isinstance(first.get("data"), Mapping) else {}
    record: dict[str, Any] = {**(data or {}), "created_at": first.get("ts")}
    for event in events:  # what its events tell: the last state reached, who decided, why
        to, reason = event.get("to_state"), event.get("reason") or ""
        if to:
            record["state"], record["updated_at"] = to, event.get("ts")
        if event.get("action") == "created":
            record["requester"] = event.get("actor")
        elif to in (SendState.APPROVED, SendState.REJECTED):
            record["approver"] = event.get("actor")
        if to == SendState.REJECTED:
            record["reject_reason"] = reason
        elif to in (SendState.FAILED, SendState.UNKNOWN):
            record["error" if to == SendState.FAILED else "unknown_reason"] = reason
    phone, erased = _personal_phone(first)
    return record, phone, erased


def _personal_phone(event: Mapping[str, Any]) -> tuple[str, bool]:
    personal = event.get("personal")
    fields = personal.get("fields") if isinstance(personal, Mapping) else None
    phone = str(fields.get("phone") or "") if isinstance(fields, Mapping) else ""
    # a digest of personal fields without the fields: an erasure removed them
    return phone, not phone and bool(event.get("pd")) and personal is None


def _result(record: Mapping[str, Any]) -> tuple[str, str, int | None]:
    """(the outcome in plain words, what to do about it, the Zalo or eSMS code)."""
    state = record.get("state")
    raw_code = record.get("error_code")
    code = raw_code if isinstance(raw_code, int) else None
    if state == SendState.FAILED:
        if record.get("error_category") == "delivery" and code not in (None, 0):
            # Zalo's code in words, as this release words it (older records keep older words)
            reason = f"{zalo_reason(code)} (Zalo code {code})"
            return reason, str(record.get("suggestion") or suggestion(code)), code
        return str(record.get("error") or "failed"), str(record.get("suggestion") or ""), code
    if state == SendState.DELIVERED:
        return "delivered to the customer's Zalo", "", code
    if state == SendState.REJECTED:
        reason = str(record.get("reject_reason") or "")
        return (f"rejected: {reason}" if reason else "rejected"), "", code
    if state == SendState.UNKNOWN:
        return str(record.get("unknown_reason") or ""), "do not resend", code
    if state == SendState.ACCEPTED:
        progress = record.get("progress")
        # eSMS's last intermediate status, when it sent one: the state says the rest
        step = PROGRESS.get(progress) if isinstance(progress, int) else None
        return step or "", "", code
    if state == SendState.SANDBOXED:
        return "accepted by eSMS in sandbox mode, nothing delivered", "", code
    return "", "", code


def _entry(event: Mapping[str, Any]) -> TrailEntry:
    action = str(event.get("action") or "")
    reason = str(event.get("reason") or "")
    if action == "transition":
        moved = f"{event.get('from_state')} → {event.get('to_state')}"
        detail = f"{moved}: {reason}" if reason else moved
    elif event.get("to_state"):  # "created": requested, into pending_approval
        detail = f"{reason or action} → {event['to_state']}"
    else:
        detail = reason
    detail = mask_phones(" ".join(detail.split()))
    if len(detail) > DETAIL_CHARS:
        detail = detail[: DETAIL_CHARS - 1] + "…"
    return TrailEntry(str(event.get("ts") or ""), action, str(event.get("actor") or ""), detail)
