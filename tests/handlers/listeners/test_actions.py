"""Review and Cancel on a request card: who is refused, how they are told, what is audited."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import pytest

from bot.service import SendService
from handlers.deps import CONTEXT_KEY
from handlers.failures import told
from handlers.listeners.actions import handle_cancel, handle_review
from handlers.ui.blocks import CANCEL_ACTION, REVIEW_ACTION
from standins.driver import AGENT, APPROVAL_CHANNEL, APPROVER
from standins.payloads import block_action_body
from storage.sends import SendState
from storage.store import Store
from tests.harness import GROUP_APPROVER, STRANGER

if TYPE_CHECKING:
    from tests.handlers.listeners.conftest import (
        MakeContext,
        RecordingAck,
        RecordingSlack,
        RequestSend,
    )

TRIGGER = "3333333333333.4444444444.0123456789abcdef0123456789abcdef"
CARD = {"type": "message", "ts": "1700000000.000200", "text": "ZNS request"}


def click(action_id: str, send_id: str, user: str) -> dict[str, Any]:
    """The body Bolt hands a listener for a button clicked on the card in the approvals channel."""
    form = block_action_body(
        action_id,
        value=send_id,
        user_id=user,
        block_id="decision",
        channel_id=APPROVAL_CHANNEL,
        message=CARD,
        trigger_id=TRIGGER,
    )
    payload: dict[str, Any] = json.loads(parse_qs(form.decode())["payload"][0])
    return payload


def service_of(context: dict[str, Any]) -> SendService:
    service: SendService = context[CONTEXT_KEY].service
    return service


def refusals(store: Store, action: str) -> list[dict[str, Any]]:
    return [e for e in store.audit.iter_events() if e["action"] == action]


def ephemeral(user: str, text: str) -> dict[str, str]:
    return {"channel": APPROVAL_CHANNEL, "user": user, "text": text}


# --- Review --------------------------------------------------------------------------------


async def test_review_by_a_non_approver_is_refused_audited_and_opens_nothing(
    context: dict[str, Any],
    ack: RecordingAck,
    slack: RecordingSlack,
    store: Store,
    request_send: RequestSend,
) -> None:
    record = await request_send(context)

    await handle_review(ack, click(REVIEW_ACTION, record["id"], STRANGER), slack, context)

    assert ack.only == {}
    assert slack.called("chat_postEphemeral") == [
        ephemeral(STRANGER, ":no_entry: Only approvers can review ZNS requests.")
    ]
    (event,) = refusals(store, "review_refused")
    assert event["actor"] == f"slack:{STRANGER}"
    assert event["reason"] == "not an approver"
    assert event["send_id"] == record["id"]
    assert slack.called("views_open") == []
    assert service_of(context).get(record["id"])["state"] == "pending_approval"


async def test_review_by_an_approver_opens_the_approval_modal_and_audits_no_refusal(
    context: dict[str, Any],
    ack: RecordingAck,
    slack: RecordingSlack,
    store: Store,
    request_send: RequestSend,
) -> None:
    record = await request_send(context)

    await handle_review(ack, click(REVIEW_ACTION, record["id"], APPROVER), slack, context)

    assert ack.only == {}
    (opened,) = slack.called("views_open")
    assert opened["trigger_id"] == TRIGGER
    assert opened["view"]["callback_id"] == "zns_approval"
    digest = store.audit.for_send(record["id"])[0]["data"]["content"]  # the "created" one
    assert json.loads(opened["view"]["private_metadata"]) == {
        "send_id": record["id"],
        "digest": digest,
    }
    # what the decision will be checked against
    shown = store.views.get("V0OPENED")  # the id the fake Slack gives it
    assert shown is not None
    assert (shown["kind"], shown["user"], shown["send_id"], shown["digest"]) == (
        "review",
        APPROVER,
        record["id"],
        digest,
    )
    assert len(slack.called("views_update")) == 1
    assert slack.called("chat_postEphemeral") == []
    assert refusals(store, "review_refused") == []


async def test_review_by_a_member_of_an_approvers_user_group_opens_the_approval_modal(
    context: dict[str, Any],
    ack: RecordingAck,
    slack: RecordingSlack,
    store: Store,
    request_send: RequestSend,
) -> None:
    record = await request_send(context)

    await handle_review(ack, click(REVIEW_ACTION, record["id"], GROUP_APPROVER), slack, context)

    assert len(slack.called("views_open")) == 1
    assert slack.called("chat_postEphemeral") == []
    assert refusals(store, "review_refused") == []


async def test_an_approver_reviewing_their_own_request_is_refused_and_audited(
    context: dict[str, Any],
    ack: RecordingAck,
    slack: RecordingSlack,
    store: Store,
    request_send: RequestSend,
) -> None:
    record = await request_send(context, by=APPROVER)

    await handle_review(ack, click(REVIEW_ACTION, record["id"], APPROVER), slack, context)

    assert ack.only == {}
    assert slack.called("chat_postEphemeral") == [
        ephemeral(APPROVER, ":no_entry: You cannot approve your own request.")
    ]
    (event,) = refusals(store, "review_refused")
    assert event["actor"] == f"slack:{APPROVER}"
    assert event["reason"] == "own request"
    assert event["send_id"] == record["id"]
    assert slack.called("views_open") == []


async def test_an_approver_may_review_their_own_request_when_self_approval_is_allowed(
    make_context: MakeContext,
    ack: RecordingAck,
    slack: RecordingSlack,
    store: Store,
    request_send: RequestSend,
) -> None:
    context = make_context(allow_self=True)
    record = await request_send(context, by=APPROVER)

    await handle_review(ack, click(REVIEW_ACTION, record["id"], APPROVER), slack, context)

    assert len(slack.called("views_open")) == 1
    assert slack.called("chat_postEphemeral") == []
    assert refusals(store, "review_refused") == []


def _approve(service: SendService, send_id: str) -> None:
    service.approve(send_id, actor=f"slack:{GROUP_APPROVER}")


def _reject(service: SendService, send_id: str) -> None:
    service.reject(send_id, actor=f"slack:{GROUP_APPROVER}", reason="wrong phone")


def _cancel(service: SendService, send_id: str) -> None:
    service.cancel(send_id, actor=f"slack:{AGENT}")


def _expire(service: SendService, send_id: str) -> None:
    service.move(
        send_id,
        SendState.EXPIRED,
        actor="system",
        reason="approval window passed",
        expect={SendState.PENDING_APPROVAL},
    )


DECIDED = [
    pytest.param(
        _approve, f"This request was already approved (by <@{GROUP_APPROVER}>).", id="approved"
    ),
    pytest.param(
        _reject, f"This request is already rejected (by <@{GROUP_APPROVER}>).", id="rejected"
    ),
    pytest.param(_cancel, f"This request is already cancelled (by <@{AGENT}>).", id="cancelled"),
    pytest.param(_expire, "This request is already expired.", id="expired"),
]


@pytest.mark.parametrize(("decide", "told"), DECIDED)
async def test_review_of_a_request_no_longer_pending_tells_who_decided_and_opens_nothing(
    context: dict[str, Any],
    ack: RecordingAck,
    slack: RecordingSlack,
    store: Store,
    request_send: RequestSend,
    decide: Any,
    told: str,
) -> None:
    record = await request_send(context)
    decide(service_of(context), record["id"])

    await handle_review(ack, click(REVIEW_ACTION, record["id"], APPROVER), slack, context)

    assert ack.only == {}
    assert slack.called("chat_postEphemeral") == [ephemeral(APPROVER, told)]
    assert slack.called("views_open") == []
    assert refusals(store, "review_refused") == []


async def test_review_of_a_request_that_does_not_exist_says_so_and_opens_nothing(
    context: dict[str, Any], ack: RecordingAck, slack: RecordingSlack, store: Store
) -> None:
    await handle_review(ack, click(REVIEW_ACTION, "zns-no-such-send", APPROVER), slack, context)

    assert ack.only == {}
    assert slack.called("chat_postEphemeral") == [
        ephemeral(APPROVER, "This request no longer exists.")
    ]
    assert slack.called("views_open") == []
    assert list(store.audit.iter_events()) == []


# --- Cancel --------------------------------------------------------------------------------


@pytest.mark.parametrize("someone_else", [APPROVER, STRANGER])
async def test_cancel_by_someone_other_than_the_requester_is_refused_audited_and_changes_nothing(
    context: dict[str, Any],
    ack: RecordingAck,
    slack: RecordingSlack,
    store: Store,
    request_send: RequestSend,
    someone_else: str,
) -> None:
    record = await request_send(context, by=AGENT)

    body = click(CANCEL_ACTION, record["id"], someone_else)
    # the refusal is raised, and told by the one error handler every listener is wrapped in
    await told(handle_cancel)(ack=ack, body=body, client=slack, context=context)

    assert ack.only == {}
    assert slack.called("chat_postEphemeral") == [
        ephemeral(someone_else, ":no_entry: Only the person who made the request can cancel it.")
    ]
    (event,) = refusals(store, "cancel_refused")
    assert event["actor"] == f"slack:{someone_else}"
    assert event["reason"] == "not the requester"
    assert event["send_id"] == record["id"]
    assert service_of(context).get(record["id"])["state"] == "pending_approval"


async def test_cancel_by_the_requester_cancels_the_request_without_a_refusal(
    context: dict[str, Any],
    ack: RecordingAck,
    slack: RecordingSlack,
    store: Store,
    request_send: RequestSend,
) -> None:
    record = await request_send(context, by=AGENT)

    await handle_cancel(ack, click(CANCEL_ACTION, record["id"], AGENT), slack, context)

    assert ack.only == {}
    assert service_of(context).get(record["id"])["state"] == "cancelled"
    assert slack.called("chat_postEphemeral") == []
    assert refusals(store, "cancel_refused") == []


async def test_cancel_of_a_request_already_approved_tells_who_approved_and_changes_nothing(
    context: dict[str, Any],
    ack: RecordingAck,
    slack: RecordingSlack,
    store: Store,
    request_send: RequestSend,
) -> None:
    record = await request_send(context, by=AGENT)
    _approve(service_of(context), record["id"])

    await handle_cancel(ack, click(CANCEL_ACTION, record["id"], AGENT), slack, context)

    assert slack.called("chat_postEphemeral") == [
        ephemeral(AGENT, f"This request was already approved (by <@{GROUP_APPROVER}>).")
    ]
    assert service_of(context).get(record["id"])["state"] == "approved"
    assert refusals(store, "cancel_refused") == []


async def test_cancel_of_a_request_that_does_not_exist_says_so(
    context: dict[str, Any], ack: RecordingAck, slack: RecordingSlack, store: Store
) -> None:
    await handle_cancel(ack, click(CANCEL_ACTION, "zns-no-such-send", AGENT), slack, context)

    assert slack.called("chat_postEphemeral") == [
        ephemeral(AGENT, "This request no longer exists.")
    ]
    assert list(store.audit.iter_events()) == []
