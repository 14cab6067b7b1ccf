"""A send's content in the chain: the byte format, what the events record, what verify says."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from storage.content import canonical_content, content_digest
from storage.history import History
from storage.sends import SendState
from storage.store import Store
from tests.storage.storage_helpers import FakeClock

REQUEST: dict[str, Any] = {
    "phone": "0901888484",
    "oaid": "4097311281936189049",
    "template_id": "231001",
    "params": {"customer_name": "Nguyễn Văn A", "order_code": "DH-1"},
    "ordered_params": ["Nguyễn Văn A", "DH-1"],
    "is_journey": True,
    "order_id": "DH-1",
    "campaign": "tet",
    "note": "gọi trước",
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 20, 9, 0, tzinfo=UTC))


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[Store]:
    with Store.open(tmp_path / "data", clock=clock, live_hours=0, compression="gzip") as s:
        yield s


def _approved(store: Store, **changes: Any) -> str:
    send = store.sends.create({**REQUEST, **changes}, actor="slack:U1")
    store.sends.transition(send["id"], SendState.APPROVED, actor="slack:U2")
    return send["id"]


def _delivered(store: Store, **changes: Any) -> str:
    send_id = _approved(store, **changes)
    store.sends.transition(send_id, SendState.SUBMITTING, actor="system")
    store.sends.transition(send_id, SendState.ACCEPTED, actor="system", sms_id=f"sms-{send_id}")
    store.sends.transition(send_id, SendState.DELIVERED, actor="esms-callback")
    return send_id


def _edit_send(store: Store, send_id: str, **changes: Any) -> None:
    """What someone editing the data file does: the record changes, no event says so."""
    table = store.db.table("sends")
    doc_id = table.first_id_by("id", send_id)
    assert doc_id is not None
    table.put(doc_id, {**table.peek(doc_id), **changes})  # type: ignore[dict-item]


def _verify(store: Store) -> Any:
    return History.open(store.data_dir).verify()


def test_the_digest_is_sha256_of_the_salt_and_the_documented_json() -> None:
    salt = "00112233445566778899aabbccddeeff"
    expected_json = json.dumps(
        {
            "v": 1,
            "phone": "0901888484",
            "oaid": "4097311281936189049",
            "template_id": "231001",
            "params": ["Nguyễn Văn A", "DH-1"],
            "named": {"customer_name": "Nguyễn Văn A", "order_code": "DH-1"},
            "journey": True,
            "order_id": "DH-1",
            "campaign": "tet",
            "sandbox": False,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    expected = hashlib.sha256(bytes.fromhex(salt) + expected_json).hexdigest()
    assert content_digest(salt, REQUEST) == expected
    # the note is not content: it never reaches the customer
    assert content_digest(salt, {**REQUEST, "note": "other"}) == expected
    for change in ({"phone": "0901888485"}, {"ordered_params": ["B", "DH-1"]}, {"sandbox": True}):
        assert content_digest(salt, {**REQUEST, **change}) != expected


def test_creation_and_approval_record_the_same_content(store: Store) -> None:
    send_id = _approved(store)
    created, approved = store.audit.for_send(send_id)
    salt = store.sends.get(send_id)["content_salt"]
    digest = content_digest(salt, REQUEST)
    assert created["data"] == {
        "template_id": "231001",
        "oaid": "4097311281936189049",
        "is_journey": True,
        "campaign": "tet",
        "sandbox": None,
        "content": digest,
    }
    assert created["personal"]["fields"]["phone"] == "0901888484"  # beside, not hashed
    assert "0901888484" not in json.dumps({k: v for k, v in created.items() if k != "personal"})
    assert approved["to_state"] == "approved" and approved["data"]["content"] == digest
    rebuilt = canonical_content({**created["data"], **created["personal"]["fields"]})
    assert rebuilt == canonical_content(store.sends.get(send_id))  # the event alone says it


def test_verify_checks_live_and_archived_sends(store: Store, clock: FakeClock) -> None:
    archived = _delivered(store)
    store.archive.run_sync(clock())
    live = _approved(store, phone="0901888485")
    result = _verify(store)
    assert result.ok, result.problems
    assert (result.checked, result.unbound, result.erased) == (2, 0, 0)
    assert store.sends.find(archived) is None and store.sends.find(live) is not None


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"phone": "0909999999"}, "phone"),
        ({"ordered_params": ["Kẻ gian", "DH-1"]}, "params"),
        ({"template_id": "999999"}, "template_id"),
    ],
)
def test_an_edit_of_a_live_send_is_reported_naming_it(
    store: Store, changes: dict[str, Any], named: str
) -> None:
    send_id = _approved(store)
    _edit_send(store, send_id, **changes)
    result = _verify(store)
    assert not result.ok
    (problem,) = result.problems
    assert problem.startswith(f"send {send_id}: its content ({named} changed)")
    assert "in the live store was edited" in problem


def test_an_edit_carried_into_the_archive_is_reported(store: Store, clock: FakeClock) -> None:
    send_id = _delivered(store)
    _edit_send(store, send_id, phone="0909999999")
    store.archive.run_sync(clock())
    result = _verify(store)
    (problem,) = result.problems
    assert f"send {send_id}: its content (phone changed)" in problem
    assert "archived at seq" in problem


def test_an_edit_before_approval_is_reported_at_the_approval(store: Store) -> None:
    send = store.sends.create(REQUEST, actor="slack:U1")
    _edit_send(store, send["id"], ordered_params=["X", "Y"])
    store.sends.transition(send["id"], SendState.APPROVED, actor="slack:U2")
    problems = _verify(store).problems
    assert any("the content approved at seq" in p and send["id"] in p for p in problems)


def test_sends_created_before_content_binding_are_unbound_not_errors(store: Store) -> None:
    # what release 0.2 wrote: a "created" event with no content, a send with no digest
    store.audit.append(
        "cli:old", "created", send_id="old-1", to_state="pending_approval", data=None
    )
    store.db.table("sends").insert({**REQUEST, "id": "old-1", "state": "delivered"})
    _approved(store)
    result = _verify(store)
    assert result.ok, result.problems
    assert (result.checked, result.unbound) == (1, 1)


def test_a_record_deleted_without_archiving_is_reported(store: Store) -> None:
    send_id = _approved(store)
    table = store.db.table("sends")
    table.delete([table.first_id_by("id", send_id)])  # type: ignore[list-item]
    (problem,) = _verify(store).problems
    assert problem.startswith(f"send {send_id} (created at seq 1) has no record")


def test_personal_data_gone_without_an_erasure_is_reported(store: Store) -> None:
    send_id = _approved(store)
    table = store.db.table("sends")
    doc_id = table.first_id_by("id", send_id)
    assert doc_id is not None
    doc = dict(table.peek(doc_id) or {})
    doc.pop("content_salt")
    table.put(doc_id, doc)
    (problem,) = _verify(store).problems
    assert problem == f"send {send_id}: its content salt was removed"


def test_verify_send_checks_one_send_through_the_indexes(store: Store, clock: FakeClock) -> None:
    send_id = _delivered(store)
    other = _delivered(store, phone="0901888485")
    store.archive.run_sync(clock())
    history = History.open(store.data_dir)
    result = history.verify_send(send_id)
    assert result.ok, result.problems
    assert (result.count, result.checked) == (6, 1)  # created .. delivered, archived
    assert history.verify_send(other).ok
