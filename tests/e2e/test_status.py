"""`zns-bot status` beside the real `zns-bot serve`: a send found by each key, live and
archived, in text and JSON, with nothing written to the data directory."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from standins.driver import AGENT, APPROVAL_CHANNEL, APPROVER, SlackDriver
from standins.process import BotProcess
from tests.e2e.test_history import (  # noqa: F401 (bot, driver: fixtures used by name)
    accepted,
    bot,
    driver,
    until_archived,
    zns,
)

PHONE = "0901888471"
MASKED = "090****471"


def status(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return zns(data_dir, "status", *args)


def found(data_dir: Path, key: str) -> dict[str, Any]:
    """The one send a key finds, as `status --json` prints it."""
    result = status(data_dir, key, "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["found"] and document["total"] == 1, document
    (send,) = document["sends"]
    return send


def files(data_dir: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(data_dir)), p.stat().st_size) for p in data_dir.rglob("*"))


@pytest.mark.long
async def test_status_finds_a_send_by_each_key_live_and_archived(
    bot: BotProcess,  # noqa: F811
    driver: SlackDriver,  # noqa: F811
    esms_standin: Any,
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    card, sent = await accepted(driver, esms_standin, PHONE)
    send_id = sent["RequestId"]
    (sms_id,) = esms_standin.stored_sms_ids()

    # live: accepted, waiting for its report (it cannot leave the live store before that)
    live = [found(data_dir, key) for key in (send_id, sms_id, PHONE, "+84 901 888 471")]
    assert all(view == live[0] for view in live)
    view = live[0]
    assert (view["send_id"], view["sms_id"], view["stored"]) == (send_id, sms_id, "live")
    assert view["state"] == "accepted" and "waiting for the delivery report" in view["meaning"]
    assert view["phone"] == MASKED and view["phone_masked"] is True
    assert (view["requester"], view["approver"]) == (f"slack:{AGENT}", f"slack:{APPROVER}")
    assert view["template"] == {"id": "231001", "name": "Order confirmation"}
    assert view["sandbox"] is False
    assert view["slack_card"] == {"channel": APPROVAL_CHANNEL, "ts": card["ts"]}
    kinds = [e["kind"] for e in view["trail"]]
    assert kinds[0] == "created" and "transition" in kinds
    assert any("pending_approval → approved" in e["detail"] for e in view["trail"])

    text = status(data_dir, send_id)
    assert text.returncode == 0, text.stderr
    assert f"send {send_id}" in text.stdout and "stored      live store" in text.stdout
    assert MASKED in text.stdout and PHONE not in text.stdout
    assert "callback_token" not in text.stdout + json.dumps(live)

    # delivered, then archived: the same keys find it in the segment
    esms_standin.deliver(sms_id)
    assert await esms_standin.fire_callback(sms_id, success=True) == 200
    await driver.thread_text(card, "Delivered")
    await bot.outbox_drained()
    await until_archived(data_dir, send_id)
    before = files(data_dir)

    archived = [found(data_dir, key) for key in (send_id, sms_id, PHONE)]
    assert all(view == archived[0] for view in archived)
    view = archived[0]
    assert (view["stored"], view["state"], view["phone"]) == ("archived", "delivered", MASKED)
    assert (view["requester"], view["approver"]) == (f"slack:{AGENT}", f"slack:{APPROVER}")
    assert view["template"] == {"id": "231001", "name": "Order confirmation"}
    assert view["trail"][-1]["kind"] == "archived"
    assert any("accepted → delivered" in e["detail"] for e in view["trail"])

    text = status(data_dir, sms_id)
    assert text.returncode == 0, text.stderr
    assert "state       delivered: delivered to the customer's Zalo" in text.stdout
    assert "archive (left the live store)" in text.stdout
    by_phone = status(data_dir, "0901 888 471")
    assert by_phone.returncode == 0, by_phone.stderr
    assert by_phone.stdout.startswith(f"1 send(s) to {MASKED}, newest first:")
    assert send_id in by_phone.stdout and PHONE not in by_phone.stdout
    unmasked = status(data_dir, send_id, "--unmask")
    assert f"phone       {PHONE}" in unmasked.stdout

    # beside a running serve: no lock taken, no file made or changed
    assert files(data_dir) == before
    assert (await driver.http.get("/healthz")).status_code == 200

    # in a sealed (compressed) segment: the same keys still find it, the same
    bot.stop()
    sealed = zns(data_dir, "audit", "seal")
    assert sealed.returncode == 0 and "sealed audit segment" in sealed.stdout, sealed.stderr
    assert list((data_dir / "audit").glob("*.jsonl.gz"))
    assert [found(data_dir, key) for key in (send_id, sms_id, PHONE)] == archived


async def test_status_explains_a_failed_send_and_lists_a_phones_sends_newest_first(
    bot: BotProcess,  # noqa: F811
    driver: SlackDriver,  # noqa: F811
    esms_standin: Any,
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    first_card, first = await accepted(driver, esms_standin, PHONE)
    first_sms = esms_standin.stored_sms_ids()[-1]
    esms_standin.deliver(first_sms, success=False, zalo_error=-118)
    assert await esms_standin.fire_callback(first_sms, encoding="plain") == 200
    await driver.thread_text(first_card, "Not sent")
    _, second = await accepted(driver, esms_standin, PHONE)
    await bot.outbox_drained()
    await until_archived(data_dir, first["RequestId"])

    failed = found(data_dir, first["RequestId"])
    assert failed["state"] == "failed" and failed["stored"] == "archived"
    assert failed["error_code"] == -118
    assert failed["result"] == (
        "this number has no Zalo account (or the account was deactivated) (Zalo code -118)"
    )
    assert "send an SMS instead" in failed["suggestion"]
    text = status(data_dir, first_sms)
    assert "result      this number has no Zalo account" in text.stdout
    assert "what to do  ask the customer which number their Zalo uses" in text.stdout

    # a phone: its sends newest first, the live one and the archived one
    result = status(data_dir, PHONE, "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["query"]["matched"] == "phone"
    assert document["query"]["tried"][0] == {"kind": "phone", "value": MASKED}
    assert (document["total"], document["more"]) == (2, 0)
    ids = [s["send_id"] for s in document["sends"]]
    assert ids == [second["RequestId"], first["RequestId"]]
    assert [s["stored"] for s in document["sends"]] == ["live", "archived"]
    assert PHONE not in result.stdout
    lines = status(data_dir, PHONE).stdout.splitlines()
    assert lines[0] == f"2 send(s) to {MASKED}, newest first:"
    assert second["RequestId"] in lines[1] and "accepted" in lines[1]
    assert first["RequestId"] in lines[2] and "no Zalo account" in lines[2]


async def test_status_of_an_unknown_or_malformed_key_fails_in_one_line(
    bot: BotProcess,  # noqa: F811
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    await bot.outbox_drained()  # serving: its store exists
    cases = {
        "zns-" + "0" * 32: (1, "no send found for send id zns-0000"),
        "0901888999": (1, "for phone 090****999, SMSID 090****999, send id 090****999"),
        "not/a key": (2, "error: 'not/a key' is not a send id"),
        "+1 202 555 0143": (2, "is not a send id"),
    }
    for key, (code, start) in cases.items():
        result = status(data_dir, key)
        assert result.returncode == code, (key, result.stderr)
        assert result.stdout == "" and len(result.stderr.splitlines()) == 1, result.stderr
        assert start in result.stderr, result.stderr
    as_json = status(data_dir, "zns-" + "0" * 32, "--json")
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["found"] is False
    missing = zns(tmp_path / "nowhere", "status", "zns-" + "0" * 32)
    assert missing.returncode == 2 and "ZNS_DATA_DIR" in missing.stderr
