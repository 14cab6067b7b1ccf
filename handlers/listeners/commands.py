"""The /zns slash command: help, a permission check, and the request modal opened at once."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot import policy
from bot.errors import EsmsError
from bot.esms.types import OfficialAccount, Template
from handlers.deps import SlackDeps, deps_of
from handlers.failures import told
from handlers.ui.blocks import help_text, request_modal
from handlers.ui.metadata import RequestMeta

log = logging.getLogger(__name__)
COMMAND = "/zns"


async def handle_zns(
    ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient, context: dict[str, Any]
) -> None:
    deps = deps_of(context)
    text = (command.get("text") or "").strip()
    user = command["user_id"]
    if text.lower() in ("help", "?", "-h", "--help"):
        await ack(text=help_text())
        return
    listed = deps.requesters.empty or await deps.requesters.contains(user, client)
    refusal = policy.may_request(on_requesters_list=listed)
    if refusal:
        await ack(
            text=":no_entry: You are not allowed to request ZNS sends. "
            "Ask an admin to add you to ZNS_REQUESTERS."
        )
        deps.service.note(f"slack:{user}", "request_refused", reason=refusal)
        return
    await ack()
    settings = deps.settings
    meta = RequestMeta(channel=command.get("channel_id"), oaid=settings.esms_oaid)
    values = {"phone": text} if text else {}
    # trigger_id lives 3 s: open a loading modal first, then fill it in.
    opened = await client.views_open(
        trigger_id=command["trigger_id"],
        view=request_modal(
            metadata=meta, templates=None, values=values, sandbox_forced=settings.esms_sandbox
        ),
    )
    view = opened["view"]
    # A submission is checked against this (who, and where to answer), not the metadata.
    deps.service.opened_request(view["id"], user=user, channel=command.get("channel_id"))
    await client.views_update(
        view_id=view["id"], hash=view.get("hash"), view=await render_request(deps, meta, values)
    )


async def render_request(
    deps: SlackDeps,
    meta: RequestMeta,
    values: dict[str, str],
    template_id: str | None = None,
) -> dict[str, Any]:
    """The request modal for the chosen OA and template, with a notice if eSMS failed us."""
    catalogue = deps.service.catalogue
    notice = None
    oas: list[OfficialAccount] = []
    templates: list[Template] = []
    template = None
    try:
        oas = await catalogue.oas()
        if not meta.get("oaid") and oas:
            meta["oaid"] = oas[0].oaid
        oaid = meta.get("oaid")
        if oaid:
            templates = await catalogue.enabled(oaid)
        if template_id:
            template = next((t for t in templates if t.id == template_id), None)
    except EsmsError as exc:
        notice = f":warning: Could not load templates from eSMS: {exc}"
    meta["template"] = template.id if template else None
    return request_modal(
        metadata=meta,
        oas=oas,
        templates=templates,
        template=template,
        values=values,
        allow_sandbox=deps.settings.zns_allow_sandbox,
        sandbox_forced=deps.settings.esms_sandbox,
        notice=notice,
    )


def register(app: AsyncApp) -> None:
    app.command(COMMAND)(told(handle_zns))
