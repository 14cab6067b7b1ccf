"""The audit history read-only, beside a running bot: verify, look up and stream events."""

# Nothing here writes, truncates, deletes, locks or creates a file. The live store is read
# once, as bytes, up to its last complete line; then the segments it names are streamed
# one at a time. Reading the live store first makes the walk consistent with a bot that
# keeps archiving meanwhile: every event the live read does not hold was already in a
# segment when it was read (events are copied before they leave the live log), and
# anything appended after it (beyond the head it records) is left out, not reported.

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storage import logfile
from storage.archive import find_events
from storage.archiver import ARCHIVE_DOC_ID
from storage.audit import ARCHIVED_DOC_ID, HEAD_DOC_ID, ChainChecker, event_problem
from storage.content import ERASED_ACTION, ContentChecker
from storage.errors import StoreError
from storage.segments import (
    CODECS,
    DIR_NAME,
    RunningDigest,
    SegmentIndex,
    SegmentName,
    key_hash,
    read_block,
    same_digest,
    stream_events,
)
from storage.store import FILE_NAME

if TYPE_CHECKING:
    from storage.store import Store

LEGACY_FILE = "zns.db"
LIVE_TABLES = frozenset({"meta", "audit", "sends"})  # what a History reads of the live store


class MissingStoreError(StoreError):
    """There is no zns-bot store where one was expected."""


@dataclass
class Verification:
    ok: bool
    count: int
    segments: int
    problems: list[str] = field(default_factory=list)
    checked: int = 0  # sends whose record matches the content chained at their creation
    unbound: int = 0  # sends created before content binding (release 0.2 and older)
    erased: int = 0  # sends whose personal data an erasure removed


@dataclass(frozen=True)
class _Segment:
    name: SegmentName
    file: str
    sealed: bool


