"""Erasing a customer: no trace of the phone in any file, and the chain still verifies."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from storage import erasure
from storage.erasure import ErasureRefused, apply_erasure, plan_erasure
from storage.history import History
from storage.sends import SendState
from storage.store import Store
from tests.storage.storage_helpers import FakeClock, every_byte, traces

PHONE, PHONE_84 = "0901888484", "84901888484"
OTHER = "0912555666"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 10, 30, 9, 0, tzinfo=UTC))


def open_store(data_dir: Path, clock: FakeClock, compression: str = "gzip") -> Store:
    return Store.open(data_dir, clock=clock, live_hours=0, compression=compression)


def deliver(store: Store, phone: str, n: int, *, final: bool = True) -> str:
    send = store.sends.create(
        {
            "phone": phone,
            "template_id": "231001",
            "params": {"customer_name": f"Khách {n}", "order_code": f"DH-{n}"},
            "ordered_params": [f"Khách {n}", f"DH-{n}"],
            "order_id": f"DH-{n}",
            "note": f"ghi chú {n}",
            "callback_token": f"tok-{n}",
        },
        actor="slack:U1",
    )
    store.sends.transition(send["id"], SendState.APPROVED, actor="slack:U2")
    store.sends.transition(send["id"], SendState.SUBMITTING, actor="system")
    sms_id = f"sms-{n}"
    store.sends.transition(send["id"], SendState.ACCEPTED, actor="system", sms_id=sms_id)
    if final:
        raw = {"SMSID": sms_id, "phonenumber": "84" + phone[1:], "SendStatus": "5"}
        store.callbacks.record(sms_id, "5", raw)
        store.sends.transition(send["id"], SendState.DELIVERED, actor="esms-callback")
    return send["id"]


def history_of(data_dir: Path, clock: FakeClock, compression: str) -> dict[str, Any]:
    """The customer's sends across a sealed month, the current one and the live store,
    with a refused callback carrying their number, beside another customer's sends."""
    with open_store(data_dir, clock, compression) as store:
        sealed = deliver(store, PHONE, 1)
        deliver(store, OTHER, 2)
        refused = {"SMSID": "nope", "phonenumber": PHONE_84}
        store.callbacks.record("nope", "5", refused, valid=False, reason="no such SMSID")
        store.archive.run_sync(clock())
        clock.advance(3 * 86400)  # into November: the pass seals October
        current = deliver(store, PHONE, 3)
        store.archive.run_sync(clock())
        live = deliver(store, PHONE, 4)
        deliver(store, OTHER, 5)
    return {"sealed": sealed, "current": current, "live": live}


@pytest.mark.parametrize("compression", ["gzip", "bz2", "xz"])
def test_no_trace_of_the_phone_is_left_and_the_chain_verifies(
    tmp_path: Path, clock: FakeClock, compression: str
) -> None:
    data_dir = tmp_path / "data"
    sends = history_of(data_dir, clock, compression)
    found = {t.split(":")[0] for t in traces(data_dir, PHONE, PHONE_84, "Khách 1", "ghi chú 3")}
    assert len(found) == 3 and {"2026-11.0.jsonl", "live.db"} < found  # to start with
    with open_store(data_dir, clock, compression) as store:
        plan = plan_erasure(store, PHONE)
        assert sorted(plan.send_ids) == sorted(sends.values())
        assert len(plan.segments) == 2 and not plan.not_final
        event = apply_erasure(store, plan, "cli:dpo")
    assert event["action"] == "erased" and event["actor"] == "cli:dpo"
    assert event["data"]["sends"] == 3 and PHONE not in str(event)
    assert traces(data_dir, PHONE, PHONE_84, "Khách 1", "Khách 3", "DH-4", "ghi chú 4") == []
    assert traces(data_dir, OTHER, "Khách 2")  # another customer's data stays
    result = History.open(data_dir).verify()
    assert result.ok, result.problems
    assert result.erased == 3 and result.checked == 2
    history = History.open(data_dir)
    assert history.send_ids(phone=PHONE) == set()
    assert {e["action"] for e in history.find("send", sends["sealed"])} >= {"created", "erased"}
    with open_store(data_dir, clock, compression) as store:  # the files reopen and move on
        assert not plan_erasure(store, PHONE).anything
        deliver(store, OTHER, 6)
        store.archive.run_sync(clock())
    assert History.open(data_dir).verify().ok


def test_planning_and_refusing_change_nothing(tmp_path: Path, clock: FakeClock) -> None:
    data_dir = tmp_path / "data"
    history_of(data_dir, clock, "gzip")
    with open_store(data_dir, clock) as store:
        pending = deliver(store, PHONE, 7, final=False)
    before = {p: raw for p, raw in every_byte(data_dir)}
    with open_store(data_dir, clock) as store:
        plan = plan_erasure(store, PHONE)
        assert plan.not_final == {pending: "accepted"}
        with pytest.raises(ErasureRefused, match="not final yet"):
            apply_erasure(store, plan, "cli:dpo")
    assert {p: raw for p, raw in every_byte(data_dir)} == before


def test_personal_data_removed_by_hand_is_not_an_erasure(tmp_path: Path, clock: FakeClock) -> None:
    data_dir = tmp_path / "data"
    sends = history_of(data_dir, clock, "gzip")
    with open_store(data_dir, clock) as store:
        table = store.db.table("audit")
        for seq, event in list(table.raw_docs().items()):
            if event.get("send_id") == sends["live"] and event.get("personal"):
                table.put(int(seq), {k: v for k, v in event.items() if k != "personal"})
        sends_table = store.db.table("sends")
        doc_id = sends_table.first_id_by("id", sends["live"])
        assert doc_id is not None
        doc = dict(sends_table.peek(doc_id) or {})
        for key in ("phone", "content_salt"):
            doc.pop(key)
        sends_table.put(doc_id, doc)
    problems = History.open(data_dir).verify().problems
    assert problems == [f"send {sends['live']}: its content salt was removed"]


@pytest.mark.parametrize("crash_at", [1, 2])
def test_a_crash_between_the_renames_is_finished_or_undone(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, crash_at: int
) -> None:
    data_dir = tmp_path / "data"
    history_of(data_dir, clock, "gzip")
    real_replace = erasure.os.replace
    calls = []

    def crashing(src: Any, dst: Any) -> None:
        if str(src).endswith(".erasing"):  # the rewrite's renames (not the compaction's)
            calls.append(src)
            if len(calls) == crash_at:
                raise KeyboardInterrupt("simulated crash")  # not an Exception: nothing cleans up
        real_replace(src, dst)

    monkeypatch.setattr(erasure.os, "replace", crashing)
    with open_store(data_dir, clock) as store, pytest.raises(KeyboardInterrupt):
        apply_erasure(store, plan_erasure(store, PHONE), "cli:dpo")
    monkeypatch.setattr(erasure.os, "replace", real_replace)
    assert list((data_dir / "audit").glob("*.erasing"))  # the crash left its temp files
    with open_store(data_dir, clock) as store:  # start-up finishes or undoes the rewrite
        assert not list((data_dir / "audit").glob("*.erasing"))
        result = History.open(data_dir).verify()
        assert result.ok, result.problems
        plan = plan_erasure(store, PHONE)
        assert plan.anything and not plan.live_sends  # the live part was done first
        apply_erasure(store, plan, "cli:dpo")
    assert traces(data_dir, PHONE, PHONE_84) == []
    result = History.open(data_dir).verify()
    assert result.ok and result.erased == 3, result.problems
