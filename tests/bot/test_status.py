"""`status`'s key reading, lookup and formatters, on a history read from an in-memory store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.errors import InputError
from bot.lookup import DETAIL_CHARS, Key, find_sends, parse_key
from bot.status import lookup_json, lookup_lines, not_found_line, status_json, status_lines
from storage.audit import HEAD_DOC_ID
from storage.history import History

PHONE = "0901888484"
OTHER = "0912345678"
SMS = "7b1e5b0c-4a11-4c1e-9a55-0f3a1c2d9e01"
LIVE_ID = "zns-" + "a" * 32
GONE_ID = "zns-" + "b" * 32
ERASED_ID = "zns-" + "c" * 32


class Log:
    """The tables a data directory's live store would hold, built event by event."""

    def __init__(self) -> None:
        self.events: dict[str, dict[str, Any]] = {}
        self.sends: dict[str, dict[str, Any]] = {}

    def event(
        self, ts: str, actor: str, action: str, send_id: str | None, **fields: Any
    ) -> dict[str, Any]:
        seq = len(self.events) + 1
        event = {"seq": seq, "ts": ts, "actor": actor, "action": action, "send_id": send_id}
        event.update(fields)
        self.events[str(seq)] = event
        return event

    def created(self, send_id: str, ts: str, phone: str | None, **data: Any) -> None:
        personal = {"salt": "00", "fields": {"phone": phone}} if phone else None
        self.event(
            ts,
            "slack:U0AGENT01",
            "created",
            send_id,
            to_state="pending_approval",
            reason="requested",
            data={"template_id": "231001", **data},
            personal=personal,
            pd="digest",
        )

    def moved(self, send_id: str, ts: str, to: str, frm: str, reason: str, actor: str) -> None:
        self.event(ts, actor, "transition", send_id, from_state=frm, to_state=to, reason=reason)

    def history(self, tmp_path: Path) -> History:
        head = {"seq": len(self.events)}
        live = {"meta": {str(HEAD_DOC_ID): head}, "audit": self.events, "sends": self.sends}
        return History(tmp_path, live)


FAILED_SEND = {
    "id": LIVE_ID,
    "state": "failed",
    "created_at": "2026-12-07T09:00:00.000000+00:00",
    "updated_at": "2026-12-07T09:01:00.000000+00:00",
    "phone": PHONE,
    "template_id": "231001",
    "template_name": "Order confirmation",
    "params": {"customer_name": "Nguyễn Văn A"},
    "requester": "slack:U0AGENT01",
    "approver": "slack:U0APPROVER1",
    "sms_id": SMS,
    "error": "older words (Zalo code -118)",
    "error_code": -118,
    "error_category": "delivery",
    "oaid": "4097311281936189049",
    "card_channel": "C0APPROVALS",
    "card_ts": "1765098000.000100",
    "callback_token": "s3cr3t-token",
    "content_salt": "salt",
}


