"""The archive pass: what leaves the live store, when, and how history stays answerable."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from storage import archiver
from storage.archive import COPY_STEPS, SEAL_STEPS
from storage.history import History
from storage.segments import stream_events
from storage.sends import SendState
from storage.store import Store
from tests import ROOT
from tests.storage.storage_helpers import FakeClock

DELIVERED_PATH = (SendState.APPROVED, SendState.SUBMITTING, SendState.ACCEPTED)
WORKER = Path(__file__).with_name("archive_crash_worker.py")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 20, 9, 0, tzinfo=UTC))


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[Store]:
    with Store.open(tmp_path / "data", clock=clock, live_hours=48, compression="gzip") as s:
        yield s


def _delivered(store: Store, n: int, *, outbox: bool = False) -> str:
    send = store.sends.create(
        {
            "phone": f"0901{n:06d}",
            "template_id": "203435",
            "params": {"name": f"Khach {n}"},
            "order_id": f"DH{n}",
            "callback_token": f"token-{n}",
        },
        actor="slack:U1",
    )
    for state in DELIVERED_PATH:
        fields = {"sms_id": f"sms-{n}"} if state == SendState.ACCEPTED else {}
        store.sends.transition(send["id"], state, actor="system", **fields)
    store.callbacks.record(f"sms-{n}", "5", {"SMSID": f"sms-{n}", "phonenumber": f"8490{n}"})
    store.sends.transition(send["id"], SendState.DELIVERED, actor="esms-callback")
    if outbox:
        store.outbox.add(
            "thread", {"state": "delivered"}, key=f"{send['id']}:t", send_id=send["id"]
        )
    return send["id"]


def test_a_final_send_stays_live_hours_then_leaves_whole(store: Store, clock: FakeClock) -> None:
    send_id = _delivered(store, 1)
    clock.advance(47 * 3600)
    assert store.archive.run_sync().sends == 0
    assert store.sends.find(send_id) is not None
    clock.advance(3600)
    report = store.archive.run_sync()
    assert (report.sends, report.callbacks) == (1, 1)
    assert store.sends.find(send_id) is None
    assert store.callbacks.count() == 0
    assert store.audit.live_events() == {}  # every event is in the segment now
    (archived,) = [e for e in store.archive.find("send", send_id) if e["action"] == "archived"]
    assert archived["data"]["send"]["state"] == "delivered"
    assert "phone" not in archived["data"]["send"]  # personal: beside the event, not in it
    assert "callback_token" not in archived["data"]["send"]
    assert archived["personal"]["fields"]["phone"] == "0901000001"
    assert archived["personal"]["fields"]["callback_phones"] == ["84901"]
    assert archived["data"]["callbacks"][0]["raw"] == {"SMSID": "sms-1"}


def test_archived_sends_are_found_by_id_sms_id_phone_and_token(
    store: Store, clock: FakeClock
) -> None:
    ids = [_delivered(store, n) for n in range(30)]
    clock.advance(49 * 3600)
    store.archive.run_sync()
    assert {e["send_id"] for e in store.archive.find("sms", "sms-7")} == {ids[7]}
    by_phone = store.archive.find("phone", "0901000012")
    assert {e["action"] for e in by_phone} == {"created", "archived"}
    assert {e["send_id"] for e in by_phone} == {ids[12]}
    found = store.archive.find_by_token("token-29")
    assert found is not None and found["send_id"] == ids[29]
    assert store.archive.find_by_token("token-unknown") is None
    events = store.archive.find("send", ids[3])
    assert [e["action"] for e in events] == ["created", *["transition"] * 4, "archived"]


def test_a_send_with_a_pending_post_stays_until_it_is_done(store: Store, clock: FakeClock) -> None:
    send_id = _delivered(store, 1, outbox=True)
    clock.advance(72 * 3600)
    assert store.archive.run_sync().sends == 0
    assert store.sends.find(send_id) is not None
    (item,) = store.outbox.due(clock())
    store.outbox.mark_done(item["id"], {"ok": True})
    report = store.archive.run_sync()
    assert (report.sends, report.outbox) == (1, 0)  # the send took its done item with it
    assert store.db.table("outbox").raw_docs() == {}


def test_done_posts_of_live_sends_leave_at_the_next_pass(store: Store) -> None:
    send = store.sends.create({"phone": "0901888484"}, actor="U1")
    store.outbox.add("card", {}, key="a", send_id=send["id"])
    store.outbox.add("card", {}, key="b", send_id=send["id"])
    first = store.outbox.due(store.clock())[0]
    store.outbox.mark_done(first["id"], {"ok": True})
    assert store.archive.run_sync().outbox == 1
    assert store.outbox.depth() == 1 and store.sends.find(send["id"]) is not None


def test_a_stuck_send_leaves_after_its_reconcile_gave_up(store: Store, clock: FakeClock) -> None:
    send = store.sends.create({"phone": "0901888484"}, actor="U1")
    for state in (SendState.APPROVED, SendState.SUBMITTING, SendState.UNKNOWN):
        store.sends.transition(send["id"], state, actor="system")
    clock.advance(72 * 3600)
    assert store.archive.run_sync().sends == 0  # unknown, still being reconciled
    store.sends.update_fields(send["id"], reconcile_stopped=clock().isoformat())
    clock.advance(49 * 3600)
    assert store.archive.run_sync().sends == 1


def test_live_hours_zero_means_at_the_next_pass(tmp_path: Path, clock: FakeClock) -> None:
    with Store.open(tmp_path, clock=clock, live_hours=0) as store:
        send_id = _delivered(store, 1)
        assert store.archive.run_sync().sends == 1
        assert store.sends.find(send_id) is None


def test_a_big_pass_copies_as_it_goes(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sends leaving at once (after an outage, say) never pile up their events in memory:
    the pass copies a batch to the segment as soon as one is ready."""
    monkeypatch.setattr(archiver, "SLICE", 5)
    monkeypatch.setattr(archiver, "COPY_BATCH", 10)
    sends = [_delivered(store, n) for n in range(60)]
    store.archive.run_sync()  # their events so far go to the segment; the sends stay
    clock.advance(49 * 3600)
    live_at_copy: list[int] = []
    append = store.archive.segments.append

    def counting(events: list[Any]) -> Any:
        live_at_copy.append(len(store.audit.live_events()))
        return append(events)

    monkeypatch.setattr(store.archive.segments, "append", counting)
    report = store.archive.run_sync()
    assert report.sends == len(sends) and report.events == len(sends)
    assert len(live_at_copy) >= len(sends) // 15
    assert max(live_at_copy) < 10 + 5  # a batch, plus the slice that completed it
    assert all(store.sends.find(s) is None for s in sends)
    assert len(store.archive.find("send", sends[-1])) > 0


