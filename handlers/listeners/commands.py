"""The /zns slash command: its subcommands, a permission check, and the request modal."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot import policy, status
from bot.errors import EsmsError, InputError
from bot.esms.types import Balance, OfficialAccount, Quota, Template
from bot.lookup import Lookup, look_up
from bot.ops.logs import mask_phones
from handlers.deps import SlackDeps, deps_of
from handlers.failures import tell, told
from handlers.listeners.audit import handle_audit
from handlers.ui.account import TEMPLATES_PAGE_ACTION, balance_blocks, templates_blocks
from handlers.ui.blocks import help_text, request_modal
from handlers.ui.metadata import RequestMeta
from handlers.ui.status import status_blocks

log = logging.getLogger(__name__)
COMMAND = "/zns"
STATUS_LIMIT = 10  # a phone's sends `/zns status` lists
# Slack waits 3 s for the ack; the lookup answers in it, so the thread links get what is
# left after it, at most this long, and the answer names the channel instead.
PERMALINK_WAIT_S = 1.0
# What may be a phone typed after /zns (it fills the modal's phone box): digits, a +, and
# the separators people type. Any other first word is a subcommand, or a mistake.
_PHONE_LIKE = re.compile(r"[+\d][\d\s.()-]*")
_HELP_WORDS = frozenset({"help", "?", "-h", "--help"})


@dataclass(frozen=True)
class Slash:
    """One /zns subcommand invocation: what every subcommand handler is given."""

    ack: AsyncAck
    command: dict[str, Any]
    client: AsyncWebClient
    deps: SlackDeps
    args: str  # the text after the subcommand's name, stripped

    @property
    def user(self) -> str:
        return str(self.command["user_id"])

    @property
    def actor(self) -> str:
        return f"slack:{self.user}"

    @property
    def channel(self) -> str | None:
        channel = self.command.get("channel_id")
        return channel if isinstance(channel, str) else None


Subcommand = Callable[[Slash], Awaitable[None]]


async def handle_zns(
    ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient, context: dict[str, Any]
) -> None:
    deps = deps_of(context)
    text = (command.get("text") or "").strip()
    name, _, args = text.partition(" ")
    if name.lower() in _HELP_WORDS:
        await ack(text=help_text())
        return
    subcommand = SUBCOMMANDS.get(name.lower())
    if subcommand is not None:
        await subcommand(Slash(ack, command, client, deps, args.strip()))
        return
    if text and not _PHONE_LIKE.fullmatch(text):
        shown = mask_phones(name)[:40]  # echoed back: a phone in it stays masked
        await ack(text=f":grey_question: `/zns {shown}` is not a subcommand.\n{help_text()}")
        return
    await open_request(ack, command, client, deps, text)


async def open_request(
    ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient, deps: SlackDeps, phone: str
) -> None:
    """`/zns [phone]`: the request modal, for requesters."""
    user = command["user_id"]
    listed = deps.requesters.empty or await deps.requesters.contains(user, client)
    refusal = policy.may_request(on_requesters_list=listed)
    if refusal:
        await ack(text=policy.refusal_line(refusal))
        deps.service.note(f"slack:{user}", "request_refused", reason=refusal)
        return
    await ack()
    settings = deps.settings
    meta = RequestMeta(channel=command.get("channel_id"), oaid=settings.esms_oaid)
    values = {"phone": phone} if phone else {}
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


async def refused(slash: Slash, action: str, refusal: policy.Refusal) -> None:
    """Audit the refusal with its reason, then tell the person in one ephemeral line (in
    that order: what the person was told is always in the audit log)."""
    slash.deps.service.note(slash.actor, action, reason=refusal)
    await slash.ack(text=policy.refusal_line(refusal))


async def handle_status(slash: Slash) -> None:
    """`/zns status <send id | SMSID | phone>`: answered in the ack, which only the person
    sees, through the lookup and fields `zns-bot status` uses. Every lookup is audited."""
    deps = slash.deps
    refusal = policy.may_look_up(await deps.roles(slash.user, slash.client))
    if refusal:
        await refused(slash, "status_refused", refusal)
        return
    if not slash.args:
        await slash.ack(text="Usage: `/zns status <send id | SMSID | phone>`")
        return
    try:
        found = await look_up(deps.service.store, slash.args, limit=STATUS_LIMIT)
    except InputError as exc:
        deps.service.note(slash.actor, "status_lookup", reason=f"unreadable key: {exc}")
        await slash.ack(text=f":no_entry: {exc}")
        return
    deps.service.note(slash.actor, "status_lookup", reason=lookup_reason(found))
    links = await permalinks(slash.client, found)
    text, blocks = status_blocks(found, links)
    await slash.ack(text=text, blocks=blocks)


def lookup_reason(found: Lookup) -> str:
    """What the audit log says of a lookup: the key as read (a phone masked), what it found."""
    if found.key is None:
        return status.not_found_line(found)
    reason = f"{status.KIND_WORDS[found.key.kind]} {found.key.value}: {found.total} send(s) found"
    # a phone typed may have been found as an SMSID: masked all the same (as `status` does)
    return mask_phones(reason) if any(k.kind == "phone" for k in found.tried) else reason


async def permalinks(client: AsyncWebClient, found: Lookup) -> dict[str, str | None]:
    """Each found send's card thread link (send id → permalink; None when Slack gave none
    in time). Asked together, and given up on after PERMALINK_WAIT_S: the ack cannot wait."""
    cards = {view.send_id: view.card for view in found.views if view.card is not None}
    links: dict[str, str | None] = dict.fromkeys(cards)

    async def one(send_id: str, channel: str, ts: str) -> None:
        try:
            answer = await client.chat_getPermalink(channel=channel, message_ts=ts)
        except SlackClientError as exc:
            log.info("no permalink for %s's card: %s", send_id, type(exc).__name__)
            return
        link = answer.get("permalink")
        links[send_id] = link if isinstance(link, str) else None

    asking = [one(sid, channel, ts) for sid, (channel, ts) in cards.items()]
    if asking:
        try:
            await asyncio.wait_for(asyncio.gather(*asking), PERMALINK_WAIT_S)
        except TimeoutError:
            log.info("Slack gave no permalink within %.1f s: channels shown", PERMALINK_WAIT_S)
    return links


async def default_oa(deps: SlackDeps) -> OfficialAccount | None:
    """ESMS_OAID (named from the OA list when it is there), else the account's first OA."""
    oas = await deps.service.catalogue.oas()
    chosen = deps.settings.esms_oaid
    if chosen:
        return next((oa for oa in oas if oa.oaid == chosen), OfficialAccount(chosen, ""))
    return oas[0] if oas else None