@pytest.fixture
def history(tmp_path: Path) -> History:
    """Three sends to PHONE: one live (failed, -118), one archived (delivered), one archived
    and erased; and one to OTHER, rejected with a reason that quotes a phone."""
    log = Log()
    log.created(GONE_ID, "2026-12-06T08:00:00.000000+00:00", PHONE)
    log.moved(
        GONE_ID, "2026-12-06T08:01:00.000000+00:00", "approved", "pending_approval", "ok", "cli:ops"
    )
    archived_send = {
        "id": GONE_ID,
        "state": "delivered",
        "created_at": "2026-12-06T08:00:00.000000+00:00",
        "updated_at": "2026-12-06T08:05:00.000000+00:00",
        "template_id": "231001",
        "requester": "cli:ops",
        "approver": "cli:ops",
        "sms_id": "90000",
        "sandbox": True,
    }
    log.event(
        "2026-12-08T00:00:00.000000+00:00",
        "system",
        "archived",
        GONE_ID,
        reason="left the live store",
        data={"send": archived_send, "sms_id": "90000"},
        personal={"salt": "00", "fields": {"phone": PHONE}},
        pd="digest",
    )
    log.created(ERASED_ID, "2026-12-05T08:00:00.000000+00:00", PHONE)
    log.created(LIVE_ID, "2026-12-07T09:00:00.000000+00:00", PHONE)
    log.moved(
        LIVE_ID,
        "2026-12-07T09:01:00.000000+00:00",
        "failed",
        "accepted",
        "x" * 300,
        "esms-callback",
    )
    log.sends["1"] = FAILED_SEND
    log.created("zns-" + "d" * 32, "2026-12-07T10:00:00.000000+00:00", OTHER)
    log.moved(
        "zns-" + "d" * 32,
        "2026-12-07T10:01:00.000000+00:00",
        "rejected",
        "pending_approval",
        "wrong number, the customer said 0987 654 321",
        "slack:U0APPROVER1",
    )
    # the erasure: the created event keeps its digest, its fields are gone
    log.events["4"]["personal"] = None
    log.event(
        "2026-12-08T01:00:00.000000+00:00",
        "cli:dpo",
        "erased",
        None,
        reason="customer asked",
        data={"send_ids": [ERASED_ID]},
    )
    return log.history(tmp_path)


@pytest.mark.parametrize(
    ("typed", "kinds"),
    [
        (LIVE_ID, ["send"]),
        ("0901 888 484", ["phone"]),
        ("+84 901 888 484", ["phone"]),
        (PHONE, ["phone", "sms", "send"]),
        ("90000", ["sms", "send"]),
        (SMS, ["sms", "send"]),
        ("order-42", ["sms", "send"]),
    ],
)
def test_a_key_is_read_in_the_documented_order(typed: str, kinds: list[str]) -> None:
    assert [k.kind for k in parse_key(typed)] == kinds


def test_a_phone_key_is_normalised() -> None:
    assert parse_key("+84 901 888 484") == (Key("phone", PHONE),)


@pytest.mark.parametrize("typed", ["", "  ", "bad key!", "+1 202 555 0143", "x" * 51])
def test_a_malformed_key_is_refused(typed: str) -> None:
    with pytest.raises(InputError):
        parse_key(typed)


def test_the_refusal_masks_a_phone_in_what_was_typed() -> None:
    with pytest.raises(InputError) as refused:
        parse_key("0901888484 please")
    assert "090****484" in str(refused.value) and PHONE not in str(refused.value)


def test_a_live_failed_send_in_plain_words(history: History) -> None:
    found = find_sends(history, SMS)
    assert found.key == Key("sms", SMS) and found.total == 1
    (view,) = found.views
    assert (view.send_id, view.where, view.state) == (LIVE_ID, "live", "failed")
    # the reason in this release's words, from the code (not the record's older words)
    assert (
        view.result
        == "this number has no Zalo account (or the account was deactivated) (Zalo code -118)"
    )
    assert view.suggestion.startswith("ask the customer which number their Zalo uses")
    lines = status_lines(view)
    assert lines[0] == f"send {LIVE_ID}"
    assert "  state       failed: not delivered" in lines
    assert "  template    231001 (Order confirmation)" in lines
    assert "  phone       090****484" in lines
    assert "  approver    slack:U0APPROVER1" in lines
    assert "  stored      live store" in lines
    assert "audit trail (2 events, UTC):" in lines
    cut = view.trail[-1].detail
    assert (
        len(cut) == DETAIL_CHARS and cut.startswith("accepted → failed: xxx") and cut.endswith("…")
    )
    assert lines[-1].startswith("  2026-12-07 09:01:00  transition    esms-callback")


