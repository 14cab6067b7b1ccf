"""uvicorn.Server's startup(sockets=) and capture_signals(), which standins/servers.py overrides."""

from __future__ import annotations

import contextlib
import inspect
import signal
import socket
from collections.abc import Iterator

import uvicorn
from starlette.applications import Starlette

from bot.web.server import quiet_config
from standins.servers import NotifyingServer, _GuestServer, loopback_socket


def test_startup_is_a_coroutine_taking_optional_sockets() -> None:
    startup = uvicorn.Server.startup
    assert inspect.iscoroutinefunction(startup)
    parameters = inspect.signature(startup).parameters
    assert list(parameters) == ["self", "sockets"]
    assert parameters["sockets"].default is None
    assert "startup" in vars(NotifyingServer)  # what this guards is still overridden


def test_capture_signals_is_a_method_returning_a_context_manager() -> None:
    capture_signals = uvicorn.Server.capture_signals
    assert list(inspect.signature(capture_signals).parameters) == ["self"]
    server = uvicorn.Server(quiet_config(Starlette()))
    assert isinstance(server.capture_signals(), contextlib.AbstractContextManager)
    assert "capture_signals" in vars(_GuestServer)


class _Recording(uvicorn.Server):
    """Records how serve() calls the two hooks, and stops as soon as startup is over."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.startup_sockets: list[list[socket.socket] | None] = []
        self.handlers_while_capturing: list[object] = []

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.startup_sockets.append(sockets)
        await super().startup(sockets=sockets)
        self.should_exit = True

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        self.handlers_while_capturing.append(signal.getsignal(signal.SIGINT))
        yield


async def test_serve_goes_through_both_overrides() -> None:
    before = signal.getsignal(signal.SIGINT)
    with loopback_socket() as sock:
        server = _Recording(quiet_config(Starlette()))
        await server.serve(sockets=[sock])

    assert server.started
    assert server.startup_sockets == [[sock]]
    # Overridden, uvicorn's own capture_signals never ran: SIGINT stayed the test process's.
    assert server.handlers_while_capturing == [before]
    assert signal.getsignal(signal.SIGINT) == before