class History:
    """One consistent read of a data directory's audit history."""

    def __init__(self, data_dir: Path, live: Mapping[str, Mapping[str, Any]]) -> None:
        self.data_dir = data_dir
        self.dir = data_dir / DIR_NAME
        self._live = live
        meta = live.get("meta", {})
        self.head: Mapping[str, Any] | None = meta.get(str(HEAD_DOC_ID))
        archived = meta.get(str(ARCHIVED_DOC_ID)) or {}
        self.archived_upto = int(archived.get("seq", 0))
        self.state: Mapping[str, Any] = meta.get(str(ARCHIVE_DOC_ID)) or {}
        secret = self.state.get("secret")
        self.secret = bytes.fromhex(secret) if secret else b""
        self.segments = self._segment_list()

    @classmethod
    def open(cls, data_dir: Path | str) -> History:
        """Read the live store (read-only, unlocked); MissingStoreError when there is none."""
        data_dir = Path(data_dir)
        if not data_dir.is_dir():
            raise MissingStoreError(f"the data directory {data_dir} does not exist")
        path = data_dir / FILE_NAME
        if not path.exists():
            if (data_dir / LEGACY_FILE).exists():
                raise MissingStoreError(
                    f"the store in {data_dir} was written by zns-bot 0.1 and has not been "
                    "migrated yet: the next `zns-bot serve` migrates it"
                )
            raise MissingStoreError(f"there is no zns-bot store in {data_dir}")
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise StoreError(f"cannot read the store at {path}: {exc.strerror}") from exc
        # A write in flight is cut at the last newline, as a reopen would: nothing is fixed.
        # the small tables only: the sends (for export's joins), never the callbacks or outbox
        return cls(data_dir, logfile.parse(raw, path, LIVE_TABLES).data)

    @classmethod
    def of_store(cls, store: Store) -> History:
        """The running store's history from its memory, not its file: for the bot itself.

        Call it on the store's thread (the event loop); the History it returns may then be
        read from any thread. The tables are copied shallowly: the store replaces a
        document, never changes one in place, so the copy stays the one consistent read
        that `open` makes of the file, at the cost of one dict copy per table.
        """
        storage = store.db.storage
        live = {name: dict(storage.table_data(name)) for name in LIVE_TABLES}
        return cls(store.data_dir, live)

    def _segment_list(self) -> list[_Segment]:
        found = [
            _Segment(SegmentName.parse(s["segment"]), str(s["file"]), True)
            for s in self.state.get("sealed", [])
        ]
        current = self.state.get("current")
        if current:
            name = SegmentName.parse(current)
            found.append(_Segment(name, name.data_file(), False))
        return found

    def _path(self, segment: _Segment) -> Path | None:
        """The file holding the segment now: sealed and compressed meanwhile, it moved."""
        path = self.dir / segment.file
        if path.exists():
            return path
        for codec in CODECS.values():
            moved = self.dir / segment.name.data_file(codec[0])
            if moved.exists():
                return moved
        return None

    # ----------------------------------------------------------------- events

    def live_events(self) -> list[Mapping[str, Any]]:
        """Events the live read holds beyond the archive, up to its head, in seq order."""
        events = self._live.get("audit", {})
        stop = int(self.head["seq"]) if self.head else 0
        seqs = sorted(int(s) for s in events)
        return [events[str(s)] for s in seqs if self.archived_upto < s <= stop]

    def _segment_events(self, segment: _Segment) -> Iterator[Mapping[str, Any]]:
        path = self._path(segment)
        if path is None:
            return
        for event in stream_events(path):
            if int(event.get("seq", 0)) > self.archived_upto:
                return  # the live read holds it (copied, not yet dropped, when read)
            yield event

    def events(self, *, since: str | None = None, until: str | None = None) -> Iterator[Any]:
        """Every event in seq order, segment by segment, optionally by ts (ISO prefixes)."""
        for segment in self.segments:
            # a segment holds the events of its own month only (a new month starts a new one)
            if since and segment.name.month < since[:7]:
                continue
            if until and segment.name.month > until[:7]:
                break
            yield from _in_range(self._segment_events(segment), since, until)
        yield from _in_range(self.live_events(), since, until)

    # ----------------------------------------------------------------- lookups

    def find(self, kind: str, value: str) -> list[Mapping[str, Any]]:
        """Events of the segments answering a lookup (send, sms, phone, token) and the live
        events that match it, in seq order."""
        archived: list[Mapping[str, Any]] = []
        if self.secret:
            segments = [
                (s.name, p.name, s.sealed)
                for s in self.segments
                if (p := self._path(s)) is not None
            ]
            archived = [
                e
                for e in find_events(self.dir, segments, key_hash(self.secret, kind, value))
                if int(e["seq"]) <= self.archived_upto and _answers(e, kind, value)
            ]
        live = [e for e in self.live_events() if _answers(e, kind, value)]
        return [*archived, *live]

    def live_sends(self) -> Mapping[str, Mapping[str, Any]]:
        return self._live.get("sends", {})

    def send_ids(self, *, phone: str | None = None, sms_id: str | None = None) -> set[str]:
        """The sends to a phone or with an SMSID, live or archived."""
        kind, value, field_name = ("phone", phone, "phone") if phone else ("sms", sms_id, "sms_id")
        assert value is not None
        ids = {str(e["send_id"]) for e in self.find(kind, value) if e.get("send_id")}
        ids.update(
            str(doc["id"]) for doc in self.live_sends().values() if doc.get(field_name) == value
        )
        return ids

    def for_sends(self, send_ids: Iterable[str]) -> list[Mapping[str, Any]]:
        """Every event of these sends, in seq order."""
        found: dict[int, Mapping[str, Any]] = {}
        for send_id in send_ids:
            for event in self.find("send", send_id):
                found[int(event["seq"])] = event
        return [found[s] for s in sorted(found)]

    # ----------------------------------------------------------------- verify

    def verify(self) -> Verification:
        """Walk the chain across every segment and the live log, in bounded memory."""
        stop = int(self.head["seq"]) if self.head else 0
        checker = ChainChecker(stop=stop)
        content = ContentChecker()
        problems = checker.problems
        walked: dict[str, tuple[int, int, str, str, int]] = {}
        seals: list[tuple[int, Mapping[str, Any]]] = []
        for segment in self.segments:
            path = self._path(segment)
            if path is None:
                problems.append(f"the audit segment {segment.name} is missing ({segment.file})")
                continue
            stats = _SegmentStats()
            try:
                for event in stream_events(path):
                    stats.add(event)
                    if int(event.get("seq", 0)) <= self.archived_upto:
                        checker.feed(event)
                        content.feed(event)
                        _note_seal(event, seals)
            except (StoreError, ValueError, OSError, EOFError) as exc:
                problems.append(f"the audit segment {segment.name} cannot be read: {exc}")
            walked[str(segment.name)] = stats.result()
        for live in self.live_events():
            if checker.feed(live):
                content.feed(live)
            _note_seal(live, seals)
        checker.finish(self.head)
        content.finish(self.live_sends().values())
        problems.extend(content.problems)
        problems.extend(self._check_seals(walked, seals))
        problems.extend(self._unexpected_files())
        return Verification(
            ok=not problems,
            count=checker.count,
            segments=len(self.segments),
            problems=problems,
            checked=content.checked,
            unbound=content.unbound,
            erased=content.erased,
        )

    def verify_send(self, send_id: str) -> Verification:
        """One send, through the indexes: each of its events on its own and linked to the
        one before it, and its record against the content chained at its creation."""
        events = self.find("send", send_id)
        live = [doc for doc in self.live_sends().values() if doc.get("id") == send_id]
        if not events and not live:
            raise StoreError(f"no send with id {send_id} in the audit log")
        content = ContentChecker()
        problems: list[str] = []
        for event in events:
            problem = event_problem(event)
            seq = int(event["seq"])
            before = self.event_at(seq - 1) if seq > 1 else None
            if problem is not None:
                problems.append(problem)
            elif seq > 1 and (before is None or before.get("hash") != event.get("prev")):
                problems.append(
                    f"event seq {seq} does not link to seq {seq - 1} "
                    "(one of them was altered, replaced or removed)"
                )
            content.feed(event)
        content.finish(live)
        problems.extend(content.problems)
        return Verification(
            ok=not problems,
            count=len(events),
            segments=len(self.segments),
            problems=problems,
            checked=content.checked,
            unbound=content.unbound,
            erased=content.erased,
        )

    def event_at(self, seq: int) -> Mapping[str, Any] | None:
        """The event with this seq (one block read), or None if no segment or live read
        holds it."""
        if seq > self.archived_upto:
            return self._live.get("audit", {}).get(str(seq))
        for segment in reversed(self.segments):
            path = self._path(segment)
            index_path = self.dir / segment.name.index_file()
            if path is None or not index_path.exists():
                continue
            try:
                index = SegmentIndex(index_path, sealed=segment.sealed)
                try:
                    block = index.block_of(path.name, seq)
                finally:
                    index.close()
                if block is not None:
                    found = read_block(path, *block, {seq})
                    return found[0] if found else None
            except (StoreError, OSError, ValueError, EOFError):
                continue
        return None

    def _check_seals(
        self,
        walked: Mapping[str, tuple[int, int, str, str, int]],
        seals: list[tuple[int, Mapping[str, Any]]],
    ) -> list[str]:
        problems: list[str] = []
        sealed_by_event = set()
        for seq, data in seals:
            name = str(data.get("segment"))
            sealed_by_event.add(name)
            stats = walked.get(name)
            if stats is None:
                problems.append(f"the seal at seq {seq} names segment {name}, which is missing")
                continue
            first, last, last_hash, digest, count = stats
            recorded = (data.get("first"), data.get("last"), data.get("count"))
            if recorded != (first, last, count) or data.get("last_hash") != last_hash:
                problems.append(
                    f"segment {name} does not hold what its seal (seq {seq}) records: "
                    f"{data.get('count')} events {data.get('first')}-{data.get('last')}, it "
                    f"holds {count} events {first}-{last}"
                    + ("" if data.get("last_hash") == last_hash else " ending in another event")
                )
            elif not same_digest(str(data.get("digest")), digest):
                problems.append(
                    f"segment {name} was altered after it was sealed (seal at seq {seq})"
                )
        for segment in self.segments:
            if segment.sealed and str(segment.name) not in sealed_by_event:
                problems.append(f"segment {segment.name} has no seal event in the chain")
        return problems

    def _unexpected_files(self) -> list[str]:
        known = {s.name for s in self.segments}
        problems = []
        if self.dir.is_dir():
            for path in sorted(self.dir.iterdir()):
                parsed = SegmentName.of_file(path.name)
                if parsed is not None and parsed[0] not in known:
                    newer = self.segments and parsed[0] > self.segments[-1].name
                    if not newer:  # a newer one was started after the live read
                        problems.append(f"{path.name} is not a segment of this audit log")
        return problems


