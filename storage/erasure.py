"""Erasing one customer: their personal data out of the live store, segments and indexes."""

# What goes: the phone, parameters, OrderId and note of every send to the customer, and
# every callback phone number in either form (0… and 84…), together with each send's salt.
# The audit events keep their hashed bodies (which hold only salted digests of those
# fields), so every hash, link and seal still verifies; an `erased` event records who,
# when and how many sends, never the phone.
#
# Order, and what a crash leaves: (1) one commit to the live store: its records and events
# lose the personal fields and the `erased` event is appended; (2) the live store is
# compacted, so no line of its log keeps the old values; (3) each segment holding the
# customer's events is rewritten: a new data file and index beside the old ones
# (`<name>.erasing`), the data renamed over the old, then the index. At start-up
# (storage.segments.finish_rewrites) an index whose data was renamed is renamed too;
# otherwise both temp files go. A crash before (3) ends leaves the rest in segments:
# running the erasure again finds it (the phone's index keys and a scan) and finishes it.

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storage import logfile
from storage.archiver import CALLBACK_PHONE, Segment
from storage.audit import canonical
from storage.clock import iso
from storage.content import ERASED_ACTION
from storage.errors import StoreError
from storage.segments import (
    REWRITING,
    SegmentIndex,
    codec_of,
    key_hash,
    read_block,
)
from storage.sends import FINAL_STATES, PERSONAL_FIELDS

if TYPE_CHECKING:
    from storage.store import Store

Block = tuple[int, int, int, int, str, str]


class ErasureRefused(StoreError):
    """The erasure cannot be done now; nothing was changed."""


def phone_forms(phone: str) -> tuple[str, str]:
    """A normalised `0xxxxxxxxx` and the `84xxxxxxxxx` eSMS callbacks carry."""
    if not re.fullmatch(r"0\d{9}", phone):
        raise ValueError(f"not a normalised phone number: {len(phone)} characters")
    return phone, "84" + phone[1:]


@dataclass
class ErasurePlan:
    """What erasing one phone would change; `apply_erasure` changes exactly this."""

    forms: tuple[str, str]
    send_ids: list[str] = field(default_factory=list)
    not_final: dict[str, str] = field(default_factory=dict)  # send id -> state
    live_sends: list[int] = field(default_factory=list)
    live_callbacks: list[int] = field(default_factory=list)
    live_events: list[int] = field(default_factory=list)
    outbox_items: list[int] = field(default_factory=list)
    segments: dict[str, set[int]] = field(default_factory=dict)  # segment name -> seqs

    @property
    def segment_events(self) -> int:
        return sum(len(seqs) for seqs in self.segments.values())

    @property
    def refusal(self) -> str | None:
        """Why the plan cannot be carried out now, or None."""
        if not self.not_final:
            return None
        listed = ", ".join(f"{k} ({v})" for k, v in sorted(self.not_final.items()))
        return (
            f"{len(self.not_final)} send(s) to this customer are not final yet: {listed}. "
            "A reconcile may still need the phone; erase once they are final."
        )

    @property
    def anything(self) -> bool:
        return bool(
            self.send_ids
            or self.live_callbacks
            or self.live_events
            or self.outbox_items
            or self.segment_events
        )


def _mentions(event: Mapping[str, Any], forms: Sequence[str]) -> bool:
    kept = event.get("personal")
    if not isinstance(kept, Mapping):
        return False
    text = canonical(kept).decode()
    return any(form in text for form in forms)


def plan_erasure(store: Store, phone: str) -> ErasurePlan:
    """Find every trace of `phone`; changes nothing."""
    forms = phone_forms(phone)
    plan = ErasurePlan(forms)
    segments = store.archive.segment_list()
    mentioned = {str(s[0]): _scan(store, s, forms) for s in segments}
    ids = _send_ids(store, forms, segments, mentioned)
    plan.send_ids = sorted(ids)
    _plan_live(store, plan, ids)
    for segment in segments:
        seqs = set(mentioned[str(segment[0])])
        seqs.update(_events_of(store, segment, ids))
        if seqs:
            plan.segments[str(segment[0])] = seqs
    return plan


