"""Options load requests (block_suggestion): the OA and template type-ahead searches."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.errors import EsmsError
from bot.esms.types import OfficialAccount, Template
from bot.search import search
from handlers.deps import deps_of
from handlers.ui.blocks import OA_ACTION, TEMPLATE_ACTION
from handlers.ui.forms import state_values
from handlers.ui.metadata import request_meta
from handlers.ui.suggestions import options_reply, unavailable_reply

log = logging.getLogger(__name__)
LOAD_WAIT_S = 2.0  # Slack waits 3 s for options; an empty list beats a spinner that fails
T = TypeVar("T")


async def _within(load: Awaitable[list[T]], what: str) -> list[T] | None:
    """The catalogue's list, or None when eSMS fails or is too slow to answer in time."""
    try:
        return await asyncio.wait_for(load, LOAD_WAIT_S)
    except (EsmsError, TimeoutError) as exc:
        log.warning("no %s to offer: %s", what, str(exc) or "eSMS was too slow to answer")
        return None


async def handle_oa_options(ack: AsyncAck, body: dict[str, Any], context: dict[str, Any]) -> None:
    """The OAs whose name or id contains what the person typed."""
    deps = deps_of(context)
    oas = await _within(deps.service.catalogue.oas(), "OAs")
    if oas is None:
        await ack(**unavailable_reply("OAs"))
        return
    found = search(oas, body.get("value") or "", ident=_oa_id, name=_oa_name)
    await ack(**options_reply(found, ident=_oa_id, name=_oa_name))


async def handle_template_options(
    ack: AsyncAck, body: dict[str, Any], context: dict[str, Any]
) -> None:
    """The chosen OA's ENABLE templates whose name or id contains what the person typed."""
    deps = deps_of(context)
    view = body.get("view") or {}
    # The OA picked in the modal right now, else the one it was rendered for.
    oaid = state_values(view).get("oaid") or request_meta(view).get("oaid")
    oaid = oaid or deps.settings.esms_oaid
    templates = await _within(deps.service.catalogue.enabled(oaid), "templates") if oaid else []
    if templates is None:
        await ack(**unavailable_reply("templates"))
        return
    found = search(templates, body.get("value") or "", ident=_template_id, name=_template_name)
    await ack(**options_reply(found, ident=_template_id, name=_template_name))


def _oa_id(oa: OfficialAccount) -> str:
    return oa.oaid


def _oa_name(oa: OfficialAccount) -> str:
    return oa.name


def _template_id(template: Template) -> str:
    return template.id


def _template_name(template: Template) -> str:
    return template.name


def register(app: AsyncApp) -> None:
    app.options(OA_ACTION)(handle_oa_options)
    app.options(TEMPLATE_ACTION)(handle_template_options)