class _SegmentStats:
    __slots__ = ("count", "digest", "first", "last", "last_hash")

    def __init__(self) -> None:
        self.first = self.last = self.count = 0
        self.last_hash = ""
        self.digest = RunningDigest()

    def add(self, event: Mapping[str, Any]) -> None:
        seq = int(event.get("seq", 0))
        self.first = self.first or seq
        self.last, self.last_hash = seq, str(event.get("hash", ""))
        self.count += 1
        self.digest.update(self.last_hash)

    def result(self) -> tuple[int, int, str, str, int]:
        return self.first, self.last, self.last_hash, self.digest.hexdigest(), self.count


def _note_seal(event: Mapping[str, Any], seals: list[tuple[int, Mapping[str, Any]]]) -> None:
    if event.get("action") == "sealed" and isinstance(event.get("data"), Mapping):
        seals.append((int(event["seq"]), event["data"]))


def _answers(event: Mapping[str, Any], kind: str, value: str) -> bool:
    """Whether an event really carries the looked-up value (index keys may collide)."""
    data = event.get("data") if isinstance(event.get("data"), Mapping) else {}
    if kind == "send":
        if event.get("action") == ERASED_ACTION:
            return value in (data.get("send_ids") or ())  # type: ignore[union-attr]
        return event.get("send_id") == value
    if kind == "sms":
        return data.get("sms_id") == value  # type: ignore[union-attr]
    if kind == "token":
        return data.get("token_digest") == value  # type: ignore[union-attr]
    personal = event.get("personal")
    fields = personal.get("fields") if isinstance(personal, Mapping) else None
    return isinstance(fields, Mapping) and fields.get("phone") == value


def _in_range(
    events: Iterable[Mapping[str, Any]], since: str | None, until: str | None
) -> Iterator[Mapping[str, Any]]:
    for event in events:
        ts = str(event.get("ts", ""))
        if since and ts < since:
            continue
        if until and ts >= until:
            continue
        yield event