def _send_ids(
    store: Store,
    forms: Sequence[str],
    segments: Sequence[Segment],
    mentioned: Mapping[str, Mapping[int, Mapping[str, Any]]],
) -> set[str]:
    """The sends to the phone, and any other send whose personal data mentions it."""
    live = store.db.table("sends").raw_docs().values()
    ids = {str(doc["id"]) for doc in live if doc.get("phone") in forms}
    for form in forms:
        for event in store.archive.find("phone", form, segments):
            if event.get("send_id") and _mentions(event, forms):
                ids.add(str(event["send_id"]))
    events: list[Mapping[str, Any]] = list(store.db.table("audit").raw_docs().values())
    for found in mentioned.values():
        events.extend(found.values())
    ids.update(str(e["send_id"]) for e in events if e.get("send_id") and _mentions(e, forms))
    return ids


def _plan_live(store: Store, plan: ErasurePlan, ids: set[str]) -> None:
    db, forms = store.db, plan.forms
    sms_ids = set()
    for sid, doc in db.table("sends").raw_docs().items():
        if doc.get("id") not in ids:
            continue
        if doc.get("state") not in FINAL_STATES:
            plan.not_final[str(doc["id"])] = str(doc.get("state"))
        if doc.get("sms_id"):
            sms_ids.add(doc["sms_id"])
        if not doc.get("erased_at") or any(doc.get(k) for k in PERSONAL_FIELDS):
            plan.live_sends.append(int(sid))
    for sid, doc in db.table("callbacks").raw_docs().items():
        number = (doc.get("raw") or {}).get(CALLBACK_PHONE)
        if number and (number in forms or doc.get("sms_id") in sms_ids):
            plan.live_callbacks.append(int(sid))
    plan.live_events = sorted(
        int(sid)
        for sid, e in db.table("audit").raw_docs().items()
        if e.get("personal") and (e.get("send_id") in ids or _mentions(e, forms))
    )
    outbox = db.table("outbox").raw_docs()
    plan.outbox_items = [int(sid) for sid, item in outbox.items() if item.get("send_id") in ids]


def _blocks(directory: Path, segment: Segment) -> Iterator[tuple[Block, bytes]]:
    """Each indexed block of a segment, decompressed."""
    name, file, sealed = segment
    index = SegmentIndex(directory / name.index_file(), sealed=sealed)
    try:
        blocks = index.blocks(file)
    finally:
        index.close()
    codec = codec_of(file)
    with (directory / file).open("rb") as f:
        for block in blocks:
            f.seek(block[2])
            raw = f.read(block[3])
            yield block, codec[2](raw) if codec else raw


def _scan(store: Store, segment: Segment, forms: Sequence[str]) -> dict[int, Mapping[str, Any]]:
    """Events of a segment whose personal fields hold a form of the phone, by seq."""
    marks = [form.encode() for form in forms]
    found: dict[int, Mapping[str, Any]] = {}
    for _, raw in _blocks(store.archive.segments.dir, segment):
        if not any(mark in raw for mark in marks):
            continue
        for line in raw.split(b"\n"):
            if any(mark in line for mark in marks) and not line.startswith(b'{"format"'):
                event = logfile.loads(line)
                if _mentions(event, forms):
                    found[int(event["seq"])] = event
    return found


def _events_of(store: Store, segment: Segment, send_ids: Collection[str]) -> set[int]:
    """Seqs of the sends' events in a segment that still carry personal fields."""
    archive = store.archive
    name, file, sealed = segment
    directory = archive.segments.dir
    index = SegmentIndex(directory / name.index_file(), sealed=sealed)
    try:
        seqs = {s for i in send_ids for s in index.seqs(key_hash(archive.secret, "send", i))}
        blocks = {index.block_of(file, seq) for seq in seqs}
    finally:
        index.close()
    found: set[int] = set()
    for block in sorted(b for b in blocks if b is not None):
        for event in read_block(directory / file, *block, seqs):
            if event.get("personal") and event.get("send_id") in send_ids:
                found.add(int(event["seq"]))
    return found


# --------------------------------------------------------------------------- applying


