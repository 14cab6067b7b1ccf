"""Button and select clicks: OA/template choice in the modal, Review and Cancel on the card."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import policy
from bot.errors import EsmsError, NotFoundError
from handlers.deps import SlackDeps, deps_of
from handlers.failures import channel_of, listener_of, tell, told
from handlers.listeners.commands import render_request
from handlers.ui.blocks import (
    CANCEL_ACTION,
    OA_ACTION,
    REVIEW_ACTION,
    TEMPLATE_ACTION,
    approval_modal,
    user_ref,
)
from handlers.ui.forms import state_values, text_values
from handlers.ui.metadata import ApprovalMeta, request_meta
from handlers.ui.suggestions import UNAVAILABLE
from storage.sends import SendRecord, SendState

log = logging.getLogger(__name__)


async def handle_choice(
    ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: dict[str, Any]
) -> None:
    """The OA or template select changed: re-render the modal with that template's inputs."""
    await ack()
    deps = deps_of(context)
    view = body["view"]
    action = body["actions"][0]
    meta = request_meta(view)
    selected = (action.get("selected_option") or {}).get("value")
    if selected == UNAVAILABLE:  # the "eSMS did not answer" line: nothing was chosen
        return
    values = text_values(state_values(view))
    template_id = meta.get("template")
    if action["action_id"] == OA_ACTION:
        meta["oaid"], template_id = selected, None
    else:
        template_id = selected
    rendered = await render_request(deps, meta, values, template_id)
    try:
        await client.views_update(view_id=view["id"], hash=view.get("hash"), view=rendered)
    except SlackApiError as exc:
        if exc.response.get("error") != "hash_conflict":
            raise
        # Two quick picks: the first one's update changed the view's hash. This pick is the
        # person's latest (Slack sends their actions in order), so it wins.
        log.debug("hash_conflict on %s: updating without the hash", view["id"])
        await client.views_update(view_id=view["id"], view=rendered)


REVIEW_REFUSED: dict[policy.Refusal, str] = {  # what the clicker is told
    policy.Refusal.NOT_AN_APPROVER: "Only approvers can review ZNS requests.",
    policy.Refusal.OWN_REQUEST: "You cannot approve your own request.",
}


async def _tell(client: AsyncWebClient, body: dict[str, Any], text: str) -> None:
    """In the card's channel; a click on the App Home has none, so there by DM."""
    await tell(client, body["user"]["id"], text, channel_of(body), about=listener_of(body))


def decided_text(record: SendRecord) -> str:
    """Tell a late clicker who decided first (the send may have moved on since)."""
    state = record["state"]
    if state in (SendState.REJECTED, SendState.EXPIRED, SendState.CANCELLED):
        who = user_ref(record.get("approver") or record.get("requester"))
        by = "" if state == SendState.EXPIRED else f" (by {who})"
        return f"This request is already {state}{by}."
    return f"This request was already approved (by {user_ref(record.get('approver'))})."


async def _pending(
    deps: SlackDeps, client: AsyncWebClient, body: dict[str, Any], send_id: str
) -> SendRecord | None:
    """The clicked request if it still waits for a decision; otherwise tell the clicker."""
    try:
        record = deps.service.get(send_id)
    except NotFoundError:
        await _tell(client, body, "This request no longer exists.")
        return None
    if record["state"] != SendState.PENDING_APPROVAL:
        await _tell(client, body, decided_text(record))
        return None
    return record


async def handle_review(
    ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: dict[str, Any]
) -> None:
    """Review opens the approval modal, for approvers only."""
    await ack()
    deps = deps_of(context)
    user, send_id = body["user"]["id"], body["actions"][0]["value"]
    actor = f"slack:{user}"
    approver = await deps.approvers.contains(user, client)
    # Who asks first, then what: a non-approver learns nothing about the request.
    refusal = policy.may_decide(approver=approver)
    record: SendRecord | None = None
    if refusal is None:
        record = await _pending(deps, client, body, send_id)
        if record is None:
            return
        allow_self = deps.settings.zns_allow_self_approval
        refusal = policy.may_review(actor, record, approver=approver, allow_self=allow_self)
    if refusal is not None:
        deps.service.note(actor, "review_refused", send_id=send_id, reason=refusal)
        await _tell(client, body, f":no_entry: {REVIEW_REFUSED[refusal]}")
        return
    assert record is not None  # found pending above, or refused
    content = deps.service.content_check(record)
    # The decision is taken only from this modal, naming this send and this digest.
    digest = deps.service.current_digest(record)
    meta = ApprovalMeta(send_id=send_id, digest=digest)
    opened = await client.views_open(
        trigger_id=body["trigger_id"],
        view=approval_modal(
            record, quota="remaining quota: checking…", metadata=meta, content=content
        ),
    )
    view = opened["view"]
    deps.service.opened_review(view["id"], user=user, send_id=send_id, digest=digest)
    quota = await quota_text(deps, record["oaid"])
    await client.views_update(
        view_id=view["id"],
        hash=view.get("hash"),
        view=approval_modal(record, quota=quota, metadata=meta, content=content),
    )


async def quota_text(deps: SlackDeps, oaid: str) -> str:
    try:
        quota = await deps.service.quota(oaid)
    except EsmsError as exc:
        return f"remaining daily quota unavailable ({exc})"
    return f"remaining daily quota {quota.remaining_quota} of {quota.daily_quota}"


async def handle_cancel(
    ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: dict[str, Any]
) -> None:
    """The requester withdraws a pending request; anyone else is told no (and audited)."""
    await ack()
    deps = deps_of(context)
    send_id = body["actions"][0]["value"]
    if await _pending(deps, client, body, send_id) is None:
        return
    # a DecisionError (not the requester) reaches the person through handlers/failures.py
    done = deps.service.cancel(send_id, actor=f"slack:{body['user']['id']}")
    if done is None:
        await _tell(client, body, decided_text(deps.service.get(send_id)))


def register(app: AsyncApp) -> None:
    app.action(OA_ACTION)(told(handle_choice))
    app.action(TEMPLATE_ACTION)(told(handle_choice))
    app.action(REVIEW_ACTION)(told(handle_review))
    app.action(CANCEL_ACTION)(told(handle_cancel))
