"""The one error handler: which listener failed, what the person reads, Slack answered."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.slack_response import SlackResponse

from bot.errors import EsmsError, StoreError, TemplateError
from handlers.failures import channel_of, failure_text, listener_of, slack_cause, told
from tests.handlers.listeners.conftest import RecordingAck


def slack_error(method: str, code: str, messages: list[str] | None = None) -> SlackApiError:
    data: dict[str, Any] = {"ok": False, "error": code}
    if messages:
        data["response_metadata"] = {"messages": messages}
    response = SlackResponse(
        client=None,
        http_verb="POST",
        api_url=f"http://127.0.0.1:1/api/{method}",
        req_args={},
        data=data,
        headers={},
        status_code=200,
    )
    return SlackApiError("refused", response)


@pytest.mark.parametrize(
    ("body", "name"),
    [
        ({"command": "/zns", "user_id": "U1"}, "command /zns"),
        ({"type": "block_actions", "actions": [{"action_id": "zns_review"}]}, "action zns_review"),
        ({"type": "view_submission", "view": {"callback_id": "zns_request"}}, "view zns_request"),
        ({"type": "block_suggestion", "action_id": "template_select"}, "options template_select"),
        ({"type": "event_callback", "event": {"type": "app_home_opened"}}, "event app_home_opened"),
        ({}, "request of an unknown kind"),
    ],
)
def test_listener_of_names_what_slack_delivered(body, name):
    assert listener_of(body) == name


def test_channel_of_finds_the_command_or_the_card():
    assert channel_of({"channel_id": "C1"}) == "C1"
    assert channel_of({"channel": {"id": "C2"}}) == "C2"
    assert channel_of({"container": {"channel_id": "C3"}}) == "C3"
    assert channel_of({"view": {}}) is None


def test_slack_cause_names_the_method_the_code_and_slacks_reasons():
    error = slack_error("views.update", "invalid_arguments", ["[ERROR] too long [json-pointer:/x]"])
    assert slack_cause(error) == (
        "views.update: invalid_arguments ([ERROR] too long [json-pointer:/x])"
    )


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (slack_error("views.open", "expired_trigger_id"), "Slack refused"),
        (SlackRequestError("down"), "could not reach Slack"),
        (EsmsError("timed out"), "eSMS could not be reached"),
        (StoreError("disk full"), "could not save this: disk full"),
        (TemplateError("template 123 is not ENABLE"), "Template 123 is not ENABLE."),
        (KeyError("x"), "Something went wrong inside zns-bot"),
    ],
)
def test_the_person_reads_what_failed_and_that_nothing_was_sent(error, words):
    text = failure_text(error)
    assert words in text and len(text) < 300
    if not isinstance(error, TemplateError):
        assert "Nothing was sent." in text


async def test_told_declares_what_bolt_must_inject_and_acks_a_failed_submission():
    async def listener(ack: Any, view: Any, context: Any) -> None:
        raise StoreError("disk full")

    guarded = told(listener)
    assert inspect.getfullargspec(inspect.unwrap(guarded)).args == [
        "ack", "view", "context", "body", "client",
    ]  # fmt: skip
    ack = RecordingAck()
    body = {
        "type": "view_submission",
        "user": {"id": "U1"},
        "view": {"blocks": [{"type": "section"}, {"type": "input", "block_id": "phone"}]},
    }

    class Client:
        def __init__(self) -> None:
            self.sent: list[dict[str, Any]] = []

        async def conversations_open(self, users: str) -> dict[str, Any]:
            return {"channel": {"id": "D1"}}

        async def chat_postMessage(self, **kwargs: Any) -> None:
            self.sent.append(kwargs)

    client = Client()
    await guarded(ack=ack, view=body["view"], context={}, body=body, client=client)
    answer = ack.only
    assert answer["response_action"] == "errors"
    assert "disk full" in answer["errors"]["phone"] and len(answer["errors"]["phone"]) < 200
    assert client.sent == []  # the open modal shows the reason: no DM besides
