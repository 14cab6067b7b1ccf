"""bot.web.refusals: why a Slack request was refused, and a flood logged as summaries."""

from __future__ import annotations

import asyncio
import logging

import pytest
from starlette.requests import Request

from bot.web.refusals import RefusalLog, refusal_reason

NOW = 1_800_000_000


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "unsigned"),
        ({"x-slack-request-timestamp": str(NOW)}, "unsigned"),
        ({"x-slack-signature": "v0=1", "x-slack-request-timestamp": "abc"}, "bad timestamp"),
        # Unix seconds have 10 digits: 400 nines are no timestamp (as the Slack gate says)
        ({"x-slack-signature": "v0=1", "x-slack-request-timestamp": "9" * 400}, "bad timestamp"),
        (
            {"x-slack-signature": "v0=1", "x-slack-request-timestamp": str(NOW + 301)},
            "timestamp in the future",
        ),
        ({"x-slack-signature": "v0=1", "x-slack-request-timestamp": str(NOW - 301)}, "too old"),
        (
            {"x-slack-signature": "v0=1", "x-slack-request-timestamp": str(NOW - 299)},
            "bad signature",
        ),
    ],
)
def test_the_reason_comes_from_the_headers(headers: dict[str, str], reason: str) -> None:
    assert refusal_reason(headers, NOW) == reason


def request(client: str, stamp: int = NOW) -> Request:
    headers = [(b"x-slack-signature", b"v0=1"), (b"x-slack-request-timestamp", str(stamp).encode())]
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/slack/events",
        "headers": headers,
        "client": (client, 5000),
        "query_string": b"",
    }
    return Request(scope)


def lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "bot.web.refusals"]


def test_a_flood_is_one_line_then_one_summary_per_window_until_quiet(caplog) -> None:
    caplog.set_level(logging.INFO)
    refusals = RefusalLog(clock=lambda: NOW)
    refusals.note(request("10.0.0.1", NOW - 600))
    for n in range(12):
        refusals.note(request(f"10.0.0.{n % 7}"))
    refusals.flush()  # the first window ends
    refusals.note(request("10.0.0.9"))
    refusals.flush()  # the second
    refusals.flush()  # a quiet window closes the flood...
    refusals.note(request("10.0.0.8"))  # ...so the next refusal is logged at once

    first, summary, second, again = lines(caplog)
    assert (first.getMessage(), first.__dict__["reason"]) == ("refused a Slack request", "too old")
    assert first.__dict__["client"] == "10.0.0.1" and first.levelno == logging.WARNING
    assert summary.getMessage() == "refused 12 more Slack requests in the last 60 s"
    assert summary.__dict__["reasons"] == {"bad signature": 12}
    assert len(summary.__dict__["clients"]) == 5 and summary.__dict__["other_clients"] == 2
    assert summary.__dict__["clients"]["10.0.0.0"] == 2
    assert second.__dict__["refused"] == 1 and second.__dict__["clients"] == {"10.0.0.9": 1}
    assert again.getMessage() == "refused a Slack request"
    assert again.__dict__["client"] == "10.0.0.8"


async def test_the_summary_comes_by_itself_when_the_window_ends(caplog) -> None:
    caplog.set_level(logging.INFO)
    summed_up = asyncio.Event()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "refused" in record.__dict__:
                summed_up.set()

    watch = Watch()
    logging.getLogger("bot.web.refusals").addHandler(watch)
    try:
        refusals = RefusalLog(window=0.01)
        refusals.note(request("10.0.0.1"))
        refusals.note(request("10.0.0.2"))
        assert len(lines(caplog)) == 1
        await asyncio.wait_for(summed_up.wait(), 5)  # the loop's timer, no flush() by hand
    finally:
        logging.getLogger("bot.web.refusals").removeHandler(watch)
    refusals.close()
    _, summary = lines(caplog)
    assert summary.__dict__["refused"] == 1 and summary.__dict__["clients"] == {"10.0.0.2": 1}


async def test_at_shutdown_the_count_is_written_and_the_timer_stopped(caplog) -> None:
    caplog.set_level(logging.INFO)
    refusals = RefusalLog()
    refusals.note(request("10.0.0.1"))
    refusals.note(request("10.0.0.2"))
    refusals.close()
    _, summary = lines(caplog)
    assert summary.__dict__["refused"] == 1
    refusals.close()  # nothing more counted: nothing more written
    assert len(lines(caplog)) == 2
