"""Slack's Socket Mode for the Slack stand-in: tickets, a WebSocket link, envelopes and acks."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from standins.changes import Changes

DEFAULT_APP_TOKEN = "xapp-1-A0ZNSAPP1-standin"  # noqa: S105 - a fake app-level token
LINK_PATH = "/link/"
# The handshake refusal for a ticket that is unknown or already used. Slack's own answer is
# not documented; a refused upgrade is what a client sees as "that URL is dead, ask again".
REFUSED_CLOSE_CODE = 1008
# Slack closes a link some seconds after asking the app to reconnect; a client that follows
# the protocol closes it itself first, so this only bounds a client that does not.
DISCONNECT_GRACE = 10.0
# Envelope types whose ack may carry a payload (Slack's `accepts_response_payload`).
_RESPONSE_PAYLOAD_INTERACTIONS = {"view_submission", "block_suggestion"}

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(slots=True)
class Envelope:
    """One envelope sent to the app, and the ack that came back for it (if any)."""

    envelope_id: str
    type: str  # slash_commands | interactive | events_api
    payload: dict[str, Any]
    accepts_response_payload: bool
    connection: int
    sent_at: float
    acked: bool = False
    ack_payload: dict[str, Any] | None = None  # what the ack carried, when it carried one
    acked_at: float | None = None


@dataclass(slots=True)
class Connection:
    """One WebSocket link opened with a ticket; `number` counts links from 1."""

    number: int
    ticket: str
    opened_at: float
    websocket: WebSocket = field(repr=False)
    loop: asyncio.AbstractEventLoop = field(repr=False)
    closed: bool = False
    close_code: int | None = None  # 1000: the app left cleanly; 1005/1006: the link just dropped
    disconnect_reasons: list[str] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)  # every message, acks included


class SocketMode:
    """Slack's Socket Mode side: issues one-time tickets through apps.connections.open, serves
    the links they open, delivers envelopes, records acks, and asks the app to reconnect.

    Thread-safe: the links live on the stand-in's server loop, tests call from their own loop.
    """

    def __init__(self, app_token: str = DEFAULT_APP_TOKEN, *, app_id: str) -> None:
        self._app_id = app_id
        self._cond = threading.Condition(threading.RLock())
        self._app_token = app_token
        self._tickets: set[str] = set()
        self._issued = 0
        self._refused: list[str] = []  # tickets refused at the handshake
        self._connections: list[Connection] = []
        self._numbers = itertools.count(1)
        self._envelopes: dict[str, Envelope] = {}
        self._changes = Changes(self._cond)
        self.base_url = ""  # ws://host:port, set by the stand-in once its port is known

    # --- configuration and reading (for tests) ----------------------------------------------

    @property
    def app_token(self) -> str:
        with self._cond:
            return self._app_token

    def set_app_token(self, token: str) -> None:
        with self._cond:
            self._app_token = token

    def reset(self) -> None:
        """Forget envelopes, refusals and unused tickets; live links stay (their app owns them)."""
        with self._cond:
            self._tickets.clear()
            self._refused.clear()
            self._envelopes.clear()
            self._issued = 0
            self._connections = [c for c in self._connections if not c.closed]

    @property
    def tickets_issued(self) -> int:
        with self._cond:
            return self._issued

    @property
    def refused(self) -> list[str]:
        with self._cond:
            return list(self._refused)

    def connections(self) -> list[Connection]:
        with self._cond:
            return list(self._connections)

    def live(self) -> Connection | None:
        """The newest open link: where envelopes go, as Slack picks one of an app's links."""
        with self._cond:
            return next((c for c in reversed(self._connections) if not c.closed), None)

    def envelopes(self) -> list[Envelope]:
        with self._cond:
            return [_copy(e) for e in self._envelopes.values()]

    def unacked(self) -> list[Envelope]:
        """Envelopes the app never acknowledged: Slack would retry or show the user an error."""
        return [e for e in self.envelopes() if not e.acked]

    # --- apps.connections.open ----------------------------------------------------------------

    def connections_open(self, token: str | None, *, bot_token: str) -> dict[str, Any]:
        """Slack's answer to apps.connections.open: only the app-level token may call it."""
        if not token:
            return {"ok": False, "error": "not_authed"}
        with self._cond:
            if token == bot_token:
                return {"ok": False, "error": "not_allowed_token_type"}
            if token != self._app_token:
                return {"ok": False, "error": "invalid_auth"}
            ticket = secrets.token_hex(16)
            self._tickets.add(ticket)
            self._issued += 1
        url = f"{self.base_url}{LINK_PATH}?ticket={ticket}&app_id={self._app_id}"
        return {"ok": True, "url": url}

    # --- the link (runs on the stand-in's server loop) ----------------------------------------

    async def endpoint(self, websocket: WebSocket) -> None:
        ticket = websocket.query_params.get("ticket") or ""
        with self._cond:
            valid = ticket in self._tickets
            self._tickets.discard(ticket)  # one use only, whatever happens next
            if not valid:
                self._refused.append(ticket)
                self._notify()
        if not valid:
            # Closing before accept refuses the upgrade: the client gets HTTP 403.
            await websocket.close(code=REFUSED_CLOSE_CODE)
            return
        await websocket.accept()
        with self._cond:
            connection = Connection(
                number=next(self._numbers),
                ticket=ticket,
                opened_at=time.time(),
                websocket=websocket,
                loop=asyncio.get_running_loop(),
            )
        await websocket.send_text(json.dumps(self._hello(connection)))
        with self._cond:
            # Registered only after hello: from then on the app may be sent envelopes.
            self._connections.append(connection)
            self._notify()
        try:
            await self._receive(connection)
        finally:
            with self._cond:
                connection.closed = True
                self._notify()

    def _hello(self, connection: Connection) -> dict[str, Any]:
        with self._cond:
            live = sum(not c.closed for c in self._connections) + 1
        return {
            "type": "hello",
            "num_connections": live,
            "debug_info": {
                "host": "applink-standin",
                "build_number": 1,
                "approximate_connection_time": 18060,
            },
            "connection_info": {"app_id": self._app_id},
        }

    async def _receive(self, connection: Connection) -> None:
        try:
            while True:
                text = await connection.websocket.receive_text()
                try:
                    message = json.loads(text)
                except ValueError:
                    logger.warning("socket mode stand-in: a message that is not JSON")
                    continue
                self._on_message(connection, message)
        except WebSocketDisconnect as left:
            connection.close_code = left.code

    def _on_message(self, connection: Connection, message: Any) -> None:
        with self._cond:
            connection.received.append(message)
            envelope = (
                self._envelopes.get(str(message.get("envelope_id")))
                if isinstance(message, dict)
                else None
            )
            if envelope is not None and not envelope.acked:
                envelope.acked = True
                envelope.acked_at = time.time()
                payload = message.get("payload")
                envelope.ack_payload = dict(payload) if isinstance(payload, Mapping) else None
            self._notify()

    # --- acting as Slack (from the tests' loop) -----------------------------------------------

    async def deliver(
        self,
        kind: str,
        payload: Mapping[str, Any],
        *,
        accepts_response_payload: bool | None = None,
        wait: float = 5.0,
    ) -> Envelope:
        """Send `payload` in an envelope on the live link (waiting for one); return the record."""
        connection = await self.await_link(wait=wait)
        if accepts_response_payload is None:
            accepts_response_payload = _accepts_response_payload(kind, payload)
        envelope = Envelope(
            envelope_id=str(uuid.uuid4()),
            type=kind,
            payload=json.loads(json.dumps(payload)),
            accepts_response_payload=accepts_response_payload,
            connection=connection.number,
            sent_at=time.time(),
        )
        message: dict[str, Any] = {
            "envelope_id": envelope.envelope_id,
            "payload": envelope.payload,
            "type": kind,
            "accepts_response_payload": accepts_response_payload,
        }
        if kind == "events_api":
            message.update(retry_attempt=0, retry_reason="")
        with self._cond:
            self._envelopes[envelope.envelope_id] = envelope
        await _on(connection, connection.websocket.send_text(json.dumps(message)))
        return _copy(envelope)

    async def acked(self, envelope_id: str, wait: float = 3.0) -> Envelope:
        """The envelope once the app has acked it; Slack gives up after 3 s, and so do we."""

        def done() -> Envelope | None:
            envelope = self._envelopes.get(envelope_id)
            return _copy(envelope) if envelope is not None and envelope.acked else None

        return await self._await(done, wait, f"no ack for envelope {envelope_id}")

    async def await_link(self, after: int = 0, wait: float = 5.0) -> Connection:
        """The live link numbered above `after`, once its hello has been sent."""

        def found() -> Connection | None:
            live = self.live()
            return live if live is not None and live.number > after else None

        return await self._await(found, wait, f"no Socket Mode link opened after #{after}")

    async def await_closed(self, connection: Connection, wait: float = 5.0) -> Connection:
        """`connection` once its link has closed, whichever side closed it."""
        return await self._await(
            lambda: connection if connection.closed else None,
            wait,
            f"link #{connection.number} open",
        )

    async def await_refused(self, count: int = 1, wait: float = 5.0) -> list[str]:
        def enough() -> list[str] | None:
            return list(self._refused) if len(self._refused) >= count else None

        return await self._await(enough, wait, f"fewer than {count} ticket(s) refused")

    async def disconnect(
        self, reason: str = "refresh_requested", *, grace: float = DISCONNECT_GRACE
    ) -> Connection:
        """Ask the live link's app to reconnect, as Slack does before it recycles a server;
        close the link once the app has left it, or after `grace` seconds if it stays."""
        connection = await self.await_link()
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "standin"}}
        with self._cond:
            connection.disconnect_reasons.append(reason)
        await _on(connection, self._disconnect(connection, message, grace))
        return connection

    async def drop(self, code: int = 1001) -> Connection:
        """Close the live link with no `disconnect` first, as a server going away would (1001:
        going away); the app has to notice on its own and open a new link."""
        connection = await self.await_link()
        await _on(connection, connection.websocket.close(code))
        return await self.await_closed(connection)

    async def _disconnect(
        self, connection: Connection, message: dict[str, Any], grace: float
    ) -> None:
        websocket = connection.websocket
        await websocket.send_text(json.dumps(message))
        try:
            await self._await(lambda: True if connection.closed else None, grace, "the app left")
        except TimeoutError:
            if websocket.application_state != WebSocketState.DISCONNECTED:
                with contextlib.suppress(RuntimeError):  # the app left just now
                    await websocket.close()

    # --- waiting ------------------------------------------------------------------------------

    def _notify(self) -> None:
        self._changes.notify()

    async def _await(self, check: Callable[[], T | None], wait: float, what: str) -> T:
        """`check()` (under the lock) once it returns something; TimeoutError after `wait`."""
        try:
            return await self._changes.until(check, wait)
        except TimeoutError:
            raise TimeoutError(f"{what} within {wait}s") from None


async def _on(connection: Connection, coroutine: Any) -> Any:
    """Run `coroutine` on the link's own loop (the stand-in's server thread), await it here."""
    future = asyncio.run_coroutine_threadsafe(coroutine, connection.loop)
    return await asyncio.wrap_future(future)


def _accepts_response_payload(kind: str, payload: Mapping[str, Any]) -> bool:
    if kind == "slash_commands":
        return True
    return kind == "interactive" and payload.get("type") in _RESPONSE_PAYLOAD_INTERACTIONS


def _copy(envelope: Envelope) -> Envelope:
    return Envelope(
        envelope_id=envelope.envelope_id,
        type=envelope.type,
        payload=json.loads(json.dumps(envelope.payload)),
        accepts_response_payload=envelope.accepts_response_payload,
        connection=envelope.connection,
        sent_at=envelope.sent_at,
        acked=envelope.acked,
        ack_payload=None if envelope.ack_payload is None else dict(envelope.ack_payload),
        acked_at=envelope.acked_at,
    )