def test_an_archived_send_by_id_and_by_sms_id(history: History) -> None:
    by_id = find_sends(history, GONE_ID)
    by_sms = find_sends(history, "90000")
    assert by_id.views == by_sms.views
    (view,) = by_id.views
    assert (view.where, view.state, view.phone, view.sandbox) == (
        "archived",
        "delivered",
        PHONE,
        True,
    )
    assert view.result == "delivered to the customer's Zalo"
    assert [e.kind for e in view.trail] == ["created", "transition", "archived"]
    text = status_lines(view)
    assert text[0] == f"send {GONE_ID}  [SANDBOX]"
    assert "  stored      archive (left the live store)" in text
    assert "  template    231001" in text  # no name recorded: the id alone


def test_a_phone_lists_its_sends_newest_first_with_a_cap(history: History) -> None:
    found = find_sends(history, "0901 888 484")
    # the erased send is no longer found by the phone it was sent to
    assert [v.send_id for v in found.views] == [LIVE_ID, GONE_ID]
    lines = lookup_lines(found)
    assert lines[0] == "2 send(s) to 090****484, newest first:"
    assert lines[1].startswith(f"  2026-12-07 09:00:00  {LIVE_ID}  failed  template 231001")
    assert "delivered [SANDBOX]" in lines[2]
    capped = find_sends(history, PHONE, limit=1)
    assert (capped.total, len(capped.views), capped.more) == (2, 1, 1)
    lines = lookup_lines(capped)
    assert lines[0] == "2 send(s) to 090****484, newest first, the newest 1 shown:"
    assert lines[-2].startswith("  … and 1 older")
    document = lookup_json(capped)
    assert (document["total"], document["shown"], document["more"]) == (2, 1, 1)


def test_an_erased_send_shows_no_phone(history: History) -> None:
    (view,) = find_sends(history, ERASED_ID).views
    assert view.phone_erased and view.phone == "" and view.state == "pending_approval"
    assert [e.kind for e in view.trail] == ["created", "erased"]
    assert "  phone       erased" in status_lines(view)
    assert status_json(view)["phone"] == "erased"


def test_json_masks_phones_and_never_carries_secrets_or_parameters(history: History) -> None:
    found = find_sends(history, PHONE)
    text = json.dumps(lookup_json(found), ensure_ascii=False) + repr(found)  # repr: a log line
    for secret in (PHONE, "s3cr3t-token", "salt", "Nguyễn", "customer_name"):
        assert secret not in text
    first = status_json(found.views[0])
    assert (first["phone"], first["phone_masked"]) == ("090****484", True)
    assert first["template"] == {"id": "231001", "name": "Order confirmation"}
    assert first["oaid"] == "4097311281936189049"
    assert first["slack_card"] == {"channel": "C0APPROVALS", "ts": "1765098000.000100"}
    assert status_json(found.views[1])["slack_card"] is None  # archived before it had one
    assert lookup_json(found)["query"]["tried"] == [
        {"kind": "phone", "value": "090****484"},
        {"kind": "sms", "value": "090****484"},
        {"kind": "send", "value": "090****484"},
    ]
    unmasked = status_json(found.views[0], unmask=True)
    assert (unmasked["phone"], unmasked["phone_masked"]) == (PHONE, False)


def test_a_rejection_quoting_a_phone_is_masked(history: History) -> None:
    (view,) = find_sends(history, OTHER).views
    # neither live nor archived yet: what its events tell
    assert (view.where, view.approver) == ("archived", "slack:U0APPROVER1")
    assert view.result == "rejected: wrong number, the customer said 098****321"
    assert "098****321" in view.trail[-1].detail and "654" not in view.trail[-1].detail


def test_nothing_found_is_one_line_that_masks_the_phone(history: History) -> None:
    found = find_sends(history, "0987654321")
    assert found.key is None and found.views == [] and found.total == 0
    assert lookup_lines(found) == [
        "no send found for phone 098****321, SMSID 098****321, send id 098****321 "
        "(live or archived)"
    ]
    missing = find_sends(history, "zns-" + "0" * 32)
    assert not_found_line(missing) == f"no send found for send id zns-{'0' * 32} (live or archived)"
    assert lookup_json(missing)["found"] is False
