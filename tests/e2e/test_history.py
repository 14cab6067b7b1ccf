"""The live store stays small and history stays answerable: the real `zns-bot serve`, the
stand-ins over HTTP, and the audit tools run beside it as separate processes."""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from standins.driver import SlackDriver
from standins.process import SIGNING_SECRET, BotProcess, standin_env
from storage import logfile
from storage.history import History
from tests import ROOT
from tests.harness import ORDER
from tests.storage.storage_helpers import edit_table_on_disk, every_byte, traces

FIXTURE = ROOT / "tests" / "fixtures" / "release-0.1.0" / "data"
CLI = Path(sys.executable).with_name("zns-bot")


def zns(data_dir: Path, *args: str, answer: str = "") -> subprocess.CompletedProcess[str]:
    """One `zns-bot` command on `data_dir`, as an operator runs it beside the bot."""
    env = {**os.environ, "ZNS_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [str(CLI), *args],
        env=env,
        cwd=data_dir.parent,
        capture_output=True,
        text=True,
        timeout=60,
        input=answer,
    )


def rows(result: subprocess.CompletedProcess[str]) -> list[dict[str, str]]:
    assert result.returncode == 0, result.stderr
    return list(csv.DictReader(io.StringIO(result.stdout)))


async def until_archived(data_dir: Path, send_id: str, wait: float = 20.0) -> list[Any]:
    """The send's events once its "archived" event sits in a segment (bounded): the pass
    that moved it has also copied it, so the bot makes no more files for it."""
    for _ in range(int(wait / 0.1)):
        history = History.open(data_dir)
        events = history.find("send", send_id)
        if any(
            e["action"] == "archived" and int(e["seq"]) <= history.archived_upto for e in events
        ):
            return events
        await asyncio.sleep(0.1)
    raise AssertionError(f"send {send_id} did not leave the live store")


async def until_copied(data_dir: Path, send_id: str, to_state: str, wait: float = 20.0) -> None:
    """Until the send's move to `to_state` sits in a segment (an archive pass ran since)."""
    for _ in range(int(wait / 0.1)):
        history = History.open(data_dir)
        copied = [
            e
            for e in history.find("send", send_id)
            if e.get("to_state") == to_state and int(e["seq"]) <= history.archived_upto
        ]
        if copied:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no archive pass copied send {send_id}'s move to {to_state}")


@pytest.fixture
async def bot(tmp_path: Path, slack_standin: Any, esms_standin: Any) -> AsyncIterator[BotProcess]:
    env = standin_env(
        slack_standin,
        esms_standin,
        tmp_path / "data",
        zns_slack_pace=0,
        zns_live_hours=0,  # a final send leaves at the next pass...
        zns_archive_every=1,  # ...which comes every second
    )
    process = BotProcess(env, cwd=tmp_path, log_path=tmp_path / "bot.log")
    process.env["PUBLIC_BASE_URL"] = process.url
    await process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
async def driver(bot: BotProcess, slack_standin: Any, esms_standin: Any) -> AsyncIterator[Any]:
    slack = SlackDriver(
        bot.url, slack=slack_standin, esms=esms_standin, signing_secret=SIGNING_SECRET
    )
    yield slack
    await slack.aclose()


async def accepted(driver: SlackDriver, esms: Any, phone: str) -> tuple[Mapping[str, Any], Any]:
    """A request through Slack, approved and accepted by eSMS: (card, eSMS's stored send)."""
    await driver.slash()
    view = await driver.choose(await driver.modal(), "template_select", "231001")
    await driver.submit_request(view, phone=phone, params=ORDER)
    card = await driver.card()
    await driver.decide(await driver.review(card), "approve")
    await driver.thread_text(card, "Accepted by eSMS")
    sent = [s for s in esms.sends() if s["Phone"] == phone][-1]
    return card, sent