def test_orphan_callbacks_are_kept_in_the_log(store: Store, clock: FakeClock) -> None:
    store.callbacks.record(
        "nobody",
        "5",
        {"SMSID": "nobody", "phonenumber": "84999"},
        valid=False,
        reason="no such send",
    )
    clock.advance(49 * 3600)
    assert store.archive.run_sync().callbacks == 1
    (kept,) = [e for e in store.archive.find("sms", "nobody")]
    assert kept["action"] == "callback_kept" and kept["personal"]["fields"] == {
        "phonenumber": "84999"
    }


def test_a_past_month_is_sealed_read_only_and_compressed(store: Store, clock: FakeClock) -> None:
    ids = [_delivered(store, n) for n in range(5)]
    store.archive.run_sync()
    clock.now = datetime(2026, 12, 1, 0, 5, tzinfo=UTC)
    report = store.archive.run_sync()
    assert report.sealed == ["2026-11.0"]
    audit_dir = store.data_dir / "audit"
    sealed = audit_dir / "2026-11.0.jsonl.gz"
    assert not (audit_dir / "2026-11.0.jsonl").exists()
    assert sealed.stat().st_mode & 0o777 == 0o444
    assert (audit_dir / "2026-11.0.idx").stat().st_mode & 0o777 == 0o444
    with gzip.open(sealed) as f:  # one stream to gzip, though written as members per block
        assert f.readline().startswith(b'{"format":"zns-audit-segment"')
    # the seal event starts December's segment (with the sends' "archived" events, made on
    # December 1st), and each send is found across both
    (seal,) = [e for e in stream_events(audit_dir / "2026-12.0.jsonl") if e["action"] == "sealed"]
    assert seal["data"]["segment"] == "2026-11.0" and seal["data"]["count"] == 5 * 5
    months = [e["ts"][:7] for e in store.archive.find("send", ids[0])]
    assert months == ["2026-11"] * 5 + ["2026-12"]  # created, 4 transitions, archived
    assert History.open(store.data_dir).verify().ok


