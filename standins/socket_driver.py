"""The Slack driver over Socket Mode: the same requests, sent as envelopes instead of HTTP."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

import httpx

from standins.driver import SlackDriver
from standins.socket_mode import Envelope

ACK_WAIT = 3.0  # Slack shows the user an error when an envelope is not acked within 3 s


def envelope_of(body: bytes) -> tuple[str, dict[str, Any]]:
    """The envelope type and payload Slack sends over the socket for the HTTP `body` it would
    have POSTed: a slash command's form fields, an interaction's `payload`, an event's JSON.
    So every request is built once, by standins/payloads.py, whichever way it travels."""
    if body.lstrip().startswith(b"{"):
        return "events_api", json.loads(body)
    fields = dict(parse_qsl(body.decode(), keep_blank_values=True))
    if set(fields) == {"payload"}:
        return "interactive", json.loads(fields["payload"])
    return "slash_commands", fields


def as_response(envelope: Envelope) -> httpx.Response:
    """The ack as the HTTP answer it stands for: empty, or the payload's JSON (e.g. a view
    submission's `response_action: errors`), so tests read both transports alike."""
    request = httpx.Request("POST", "socket-mode://envelope/" + envelope.envelope_id)
    if envelope.ack_payload is None:
        return httpx.Response(200, request=request)
    return httpx.Response(200, json=envelope.ack_payload, request=request)


class SocketModeDriver(SlackDriver):
    """Sends every slash command, click and submit as an envelope on the stand-in's Socket
    Mode link and answers with its ack; `secret` is ignored, nothing is signed on a socket."""

    last_envelope: Envelope | None = None

    async def post(self, body: bytes, *, secret: str | None = None) -> httpx.Response:
        kind, payload = envelope_of(body)
        sent = await self.slack.socket_mode.deliver(kind, payload)
        self.last_envelope = await self.slack.socket_mode.acked(sent.envelope_id, ACK_WAIT)
        return as_response(self.last_envelope)
