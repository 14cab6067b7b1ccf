"""bot.web.server: quiet_config serves with no access log, even when the logger has a handler."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from bot.web.server import QuietH11Protocol, quiet_config
from standins.servers import NotifyingServer, loopback_socket

SECRET_QUERY = "ApiKey=apikey-access-log-7f3e&SecretKey=secret-access-log-d41a"


async def _ok(request: Request) -> Response:
    return PlainTextResponse("ok")


APP = Starlette(routes=[Route("/callback", _ok)])


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def access_log() -> Iterator[_Records]:
    """A handler for `uvicorn.access`, not yet attached; the logger is restored afterwards
    (uvicorn.Config strips its handlers and stops its propagation)."""
    logger = logging.getLogger("uvicorn.access")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield _Records()
    logger.handlers, logger.level, logger.propagate = saved


def _get_with_a_handler(config: uvicorn.Config, handler: _Records) -> None:
    """One GET with a query string, served in a thread, once the access logger has a handler.

    The handler goes on after Config is built: access_log=False makes Config strip the
    logger's handlers, and the bug this guards against is a handler added later (pytest's).
    """
    logger = logging.getLogger("uvicorn.access")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    ready = threading.Event()
    server = NotifyingServer(config, ready.set)
    with loopback_socket() as sock:
        port = sock.getsockname()[1]
        thread = threading.Thread(
            target=asyncio.run, args=(server.serve(sockets=[sock]),), daemon=True
        )
        thread.start()
        try:
            assert ready.wait(10) and server.started
            reply = httpx.get(f"http://127.0.0.1:{port}/callback?{SECRET_QUERY}", trust_env=False)
            assert reply.status_code == 200
        finally:
            server.should_exit = True
            thread.join(10)
    assert not thread.is_alive()


def test_quiet_config_serves_with_the_quiet_protocol(access_log: _Records) -> None:
    config = quiet_config(APP)
    config.load()
    assert config.http_protocol_class is QuietH11Protocol
    assert issubclass(QuietH11Protocol, H11Protocol)


def test_uvicorns_h11_protocol_logs_access_when_the_logger_has_a_handler(
    access_log: _Records,
) -> None:
    # The control: without it, a silent access log below could mean a harness that sees nothing.
    _get_with_a_handler(quiet_config(APP, http=H11Protocol), access_log)

    # The access line is there (its credentials blanked as every log record's are).
    assert ["/callback?ApiKey=***" in record.getMessage() for record in access_log.records] == [
        True
    ]


def test_quiet_protocol_keeps_query_strings_out_of_the_access_log(
    access_log: _Records,
) -> None:
    # QuietH11Protocol relies on H11Protocol reading `self.access_log` for each response.
    _get_with_a_handler(quiet_config(APP), access_log)

    assert access_log.records == []
