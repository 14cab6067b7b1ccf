"""The bot's uvicorn configuration: no access log (it would print secrets), quiet, short."""

from __future__ import annotations

from typing import Any

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol


class QuietH11Protocol(H11Protocol):
    """uvicorn's h11 protocol without the access log, which would print query strings
    (eSMS GET requests carry ApiKey/SecretKey there, Slack GETs carry args). `access_log=False`
    is not enough: uvicorn still logs whenever the access logger has a handler, as under pytest.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.access_log = False


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
