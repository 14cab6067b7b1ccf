"""Store.open wires the records onto one locked file and reports whether it can write."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from bot.errors import StoreError
from storage.sends import SendState
from storage.store import Store
from tests.storage.storage_helpers import FakeClock


def test_open_creates_the_directory_the_live_store_and_the_audit_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "a" / "b"
    with Store.open(data_dir, fsync=False) as store:
        assert store.path == data_dir / "live.db"
        send = store.sends.create({"phone": "0901888484"}, actor="U1")
        store.callbacks.record("S1", "1", {})
        store.outbox.add("card", {}, key="k", send_id=send["id"])
    assert sorted(p.name for p in data_dir.iterdir()) == ["audit", "live.db", "live.db.lock"]
    assert list((data_dir / "audit").iterdir()) == []  # a segment starts with its first event
    with Store.open(data_dir) as store:
        assert store.sends.get(send["id"])["state"] == SendState.PENDING_APPROVAL
        assert store.audit.verify().ok
        assert (store.callbacks.count(), store.outbox.depth()) == (1, 1)


def test_the_clock_is_injectable(tmp_path: Path) -> None:
    clock = FakeClock()
    with Store.open(tmp_path, clock=clock) as store:
        assert store.clock is clock
        assert store.audit.append("U1", "x")["ts"] == "2026-03-01T09:00:00.000000+00:00"


def test_only_one_process_may_hold_the_store(tmp_path: Path) -> None:
    with (
        Store.open(tmp_path),
        pytest.raises(StoreError, match="in use by another zns-bot process"),
    ):
        Store.open(tmp_path)


def test_check_writable(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    store.check_writable()
    os.rename(store.path, tmp_path / "moved")
    with pytest.raises(StoreError, match="gone"):
        store.check_writable()
    os.rename(tmp_path / "moved", store.path)
    store.check_writable()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.check_writable()


def test_probe_directory_fails_when_no_file_can_be_made_beside_the_store(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    # a directory where the probe file goes: opening it for writing fails, even for root
    probe = tmp_path / f".{store.path.name}.probe-{os.getpid()}-{threading.get_ident()}"
    probe.mkdir()
    with pytest.raises(StoreError, match="cannot write in the store directory"):
        store.check_writable()
    probe.rmdir()
    store.check_writable()
    assert [p.name for p in tmp_path.iterdir() if "probe" in p.name] == []
    store.close()


async def test_check_writable_off_loop_probes_in_a_worker_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store.open(tmp_path)
    storage = store.db.storage
    seen: list[int] = []
    real = storage.probe_directory

    def probe() -> None:
        seen.append(threading.get_ident())
        real()

    monkeypatch.setattr(storage, "probe_directory", probe)
    await store.check_writable_off_loop()
    assert seen and seen[0] != threading.get_ident()
    os.rename(store.path, tmp_path / "moved")
    with pytest.raises(StoreError, match="gone"):
        await store.check_writable_off_loop()
    os.rename(tmp_path / "moved", store.path)
    store.close()


def test_an_unusable_data_dir_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="cannot create the data directory"):
        Store.open(tmp_path / "file" / "data")


def test_a_partial_parse_decodes_only_the_tables_asked_for(tmp_path: Path) -> None:
    from storage import logfile

    with Store.open(tmp_path, compact_min_ops=1) as store:  # a snapshot, then a log
        send = store.sends.create({"phone": "0901888484"}, actor="U1")
        store.callbacks.record("S1", "1", {})
        store.outbox.add("card", {}, key="k", send_id=send["id"])
        store.db.compact()
        store.sends.update_fields(send["id"], note="after the snapshot")
    raw = (tmp_path / "live.db").read_bytes()
    whole = logfile.parse(raw, tmp_path / "live.db").data
    part = logfile.parse(raw, tmp_path / "live.db", frozenset({"sends", "meta"})).data
    assert set(part) == {"sends", "meta"} and part["sends"] == whole["sends"]
    assert {"callbacks", "outbox", "audit"} <= set(whole)