async def delivered(
    bot: BotProcess, driver: SlackDriver, esms: Any, phone: str
) -> tuple[str, str, list[Any]]:
    """A request delivered and reported in Slack, then archived: (send id, SMSID, events)."""
    card, sent = await accepted(driver, esms, phone)
    sms_id = esms.stored_sms_ids()[-1]
    esms.deliver(sms_id)
    assert await esms.fire_callback(sms_id, success=True) == 200
    await driver.thread_text(card, "Delivered")
    await bot.outbox_drained()
    data_dir = Path(bot.env["ZNS_DATA_DIR"])
    return sent["RequestId"], sms_id, await until_archived(data_dir, sent["RequestId"])


async def test_a_delivered_send_leaves_the_live_store_and_is_found_beside_the_bot(
    bot: BotProcess, driver: SlackDriver, esms_standin: Any, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    send_id, sms_id, events = await delivered(bot, driver, esms_standin, "0901888484")
    (archived,) = [e for e in events if e["action"] == "archived"]
    assert archived["data"]["send"]["state"] == "delivered"
    before = sorted(p.name for p in data_dir.rglob("*"))

    # the tools, while serve serves: read-only, no lock, phones masked unless asked
    verify = zns(data_dir, "audit", "verify")
    assert verify.returncode == 0 and verify.stdout.startswith("audit log OK"), verify.stderr
    by_send = rows(zns(data_dir, "audit", "export", "--csv", "-", "--send", send_id))
    by_sms = rows(zns(data_dir, "audit", "export", "--csv", "-", "--sms-id", sms_id))
    by_phone = zns(data_dir, "audit", "export", "--csv", "-", "--phone", "0901 888 484")
    assert by_send == by_sms == rows(by_phone)
    assert [r["action"] for r in by_send][-1] == "archived"
    assert {r["phone"] for r in by_send} == {"090****484"}
    assert "0901888484" not in by_phone.stdout + by_phone.stderr
    assert "phone 090****484" in by_phone.stderr
    today = archived["ts"][:10]
    dated = rows(zns(data_dir, "audit", "export", "--csv", "-", "--since", today, "--until", today))
    assert {r["send_id"] for r in dated if r["send_id"]} == {send_id}
    assert rows(zns(data_dir, "audit", "export", "--csv", "-", "--until", "2020-01-01")) == []
    unmasked = rows(zns(data_dir, "audit", "export", "--csv", "-", "--send", send_id, "--unmask"))
    assert {r["phone"] for r in unmasked} == {"0901888484"}
    written = tmp_path / "export.csv"
    assert zns(data_dir, "audit", "export", "--csv", str(written)).returncode == 0
    assert written.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in data_dir.rglob("*")) == before  # the tools made no file
    assert (await driver.http.get("/healthz")).status_code == 200


