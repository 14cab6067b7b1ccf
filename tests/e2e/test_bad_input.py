"""Bad input over HTTP is a 4xx that changes nothing: malformed Slack bodies, wild callbacks."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families

from standins.payloads import slash_command_body
from tests.harness import (
    SIGNING_SECRET,
    Bot,
    accepted_send,
)


@pytest.fixture
def bot(callback_bot):
    return callback_bot


def refused_count(bot: Bot, reason: str) -> float:
    """zns_callbacks_refused_total{reason}, as /metrics renders it (wherever it is served)."""
    body, _type = bot.runtime.metrics.render()
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "zns_callbacks_refused_total" and sample.labels == {"reason": reason}:
                return sample.value
    return 0.0


async def raw_get(bot: Bot, target: str) -> int:
    """GET `target` over a plain socket (httpx refuses URLs past 64 kB); the status code."""
    address = urlsplit(str(bot.http.base_url))
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        status_line = await reader.readline()
    finally:
        writer.close()
    return int(status_line.split()[1])


def bot_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every log line but the test client's own (httpx logs each URL it requests)."""
    client = ("httpx", "httpcore")
    return [r.getMessage() for r in caplog.records if r.name.split(".")[0] not in client]


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def snapshot(bot: Bot, card: dict[str, Any]) -> tuple[Any, ...]:
    """What a refused callback must not change: the send, the callbacks, the audit log."""
    return (bot.record_for(card), bot.store.callbacks.count(), bot.store.audit.verify().count)


@pytest.mark.parametrize(
    ("field", "value"),
    [("SendSuccess", str(2**64)), ("TotalSent", str(2**64)), ("error_info", str(2**70))],
)
async def test_callback_numbers_esms_cannot_send_are_400_and_counted(bot, caplog, field, value):
    card, record = await accepted_send(bot)
    before = snapshot(bot, card)
    counted = refused_count(bot, "out_of_range")
    caplog.set_level(logging.INFO)
    query = f"SMSID={record['sms_id']}&SendStatus=5&SendSuccess=1&SendFailed=0&{field}={value}"
    for _ in range(2):  # every time, not only the first
        response = await bot.http.get(f"/esms/callback/{record['callback_token']}?{query}")
        assert response.status_code == 400, response.text
        assert "out of range" in response.text
    assert refused_count(bot, "out_of_range") == counted + 2
    assert snapshot(bot, card) == before
    assert errors(caplog) == []


async def test_a_refused_callback_stores_and_logs_only_an_excerpt(bot, caplog):
    card, record = await accepted_send(bot)
    huge = "S" * 100_000
    caplog.set_level(logging.DEBUG)
    query = f"SMSID={huge}&SendStatus=5&SendSuccess=1&SendFailed=0"
    status = await raw_get(bot, f"/esms/callback/{record['callback_token']}?{query}")
    # 400 from the callback endpoint; a query-string limit in front of it may refuse it first
    # (414/431), which must keep even less.
    assert status in (400, 413, 414, 431)
    assert bot.record_for(card)["state"] == "accepted"
    await bot.store.synced()
    on_disk = bot.store.path.read_text()
    assert "S" * 201 not in on_disk
    refused = [e for e in bot.store.audit.iter_events() if e["action"] == "callback_refused"]
    if status == 400:
        assert refused_count(bot, "mismatch") == 1
        assert "…[cut: 100000 chars]" in on_disk
        assert len(refused) == 1
        assert "S" * 81 not in refused[0]["reason"] and "cut" in refused[0]["reason"]
    else:
        assert refused == []
    assert max(len(line) for line in bot_lines(caplog)) < 1000
    assert errors(caplog) == []


async def test_a_long_smsid_under_the_query_limit_is_cut_too(bot, caplog):
    card, record = await accepted_send(bot)
    long_id = "L" * 10_000  # past the excerpt, within any sane query-string limit
    caplog.set_level(logging.DEBUG)
    query = f"SMSID={long_id}&SendStatus=5&SendSuccess=1&SendFailed=0"
    response = await bot.http.get(f"/esms/callback/{record['callback_token']}?{query}")
    assert response.status_code == 400
    assert bot.record_for(card)["state"] == "accepted"
    assert refused_count(bot, "mismatch") == 1
    await bot.store.synced()
    on_disk = bot.store.path.read_text()
    assert "L" * 201 not in on_disk and "…[cut: 10000 chars]" in on_disk
    (refused,) = [e for e in bot.store.audit.iter_events() if e["action"] == "callback_refused"]
    assert "L" * 81 not in refused["reason"]
    assert max(len(line) for line in bot_lines(caplog)) < 1000
    assert any("does not match" in line for line in bot_lines(caplog))
    assert errors(caplog) == []


