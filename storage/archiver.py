"""The archive pass: what leaves the live store, when, and how it reaches the segments."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from storage.archive import Seal, Segments, find_events
from storage.clock import iso
from storage.errors import StoreError
from storage.outbox import DONE
from storage.segments import CODECS, SegmentName, key_hash, month_of, token_digest
from storage.sends import FINAL_STATES, PERSONAL_FIELDS, SendState

if TYPE_CHECKING:
    from storage.store import Store

ARCHIVE_DOC_ID = 2  # meta document: the archive's secret, current segment and seals
# Sizes of the pass's slices, the loop running between them: each one a few milliseconds
# (an archived send is one event of a few KiB, hashed and encoded on the loop).
SLICE = 10  # sends (or callbacks) archived per commit
COPY_BATCH = 1_000  # events per segment append
SCAN_SLICE = 250  # documents looked at
SYSTEM = "system"
# A send's fields that say who or what it reached: kept beside its archived event.
CALLBACK_PHONE = "phonenumber"
_NOT_ARCHIVED = frozenset({*PERSONAL_FIELDS, "callback_token", "content_salt"})


class ArchiveState(TypedDict):
    key: str
    secret: str  # hex: keys the index hashes (phones are never indexed in clear)
    current: str | None  # the segment being appended to
    sealed: list[dict[str, Any]]  # Seal.as_data() of each sealed segment, in order
    last_seal_at: str | None


@dataclass
class PassReport:
    """What one archive pass did."""

    sends: int = 0
    callbacks: int = 0
    outbox: int = 0
    events: int = 0
    sealed: list[str] = field(default_factory=list)


Segment = tuple[SegmentName, str, bool]  # name, file, sealed

# A pass is a generator: it yields file work for a worker thread (a callable), None where
# the loop may run other tasks, or SYNCED where what it committed must be on disk before
# it goes on; `run` drives it on the loop, `run_sync` inline.
SYNCED = "synced"
Step = Callable[[], Any] | str | None


class Archiver:
    """Moves what may leave the live store into the month's segment; seals past months.

    Everything here that reads or writes the live store runs on the caller's thread (the
    event loop's, in `serve`); file work on segments goes to `Segments` in a worker thread.
    """

    def __init__(
        self,
        store: Store,
        *,
        live_hours: float = 48.0,
        compression: str | None = None,
        on_step: Callable[[str], None] | None = None,
    ) -> None:
        if compression is not None and compression not in CODECS:
            raise StoreError(f"unknown audit compression {compression!r}")
        self.store = store
        self.live = timedelta(hours=live_hours)
        self.compression = compression
        self._meta = store.db.table("meta")
        state = self.state
        if state is None:
            with store.db.transaction():
                self._meta.put(
                    ARCHIVE_DOC_ID,
                    ArchiveState(
                        key="archive",
                        secret=secrets.token_hex(32),
                        current=None,
                        sealed=[],
                        last_seal_at=None,
                    ),
                )
            state = self.state
            assert state is not None
        self.secret = bytes.fromhex(state["secret"])
        self.segments = Segments(store.data_dir, self.secret, on_step=on_step)
        self.segments.recover(state["current"], state["sealed"])
        self._lock = asyncio.Lock()
        self._inflight: asyncio.Future[Any] | None = None
        self._deferred = False

    @property
    def state(self) -> ArchiveState | None:
        return self._meta.peek(ARCHIVE_DOC_ID)  # type: ignore[return-value]

    def close(self) -> None:
        self.segments.close()

    def _commit(self) -> contextlib.AbstractContextManager[None]:
        """A pass's commit: on the loop, its fsync is left to the group commit (the pass
        yields SYNCED before it relies on it); inline, it is synced at once."""
        return self.store.db.transaction(sync=not self._deferred)

    async def aclose(self) -> None:
        """Wait for file work a cancelled pass left running (before the store closes)."""
        if self._inflight is not None and not self._inflight.done():
            with contextlib.suppress(Exception):
                await self._inflight

    # ----------------------------------------------------------------- drivers

    async def run(self, now: datetime | None = None, *, seal: bool = False) -> PassReport:
        """One pass on the running loop: file work in a thread, the loop free between slices."""
        async with self._lock:
            self._deferred = True
            steps = self._pass(now or self.store.clock(), seal)
            value: Any = None
            while True:
                try:
                    work = steps.send(value)
                except StopIteration as done:
                    report: PassReport = done.value
                    return report
                value = None
                if work is None:
                    await asyncio.sleep(0)
                    continue
                if work == SYNCED:
                    await self.store.synced()  # one shared fsync, in a worker thread
                    continue
                assert callable(work)
                # shielded: a cancelled pass (shutdown) must not leave file work running
                # unseen while the store closes; `aclose` waits for it
                self._inflight = asyncio.ensure_future(asyncio.to_thread(work))
                try:
                    value = await asyncio.shield(self._inflight)
                except BaseException:
                    steps.close()  # the pass stops where it is; the next one carries on
                    raise

    def run_sync(self, now: datetime | None = None, *, seal: bool = False) -> PassReport:
        """The same pass, inline: for the command line, which holds the store alone."""
        self._deferred = False
        return drive(self._pass(now or self.store.clock(), seal))

    # ----------------------------------------------------------------- the pass

    def _pass(self, now: datetime, seal: bool) -> Generator[Step, Any, PassReport]:
        report = PassReport()
        cutoff = iso(now - self.live)
        leaving = yield from self._leaving(cutoff)
        for start in range(0, len(leaving), SLICE):
            with self._commit():
                for send_id in leaving[start : start + SLICE]:
                    report.callbacks += self.archive_send(send_id)
                    report.sends += 1
            yield None
            yield from self._copy_if_due(report)
        report.outbox += yield from self._drop_done_outbox()
        report.callbacks += yield from self.archive_orphan_callbacks(cutoff, report)
        yield from self.copy_events(report)
        current = self.segments.current
        month_over = current is not None and current.month < month_of(iso(now))
        if (seal or month_over) and self.segments.last_seq:
            yield from self.seal_segment(now, report)
            yield from self.copy_events(report)  # the seal event itself, into the next segment
        yield SYNCED
        return report

    def _leaving(self, cutoff: str) -> Generator[Step, Any, list[str]]:
        """Sends final (or stuck) since before `cutoff` whose posts are all made."""
        table = self.store.db.table("sends")
        outbox = self.store.outbox
        docs = table.raw_docs()
        sids: list[str] = []
        for state in (*FINAL_STATES, SendState.UNKNOWN):
            sids.extend(table.sids_by("state", str(state)))
        leaving: list[str] = []
        for n, sid in enumerate(sids):
            if n and n % SCAN_SLICE == 0:
                yield None
                docs = table.raw_docs()
            doc = docs.get(sid)
            if doc and may_leave(doc, cutoff) and outbox.first_pending(doc["id"]) is None:
                leaving.append(doc["id"])
        return leaving

    def archive_send(self, send_id: str) -> int:
        """One send, its callbacks and its settled posts leave; one "archived" event keeps
        them (personal fields beside it). Joins the caller's transaction."""
        sends = self.store.db.table("sends")
        callbacks = self.store.db.table("callbacks")
        outbox = self.store.db.table("outbox")
        doc_id = sends.first_id_by("id", send_id)
        doc = None if doc_id is None else sends.peek(doc_id)
        if doc_id is None or doc is None:
            return 0
        sms_id = doc.get("sms_id")
        callback_ids = callbacks.find_ids_by("sms_id", sms_id) if sms_id else []
        raws = [c for c in map(callbacks.peek, callback_ids) if c is not None]
        personal: dict[str, Any] = {k: doc[k] for k in PERSONAL_FIELDS if doc.get(k)}
        phones = [c.get("raw", {}).get(CALLBACK_PHONE) for c in raws]
        if any(phones):
            personal["callback_phones"] = phones
        data: dict[str, Any] = {
            "send": {k: v for k, v in doc.items() if k not in _NOT_ARCHIVED},
            "callbacks": [_callback_data(c) for c in raws],
        }
        if sms_id:
            data["sms_id"] = sms_id
        if doc.get("callback_token"):
            data["token_digest"] = token_digest(doc["callback_token"])
        self.store.audit.append(
            SYSTEM,
            "archived",
            send_id=send_id,
            reason="left the live store",
            data=data,
            personal=personal or None,
            salt=doc.get("content_salt"),
        )
        sends.delete([doc_id])
        if callback_ids:
            callbacks.delete(callback_ids)
        item_ids = outbox.find_ids_by("send_id", send_id)
        if item_ids:
            outbox.delete(item_ids)
        return len(callback_ids)

    def _drop_done_outbox(self) -> Generator[Step, Any, int]:
        """Confirmed posts of sends still live: their keys are per version, never re-queued."""
        outbox = self.store.db.table("outbox")
        done = outbox.find_ids_by("status", DONE)
        for start in range(0, len(done), SCAN_SLICE):
            with self._commit():
                outbox.delete(done[start : start + SCAN_SLICE])
            yield None
        return len(done)

    def archive_orphan_callbacks(
        self, cutoff: str, report: PassReport | None = None
    ) -> Generator[Step, Any, int]:
        """Callbacks that match no live send (refused ones, mostly) are kept in the log."""
        callbacks = self.store.db.table("callbacks")
        sends = self.store.db.table("sends")
        docs = callbacks.raw_docs()
        leaving: list[int] = []
        for n, (sid, doc) in enumerate(list(docs.items())):
            if n and n % SCAN_SLICE == 0:
                yield None
            if doc.get("received_at", "") > cutoff:
                continue
            if doc.get("sms_id") and sends.count_by("sms_id", doc["sms_id"]):
                continue
            leaving.append(int(sid))
        for start in range(0, len(leaving), SLICE):
            with self._commit():
                for doc_id in leaving[start : start + SLICE]:
                    kept = callbacks.peek(doc_id)
                    if kept is None:
                        continue
                    phone = kept.get("raw", {}).get(CALLBACK_PHONE)
                    self.store.audit.append(
                        SYSTEM,
                        "callback_kept",
                        reason=kept.get("reason") or "matched no live send",
                        data={"sms_id": kept.get("sms_id"), "callback": _callback_data(kept)},
                        personal={CALLBACK_PHONE: phone} if phone else None,
                    )
                callbacks.delete(leaving[start : start + SLICE])
            yield None
            yield from self._copy_if_due(report or PassReport())
        return len(leaving)

    def _copy_if_due(self, report: PassReport) -> Generator[Step, Any, None]:
        """Copy once a segment batch has piled up: a big pass (after an outage, or the first
        one with a shorter ZNS_LIVE_HOURS) then holds a batch of new events at a time, not
        one per send it moves, and the collector never walks more than that."""
        if len(self.store.audit.live_events()) >= COPY_BATCH:
            yield from self.copy_events(report)

    def copy_events(self, report: PassReport) -> Generator[Step, Any, None]:
        """Copy live events to the segment (durable, indexed), then drop them from the log."""
        audit = self.store.audit
        while True:
            live = audit.live_events()
            seqs = sorted(int(s) for s in live)
            done_upto = self.segments.last_seq
            # a slice at a time: dropping a whole batch was one 10-20 ms step on the loop
            copied = [s for s in seqs if s <= done_upto][:SCAN_SLICE]
            if copied:  # copied before a crash, or just now: leave the live log
                last = live[str(copied[-1])]
                with self._commit():
                    self.store.db.table("audit").delete(copied)
                    audit.archived_upto(int(last["seq"]), str(last["hash"]))
                report.events += len(copied)
                yield None
                continue
            if not seqs:
                return
            batch = [live[str(s)] for s in seqs[:COPY_BATCH]]
            month = month_of(batch[0]["ts"])
            current = self.segments.current
            if current is not None and current.month < month and self.segments.last_seq:
                yield from self.seal_segment(None, report)
                continue
            if current is None:
                yield from self.start_segment(SegmentName(month, self._next_part(month)))
                continue
            # up to the first event of a later month, which starts the next segment
            batch = _up_to_month(batch, current.month) or batch[:1]
            # the segment must never hold an event the live log could still lose
            yield SYNCED
            yield lambda batch=batch: self.segments.append(batch)  # type: ignore[misc]

    def _next_part(self, month: str) -> int:
        state = self.state
        assert state is not None
        parts = [
            SegmentName.parse(s["segment"]).part
            for s in state["sealed"]
            if s["segment"].startswith(month)
        ]
        return max(parts) + 1 if parts else 0

    def start_segment(self, name: SegmentName) -> Generator[Step, Any, None]:
        self._set_state(current=str(name))
        yield lambda: self.segments.open(name)

    def seal_segment(self, now: datetime | None, report: PassReport) -> Generator[Step, Any, Seal]:
        """Seal the current segment: digest (and compress) it, commit the seal event, and
        make the file read-only. The next event starts the next segment."""
        seal: Seal = yield lambda: self.segments.seal(self.compression)
        state = self.state
        assert state is not None
        with self._commit():
            self.store.audit.append(
                SYSTEM, "sealed", reason=f"segment {seal.segment} sealed", data=seal.as_data()
            )
            self._set_state(
                current=None,
                sealed=[*state["sealed"], seal.as_data()],
                last_seal_at=iso(now or self.store.clock()),
            )
        yield SYNCED  # the plain copy goes only once the seal is known for sure
        yield lambda: self.segments.finish_seal(seal)
        report.sealed.append(seal.segment)
        return seal

    def _set_state(self, **changes: Any) -> None:
        state = self.state
        assert state is not None
        self._meta.put(ARCHIVE_DOC_ID, {**state, **changes})

    # ----------------------------------------------------------------- history lookups

    def segment_list(self) -> list[Segment]:
        """(name, file, sealed) of every segment, oldest first."""
        state = self.state
        assert state is not None
        found = [(SegmentName.parse(s["segment"]), str(s["file"]), True) for s in state["sealed"]]
        if state["current"]:
            name = SegmentName.parse(state["current"])
            found.append((name, name.data_file(), False))
        return found

    def find(
        self, kind: str, value: str, segments: Sequence[Segment] | None = None
    ) -> list[dict[str, Any]]:
        """Archived events answering a lookup (send, sms, phone, token). File work: in
        `serve`, take `segment_list()` on the loop and call this from a worker thread."""
        h = key_hash(self.secret, kind, value)
        return find_events(self.segments.dir, segments or self.segment_list(), h)

    def archived_live(self, token: str) -> Mapping[str, Any] | None:
        """The "archived" event of this token's send while it is still in the live log (a
        send leaves the live store a moment before its event is copied to a segment). Read
        on the loop: the live store's thread."""
        digest = token_digest(token)
        for event in self.store.audit.live_events().values():
            data = event.get("data")
            if not (event.get("action") == "archived" and isinstance(data, Mapping)):
                continue
            if data.get("token_digest") == digest:
                return event
        return None

    def find_by_token(
        self, token: str, segments: Sequence[Segment] | None = None
    ) -> Mapping[str, Any] | None:
        """The "archived" event of the send whose callback URL carries `token`, or None."""
        digest = token_digest(token)
        for event in self.find("token", digest, segments):
            data = event.get("data") or {}
            if event.get("action") == "archived" and data.get("token_digest") == digest:
                return event
        return None

    def lag(self, now: datetime) -> float:
        """Seconds since the oldest event still waiting in the live log was written."""
        live = self.store.audit.live_events()
        if not live:
            return 0.0
        oldest = live[str(min(int(s) for s in live))]
        return max(0.0, (now - datetime.fromisoformat(oldest["ts"])).total_seconds())


