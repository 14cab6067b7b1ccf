"""The approval modal's submission: refusals answered in the modal, audited, nothing sent."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import pytest

from handlers.deps import CONTEXT_KEY, SlackDeps
from handlers.listeners.views import handle_decision
from handlers.ui.blocks import APPROVAL_VIEW, approval_modal
from standins.driver import AGENT, APPROVER
from standins.esms import EsmsStandIn
from standins.payloads import option_state, view_submission_body
from storage.store import Store
from tests.harness import GROUP_APPROVER, STRANGER

if TYPE_CHECKING:
    from tests.handlers.listeners.conftest import (
        MakeContext,
        RecordingAck,
        RecordingSlack,
        RequestSend,
    )


def submission(
    context: dict[str, Any],
    record: dict[str, Any],
    user: str,
    decision: str,
    reason: str | None = None,
) -> dict[str, Any]:
    """The body Bolt hands a listener when `user` presses Confirm on the approval modal
    that Review opened for them (recorded as the bot records it)."""
    service = deps_in(context).service
    digest = service.current_digest(service.get(record["id"]))
    service.opened_review("V0APPROVAL", user=user, send_id=record["id"], digest=digest)
    modal = approval_modal(record, quota="remaining daily quota 10 of 10", metadata={})
    form = view_submission_body(
        APPROVAL_VIEW,
        {"decision": {"value": option_state(decision)}, "reason": {"value": reason}},
        user_id=user,
        private_metadata=json.dumps({"send_id": record["id"], "digest": digest}),
        view_id="V0APPROVAL",
        view=modal,
    )
    payload: dict[str, Any] = json.loads(parse_qs(form.decode())["payload"][0])
    return payload


def deps_in(context: dict[str, Any]) -> SlackDeps:
    deps: SlackDeps = context[CONTEXT_KEY]
    return deps


def state_of(context: dict[str, Any], send_id: str) -> str:
    state: str = deps_in(context).service.get(send_id)["state"]
    return state


@pytest.mark.parametrize(("decision", "reason"), [("approve", None), ("reject", "wrong phone")])
async def test_a_non_approvers_decision_is_answered_with_errors_audited_and_changes_nothing(
    context: dict[str, Any],
    ack: RecordingAck,
    slack: RecordingSlack,
    store: Store,
    esms_standin: EsmsStandIn,
    request_send: RequestSend,
    decision: str,
    reason: str | None,
) -> None:
    record = await request_send(context)

    await handle_decision(
        ack, submission(context, record, STRANGER, decision, reason), slack, context
    )

    assert ack.only == {
        "response_action": "errors",
        "errors": {"decision": "Only approvers can decide."},
    }
    (event,) = [e for e in store.audit.iter_events() if e["action"] == "decision_refused"]
    assert event["actor"] == f"slack:{STRANGER}"
    assert event["reason"] == "not an approver"
    assert event["send_id"] == record["id"]
    assert state_of(context, record["id"]) == "pending_approval"
    assert deps_in(context).tasks == set()  # no submit to eSMS was started
    assert esms_standin.sends() == []


async def test_an_approver_approving_their_own_request_is_answered_with_errors(
    context: dict[str, Any],
    ack: RecordingAck,
    slack: RecordingSlack,
    esms_standin: EsmsStandIn,
    request_send: RequestSend,
) -> None:
    record = await request_send(context, by=APPROVER)

    await handle_decision(ack, submission(context, record, APPROVER, "approve"), slack, context)

    answer = ack.only
    assert answer["response_action"] == "errors"
    assert "cannot approve your own request" in answer["errors"]["decision"]
    assert state_of(context, record["id"]) == "pending_approval"
    assert deps_in(context).tasks == set()
    assert esms_standin.sends() == []


async def test_an_approver_may_approve_their_own_request_when_self_approval_is_allowed(
    make_context: MakeContext,
    ack: RecordingAck,
    slack: RecordingSlack,
    request_send: RequestSend,
) -> None:
    context = make_context(allow_self=True)
    record = await request_send(context, by=APPROVER)

    await handle_decision(ack, submission(context, record, APPROVER, "approve"), slack, context)
    await deps_in(context).drain_tasks()

    assert ack.only == {}
    assert deps_in(context).service.get(record["id"])["approver"] == f"slack:{APPROVER}"


async def test_an_approver_approving_someone_elses_request_closes_the_modal_and_sends(
    context: dict[str, Any],
    ack: RecordingAck,
    slack: RecordingSlack,
    store: Store,
    esms_standin: EsmsStandIn,
    request_send: RequestSend,
) -> None:
    record = await request_send(context, by=AGENT)

    await handle_decision(
        ack, submission(context, record, GROUP_APPROVER, "approve"), slack, context
    )
    await deps_in(context).drain_tasks()

    assert ack.only == {}
    assert state_of(context, record["id"]) == "accepted"
    assert [body["RequestId"] for body in esms_standin.sends()] == [record["id"]]
    assert [e for e in store.audit.iter_events() if e["action"] == "decision_refused"] == []


@pytest.mark.parametrize("reason", [None, "", "   \n "])
async def test_a_reject_without_a_reason_is_answered_with_an_error_on_the_reason_field(
    context: dict[str, Any],
    ack: RecordingAck,
    slack: RecordingSlack,
    request_send: RequestSend,
    reason: str | None,
) -> None:
    record = await request_send(context)

    await handle_decision(
        ack, submission(context, record, APPROVER, "reject", reason), slack, context
    )

    assert ack.only == {"response_action": "errors", "errors": {"reason": "a reason is required"}}
    assert state_of(context, record["id"]) == "pending_approval"


async def test_a_reject_with_a_reason_closes_the_modal_and_sends_nothing(
    context: dict[str, Any],
    ack: RecordingAck,
    slack: RecordingSlack,
    esms_standin: EsmsStandIn,
    request_send: RequestSend,
) -> None:
    record = await request_send(context)

    await handle_decision(
        ack, submission(context, record, APPROVER, "reject", "  wrong phone "), slack, context
    )

    assert ack.only == {}
    stored = deps_in(context).service.get(record["id"])
    assert (stored["state"], stored["reject_reason"]) == ("rejected", "wrong phone")
    assert deps_in(context).tasks == set()
    assert esms_standin.sends() == []


async def test_an_approver_may_reject_their_own_request(
    context: dict[str, Any],
    ack: RecordingAck,
    slack: RecordingSlack,
    request_send: RequestSend,
) -> None:
    record = await request_send(context, by=APPROVER)

    await handle_decision(
        ack, submission(context, record, APPROVER, "reject", "sent by mistake"), slack, context
    )

    assert ack.only == {}
    assert state_of(context, record["id"]) == "rejected"
