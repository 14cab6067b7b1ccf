"""Bad input over HTTP is a 4xx that changes nothing: malformed Slack bodies, wild callbacks."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import PUBLIC_URL_FROM_SERVER, Bot, accepted_send, bot_settings, running_bot


@pytest.fixture
async def bot(tmp_path, slack_standin, esms_standin):
    settings = bot_settings(
        tmp_path / "data", slack_standin, esms_standin, public_base_url=PUBLIC_URL_FROM_SERVER
    )
    async with running_bot(settings, slack_standin, esms_standin) as running:
        yield running


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
