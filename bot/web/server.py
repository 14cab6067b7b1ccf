"""The bot's uvicorn configuration: no access log (it would print secrets), limits, timeouts."""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Any

import h11
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from bot.errors import ConfigError


class QuietH11Protocol(H11Protocol):
    """uvicorn's h11 protocol without the access log, which would print query strings
    (eSMS GET requests carry ApiKey/SecretKey there, Slack GETs carry args). `access_log=False`
    is not enough: uvicorn still logs whenever the access logger has a handler, as under pytest.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.access_log = False


class HeaderTimeoutProtocol(QuietH11Protocol):
    """Closes a connection that has not sent a request's complete headers in `header_timeout`.

    uvicorn has no such timeout: a client dripping one header byte a minute holds its file
    descriptor for ever. The clock starts when the connection opens and again when the first
    byte of each later request arrives (between requests, uvicorn's keep-alive timeout rules).
    """

    header_timeout: float = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE and self._header_timer is None:
            self._arm_header_timer()
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the headers are in
            self._cancel_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            # No response: the client has not finished asking; 408 would invite a retry.
            self.transport.close()


def header_timeout_protocol(seconds: float) -> type[HeaderTimeoutProtocol]:
    """The protocol class with its header-read timeout set (uvicorn instantiates the class)."""
    return type("HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout": seconds})


def quiet_config(app: ASGIApp, **overrides: Any) -> uvicorn.Config:
    """A uvicorn.Config that stays out of the way: no access log, no websockets, no lifespan,
    the process's logging configuration left alone, a short graceful shutdown."""
    options: dict[str, Any] = {
        "http": QuietH11Protocol,
        "ws": "none",
        "lifespan": "off",
        "log_config": None,  # leave the process's logging configuration alone
        "access_log": False,
        "timeout_graceful_shutdown": 2,
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)


class ByPort:
    """Hands each request to the app of the listener (local port) it arrived on."""

    def __init__(self, default: ASGIApp, by_port: dict[int, ASGIApp]) -> None:
        self.default = default
        self.by_port = by_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server")  # lifespan has none: it goes to the default app
        app = self.by_port.get(server[1], self.default) if server else self.default
        await app(scope, receive, send)


def listen_socket(host: str, port: int, *, host_name: str, port_name: str) -> socket.socket:
    """A socket bound to host:port as uvicorn's Config.bind_socket binds it, for
    `Server.serve(sockets=...)`. Binding it here, before anything logs "listening", turns a
    taken port or a bad host into a ConfigError naming the setting: uvicorn would log its
    own line and exit 1 with neither name."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family=family, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(_bind_error(exc, host, port, host_name, port_name)) from None
    sock.set_inheritable(True)
    return sock


def _bind_error(exc: OSError, host: str, port: int, host_name: str, port_name: str) -> str:
    where = f"{host_name}={host}, {port_name}={port}"
    if isinstance(exc, socket.gaierror):  # not an address, not a name that resolves
        return f"{host_name} {host!r} is not an IP address or a host name that resolves ({where})"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"{port_name} {port} on {host} is in use (another zns-bot or another server?); "
            f"stop it or choose another {port_name}"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{host_name} {host} is not an address of this machine ({where})"
    if exc.errno == errno.EACCES:
        return f"{port_name} {port} needs privileges to listen on; use a port above 1023 ({where})"
    return f"cannot listen on {host}:{port}: {exc.strerror or exc} ({where})"
