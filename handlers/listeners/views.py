"""Modal submissions: the request (validated inline) and the approver's decision."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot import policy
from bot.errors import InputError, NotFoundError
from bot.service import DecisionError, SendRequest
from handlers.deps import SlackDeps, deps_of
from handlers.failures import told
from handlers.listeners.actions import decided_text
from handlers.ui.blocks import APPROVAL_VIEW, REQUEST_VIEW, approval_overflow
from handlers.ui.forms import errors_for_view, state_values, template_params
from handlers.ui.metadata import approval_meta, request_meta

log = logging.getLogger(__name__)
PREPARE_WAIT_S = 2.0  # checks that need eSMS must finish well inside Slack's 3 s


REQUEST_REFUSED: dict[policy.Refusal, str] = {  # what the submitter reads in the modal
    policy.Refusal.UNKNOWN_VIEW: "This form has expired. Nothing was saved: type /zns again.",
    policy.Refusal.NOT_YOUR_VIEW: "This form was opened for someone else. Nothing was saved.",
    policy.Refusal.NOT_A_REQUESTER: "You are not allowed to request ZNS sends. "
    "Ask an admin to add you to ZNS_REQUESTERS.",
    policy.Refusal.SANDBOX_NOT_ALLOWED: "Sandbox sends are turned off (ZNS_ALLOW_SANDBOX).",
}
DECISION_REFUSED: dict[policy.Refusal, str] = {  # what the approver reads in the modal
    policy.Refusal.BAD_DECISION: "Choose Approve or Reject.",
    policy.Refusal.NOT_AN_APPROVER: "Only approvers can decide.",
    policy.Refusal.UNKNOWN_VIEW: "This review has expired: close it and click Review again.",
    policy.Refusal.NOT_YOUR_VIEW: "This review was opened for someone else.",
    policy.Refusal.OTHER_SEND: "This review was opened for another request.",
    policy.Refusal.DIGEST_MISMATCH: "The request changed since this review opened: "
    "close it and click Review again.",
}


async def _request_refusal(
    deps: SlackDeps,
    client: AsyncWebClient,
    opened: Mapping[str, Any] | None,
    user: str,
    sandbox: bool,
) -> policy.Refusal | None:
    """Every rule a request submission must pass before its values are even checked."""
    refusal = policy.may_submit_request(opened, actor_user=user, now=deps.service.store.clock())
    if refusal is None:
        # checked again here: the person may have been removed since /zns, or never typed it
        listed = deps.requesters.empty or await deps.requesters.contains(user, client)
        refusal = policy.may_request(on_requesters_list=listed)
    if refusal is None:
        settings = deps.settings
        refusal = policy.may_sandbox(
            sandbox, allowed=settings.zns_allow_sandbox, forced=settings.esms_sandbox
        )
    return refusal


async def handle_request(
    ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: dict[str, Any]
) -> None:
    """Validate everything; answer errors next to their fields; store only valid requests,
    once per modal, before the ack; the price estimate joins the card afterwards."""
    deps = deps_of(context)
    view = body["view"]
    user = body["user"]["id"]
    actor = f"slack:{user}"
    meta = request_meta(view)
    values = state_values(view)
    opened = deps.service.opened_view(str(view.get("id") or ""))
    if opened is not None and opened.get("used_by"):
        await ack()  # a replay of a stored submission: answered as the first, nothing new
        return
    sandbox = "yes" in (values.get("sandbox") or [])
    refusal = await _request_refusal(deps, client, opened, user, sandbox)
    if refusal is not None:
        deps.service.note(actor, "request_refused", reason=refusal)
        problem = {"sandbox" if sandbox else "template": REQUEST_REFUSED[refusal]}
        await ack(response_action="errors", errors=errors_for_view(problem, view))
        return
    assert opened is not None  # may_submit_request refuses a view the bot did not open
    channel = policy.notice_channel(opened)
    if meta.get("channel") != channel:
        deps.service.note(actor, "notice_channel_ignored", reason="metadata names another")
    try:
        request = await asyncio.wait_for(
            deps.service.prepare(
                phone=values.get("phone") or "",
                template_id=values.get("template") or meta.get("template") or "",
                params=template_params(values),
                oaid=values.get("oaid") or meta.get("oaid"),
                is_journey="yes" in (values.get("journey") or []),
                order_id=values.get("order_id"),
                campaign=values.get("campaign"),
                note=values.get("note"),
                sandbox=sandbox,
            ),
            PREPARE_WAIT_S,
        )
    except InputError as exc:
        await ack(response_action="errors", errors=errors_for_view(exc.problems, view))
        return
    except TimeoutError:
        # Slack drops an ack after 3 s; say so in the modal rather than time out silently.
        slow = {"template": "eSMS is slow to answer right now. Nothing was saved; submit again."}
        await ack(response_action="errors", errors=errors_for_view(slow, view))
        return
    overflow = approval_overflow(request.params)
    if overflow:
        # Four eyes means the approver reads every value: refuse what they could not see.
        await ack(response_action="errors", errors=errors_for_view({"template": overflow}, view))
        return
    # Stored (on disk) before the ack: a request the person is told was received survives
    # a crash. None: a replay that raced this one stored it first.
    record = deps.service.create_once(view["id"], request, actor=actor, reply_channel=channel)
    await ack()
    if record is not None:
        deps.spawn(_price(deps, record["id"], request))


async def _price(deps: SlackDeps, send_id: str, request: SendRequest) -> None:
    """The estimate (up to 5 s) joins the stored request; its card is re-rendered."""
    try:
        deps.service.add_estimate(send_id, await deps.service.estimate(request))
    except Exception:
        # The request is stored and its card says "estimating…": the approver still sees
        # every value, only the price is missing. Worth a look, not a lost request.
        log.exception("could not add the price estimate to send=%s", send_id)


async def handle_decision(
    ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: dict[str, Any]
) -> None:
    """Approve or reject, as one compare-and-set; a late or second click learns who won.

    Taken only from the review modal the bot opened for this send and this approver, with
    the content digest it showed; anything else is refused and audited.
    """
    deps = deps_of(context)
    view = body["view"]
    user = body["user"]["id"]
    actor = f"slack:{user}"
    meta = approval_meta(view)
    send_id = meta["send_id"]
    values = state_values(view)
    decision = values.get("decision")
    reason = (values.get("reason") or "").strip()
    refusal = policy.check_decision(decision)
    if refusal is None:
        refusal = policy.may_decide(approver=await deps.approvers.contains(user, client))
    if refusal is None:
        try:
            record = deps.service.get(send_id)
        except NotFoundError:
            await ack(
                response_action="errors", errors={"decision": "This request no longer exists."}
            )
            return
        refusal = policy.may_submit_review(
            deps.service.opened_view(str(view.get("id") or "")),
            actor_user=user,
            send_id=send_id,
            digest_shown=meta.get("digest"),
            digest_now=deps.service.current_digest(record),
            now=deps.service.store.clock(),
        )
    if refusal is not None:
        deps.service.note(actor, "decision_refused", send_id=send_id or None, reason=refusal)
        await ack(response_action="errors", errors={"decision": DECISION_REFUSED[refusal]})
        return
    try:
        if decision == "reject":
            done = deps.service.reject(send_id, actor=actor, reason=reason)
        else:
            done = deps.service.approve(send_id, actor=actor, reason=reason)
    except InputError as exc:
        await ack(response_action="errors", errors=errors_for_view(exc.problems, view))
        return
    except DecisionError as exc:
        await ack(response_action="errors", errors={"decision": str(exc)})
        return
    except NotFoundError:
        await ack(response_action="errors", errors={"decision": "This request no longer exists."})
        return
    if done is None:
        record = deps.service.get(send_id)
        await ack(response_action="errors", errors={"decision": decided_text(record)})
        return
    await ack()
    if decision == "approve":
        deps.spawn(deps.service.submit(send_id, actor=actor))


def register(app: AsyncApp) -> None:
    app.view(REQUEST_VIEW)(told(handle_request))
    app.view(APPROVAL_VIEW)(told(handle_decision))