def apply_erasure(store: Store, plan: ErasurePlan, actor: str) -> Mapping[str, Any]:
    """Erase what `plan` found and record it; the `erased` event. Refuses (changing
    nothing) when a send is not final."""
    if plan.refusal is not None:
        raise ErasureRefused(plan.refusal)
    event = _erase_live(store, plan, actor)
    store.db.compact()  # no line of the live store's log keeps the old values
    directory = store.archive.segments.dir
    drop = [key_hash(store.archive.secret, "phone", form) for form in plan.forms]
    for name, file, sealed in store.archive.segment_list():
        seqs = plan.segments.get(str(name))
        if not seqs:
            continue
        current = not sealed
        if current:
            store.archive.segments.close()
        try:
            rewrite_segment(directory, (name, file, sealed), seqs, drop)
        finally:
            if current:
                store.archive.segments.open(name)
    return event


def _erase_live(store: Store, plan: ErasurePlan, actor: str) -> Mapping[str, Any]:
    db = store.db
    sends, callbacks = db.table("sends"), db.table("callbacks")
    audit, outbox = db.table("audit"), db.table("outbox")
    now = iso(store.clock())
    with db.transaction():
        for doc_id in plan.live_sends:
            doc = sends.peek(doc_id)
            if doc is not None:
                kept = {k: v for k, v in doc.items() if k not in PERSONAL_FIELDS}
                kept.pop("content_salt", None)
                sends.put(doc_id, {**kept, "erased_at": kept.get("erased_at") or now})
        for doc_id in plan.live_callbacks:
            doc = callbacks.peek(doc_id)
            if doc is not None:
                raw = {k: v for k, v in (doc.get("raw") or {}).items() if k != CALLBACK_PHONE}
                callbacks.put(doc_id, {**doc, "raw": raw})
        for seq in plan.live_events:
            event = audit.peek(seq)
            if event is not None:
                audit.put(seq, {k: v for k, v in event.items() if k != "personal"})
        if plan.outbox_items:
            outbox.delete(plan.outbox_items)
        return store.audit.append(
            actor,
            ERASED_ACTION,
            reason="a customer's personal data was erased at their request",
            data={
                "send_ids": plan.send_ids,
                "sends": len(plan.send_ids),
                "callbacks": len(plan.live_callbacks),
                "events": len(plan.live_events) + plan.segment_events,
                "segments": len(plan.segments),
            },
        )


def _erased_line(line: bytes, seqs: set[int]) -> bytes:
    event = logfile.loads(line)
    if int(event.get("seq", 0)) not in seqs or "personal" not in event:
        return line
    del event["personal"]
    return logfile.dumps(event) + b"\n"


def rewrite_segment(
    directory: Path, segment: Segment, seqs: set[int], drop_keys: Sequence[int]
) -> None:
    """The segment without the personal fields of events `seqs`, and its index without
    the keys `drop_keys`: new files beside the old, renamed over them (data first)."""
    name, file, sealed = segment
    data, index_path = directory / file, directory / name.index_file()
    data_tmp, index_tmp = _temp(data), _temp(index_path)
    codec = codec_of(file)
    old = SegmentIndex(index_path, sealed=sealed)
    try:
        blocks = old.blocks(file)
    finally:
        old.close()
    new_blocks: list[Block] = []
    fd = os.open(data_tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        with data.open("rb") as f:
            head = f.read(blocks[0][2] if blocks else os.fstat(f.fileno()).st_size)
            logfile.write_all(fd, head)
            offset = len(head)
            for block in blocks:
                f.seek(block[2])
                raw = f.read(block[3])
                if any(block[0] <= s <= block[1] for s in seqs):
                    plain = codec[2](raw) if codec else raw
                    lines = plain.splitlines(keepends=True)
                    plain = b"".join(_erased_line(line, seqs) for line in lines)
                    raw = codec[1](plain) if codec else plain
                logfile.write_all(fd, raw)
                new_blocks.append((block[0], block[1], offset, len(raw), block[4], block[5]))
                offset += len(raw)
        os.fsync(fd)
    finally:
        os.close(fd)
    shutil.copyfile(index_path, index_tmp)
    os.chmod(index_tmp, 0o600)
    index = SegmentIndex(index_tmp, writable=True)
    try:
        info = {} if sealed else {"indexed_to": str(offset)}
        index.replace(file, new_blocks, drop_keys, info)
    finally:
        index.close()
    with open(index_tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(data_tmp, data)
    os.replace(index_tmp, index_path)
    if sealed:
        for path in (data, index_path):
            path.chmod(0o444)
    logfile.fsync_dir(directory)


def _temp(path: Path) -> Path:
    return path.with_name(path.name + REWRITING)
