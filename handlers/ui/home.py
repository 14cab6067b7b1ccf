"""The App Home view: what waits for the person, their last requests, today's counts."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.home import WAITING_PAGE, HomeData, HomeItem
from handlers.ui.blocks import CANCEL_ACTION, REVIEW_ACTION, mrkdwn_escape, one_line
from handlers.ui.kit import section
from handlers.ui.text import shorten
from storage.sends import SendState

HOME_PREV_ACTION = "zns_home_prev"
HOME_NEXT_ACTION = "zns_home_next"
NAME_SHOWN = 80  # a template's name on one line of the home
# What each state reads as on the home; the order in which today's counts are listed.
STATE_WORDS: dict[str, str] = {
    SendState.PENDING_APPROVAL: "waiting for approval",
    SendState.APPROVED: "approved",
    SendState.SUBMITTING: "sending",
    SendState.ACCEPTED: "accepted by eSMS",
    SendState.UNKNOWN: "outcome unknown",
    SendState.DELIVERED: "delivered",
    SendState.FAILED: "failed",
    SendState.SANDBOXED: "sandbox",
    SendState.REJECTED: "rejected",
    SendState.EXPIRED: "expired",
    SendState.CANCELLED: "cancelled",
}


def _when(created_at: str) -> str:
    """Slack shows the time in the reader's own zone; the fallback is UTC."""
    moment = datetime.fromisoformat(created_at)
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def _line(item: HomeItem, link: str | None = None, *, by: bool = False) -> str:
    name = mrkdwn_escape(shorten(one_line(item.template), NAME_SHOWN))
    parts = [f"*{name}*", f"`{item.phone}`", STATE_WORDS.get(item.state, item.state)]
    when = _when(item.created_at)
    who = f" by <@{item.requester}>" if by and item.requester else ""
    parts.append(f"requested {when}{who}")
    if link:
        parts.append(f"<{link}|thread>")
    return " · ".join(parts)


def _button(text: str, action_id: str, value: str, style: str | None = None) -> ButtonElement:
    return ButtonElement(
        text=PlainTextObject(text=text, emoji=True), action_id=action_id, value=value, style=style
    )


def _section(text: str, accessory: ButtonElement | None = None) -> SectionBlock:
    return section(shorten(text, 3000), accessory)


def _waiting(data: HomeData) -> list[Block]:
    if not data.approver:
        return []
    total = data.waiting_total
    blocks: list[Block] = [_section(f"*Waiting for your approval* ({total})")]
    if not total:
        blocks.append(_section("Nothing waits for you."))
    for item in data.waiting:
        review = _button("Review", REVIEW_ACTION, item.send_id, "primary")
        blocks.append(_section(_line(item, by=True), review))
    pages = -(-total // WAITING_PAGE)
    if pages > 1:
        page = data.waiting_page
        first = page * WAITING_PAGE + 1
        last = min(total, (page + 1) * WAITING_PAGE)
        blocks.append(
            ContextBlock(
                elements=[MarkdownTextObject(text=f"{first}–{last} of {total}, oldest first")]
            )
        )
        buttons = []
        if page > 0:
            buttons.append(_button("Previous", HOME_PREV_ACTION, str(page - 1)))
        if page + 1 < pages:
            buttons.append(_button(f"{WAITING_PAGE} more", HOME_NEXT_ACTION, str(page + 1)))
        blocks.append(ActionsBlock(block_id="waiting_pages", elements=buttons))
    blocks.append(DividerBlock())
    return blocks


def _mine(data: HomeData, links: Mapping[str, str]) -> list[Block]:
    blocks: list[Block] = [_section("*Your last requests*")]
    if not data.mine:
        blocks.append(_section("You have made no requests lately. Type `/zns` to make one."))
    for item in data.mine:
        cancel = None
        if item.state == SendState.PENDING_APPROVAL:
            cancel = _button("Cancel", CANCEL_ACTION, item.send_id, "danger")
        blocks.append(_section(_line(item, links.get(item.send_id)), cancel))
    blocks.append(DividerBlock())
    return blocks


def _today(data: HomeData) -> list[Block]:
    blocks: list[Block] = [_section(f"*Today's sends* ({data.day})")]
    if not data.counts:
        blocks.append(_section("No Zalo OA to show: set ESMS_OAID or make a request."))
    for oaid, counts in data.counts.items():
        shown = [f"{STATE_WORDS.get(s, s)}: *{counts[s]}*" for s in STATE_WORDS if counts.get(s)]
        quota = data.quotas.get(oaid, "unavailable")
        text = f"OA `{mrkdwn_escape(oaid)}` · quota {quota}\n" + (
            " · ".join(shown) if shown else "no requests yet"
        )
        blocks.append(_section(text))
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=f"eSMS balance: {data.balance}")]))
    return blocks


def home_view(data: HomeData, links: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The home as views.publish takes it. `links`: send id → the card's permalink.

    At most 1 + 24 + 22 + 2 + 5 blocks (header, a page of waiting requests with its
    paging, the last 20 requests, today's counts for up to 5 OAs): under Slack's 100.
    """
    blocks: list[Block] = [HeaderBlock(text=PlainTextObject(text="Zalo ZNS", emoji=True))]
    blocks += _waiting(data)
    blocks += _mine(data, links or {})
    blocks += _today(data)
    return dict(View(type="home", blocks=blocks).to_dict())