_T = TypeVar("_T")


def drive(steps: Generator[Step, Any, _T]) -> _T:
    """Run one of the archive's step generators inline (file work in this thread)."""
    value: Any = None
    while True:
        try:
            work = steps.send(value)
        except StopIteration as done:
            result: _T = done.value
            return result
        # None (the loop may run) and SYNCED (inline, every commit is synced already)
        value = work() if callable(work) else None


def may_leave(send: Mapping[str, Any], cutoff: str) -> bool:
    """Whether a send has been final (or stuck: a reconcile that gave up) since before
    `cutoff`; it leaves the live store once, in addition, none of its posts is pending."""
    state = send.get("state")
    if state == SendState.UNKNOWN:
        since = send.get("reconcile_stopped")
    elif state in FINAL_STATES:
        since = send.get("final_at") or send.get("updated_at")  # 0.1 sends lack final_at
    else:
        return False
    return bool(since) and str(since) <= cutoff


def _up_to_month(events: list[Any], month: str) -> list[Any]:
    """The events before the first one of a later month (which starts the next segment)."""
    for n, event in enumerate(events):
        if month_of(event["ts"]) > month:
            return events[:n]
    return events


def _callback_data(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A stored callback without the phone number it carries (kept beside, as personal)."""
    raw = {k: v for k, v in (doc.get("raw") or {}).items() if k != CALLBACK_PHONE}
    return {
        "sms_id": doc.get("sms_id"),
        "send_status": doc.get("send_status"),
        "raw": raw,
        "valid": doc.get("valid"),
        "reason": doc.get("reason"),
        "received_at": doc.get("received_at"),
    }


def keep_late_callback(store: Store, archived: Mapping[str, Any], raw: Mapping[str, str]) -> None:
    """A callback for a send that left the live store: kept in the log beside its archive
    entry (the phone number it carries as personal data, salted like the send's)."""
    # eSMS spells it `phonenumber`; any casing of it is the phone all the same, personal data
    # that must stay outside the hashed body (erasable), never in `raw`
    phones = [v for k, v in raw.items() if k.lower() == CALLBACK_PHONE]
    phone = phones[0] if phones else None
    personal = archived.get("personal")
    salt = personal.get("salt") if isinstance(personal, Mapping) else None
    store.audit.append(
        "esms-callback",
        "late_callback",
        send_id=archived.get("send_id"),
        reason="for a send that already left the live store: kept, nothing changed",
        data={
            "sms_id": raw.get("SMSID"),
            "raw": {k: v for k, v in raw.items() if k.lower() != CALLBACK_PHONE},
        },
        personal={CALLBACK_PHONE: phone} if phone else None,
        salt=salt,
    )