# --- Slack: malformed bodies, signed and unsigned ----------------------------------------

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
MALFORMED: dict[str, tuple[bytes, str]] = {
    "truncated payload": (b"payload=%7B%22type%22%3A%22block_actions%22%2C%22us", FORM),
    "empty payload": (b"payload=", FORM),
    "payload a JSON array": (b"payload=%5B1%2C2%5D", FORM),
    "body a JSON array": (b"[1, 2, 3]", JSON),
    "100,000 [ in the payload": (b"payload=" + b"%5B" * 100_000, FORM),
    "100,000 [ as the body": (b"[" * 100_000, JSON),
    "an object nested 500 deep": (b'{"a":' * 500 + b"1" + b"}" * 500, JSON),
    "not UTF-8": (b"payload=\xff\xfe{}", FORM),
    "a form that is no command": (b"hello=world", FORM),
    "empty": (b"", FORM),
}


def headers_for(
    body: bytes, content_type: str, *, secret: str, timestamp: str | None = None
) -> dict[str, str | bytes]:
    """Slack's headers, signed over the raw bytes (slack_sdk's signer needs UTF-8) and over
    any timestamp text."""
    timestamp = str(int(time.time())) if timestamp is None else timestamp
    base = b"v0:" + timestamp.encode() + b":" + body
    signature = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": timestamp.encode(),  # bytes: any text, UTF-8 too
        "X-Slack-Signature": signature,
    }


def slack_effects(bot: Bot, slack_standin, esms_standin) -> tuple[Any, ...]:
    """What a refused Slack request must not touch: Slack, eSMS, the store on disk."""
    warmup = {"usergroups.users.list"}  # the start-up cache fill, not a request's doing
    return (
        [c.method for c in slack_standin.calls() if c.method not in warmup],
        esms_standin.sends(),
        bot.store.audit.verify().count,
        bot.store.path.stat().st_size,
    )


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_a_malformed_slack_body_is_400_signed_and_401_unsigned(
    bot, slack_standin, esms_standin, caplog, case
):
    body, content_type = MALFORMED[case]
    caplog.set_level(logging.DEBUG)
    before = slack_effects(bot, slack_standin, esms_standin)
    signed = headers_for(body, content_type, secret=SIGNING_SECRET)
    response = await bot.http.post("/slack/events", content=body, headers=signed)
    assert response.status_code == 400, response.text
    assert len(response.text) < 100 and "Traceback" not in response.text
    for secret in ("not-the-secret", None):
        headers = headers_for(body, content_type, secret=secret or "x")
        if secret is None:
            del headers["X-Slack-Signature"]
        response = await bot.http.post("/slack/events", content=body, headers=headers)
        assert response.status_code == 401, response.text
    assert slack_effects(bot, slack_standin, esms_standin) == before
    assert errors(caplog) == []
    assert max(len(line) for line in bot_lines(caplog)) < 1000


@pytest.mark.parametrize("timestamp", ["abc", "9" * 400, "", "-1", "1.5", "１２３"])
@pytest.mark.parametrize(
    "body", [slash_command_body(), MALFORMED["truncated payload"][0]], ids=["slash", "truncated"]
)
async def test_an_odd_timestamp_is_401_even_when_signed_over_it(
    bot, slack_standin, esms_standin, caplog, timestamp, body
):
    caplog.set_level(logging.DEBUG)
    before = slack_effects(bot, slack_standin, esms_standin)
    headers = headers_for(body, FORM, timestamp=timestamp, secret=SIGNING_SECRET)
    response = await bot.http.post("/slack/events", content=body, headers=headers)
    assert response.status_code == 401, response.text
    assert slack_effects(bot, slack_standin, esms_standin) == before
    assert errors(caplog) == []


async def test_well_formed_requests_still_reach_bolt(bot, slack_standin):
    """The check lets through what Slack sends: a slash command, an options load."""
    response = await bot.slash()
    assert response.status_code == 200
    view = await bot.modal()
    answer = await bot.suggest(view, "template_select", "")
    assert answer.get("options") or answer.get("option_groups")
