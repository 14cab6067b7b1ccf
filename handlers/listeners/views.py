"""Modal submissions: the request (validated inline) and the approver's decision."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot import policy
from bot.errors import InputError, NotFoundError
from bot.service import DecisionError
from handlers.deps import deps_of
from handlers.failures import on_listener_error, told
from handlers.listeners.actions import decided_text
from handlers.ui.blocks import APPROVAL_VIEW, REQUEST_VIEW, approval_overflow
from handlers.ui.forms import errors_for_view, state_values, template_params
from handlers.ui.metadata import approval_meta, request_meta

log = logging.getLogger(__name__)
PREPARE_WAIT_S = 2.0  # checks that need eSMS must finish well inside Slack's 3 s


async def handle_request(
    ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: dict[str, Any]
) -> None:
    """Validate everything; answer errors next to their fields; store only valid requests."""
    deps = deps_of(context)
    view = body["view"]
    user = body["user"]["id"]
    meta = request_meta(view)
    values = state_values(view)
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
                sandbox="yes" in (values.get("sandbox") or []),
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
    await ack()

    async def record() -> None:
        try:
            estimate = await deps.service.estimate(request)
            deps.service.create(
                request,
                actor=f"slack:{user}",
                origin="slack",
                reply_channel=meta.get("channel"),
                estimate=estimate,
            )
        except Exception as exc:
            # The modal has closed: say so rather than let the request vanish silently.
            await on_listener_error(exc, {**body, "channel_id": meta.get("channel")}, client)

    deps.spawn(record())


async def handle_decision(
    ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: dict[str, Any]
) -> None:
    """Approve or reject, as one compare-and-set; a late or second click learns who won."""
    deps = deps_of(context)
    view = body["view"]
    user = body["user"]["id"]
    actor = f"slack:{user}"
    send_id = approval_meta(view)["send_id"]
    values = state_values(view)
    decision = values.get("decision") or "approve"
    reason = (values.get("reason") or "").strip()
    refusal = policy.may_decide(approver=await deps.approvers.contains(user, client))
    if refusal:
        deps.service.note(actor, "decision_refused", send_id=send_id, reason=refusal)
        await ack(response_action="errors", errors={"decision": "Only approvers can decide."})
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
    if decision != "reject":
        deps.spawn(deps.service.submit(send_id, actor=actor))


def register(app: AsyncApp) -> None:
    app.view(REQUEST_VIEW)(told(handle_request))
    app.view(APPROVAL_VIEW)(told(handle_decision))
