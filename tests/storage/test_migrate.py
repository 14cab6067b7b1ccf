"""Upgrading a data directory written by release 0.1 (tests/fixtures/release-0.1.0)."""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from storage import logfile
from storage.audit import HEAD_DOC_ID, ChainChecker
from storage.clock import iso
from storage.errors import StoreError
from storage.history import History
from storage.migrate import (
    MIGRATION_DOC_ID,
    MIGRATION_STEPS,
    SANDBOX_REASON,
    migrate_if_needed,
)
from storage.outbox import PENDING
from storage.segments import SegmentName, month_of, stream_events
from storage.sends import FINAL_STATES, PERSONAL_FIELDS
from storage.store import Store
from tests import ROOT
from tests.storage.storage_helpers import edit_table_on_disk

FIXTURE = ROOT / "tests" / "fixtures" / "release-0.1.0" / "data"
WORKER = Path(__file__).with_name("migrate_worker.py")
NOW = datetime(2026, 12, 12, 12, 0, tzinfo=UTC)  # a day after the fixture's last write
JANUARY = datetime(2027, 1, 20, 9, 0, tzinfo=UTC)  # every month of the fixture over
NOT_ARCHIVED = {*PERSONAL_FIELDS, "callback_token", "content_salt"}
# Steps that come more than once on the fixture with the worker's tiny batches.
REPEATED = (
    "scan:appended",
    "scan:indexed",
    "scan_checkpoint",
    "archive:sealing",
    "archive:seal_committed",
    "segment_sealed",
    "batch_moved",
    "archive:appended",
    "archive:indexed",
    "batch_copied",
)


@dataclass(frozen=True)
class Old:
    """The fixture as release 0.1 left it (small: loaded whole here, never by the code)."""

    sends: dict[str, dict[str, Any]]  # by send id
    send_doc_ids: dict[str, int]
    events: list[dict[str, Any]]  # in seq order
    head: dict[str, Any]
    callbacks: dict[int, dict[str, Any]]
    outbox: dict[int, dict[str, Any]]

    def personal_strings(self) -> set[bytes]:
        """Personal data of the old store, as it could appear in a file."""
        found: set[str] = set()
        for send in self.sends.values():
            found.add(send["phone"])
            found.update(send["params"].values())
            found.update(v for v in (send.get("order_id"), send.get("note")) if v)
            found.add(send["callback_token"])
        found.update(
            c["raw"]["phonenumber"] for c in self.callbacks.values() if c["raw"].get("phonenumber")
        )
        return {s.encode() for s in found}


@pytest.fixture(scope="module")
def old() -> Old:
    path = FIXTURE / "zns.db"
    data = logfile.parse(path.read_bytes(), path).data
    return Old(
        sends={doc["id"]: doc for doc in data["sends"].values()},
        send_doc_ids={doc["id"]: int(sid) for sid, doc in data["sends"].items()},
        events=[data["audit"][str(seq)] for seq in sorted(map(int, data["audit"]))],
        head=data["meta"][str(HEAD_DOC_ID)],
        callbacks={int(sid): doc for sid, doc in data["callbacks"].items()},
        outbox={int(sid): doc for sid, doc in data["outbox"].items()},
    )


