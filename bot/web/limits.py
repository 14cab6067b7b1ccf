"""Size limits checked before the app reads: body (413), query string (414), headers (431)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

# RFC 9110 §15.5.14/15 and RFC 6585 §5: the codes nginx (414), Node and Go (431) answer with.
BODY_TOO_LARGE = 413
QUERY_TOO_LONG = 414
HEADERS_TOO_LARGE = 431
BODY_TIMED_OUT = 408  # RFC 9110 §15.5.9: the client did not send its request in time


class BodyTooLarge(Exception):
    """The streamed body passed the limit; raised into the app, which must not see the rest."""


class BodyTimedOut(Exception):
    """The body did not arrive within the limit's time: a connection trickling it is closed."""


@dataclass(frozen=True)
class Limits:
    max_body: int
    max_query: int
    max_headers: int
    body_timeout: float = 30.0  # seconds for the whole body, once the headers are in


class LimitsMiddleware:
    """Refuse oversized requests before the app sees them; never buffers a body.

    Content-Length is checked up front. A body without one (chunked) is counted as the app
    reads it: past the limit, the app's `receive` raises and the 413 goes out instead of
    whatever the app would have answered. Each refusal closes the connection, so the rest of
    a large body is never read either. Place it in Starlette's `middleware=`, inside its
    error middleware, which would otherwise answer the raise with a 500 first.
    """

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if len(scope["query_string"]) > self.limits.max_query:
            await _refuse(send, QUERY_TOO_LONG, b"query string too long")
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        if sum(len(name) + len(value) for name, value in headers) > self.limits.max_headers:
            await _refuse(send, HEADERS_TOO_LARGE, b"request headers too large")
            return
        declared = _content_length(headers)
        if declared is not None and declared > self.limits.max_body:
            await _refuse(send, BODY_TOO_LARGE, b"request body too large")
            return
        await self._counted(scope, receive, send)

    async def _counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        seen = 0
        started = False
        # One deadline for the whole body: a client trickling a byte at a time would
        # otherwise hold its connection (and, at the cap, lock everyone else out) forever.
        deadline = asyncio.get_running_loop().time() + self.limits.body_timeout

        async def counting_receive() -> Message:
            nonlocal seen
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyTimedOut from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limits.max_body:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except (BodyTooLarge, BodyTimedOut, ClientDisconnect) as exc:
            if started:  # the app answered before reading it all; only closing is left
                raise
            if isinstance(exc, ClientDisconnect):
                # The client left mid-body: nobody to answer, and no error to log (before,
                # a 500 and a traceback per connection, for anyone who cared to cause it).
                log.debug("a client left before sending its whole request body")
                return
            await _refuse(send, *_ANSWERS[type(exc)])


_ANSWERS: dict[type[Exception], tuple[int, bytes]] = {
    BodyTooLarge: (BODY_TOO_LARGE, b"request body too large"),
    BodyTimedOut: (BODY_TIMED_OUT, b"request body not received in time"),
}


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            # h11 has already refused a malformed or conflicting Content-Length
            return int(value)
    return None


async def _refuse(send: Send, status: int, text: bytes) -> None:
    # Connection: close, so uvicorn drops the connection instead of reading the rest of the body.
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(text)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": text})
