"""`zns-bot serve` over real HTTP: size limits before reading, timeouts, the cap, /metrics apart."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from standins.payloads import signed_headers, slash_command_body
from standins.process import SIGNING_SECRET, BotProcess, standin_env

MIB = 1024 * 1024
WAIT = 10.0  # a bound on waiting for an event, never a measured duration


@contextlib.asynccontextmanager
async def serving(
    tmp_path: Path, slack_standin, esms_standin, **settings: object
) -> AsyncIterator[BotProcess]:
    env = standin_env(slack_standin, esms_standin, tmp_path / "data", **settings)
    bot = BotProcess(env, cwd=tmp_path, log_path=tmp_path / "bot.log")
    await bot.start()
    try:
        yield bot
    finally:
        bot.stop()


@contextlib.asynccontextmanager
async def connection(
    bot: BotProcess,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", bot.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length: status, headers, body."""
    async with asyncio.timeout(WAIT):
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sent until it closed the connection (raises if it never does)."""
    async with asyncio.timeout(WAIT):
        return await reader.read()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def request_head(path: str, headers: dict[str, str], method: str = "POST") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


BAD_SIGNATURE = {
    "Content-Type": "application/x-www-form-urlencoded",
    "X-Slack-Request-Timestamp": "1700000000",
    "X-Slack-Signature": "v0=" + "0" * 64,
}


async def test_a_50_mb_body_with_a_bad_signature_is_refused_before_it_is_read(
    tmp_path, slack_standin, esms_standin
):
    async with serving(tmp_path, slack_standin, esms_standin) as bot:
        before = rss_kib(bot.pid)
        for _ in range(4):  # the four at once, one after another here
            async with connection(bot) as (reader, writer):
                headers = {**BAD_SIGNATURE, "Content-Length": str(50 * MIB)}
                writer.write(request_head("/slack/events", headers))
                await writer.drain()
                # answered on the headers alone: not one byte of the body was asked for
                status, answer, _ = await response(reader)
                assert status == 413 and answer["connection"] == "close"
                with contextlib.suppress(ConnectionError):  # the bot has hung up: a reset
                    for _ in range(50):
                        writer.write(b"x" * MIB)
                        await writer.drain()
        after = rss_kib(bot.pid)
        # Before: the body was read whole, RSS 72 → 481 MB for one, +685 MB for four.
        assert after - before < 16 * 1024, (before, after)
        async with httpx.AsyncClient(base_url=bot.url, timeout=WAIT) as http:
            assert (await http.get("/healthz")).status_code == 200


async def test_a_chunked_body_is_counted_and_refused_past_the_limit(
    tmp_path, slack_standin, esms_standin
):
    async with serving(tmp_path, slack_standin, esms_standin, max_body_bytes=64 * 1024) as bot:
        async with connection(bot) as (reader, writer):
            headers = {**BAD_SIGNATURE, "Transfer-Encoding": "chunked"}
            writer.write(request_head("/slack/events", headers))
            chunk = b"a" * 1024
            for _ in range(65):  # 65 KiB, no Content-Length to check up front
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            status, _, body = await response(reader)
        # 413, not the 401 the signature check would give once the body was read whole
        assert (status, body) == (413, b"request body too large")


async def test_413_comes_before_the_signature_check_and_401_after_it(
    tmp_path, slack_standin, esms_standin
):
    async with (
        serving(tmp_path, slack_standin, esms_standin, max_body_bytes=4096) as bot,
        httpx.AsyncClient(base_url=bot.url, timeout=WAIT) as http,
    ):
        big = b"payload=" + b"%5B" * 2000  # over the limit, and malformed
        signed = signed_headers(big, SIGNING_SECRET)
        assert (await http.post("/slack/events", content=big, headers=signed)).status_code == 413
        unsigned = await http.post("/slack/events", content=big, headers=BAD_SIGNATURE)
        assert unsigned.status_code == 413
        # Within the limit, well formed, badly signed: now the signature decides.
        small = slash_command_body(text="help")
        refused = await http.post("/slack/events", content=small, headers=BAD_SIGNATURE)
        assert refused.status_code == 401


async def test_long_query_strings_and_large_headers_are_refused(
    tmp_path, slack_standin, esms_standin
):
    async with (
        serving(tmp_path, slack_standin, esms_standin) as bot,
        httpx.AsyncClient(base_url=bot.url, timeout=WAIT) as http,
    ):
        query = "SMSID=" + "1" * (16 * 1024)
        assert (await http.get(f"/esms/callback/any?{query}")).status_code == 414
        headers = {f"X-Filler-{n}": "v" * 1000 for n in range(9)}
        assert (await http.get("/healthz", headers=headers)).status_code == 431
        # Past what h11 buffers of an incomplete head: h11's own 400 if the head arrives in
        # pieces, the limit's 414 if it arrives whole. Refused either way, never served.
        async with connection(bot) as (reader, writer):
            huge = "SMSID=" + "1" * (64 * 1024)
            writer.write(request_head(f"/esms/callback/any?{huge}", {}, method="GET"))
            await writer.drain()
            assert (await response(reader))[0] in (400, 414)
        assert (await http.get("/healthz", headers={"X-Ok": "v" * 1000})).status_code == 200


async def test_slow_headers_and_idle_keep_alive_connections_are_closed(
    tmp_path, slack_standin, esms_standin
):
    async with serving(
        tmp_path, slack_standin, esms_standin, header_timeout=0.5, keepalive_timeout=0.5
    ) as bot:
        async with connection(bot) as (reader, writer):
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # no blank line
            await writer.drain()
            assert await closed_by_server(reader) == b""  # closed, and nothing answered
        async with connection(bot) as (reader, writer):
            writer.write(request_head("/healthz", {}, method="GET"))
            await writer.drain()
            status, _, _ = await response(reader)
            assert status == 200
            assert await closed_by_server(reader) == b""  # idle after its answer
        async with connection(bot) as (reader, writer):
            writer.write(request_head("/healthz", {}, method="GET"))
            await writer.drain()
            assert (await response(reader))[0] == 200
            writer.write(b"GET /healthz HTTP/1.1\r\n")  # a second request, dripped
            await writer.drain()
            assert await closed_by_server(reader) == b""


async def test_a_trickled_body_gets_408_and_a_dropped_one_no_error(
    tmp_path, slack_standin, esms_standin
):
    async with serving(tmp_path, slack_standin, esms_standin, body_timeout=0.5) as bot:
        head = request_head("/slack/events", {**BAD_SIGNATURE, "Content-Length": "1000"})
        async with connection(bot) as (reader, writer):
            writer.write(head + b"payload=")  # then nothing more: a body trickled forever
            await writer.drain()
            status, headers, _ = await response(reader)
            assert status == 408 and headers["connection"] == "close"
            assert await closed_by_server(reader) == b""
        async with connection(bot) as (reader, writer):
            writer.write(head + b"payload=")  # then the client leaves mid-body
            await writer.drain()
        # the bot goes on serving, and its log holds no error or traceback for either
        async with connection(bot) as (reader, writer):
            writer.write(request_head("/healthz", {}, method="GET"))
            await writer.drain()
            assert (await response(reader))[0] == 200
    logged = (tmp_path / "bot.log").read_text(encoding="utf-8")
    assert '"level":"ERROR"' not in logged and "Traceback" not in logged


async def test_connections_past_the_cap_are_answered_503(tmp_path, slack_standin, esms_standin):
    cap = 3
    async with serving(tmp_path, slack_standin, esms_standin, max_connections=cap) as bot:
        async with contextlib.AsyncExitStack() as held:
            statuses = []
            for _ in range(cap + 1):  # kept open (keep-alive): each one counts
                reader, writer = await held.enter_async_context(connection(bot))
                writer.write(request_head("/healthz", {}, method="GET"))
                await writer.drain()
                statuses.append((await response(reader))[0])
                if statuses[-1] == 503:
                    break
            assert statuses[-1] == 503 and set(statuses[:-1]) == {200}
            assert len(statuses) <= cap
        async with httpx.AsyncClient(base_url=bot.url, timeout=WAIT) as http:
            assert (await http.get("/healthz")).status_code == 200  # once they are gone


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("MAX_BODY_BYTES", "10", "MAX_BODY_BYTES"),
        ("HEADER_TIMEOUT", "0", "HEADER_TIMEOUT"),
        ("MAX_CONNECTIONS", "many", "MAX_CONNECTIONS"),
        ("METRICS_PORT", "PORT", "METRICS_PORT must differ from PORT"),
    ],
)
def test_bad_limit_settings_are_refused_in_one_line(tmp_path, name, value, says, monkeypatch):
    from bot.config import load_settings
    from bot.errors import ConfigError

    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("PORT", "3000")
    monkeypatch.setenv(name, "3000" if value == "PORT" else value)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    (line,) = str(refused.value).splitlines()
    assert says in line