def copy_fixture(tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    shutil.copytree(FIXTURE, data_dir)
    return data_dir


def is_sandbox(send: Mapping[str, Any]) -> bool:
    return send["state"] == "accepted" and send.get("sandbox") is True


def test_the_fixture_is_what_the_tests_expect(old: Old) -> None:
    assert len(old.sends) == 60
    assert len(old.events) == 294
    assert len(old.callbacks) == 58
    assert sum(item["status"] == PENDING for item in old.outbox.values()) == 46
    assert [s["id"] for s in old.sends.values() if is_sandbox(s)]
    assert {month_of(e["ts"]) for e in old.events} == {"2026-10", "2026-11", "2026-12"}


# --------------------------------------------------------------------- the check


def check_migrated(
    data_dir: Path, old: Old, *, now: datetime = NOW, live_hours: float = 48.0
) -> dict[str, Any]:
    """Everything of the old store is kept or correctly archived; returns the outcome's shape
    (what must not depend on where a crash interrupted the migration)."""
    for gone in ("zns.db", "zns.db.lock", ".migration"):
        assert not (data_dir / gone).exists(), gone
    verification = History.open(data_dir).verify()
    assert verification.ok, verification.problems
    with Store.open(data_dir, clock=lambda: now, live_hours=live_hours) as store:
        chain = _check_chain(store, old, now)
        new = chain[len(old.events) :]
        archived = {e["send_id"]: e for e in new if e["action"] == "archived"}
        assert len(archived) == len([e for e in new if e["action"] == "archived"])
        cutoff = iso(now - timedelta(hours=live_hours))
        pending_sends = {i["send_id"] for i in old.outbox.values() if i["status"] == PENDING}
        live_ids = []
        for send_id, before in old.sends.items():
            live = store.sends.find(send_id)
            if live is not None:
                assert send_id not in archived
                _check_live_send(store, before, dict(live))
                live_ids.append(send_id)
            else:
                assert not is_sandbox(before) or live_hours == 0
                assert send_id not in pending_sends
                assert before["state"] in FINAL_STATES
                assert before["updated_at"] <= cutoff
                _check_archived_send(store, before, archived[send_id])
        _check_callbacks(store, old, archived)
        live_outbox = _check_outbox(store, old, set(live_ids))
        meta = store.db.table("meta")
        record = meta.peek(MIGRATION_DOC_ID)
        assert record is not None and record["stage"] == "done"
        assert record["old_head"] == old.head
    _check_no_personal_data_in_clear(data_dir, old)
    return {
        "live": sorted(live_ids),
        "new": [(e["action"], e["send_id"], e["to_state"], e["reason"]) for e in new],
        "outbox": sorted(live_outbox),
    }


def _check_chain(store: Store, old: Old, now: datetime) -> list[dict[str, Any]]:
    """The segments, then the live log: one chain, the old events unchanged at its start."""
    segments = store.archive.segment_list()
    directory = store.archive.segments.dir
    chain: list[dict[str, Any]] = []
    for name, file, _ in segments:
        events = list(stream_events(directory / file))
        assert events, name
        # each segment holds its own month's events only
        assert {month_of(e["ts"]) for e in events} == {name.month}, name
        chain.extend(events)
    live = store.audit.live_events()
    chain.extend(dict(live[s]) for s in sorted(live, key=int))
    seqs = [e["seq"] for e in chain]
    assert seqs == list(range(1, len(chain) + 1))  # no event twice, none missing
    checker = ChainChecker()
    checker.feed_all(chain)
    checker.finish(store.db.table("meta").peek(HEAD_DOC_ID))
    assert not checker.problems, checker.problems
    assert chain[: len(old.events)] == old.events  # byte for byte: the original hashes
    # Past months sealed (their seal events after the old events), this month's current.
    this_month = month_of(iso(now))
    old_months = sorted({month_of(e["ts"]) for e in old.events})
    sealed = [name for name, _, is_sealed in segments if is_sealed]
    assert sealed == [SegmentName(m, 0) for m in old_months if m < this_month]
    seals = [e for e in chain if e["action"] == "sealed"]
    assert [e["data"]["segment"] for e in seals] == [str(n) for n in sealed]
    assert all(e["seq"] > len(old.events) for e in seals)
    return chain


def _check_live_send(store: Store, before: Mapping[str, Any], live: dict[str, Any]) -> None:
    if is_sandbox(before):
        assert live["state"] == "sandboxed"
        moved = [e for e in store.audit.for_send(before["id"]) if e["to_state"] == "sandboxed"]
        events = moved or [
            e for e in store.archive.find("send", before["id"]) if e["to_state"] == "sandboxed"
        ]
        assert [(e["actor"], e["reason"]) for e in events] == [("migration", SANDBOX_REASON)]
        assert live["final_at"] == live["updated_at"]
        live = {k: v for k, v in live.items() if k not in ("state", "version", "updated_at")}
        live.pop("final_at")
        before = {k: v for k, v in before.items() if k not in ("state", "version", "updated_at")}
    assert live == before


def _check_archived_send(store: Store, before: Mapping[str, Any], event: dict[str, Any]) -> None:
    found = [e for e in store.archive.find("send", before["id"]) if e["action"] == "archived"]
    assert found == [event]  # found by id in the segments, without reading them whole
    assert event["data"]["send"] == {k: v for k, v in before.items() if k not in NOT_ARCHIVED}
    personal = event["personal"]["fields"]
    assert {k: personal[k] for k in PERSONAL_FIELDS if k in personal} == {
        k: before[k] for k in PERSONAL_FIELDS if before.get(k)
    }
    assert event["personal"]["salt"]  # a fresh one: release 0.1 sends had none
    assert [e["send_id"] for e in store.archive.find("phone", before["phone"])].count(
        before["id"]
    ) == 1


def _check_callbacks(store: Store, old: Old, archived: Mapping[str, dict[str, Any]]) -> None:
    live = store.db.table("callbacks").raw_docs()
    by_sms = {e["data"].get("sms_id"): e for e in archived.values()}
    for doc_id, callback in old.callbacks.items():
        if str(doc_id) in live:
            assert live[str(doc_id)] == callback
            assert store.sends.by_sms_id(callback["sms_id"]) is not None
            continue
        event = by_sms[callback["sms_id"]]
        raw = {k: v for k, v in callback["raw"].items() if k != "phonenumber"}
        kept = [c for c in event["data"]["callbacks"] if c["raw"] == raw]
        assert len(kept) == 1, callback
        assert kept[0]["received_at"] == callback["received_at"]
        phone = callback["raw"].get("phonenumber")
        if phone:
            assert phone in event["personal"]["fields"]["callback_phones"]


def _check_outbox(store: Store, old: Old, live_ids: set[str]) -> dict[str, Any]:
    live = store.db.table("outbox").raw_docs()
    pending = {i: item for i, item in old.outbox.items() if item["status"] == PENDING}
    assert {int(i) for i in live} == set(pending)  # every pending item, no done one
    for doc_id, item in pending.items():
        assert live[str(doc_id)] == item
        assert item["send_id"] in live_ids  # a send with a pending post stays
    return dict(live)


def _check_no_personal_data_in_clear(data_dir: Path, old: Old) -> None:
    """Only live.db and the segments' `personal` fields hold personal data."""
    secrets = old.personal_strings()
    checked = 0
    for path in sorted(data_dir.rglob("*")):
        if not path.is_file() or path.name == "live.db":
            continue
        if SegmentName.of_file(path.name) is not None:
            blob = b"\n".join(
                orjson.dumps({k: v for k, v in event.items() if k != "personal"})
                for event in stream_events(path)
            )
            assert not any(s in path.read_bytes() for s in secrets if path.suffix != ".jsonl")
        else:
            blob = path.read_bytes()  # the segments' indexes, the lock files...
        leaked = [s for s in secrets if s in blob]
        assert not leaked, (path, leaked[:3])
        checked += 1
    assert checked >= 5


# --------------------------------------------------------------------- clean runs


@pytest.mark.parametrize(
    ("now", "live_hours", "compression"),
    [(NOW, 48.0, "gzip"), (JANUARY, 0.0, None), (NOW, 24.0, "xz")],
)
def test_store_open_migrates_the_release_0_1_data_directory(
    tmp_path: Path, old: Old, now: datetime, live_hours: float, compression: str | None
) -> None:
    data_dir = copy_fixture(tmp_path)
    with Store.open(data_dir, clock=lambda: now, live_hours=live_hours, compression=compression):
        pass
    shape = check_migrated(data_dir, old, now=now, live_hours=live_hours)
    assert len(shape["outbox"]) == 46
    if now == JANUARY:
        # every month over: all three sealed, the new events in January's segment
        with Store.open(data_dir, clock=lambda: now) as store:
            assert store.archive.state["current"] == "2027-01.0"  # type: ignore[index]


def test_the_report_counts_everything(tmp_path: Path, old: Old) -> None:
    data_dir = copy_fixture(tmp_path)
    report = migrate_if_needed(data_dir, clock=lambda: NOW, live_hours=48.0, compression="gzip")
    assert report is not None
    assert (report.sends, report.events, report.callbacks) == (60, 294, 58)
    assert (report.outbox_pending, report.outbox_done) == (46, len(old.outbox) - 46)
    assert report.live_sends + report.archived_sends == 60
    assert report.archived_sends > 40  # most of the fixture's sends are long final
    assert report.sandboxed == 1
    assert report.segments == ["2026-10.0", "2026-11.0", "2026-12.0"]
    assert report.sealed == ["2026-10.0", "2026-11.0"]  # December is this month
    assert report.orphan_callbacks == 0
    assert report.chain_ok and not report.resumed
    # nothing left to do: a second call, and a plain open, change nothing
    assert migrate_if_needed(data_dir, clock=lambda: NOW, live_hours=48.0, compression=None) is None
    shape = check_migrated(data_dir, old)
    assert len(shape["live"]) == report.live_sends


def test_the_log_says_when_it_starts_and_ends_and_names_no_one(
    tmp_path: Path, old: Old, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = copy_fixture(tmp_path)
    with caplog.at_level(logging.INFO, logger="storage.migrate"):
        migrate_if_needed(data_dir, clock=lambda: NOW, live_hours=48.0, compression=None)
    lines = [r.getMessage() for r in caplog.records if r.name == "storage.migrate"]
    assert len(lines) == 2
    assert lines[0].startswith("migrating ") and lines[1].startswith("migrated ")
    assert "60 sends" in lines[1] and "294 audit events" in lines[1]
    text = caplog.text.encode()
    assert not [s for s in old.personal_strings() if s in text]


def test_the_old_file_is_streamed_never_parsed_whole(
    tmp_path: Path, old: Old, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_: object) -> None:
        raise AssertionError("the old store was loaded whole")

    monkeypatch.setattr(logfile, "parse", refuse)
    data_dir = copy_fixture(tmp_path)
    report = migrate_if_needed(data_dir, clock=lambda: NOW, live_hours=48.0, compression=None)
    assert report is not None and report.events == 294
    monkeypatch.undo()
    check_migrated(data_dir, old)


def test_a_torn_last_line_is_ignored_as_release_0_1_did(tmp_path: Path, old: Old) -> None:
    data_dir = copy_fixture(tmp_path)
    with (data_dir / "zns.db").open("ab") as f:
        f.write(b'[["p","sends","999",{"id":"never-acknowledged","phone":"0901234567"')
    report = migrate_if_needed(data_dir, clock=lambda: NOW, live_hours=48.0, compression=None)
    assert report is not None and report.sends == 60
    check_migrated(data_dir, old)


def test_a_broken_old_chain_is_migrated_as_it_is_and_reported(tmp_path: Path, old: Old) -> None:
    data_dir = copy_fixture(tmp_path)

    def edit(doc_id: int, event: dict[str, Any]) -> dict[str, Any]:
        return {**event, "reason": "edited behind the log's back"} if doc_id == 100 else event

    edit_table_on_disk(data_dir / "zns.db", "audit", edit)
    report = migrate_if_needed(data_dir, clock=lambda: NOW, live_hours=48.0, compression=None)
    assert report is not None and not report.chain_ok
    edited = (
        f"event seq 100 (send {old.events[99]['send_id']}) was edited: its hash does not match it"
    )
    assert report.chain_problems == [edited]
    assert report.events == 294
    verification = History.open(data_dir).verify()
    assert verification.problems == [edited]
    with Store.open(data_dir, clock=lambda: NOW) as store:
        event = store.archive.find("send", old.events[99]["send_id"])
        assert [e["reason"] for e in event if e["seq"] == 100] == ["edited behind the log's back"]


def _append_ops(path: Path, *lines: list[list[Any]]) -> None:
    with path.open("ab") as f:
        for ops in lines:
            f.write(orjson.dumps(ops) + b"\n")


def test_callbacks_and_posts_of_no_send_and_deletes_are_migrated(tmp_path: Path, old: Old) -> None:
    data_dir = copy_fixture(tmp_path)
    first = next(iter(old.sends.values()))
    late = "2026-12-12T11:00:00.000000+00:00"  # within live_hours: stays live
    stray = {"sms_id": "nope", "send_status": "5", "valid": True, "reason": ""}
    _append_ops(
        data_dir / "zns.db",
        [
            [
                "p",
                "callbacks",
                "900",
                {
                    **stray,
                    "raw": {"SMSID": "nope", "phonenumber": "84911112222"},
                    "received_at": "2026-11-01T00:00:00.000000+00:00",
                    "dedupe_key": '["nope", "5"]',
                },
            ]
        ],
        [
            [
                "p",
                "callbacks",
                "901",
                {
                    **stray,
                    "sms_id": None,
                    "valid": False,
                    "raw": {"phonenumber": "84933334444"},
                    "received_at": late,
                    "dedupe_key": None,
                },
            ]
        ],
        [
            [
                "p",
                "outbox",
                "900",
                {**old.outbox[1], "key": "notice", "send_id": None, "status": PENDING},
            ]
        ],
        [["d", "sends", str(old.send_doc_ids[first["id"]])]],
    )
    report = migrate_if_needed(data_dir, clock=lambda: NOW, live_hours=48.0, compression=None)
    assert report is not None
    # the deleted send's own callback matches no send any more either
    assert (report.sends, report.callbacks, report.orphan_callbacks) == (59, 60, 3)
    assert report.outbox_pending == 47
    with Store.open(data_dir, clock=lambda: NOW) as store:
        assert store.sends.find(first["id"]) is None
        assert not [e for e in store.archive.find("send", first["id"]) if e["action"] == "archived"]
        kept = store.archive.find("sms", "nope")
        assert [e["action"] for e in kept] == ["callback_kept"]
        assert kept[0]["personal"]["fields"] == {"phonenumber": "84911112222"}
        assert "phonenumber" not in kept[0]["data"]["callback"]["raw"]
        assert store.db.table("callbacks").peek(901) is not None  # recent: the archive waits
        assert store.outbox.view(900) is not None
    for path in data_dir.rglob("*.idx"):
        assert b"84911112222" not in path.read_bytes()
    assert History.open(data_dir).verify().ok


def test_a_file_release_0_1_did_not_write_is_refused_before_anything_is_created(
    tmp_path: Path,
) -> None:
    (tmp_path / "zns.db").write_bytes(b'{"sends": {"1": {"id": "x", "phone": "0901234567"}}}')
    with pytest.raises(StoreError, match=r"not a zns-bot 0\.1 store"):
        Store.open(tmp_path, clock=lambda: NOW)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zns.db", "zns.db.lock"]


def test_a_data_directory_with_both_stores_and_no_migration_is_refused(tmp_path: Path) -> None:
    data_dir = copy_fixture(tmp_path)
    with Store.open(tmp_path / "other"):
        pass
    shutil.copy(tmp_path / "other" / "live.db", data_dir / "live.db")
    with pytest.raises(StoreError, match=r"both a release 0\.1 store"):
        Store.open(data_dir, clock=lambda: NOW)
    assert (data_dir / "zns.db").exists()


def test_a_new_data_directory_has_nothing_to_migrate(tmp_path: Path) -> None:
    assert migrate_if_needed(tmp_path, clock=lambda: NOW, live_hours=48, compression=None) is None
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------- crashes


def run_worker(data_dir: Path, *args: str) -> int:
    proc = subprocess.run(
        [sys.executable, str(WORKER), str(data_dir), NOW.isoformat(), "48", "gzip", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode in (0, -signal.SIGKILL), proc.stderr
    return proc.returncode


@pytest.fixture(scope="module")
def clean_shape(tmp_path_factory: pytest.TempPathFactory, old: Old) -> dict[str, Any]:
    data_dir = copy_fixture(tmp_path_factory.mktemp("clean"))
    assert run_worker(data_dir, "--at", "none") == 0  # the same tiny batches, no crash
    return check_migrated(data_dir, old)


CRASH_POINTS = [(step, 1) for step in MIGRATION_STEPS] + [(step, 2) for step in REPEATED]


@pytest.mark.parametrize(("step", "nth"), CRASH_POINTS, ids=[f"{s}-{n}" for s, n in CRASH_POINTS])
def test_killed_at_a_step_the_next_open_finishes_it(
    tmp_path: Path, old: Old, clean_shape: dict[str, Any], step: str, nth: int
) -> None:
    data_dir = copy_fixture(tmp_path)
    assert run_worker(data_dir, "--at", step, "--nth", str(nth)) == -signal.SIGKILL
    if step != "cleaned":
        assert (data_dir / ".migration").exists()
    # Store.open (in check_migrated, after History refuses a store not migrated yet) resumes
    with Store.open(data_dir, clock=lambda: NOW):
        pass
    assert check_migrated(data_dir, old) == clean_shape


def test_killed_again_and_again_it_still_finishes_once(
    tmp_path: Path, old: Old, clean_shape: dict[str, Any]
) -> None:
    data_dir = copy_fixture(tmp_path)
    kills = 0
    while run_worker(data_dir, "--after", "4") == -signal.SIGKILL:
        kills += 1
        assert kills < 200
    assert kills > 10
    assert check_migrated(data_dir, old) == clean_shape


def test_an_old_file_changed_during_the_migration_is_refused(tmp_path: Path) -> None:
    data_dir = copy_fixture(tmp_path)
    assert run_worker(data_dir, "--at", "scanned") == -signal.SIGKILL
    with (data_dir / "zns.db").open("ab") as f:  # release 0.1 run again meanwhile
        f.write(b'[["p","meta","1",{"key":"audit_head","seq":0,"hash":""}]]\n')
    with pytest.raises(StoreError, match="changed since its migration began"):
        Store.open(data_dir, clock=lambda: NOW)
    assert (data_dir / "zns.db").exists()
