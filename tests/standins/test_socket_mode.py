"""The Slack stand-in's Socket Mode: who may open a link, envelopes, acks and disconnects."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import httpx
import pytest

from standins.payloads import slash_command_body, view_submission_body
from standins.slack import SlackStandIn
from standins.socket_driver import as_response, envelope_of
from tests.harness import BOT_TOKEN


async def connections_open(standin: SlackStandIn, token: str | None) -> dict:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient() as http:
        response = await http.post(standin.api_url + "apps.connections.open", headers=headers)
    assert response.status_code == 200
    return response.json()


@pytest.fixture
async def link(slack_standin) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """An app's side of a fresh link, its hello already read."""
    url = (await connections_open(slack_standin, slack_standin.socket_mode.app_token))["url"]
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "hello"
        yield ws


@pytest.mark.parametrize(
    ("token", "error"),
    [
        (None, "not_authed"),
        (BOT_TOKEN, "not_allowed_token_type"),
        ("xapp-1-A0OTHER-wrong", "invalid_auth"),
    ],
)
async def test_only_the_app_level_token_opens_a_connection(slack_standin, token, error):
    assert await connections_open(slack_standin, token) == {"ok": False, "error": error}
    assert slack_standin.socket_mode.tickets_issued == 0


async def test_the_app_level_token_calls_no_web_api_method(slack_standin):
    async with httpx.AsyncClient() as http:
        response = await http.post(
            slack_standin.api_url + "chat.postMessage",
            headers={"Authorization": f"Bearer {slack_standin.socket_mode.app_token}"},
            json={"channel": "C0APPROVALS", "text": "hi"},
        )
    assert response.json() == {"ok": False, "error": "not_allowed_token_type"}
    assert slack_standin.messages("C0APPROVALS") == []


async def test_an_envelope_is_unacked_until_the_app_acks_it_with_its_payload(slack_standin, link):
    socket = slack_standin.socket_mode
    kind, payload = envelope_of(slash_command_body(text="help"))
    sent = await socket.deliver(kind, payload)
    message = await link.receive_json(timeout=5)
    assert message == {
        "envelope_id": sent.envelope_id,
        "payload": payload,
        "type": "slash_commands",
        "accepts_response_payload": True,
    }
    assert [e.envelope_id for e in socket.unacked()] == [sent.envelope_id]

    await link.send_str(json.dumps({"envelope_id": sent.envelope_id, "payload": {"text": "ok"}}))
    acked = await socket.acked(sent.envelope_id)
    assert acked.ack_payload == {"text": "ok"} and socket.unacked() == []
    assert as_response(acked).json() == {"text": "ok"}


async def test_an_unacked_envelope_times_out_as_slack_would(slack_standin, link):
    sent = await slack_standin.socket_mode.deliver("events_api", {"type": "event_callback"})
    assert (await link.receive_json(timeout=5))["retry_attempt"] == 0
    with pytest.raises(TimeoutError, match="no ack"):
        await slack_standin.socket_mode.acked(sent.envelope_id, wait=0.2)
    assert [e.envelope_id for e in slack_standin.socket_mode.unacked()] == [sent.envelope_id]


def test_envelopes_carry_what_slack_would_have_posted():
    kind, payload = envelope_of(slash_command_body(text="0901888484"))
    assert kind == "slash_commands" and payload["command"] == "/zns"
    assert payload["text"] == "0901888484"
    kind, payload = envelope_of(view_submission_body("zns_request", {"phone": {"value": "1"}}))
    assert kind == "interactive" and payload["type"] == "view_submission"
    assert envelope_of(b'{"type": "event_callback"}') == ("events_api", {"type": "event_callback"})


async def test_disconnect_closes_a_link_the_app_does_not_leave(slack_standin, link):
    socket = slack_standin.socket_mode
    closing = await socket.disconnect("refresh_requested", grace=0.2)
    message = await link.receive_json(timeout=5)
    assert message["type"] == "disconnect" and message["reason"] == "refresh_requested"
    closed = await link.receive(timeout=5)  # this app stays: the stand-in closes after grace
    assert closed.type == aiohttp.WSMsgType.CLOSE
    assert (await socket.await_closed(closing)).disconnect_reasons == ["refresh_requested"]
    assert socket.live() is None