async def handle_templates(slash: Slash) -> None:
    """`/zns templates [page]`: answered after the ack (eSMS may take longer than Slack
    waits), by an ephemeral, or a DM where the bot cannot post one."""
    refusal = policy.may_see_account(await slash.deps.roles(slash.user, slash.client))
    if refusal:
        await refused(slash, "templates_refused", refusal)
        return
    page = int(slash.args) if slash.args.isdigit() else 1
    await slash.ack()
    text, blocks = await templates_answer(slash.deps, page)
    await tell(slash.client, slash.user, text, slash.channel, about="templates", blocks=blocks)


async def templates_answer(deps: SlackDeps, page: int) -> tuple[str, list[dict[str, Any]]]:
    try:
        oa = await default_oa(deps)
        if oa is None:
            return _said(":warning: eSMS lists no Zalo OA for this account.")
        templates: list[Template] = await deps.service.catalogue.templates(oa.oaid)
    except EsmsError as exc:
        return _said(f":warning: eSMS did not answer with the templates: {exc}")
    return templates_blocks(oa, templates, page)


async def on_templates_page(
    ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: dict[str, Any]
) -> None:
    """The "More" button under a page of templates: the next page, as a new ephemeral (an
    ephemeral cannot be edited). The roles are asked again: a page shown yesterday
    outlives a role taken away since."""
    await ack()
    deps = deps_of(context)
    user = str(body["user"]["id"])
    channel = (body.get("channel") or {}).get("id")
    refusal = policy.may_see_account(await deps.roles(user, client))
    if refusal:
        deps.service.note(f"slack:{user}", "templates_refused", reason=refusal)
        await tell(client, user, policy.refusal_line(refusal), channel, about="templates")
        return
    value = str((body.get("actions") or [{}])[0].get("value") or "1")
    page = int(value) if value.isdigit() else 1
    text, blocks = await templates_answer(deps, page)
    await tell(client, user, text, channel, about="templates", blocks=blocks)


async def handle_balance(slash: Slash) -> None:
    """`/zns balance`: the account's balance and the default OA's quota, after the ack."""
    deps = slash.deps
    refusal = policy.may_see_account(await deps.roles(slash.user, slash.client))
    if refusal:
        await refused(slash, "balance_refused", refusal)
        return
    await slash.ack()
    failures: list[str] = []
    balance: Balance | None = None
    quota: Quota | None = None
    oa: OfficialAccount | None = None
    try:
        balance = await deps.service.client.balance()
    except EsmsError as exc:
        failures.append(f"eSMS did not answer with the balance: {exc}")
    try:
        oa = await default_oa(deps)
        if oa is not None:
            quota = await deps.service.quota(oa.oaid)
    except EsmsError as exc:
        failures.append(f"eSMS did not answer with the OA's quota: {exc}")
    text, blocks = balance_blocks(balance, oa, quota, failures)
    await tell(slash.client, slash.user, text, slash.channel, about="balance", blocks=blocks)


async def handle_help(slash: Slash) -> None:
    await slash.ack(text=help_text())


async def _audit(slash: Slash) -> None:
    await handle_audit(slash.ack, slash.command, slash.client, slash.deps, slash.args)


def _said(text: str) -> tuple[str, list[dict[str, Any]]]:
    return text, [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]


# The one dispatch point: `/zns <name> …` goes to SUBCOMMANDS[name]; anything else that
# looks like a phone opens the request modal.
SUBCOMMANDS: dict[str, Subcommand] = {
    "status": handle_status,
    "templates": handle_templates,
    "balance": handle_balance,
    "help": handle_help,
    "audit": _audit,
}


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
    app.action(TEMPLATES_PAGE_ACTION)(told(on_templates_page))