async def test_a_send_whose_posts_are_pending_stays_until_slack_takes_them(
    bot: BotProcess, driver: SlackDriver, slack_standin: Any, esms_standin: Any, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    card, sent = await accepted(driver, esms_standin, "0901888485")
    send_id = sent["RequestId"]
    (sms_id,) = esms_standin.stored_sms_ids()
    esms_standin.deliver(sms_id)
    slack_standin.outage(500)
    assert await esms_standin.fire_callback(sms_id, success=True) == 200
    # archive passes run and copy the delivery to the segment, but the send stays live
    await until_copied(data_dir, send_id, "delivered")
    history = History.open(data_dir)
    assert not [e for e in history.find("send", send_id) if e["action"] == "archived"]
    assert any(doc["id"] == send_id for doc in history.live_sends().values())
    slack_standin.recover()
    await driver.thread_text(card, "Delivered", wait=20)
    await until_archived(data_dir, send_id)
    assert not any(doc["id"] == send_id for doc in History.open(data_dir).live_sends().values())


async def late_callbacks(data_dir: Path, send_id: str, count: int) -> list[dict[str, Any]]:
    """The send's `late_callback` events, once there are `count` of them (20 s at most)."""
    for _ in range(200):
        late = [
            e
            for e in History.open(data_dir).find("send", send_id)
            if e["action"] == "late_callback"
        ]
        if len(late) >= count:
            break
        await asyncio.sleep(0.1)
    assert len(late) == count, late
    return late


async def test_a_late_callback_for_an_archived_send_is_kept_and_changes_nothing(
    bot: BotProcess, driver: SlackDriver, esms_standin: Any, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    send_id, sms_id, _ = await delivered(bot, driver, esms_standin, "0901888486")
    posts_before = len(driver.slack.calls("chat.postMessage"))
    # eSMS repeats itself an hour later, and sends a contradicting report too
    assert await esms_standin.fire_callback(sms_id, success=True) == 200
    assert await esms_standin.fire_callback(sms_id, success=False) == 200
    late = await late_callbacks(data_dir, send_id, 2)
    assert "phonenumber" not in late[0]["data"]["raw"]  # kept beside, as personal data
    # the same checks as a live send's: a number eSMS cannot send is a 400, and not kept
    assert await esms_standin.fire_callback(sms_id, send_status=2**40) == 400
    # the phone under another casing of its key is personal data all the same
    url = esms_standin._callback_request(sms_id, "json_in_string", 5, True, None)
    async with httpx.AsyncClient() as http:
        assert (await http.get(url.replace("phonenumber=", "PhoneNumber="))).status_code == 200
    late = await late_callbacks(data_dir, send_id, 3)  # the out-of-range one was not kept
    assert not any(k.lower() == "phonenumber" for k in late[-1]["data"]["raw"])
    moves = [e for e in History.open(data_dir).find("send", send_id) if e.get("to_state")]
    assert moves[-1]["to_state"] == "delivered"  # nothing moved it after the archive
    assert len(driver.slack.calls("chat.postMessage")) == posts_before  # nothing said
    log = (tmp_path / "bot.log").read_text()
    assert "refused eSMS callback" not in log
    assert "0901888486" not in log


async def test_verify_names_tampering_in_sealed_segments(
    bot: BotProcess, driver: SlackDriver, esms_standin: Any, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    _, sent = await accepted(driver, esms_standin, "0901888487")
    await until_copied(data_dir, sent["RequestId"], "accepted")
    bot.stop()
    busy = zns(data_dir, "audit", "seal")  # serve stopped: seal works
    assert busy.returncode == 0 and "sealed audit segment" in busy.stdout, busy.stderr
    await bot.start()
    seal_refused = zns(data_dir, "audit", "seal")
    assert seal_refused.returncode == 1
    assert "in use by another zns-bot process" in seal_refused.stderr
    assert "stop `zns-bot serve` first" in seal_refused.stderr
    await until_copied(data_dir, sent["RequestId"], "accepted")  # an event after the seal
    bot.stop()
    audit_dir = data_dir / "audit"
    (sealed,) = audit_dir.glob("*.jsonl.gz")
    pristine = sealed.read_bytes()
    sealed.chmod(0o644)
    lines = gzip.decompress(pristine).splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"actor":"', b'"actor":"mallory ', 1)
    sealed.write_bytes(gzip.compress(b"".join(lines)))
    edited = zns(data_dir, "audit", "verify")
    assert edited.returncode == 1 and "was edited: its hash does not match it" in edited.stderr

    sealed.write_bytes(pristine)
    assert zns(data_dir, "audit", "verify").returncode == 0
    (current,) = audit_dir.glob("*.jsonl")
    kept = current.read_bytes()
    current.write_bytes(
        kept.replace(b'"action":"sealed","actor":"system"', b'"action":"sealed","actor":"eve"', 1)
    )
    edited_seal = zns(data_dir, "audit", "verify")
    assert edited_seal.returncode == 1 and "hash does not match" in edited_seal.stderr

    current.write_bytes(kept)
    sealed.unlink()
    deleted = zns(data_dir, "audit", "verify")
    assert (
        deleted.returncode == 1 and f"{sealed.name.split('.jsonl')[0]} is missing" in deleted.stderr
    )


def test_a_missing_data_directory_is_an_error_naming_the_setting(tmp_path: Path) -> None:
    for command in (("audit", "verify"), ("audit", "export", "--csv", "-")):
        result = zns(tmp_path / "nowhere", *command)
        assert result.returncode == 2 and "ZNS_DATA_DIR" in result.stderr, result
        assert "OK" not in result.stdout
    assert not (tmp_path / "nowhere").exists()


async def test_the_previous_releases_data_migrates_with_nothing_lost(
    tmp_path: Path, slack_standin: Any, esms_standin: Any
) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(FIXTURE, data_dir)
    old = logfile.parse((data_dir / "zns.db").read_bytes(), data_dir / "zns.db").data
    old_sends = {doc["id"]: doc for doc in old["sends"].values()}
    old_hashes = {int(seq): e["hash"] for seq, e in old["audit"].items()}
    env = standin_env(slack_standin, esms_standin, data_dir, zns_slack_pace=0)
    process = BotProcess(env, cwd=tmp_path, log_path=tmp_path / "bot.log")
    await process.start(wait=60)
    try:
        verify = zns(data_dir, "audit", "verify")
        assert verify.returncode == 0, verify.stderr
        history = History.open(data_dir)
        by_seq = {int(e["seq"]): e["hash"] for e in history.events() if int(e["seq"]) in old_hashes}
        assert by_seq == old_hashes  # every old event, unchanged, in the chain
        live = {doc["id"] for doc in history.live_sends().values()}
        for send_id in old_sends:
            events = history.find("send", send_id)
            assert send_id in live or any(e["action"] == "archived" for e in events), send_id
            assert any(e["action"] == "created" for e in events)
        assert not (data_dir / "zns.db").exists()
        # release 0.1 bound no content: its sends are reported as such, not as errors
        assert (
            f"content of 0 send(s) matches the chain ({len(old_sends)} created before "
            "content binding, 0 erased)"
        ) in verify.stdout
        one = zns(data_dir, "audit", "verify", "--send", next(iter(old_sends)))
        assert one.returncode == 0 and "created before content binding" in one.stdout
    finally:
        process.stop()


def _contents(data_dir: Path) -> dict[Path, bytes]:
    """What the data directory holds (the lock file says who opened it last: not data)."""
    return {p: raw for p, raw in every_byte(data_dir) if not p.name.endswith(".lock")}


def _sealed_line(path: Path, send_id: str, action: str) -> tuple[list[bytes], int]:
    lines = gzip.decompress(path.read_bytes()).splitlines(keepends=True)
    marks = (f'"send_id":"{send_id}"'.encode(), f'"action":"{action}"'.encode())
    (n,) = [i for i, line in enumerate(lines) if all(mark in line for mark in marks)]
    return lines, n


async def test_verify_names_a_send_whose_content_was_edited(
    bot: BotProcess, driver: SlackDriver, esms_standin: Any, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    archived_id, _, _ = await delivered(bot, driver, esms_standin, "0901888490")
    _, sent = await accepted(driver, esms_standin, "0901888491")
    live_id = sent["RequestId"]
    bot.stop()
    assert zns(data_dir, "audit", "seal").returncode == 0
    ok = zns(data_dir, "audit", "verify")
    assert ok.returncode == 0 and "content of 2 send(s) matches the chain" in ok.stdout, ok.stderr

    live_db = data_dir / "live.db"
    pristine_live = live_db.read_bytes()
    for field, value in (
        ("phone", "0909999999"),
        ("ordered_params", ["Kẻ gian", *list(ORDER.values())[1:]]),
        ("template_id", "999999"),
    ):
        edit_table_on_disk(
            live_db,
            "sends",
            lambda _, doc, f=field, v=value: {**doc, f: v} if doc["id"] == live_id else doc,
        )
        edited = zns(data_dir, "audit", "verify")
        assert edited.returncode == 1, edited.stdout
        name = "params" if field == "ordered_params" else field
        assert f"send {live_id}: its content ({name} changed)" in edited.stderr, edited.stderr
        quick = zns(data_dir, "audit", "verify", "--send", live_id)
        assert quick.returncode == 1 and f"({name} changed)" in quick.stderr
        live_db.write_bytes(pristine_live)

    (sealed,) = (data_dir / "audit").glob("*.jsonl.gz")
    pristine = sealed.read_bytes()
    sealed.chmod(0o644)
    name = ORDER["customer_name"].encode()
    for old, new, action in (
        (b"0901888490", b"0909999999", "archived"),
        (name, "Kẻ gian".encode(), "archived"),
        (b'"template_id":"231001"', b'"template_id":"999999"', "created"),
    ):
        lines, n = _sealed_line(sealed, archived_id, action)
        assert old in lines[n]
        lines[n] = lines[n].replace(old, new)
        sealed.write_bytes(gzip.compress(b"".join(lines)))
        edited = zns(data_dir, "audit", "verify")
        assert edited.returncode == 1 and f"(send {archived_id})" in edited.stderr, edited.stderr
        sealed.write_bytes(pristine)
    assert zns(data_dir, "audit", "verify").returncode == 0


@pytest.mark.long
async def test_a_customer_is_erased_everywhere_with_the_chain_intact(
    bot: BotProcess, driver: SlackDriver, esms_standin: Any, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    phone, phone_84 = "0901888492", "84901888492"
    first, _, _ = await delivered(bot, driver, esms_standin, phone)
    bot.stop()
    assert zns(data_dir, "audit", "seal").returncode == 0  # its events in a sealed segment
    await bot.start()
    second, _, _ = await delivered(bot, driver, esms_standin, phone)
    other, _, _ = await delivered(bot, driver, esms_standin, "0912555666")
    card, sent = await accepted(driver, esms_standin, phone)  # not final: not erasable yet

    busy = zns(data_dir, "privacy", "erase", "--phone", phone, "--yes")
    assert busy.returncode == 1 and "stop `zns-bot serve` first" in busy.stderr
    bot.stop()
    files = _contents(data_dir)
    refused = zns(data_dir, "privacy", "erase", "--phone", phone, "--yes")
    assert refused.returncode == 1 and "not final yet" in refused.stderr, refused
    assert sent["RequestId"] in refused.stderr and phone not in refused.stderr
    assert _contents(data_dir) == files  # nothing changed

    await bot.start()
    sms_id = esms_standin.stored_sms_ids()[-1]
    esms_standin.deliver(sms_id)
    assert await esms_standin.fire_callback(sms_id, success=True) == 200
    await driver.thread_text(card, "Delivered")
    await bot.outbox_drained()
    await until_archived(data_dir, sent["RequestId"])
    bot.stop()

    files = _contents(data_dir)
    dry = zns(data_dir, "privacy", "erase", "--phone", "+84 901 888 492", "--dry-run")
    assert dry.returncode == 0 and "dry run: nothing was changed" in dry.stdout, dry.stderr
    assert "customer 090****492: 3 send(s)" in dry.stdout and phone not in dry.stdout
    unconfirmed = zns(data_dir, "privacy", "erase", "--phone", phone, answer="no\n")
    assert unconfirmed.returncode == 1 and "not confirmed" in unconfirmed.stderr
    assert _contents(data_dir) == files  # nothing changed

    erased = zns(data_dir, "privacy", "erase", "--phone", phone, answer="yes\n")
    assert erased.returncode == 0 and "erased: recorded" in erased.stdout, erased.stderr
    assert traces(data_dir, phone, phone_84) == []
    history = History.open(data_dir)  # and no parameter or note of theirs (ORDER is shared)
    for send_id in (first, second, sent["RequestId"]):
        assert [e["action"] for e in history.find("send", send_id) if e.get("personal")] == []
    assert any(e.get("personal") for e in history.find("send", other))
    assert traces(data_dir, "0912555666")  # the other customer's data is still there
    verify = zns(data_dir, "audit", "verify")
    assert verify.returncode == 0, verify.stderr
    assert "(0 created before content binding, 3 erased)" in verify.stdout
    export = rows(zns(data_dir, "audit", "export", "--csv", "-", "--send", first, "--unmask"))
    assert {r["phone"] for r in export if r["send_id"]} == {"erased"}
    assert [r["to"] for r in export if r["to"]][-1] == "delivered"
    assert export[-1]["action"] == "erased"
    assert zns(data_dir, "audit", "verify", "--send", second).returncode == 0
    assert zns(data_dir, "audit", "verify", "--send", other).returncode == 0
    await bot.start()  # the rewritten files reopen, and the bot goes on
    assert (await driver.http.get("/healthz")).status_code == 200