@pytest.mark.parametrize("compression", ["gzip", "bz2", "xz", None])
def test_audit_seal_starts_a_new_part_of_the_same_month(
    tmp_path: Path, clock: FakeClock, compression: str | None
) -> None:
    with Store.open(tmp_path, clock=clock, compression=compression, live_hours=0) as store:
        first = _delivered(store, 1)
        assert store.archive.run_sync(seal=True).sealed == ["2026-11.0"]
        second = _delivered(store, 2)
        store.archive.run_sync()
        assert store.archive.state is not None and store.archive.state["current"] == "2026-11.1"
        assert store.archive.find("sms", "sms-1")[0]["send_id"] == first
        assert store.archive.find("sms", "sms-2")[0]["send_id"] == second
    result = History.open(tmp_path).verify()
    assert result.ok, result.problems
    assert result.segments == 2


def _history_with_sealed_month(tmp_path: Path, clock: FakeClock) -> Path:
    with Store.open(tmp_path, clock=clock, compression="gzip", live_hours=0) as store:
        for n in range(12):
            _delivered(store, n)
        store.archive.run_sync()
        clock.now = datetime(2026, 12, 2, tzinfo=UTC)
        _delivered(store, 99)
        store.archive.run_sync()
    assert History.open(tmp_path).verify().ok
    return tmp_path / "audit"


def _rewrite_gzip(path: Path, edit: Any) -> None:
    path.chmod(0o644)
    with gzip.open(path) as f:
        lines = f.read().splitlines(keepends=True)
    path.write_bytes(gzip.compress(b"".join(edit(lines))))


def test_verify_names_an_edited_event_in_a_sealed_segment(tmp_path: Path, clock: FakeClock) -> None:
    audit_dir = _history_with_sealed_month(tmp_path, clock)
    _rewrite_gzip(
        audit_dir / "2026-11.0.jsonl.gz",
        lambda lines: [
            line.replace(b'"actor":"', b'"actor":"someone else, ', 1)
            if b'"seq":6,' in line
            else line
            for line in lines
        ],
    )
    result = History.open(tmp_path).verify()
    assert not result.ok
    (problem,) = result.problems
    assert problem.startswith("event seq 6 (send zns-")
    assert problem.endswith(") was edited: its hash does not match it")


def test_verify_names_a_segment_replaced_after_its_seal(tmp_path: Path, clock: FakeClock) -> None:
    audit_dir = _history_with_sealed_month(tmp_path, clock)
    _rewrite_gzip(audit_dir / "2026-11.0.jsonl.gz", lambda lines: lines[:-1])  # the last event
    problems = History.open(tmp_path).verify().problems
    assert any("does not hold what its seal" in p for p in problems), problems


def test_verify_names_an_edited_seal(tmp_path: Path, clock: FakeClock) -> None:
    audit_dir = _history_with_sealed_month(tmp_path, clock)
    current = audit_dir / "2026-12.0.jsonl"
    text = current.read_bytes()
    current.write_bytes(text.replace(b'"count":72', b'"count":71', 1))
    problems = History.open(tmp_path).verify().problems
    assert any("was edited: its hash does not match it" in p for p in problems), problems


