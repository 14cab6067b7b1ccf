"""`zns-bot audit verify | export | seal`: the history, read beside a running bot."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import IO, Any

from bot.errors import ConfigError, InputError
from bot.phones import mask_phone, normalize_phone
from bot.stores import check_data_dir
from storage.errors import StoreError
from storage.history import History, MissingStoreError, Verification

EXPORT_COLUMNS = (
    "seq",
    "ts",
    "actor",
    "action",
    "send_id",
    "phone",
    "template_id",
    "from",
    "to",
    "reason",
    "data",
    "hash",
)


ERASED = "erased"  # the phone column of a send whose personal data was erased
_CARRIERS = frozenset({"created", "archived"})  # the events that carry a send's phone


@dataclass(frozen=True)
class ExportFilter:
    """What `audit export` (or `/zns audit`) was asked for; dates are UTC days, both
    included. `actor`, `template_id` and `state` pick rows: the events done by that actor
    (as the log names them, `slack:U…`), of sends of that template, moving a send to that
    state."""

    since: date | None = None
    until: date | None = None
    phone: str | None = None
    send_id: str | None = None
    sms_id: str | None = None
    actor: str | None = None
    template_id: str | None = None
    state: str | None = None

    def describe(self, unmask: bool) -> str:
        parts = []
        if self.since or self.until:
            parts.append(f"{self.since or 'start'} to {self.until or 'now'}")
        if self.phone:
            parts.append(f"phone {self.phone if unmask else mask_phone(self.phone)}")
        if self.send_id:
            parts.append(f"send {self.send_id}")
        if self.sms_id:
            parts.append(f"SMSID {self.sms_id}")
        if self.actor:
            parts.append(f"by {self.actor}")
        if self.template_id:
            parts.append(f"template {self.template_id}")
        if self.state:
            parts.append(f"to state {self.state}")
        return f" ({', '.join(parts)})" if parts else ""

    def picks_rows(self) -> bool:
        """Whether rows are chosen one by one (beyond the day range and the sends)."""
        return bool(self.actor or self.template_id or self.state)


@dataclass(frozen=True)
class Written:
    """What `write_csv` did: rows written, and rows that matched (more when cut at a limit)."""

    rows: int
    matched: int

    @property
    def cut(self) -> bool:
        return self.matched > self.rows


def parse_day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(f"{option} expects a UTC date like 2026-12-01, got '{text}'") from None


def open_history(data_dir: Path) -> History:
    """The history read-only; a missing store is an error naming the setting, never "OK"."""
    check_data_dir(data_dir, write=False)
    try:
        return History.open(data_dir)
    except MissingStoreError as exc:
        raise ConfigError(f"{exc} (ZNS_DATA_DIR={data_dir})") from None


def verify(data_dir: Path, *, send_id: str | None = None) -> tuple[bool, str, list[str]]:
    """(ok, summary line, problems) for `audit verify` (of the whole log, or one send)."""
    history = open_history(data_dir)
    if send_id is not None:
        return _verify_send(history, send_id)
    result = history.verify()
    head = int(history.head["seq"]) if history.head else 0
    where = f"{result.segments} segment(s) and the live log, up to seq {head}"
    if result.ok:
        return (
            True,
            f"audit log OK: {result.count} events in {where}, hash chain intact; "
            f"{_content(result)}",
            [],
        )
    return False, f"audit log BROKEN ({result.count} events in {where}):", result.problems


def _content(result: Verification) -> str:
    return (
        f"content of {result.checked} send(s) matches the chain ({result.unbound} created "
        f"before content binding, {result.erased} erased)"
    )


def _verify_send(history: History, send_id: str) -> tuple[bool, str, list[str]]:
    try:
        result = history.verify_send(send_id)
    except StoreError as exc:
        raise InputError(f"--send: {exc}") from None
    if not result.ok:
        return False, f"send {send_id} BROKEN ({result.count} events):", result.problems
    if result.unbound:
        state = "created before content binding: its events are intact, its content unbound"
    elif result.erased:
        state = "erased: its events are intact, its personal data gone"
    else:
        state = "its content matches the chain"
    return True, f"send {send_id} OK: {result.count} events, each linked; {state}", []


class _SendInfo:
    """Each send's phone and template, for the export's columns, found without a full load."""

    def __init__(self, history: History) -> None:
        self._history = history
        self._known: dict[str, tuple[str, str]] = {}
        for doc in history.live_sends().values():
            self._known[str(doc["id"])] = (
                ERASED if doc.get("erased_at") else str(doc.get("phone") or ""),
                str(doc.get("template_id") or ""),
            )

    def learn(self, event: Mapping[str, Any]) -> None:
        send_id = event.get("send_id")
        if not send_id or send_id in self._known:
            return
        phone, template = _phone_and_template(event)
        if phone:
            self._known[str(send_id)] = (phone, template)

    def __getitem__(self, send_id: str) -> tuple[str, str]:
        found = self._known.get(send_id)
        if found is None:
            found = ("", "")
            for event in self._history.find("send", send_id):
                phone, template = _phone_and_template(event)
                if phone:
                    found = (phone, template or found[1])
            self._known[send_id] = found
        return found


def _phone_and_template(event: Mapping[str, Any]) -> tuple[str, str]:
    personal = event.get("personal")
    fields = personal.get("fields") if isinstance(personal, Mapping) else None
    phone = str(fields.get("phone") or "") if isinstance(fields, Mapping) else ""
    if not phone and event.get("pd") and personal is None and event.get("action") in _CARRIERS:
        phone = ERASED  # the digest of personal fields that an erasure removed
    data = event.get("data") if isinstance(event.get("data"), Mapping) else {}
    assert isinstance(data, Mapping)
    send = data.get("send") if isinstance(data.get("send"), Mapping) else data
    template = str(send.get("template_id") or "") if isinstance(send, Mapping) else ""
    return phone, template


def _selected(history: History, wanted: ExportFilter) -> Callable[[], Iterable[Any]]:
    """A way to walk the selected events (twice, for a whole range: see `write_csv`)."""
    since = wanted.since.isoformat() if wanted.since else None
    until = (wanted.until + timedelta(days=1)).isoformat() if wanted.until else None
    if not (wanted.phone or wanted.send_id or wanted.sms_id):
        return lambda: history.events(since=since, until=until)
    chosen = list(_for_sends(history, wanted, since, until))
    return lambda: chosen


def _for_sends(
    history: History, wanted: ExportFilter, since: str | None, until: str | None
) -> Iterator[Mapping[str, Any]]:
    ids: set[str] | None = None
    for found in (
        {wanted.send_id} if wanted.send_id else None,
        history.send_ids(phone=wanted.phone) if wanted.phone else None,
        history.send_ids(sms_id=wanted.sms_id) if wanted.sms_id else None,
    ):
        if found is not None:
            ids = found if ids is None else ids & found
    for event in history.for_sends(sorted(ids or ())):
        ts = str(event.get("ts", ""))
        if (since is None or ts >= since) and (until is None or ts < until):
            yield event


def export(data_dir: Path, target: str, wanted: ExportFilter, *, unmask: bool) -> str:
    """Write the selected events as CSV to `target` (a path, or "-" for standard output);
    returns the summary line. The file is created with mode 0600: it holds personal data."""
    if wanted.phone:
        wanted = replace(wanted, phone=_phone(wanted.phone))
    history = open_history(data_dir)
    with _output(target) as out:
        count = write_csv(out, history, wanted, unmask=unmask).rows
    masking = "phones unmasked" if unmask else "phones masked"
    where = "standard output" if target == "-" else target
    return f"wrote {count} audit events{wanted.describe(unmask)} to {where} ({masking})"


def export_file(
    history: History, wanted: ExportFilter, *, unmask: bool, limit: int | None
) -> tuple[Path, Written]:
    """The export into a new temporary file of mode 0600 (mkstemp's), at most `limit` rows
    (for `/zns audit`; the phone filter must already be a normalised number), which the
    caller deletes when done with it; streamed, so memory does not grow with the rows."""
    fd, name = tempfile.mkstemp(prefix="zns-audit-", suffix=".csv")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as out:
            written = write_csv(out, history, wanted, unmask=unmask, limit=limit)
    except BaseException:
        os.unlink(name)  # personal data: never left behind by a failed export
        raise
    return Path(name), written


def write_csv(
    out: IO[str],
    history: History,
    wanted: ExportFilter,
    *,
    unmask: bool,
    limit: int | None = None,
) -> Written:
    """Two walks: the first learns each send's phone and template from the events that
    carry them (created, archived), so the second writes rows without a lookup per send.
    Past `limit` rows the second walk only counts what else matches (the summary says so)."""
    events = _selected(history, wanted)
    info = _SendInfo(history)
    for event in events():
        info.learn(event)
    writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    count = matched = 0
    for event in events():
        send_id = event.get("send_id")
        phone, template = info[str(send_id)] if send_id else ("", "")
        if wanted.picks_rows() and not _picked(event, template, wanted):
            continue
        matched += 1
        if limit is not None and count >= limit:
            continue
        row = {
            **event,
            "phone": phone if unmask or phone == ERASED else mask_phone(phone),
            "template_id": template,
            "from": event.get("from_state") or "",
            "to": event.get("to_state") or "",
            "data": json.dumps(event.get("data"), ensure_ascii=False, sort_keys=True),
        }
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
        count += 1
    return Written(rows=count, matched=matched)


def _picked(event: Mapping[str, Any], template: str, wanted: ExportFilter) -> bool:
    return (
        (not wanted.actor or event.get("actor") == wanted.actor)
        and (not wanted.template_id or template == wanted.template_id)
        and (not wanted.state or event.get("to_state") == wanted.state)
    )


def _phone(text: str) -> str:
    try:
        return normalize_phone(text)
    except InputError as exc:
        raise InputError(f"--phone: {exc}") from None


@contextlib.contextmanager
def _output(target: str) -> Iterator[IO[str]]:
    if target == "-":
        yield sys.stdout
        return
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StoreError(f"cannot write {target}: {exc.strerror}") from exc
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_TRUNC otherwise
    with os.fdopen(fd, "w", newline="", encoding="utf-8") as out:
        yield out