def test_verify_names_a_deleted_segment(tmp_path: Path, clock: FakeClock) -> None:
    audit_dir = _history_with_sealed_month(tmp_path, clock)
    (audit_dir / "2026-11.0.jsonl.gz").unlink()
    problems = History.open(tmp_path).verify().problems
    assert "the audit segment 2026-11.0 is missing (2026-11.0.jsonl.gz)" in problems
    assert any("is missing (deleted before seq" in p for p in problems)


def test_edited_personal_fields_are_named_and_erased_ones_still_verify(
    tmp_path: Path, clock: FakeClock
) -> None:
    with Store.open(tmp_path, clock=clock, live_hours=0) as store:
        _delivered(store, 1)
        store.archive.run_sync()
    segment = tmp_path / "audit" / "2026-11.0.jsonl"
    original = segment.read_bytes()
    segment.write_bytes(original.replace(b'"phone":"0901000001"', b'"phone":"0901000002"'))
    problems = History.open(tmp_path).verify().problems
    assert any(p.endswith("): its personal fields were edited") for p in problems), problems
    assert any("its content is not what was chained" in p for p in problems), problems
    # salt and fields gone: every hash still checks, but no erasure event says why
    erased = b"\n".join(
        line.split(b',"personal":')[0] + b"}" if b'"personal"' in line else line
        for line in original.split(b"\n")
    )
    segment.write_bytes(erased)
    (problem,) = History.open(tmp_path).verify().problems
    assert problem.endswith("is gone, and no erasure in the chain records it")


def test_tools_read_beside_the_writer_and_ignore_what_came_after(
    tmp_path: Path, clock: FakeClock
) -> None:
    with Store.open(tmp_path, clock=clock, live_hours=0) as store:  # holds the lock
        for n in range(5):
            _delivered(store, n)
        store.archive.run_sync()
        history = History.open(tmp_path)  # no lock taken, nothing created
        for n in range(5, 10):
            _delivered(store, n)
        store.archive.run_sync(seal=True)  # the segment it read is sealed and moved meanwhile
        result = history.verify()
        assert result.ok, result.problems
        assert result.count == history.head["seq"] if history.head else False


def test_a_missing_or_empty_directory_is_an_error_not_ok(tmp_path: Path) -> None:
    from storage.history import MissingStoreError

    with pytest.raises(MissingStoreError, match="does not exist"):
        History.open(tmp_path / "nope")
    with pytest.raises(MissingStoreError, match="there is no zns-bot store"):
        History.open(tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("step", [*COPY_STEPS, *SEAL_STEPS])
def test_a_crash_at_each_archive_step_loses_and_doubles_nothing(tmp_path: Path, step: str) -> None:
    data_dir = tmp_path / "data"
    done = subprocess.run(
        [sys.executable, str(WORKER), str(data_dir), step],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -9, done.stdout + done.stderr  # killed at the step
    with Store.open(data_dir, live_hours=0, compression="gzip") as store:
        store.archive.run_sync()
        live_ids = {doc["id"] for doc in store.db.table("sends").raw_docs().values()}
    history = History.open(data_dir)
    result = history.verify()
    assert result.ok, result.problems
    seqs = [int(e["seq"]) for e in history.events()]
    assert seqs == sorted(set(seqs)) == list(range(1, len(seqs) + 1))
    created = [e["send_id"] for e in history.events() if e["action"] == "created"]
    archived = [e["send_id"] for e in history.events() if e["action"] == "archived"]
    assert len(archived) == len(set(archived))  # never archived twice
    assert set(created) == set(archived) | live_ids


def test_a_send_just_archived_is_found_by_token_before_its_event_is_copied(
    store: Store, clock: FakeClock
) -> None:
    send_id = _delivered(store, 1)
    clock.advance(49 * 3600)
    with store.db.transaction():
        store.archive.archive_send(send_id)  # left the live store; the copy comes later
    assert store.sends.find(send_id) is None
    assert store.archive.find_by_token("token-1") is None  # not in a segment yet
    waiting = store.archive.archived_live("token-1")
    assert waiting is not None and waiting["send_id"] == send_id
    assert store.archive.archived_live("token-2") is None
