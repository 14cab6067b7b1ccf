"""Pure Block Kit builders for `/zns templates` (paged) and `/zns balance`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    PlainTextObject,
)

from bot.esms.types import Balance, OfficialAccount, Quota, Template, TemplateParam
from handlers.ui.blocks import NAME_MAX, SECTION_TEXT_MAX, mrkdwn_escape, param_label
from handlers.ui.kit import as_dicts, context, section
from handlers.ui.text import shorten, slack_len

TEMPLATES_PAGE_ACTION = "zns_templates_page"
PAGE_TEMPLATES_MAX = 20  # templates on one page: one section each, well under 50 blocks
# Block text on one page. Slack refuses a message whose blocks hold about 13,000
# characters (msg_blocks_too_long, slack-limits.md): a page stops well before.
PAGE_TEXT_BUDGET = 9000
PARAM_NAME_MAX = 60  # a parameter's name on the list; the modal shows it whole


def template_pages(templates: Sequence[Template]) -> list[list[Template]]:
    """The templates cut into pages, in eSMS's order: each page at most
    PAGE_TEMPLATES_MAX templates and PAGE_TEXT_BUDGET characters of text. The cut depends
    on the list alone, so page 2 is the same page whichever way it is asked for."""
    pages: list[list[Template]] = []
    page: list[Template] = []
    used = 0
    for template in templates:
        size = slack_len(template_text(template))
        if page and (len(page) == PAGE_TEMPLATES_MAX or used + size > PAGE_TEXT_BUDGET):
            pages.append(page)
            page, used = [], 0
        page.append(template)
        used += size
    if page:
        pages.append(page)
    return pages


def template_text(template: Template) -> str:
    """One template: name, id, status, then one line per parameter with its rules."""
    name = mrkdwn_escape(shorten(template.name or "(no name)", NAME_MAX))
    head = f"*{name}* (`{mrkdwn_escape(template.id)}`) · {template.status.value}"
    params = template.distinct_params
    if not params:
        return f"{head}\nno parameters"
    lines = [head]
    for index, param in enumerate(params):
        line = f"• {_param_line(param)}"
        # keep room for the line saying how many did not fit
        if slack_len("\n".join([*lines, line])) > SECTION_TEXT_MAX - 80:
            rest = len(params) - index
            lines.append(f"… and {rest} more parameters: choose the template in `/zns` to see all")
            break
        lines.append(line)
    return "\n".join(lines)


def _param_line(param: TemplateParam) -> str:
    name = shorten(param.name, PARAM_NAME_MAX)
    label = param_label(name, param.type, param.max_length)
    return mrkdwn_escape(label if param.required else f"{label}, optional")


def templates_blocks(
    oa: OfficialAccount, templates: Sequence[Template], page: int
) -> tuple[str, list[dict[str, Any]]]:
    """(the notification text, the blocks) of one page (1-based) of an OA's templates.
    A page past the last shows the last, so an old "more" button still answers."""
    oa_name = mrkdwn_escape(shorten(oa.name or oa.oaid, NAME_MAX))
    if not templates:
        text = f"OA {oa_name} ({oa.oaid}) has no templates at eSMS."
        return text, as_dicts([section(text)])
    pages = template_pages(templates)
    page = min(max(page, 1), len(pages))
    heading = (
        f"Templates of OA {oa_name} (`{oa.oaid}`): {len(templates)}, page {page} of {len(pages)}"
    )
    blocks: list[Block] = [section(f"*{heading}*")]
    blocks += [section(template_text(t)) for t in pages[page - 1]]
    if page < len(pages):
        blocks.append(
            ActionsBlock(
                elements=[
                    ButtonElement(
                        action_id=TEMPLATES_PAGE_ACTION,
                        text=PlainTextObject(text=f"More (page {page + 1})"),
                        value=str(page + 1),
                    )
                ]
            )
        )
        blocks.append(context(f"Or type `/zns templates {page + 1}`"))
    return heading, as_dicts(blocks)


def balance_blocks(
    balance: Balance | None,
    oa: OfficialAccount | None,
    quota: Quota | None,
    failures: Sequence[str] = (),
) -> tuple[str, list[dict[str, Any]]]:
    """(the notification text, the blocks) of the account's balance and the OA's quota;
    `failures` says, one line each, what eSMS did not answer."""
    lines: list[str] = []
    if balance is not None:
        lines.append(f"*eSMS balance*: {balance.balance:,.0f} VND")
    if oa is not None and quota is not None:
        lines.append(f"*OA {mrkdwn_escape(shorten(oa.name or oa.oaid, NAME_MAX))}* (`{oa.oaid}`)")
        lines.append(f"• daily quota left: {_count(quota.remaining_quota, quota.daily_quota)}")
        if quota.daily_quota_promotion is not None or quota.remaining_quota_promotion is not None:
            left = _count(quota.remaining_quota_promotion, quota.daily_quota_promotion)
            lines.append(f"• promotion quota left: {left}")
    lines += [f":warning: {mrkdwn_escape(shorten(f, 500))}" for f in failures]
    text = "\n".join(lines) or "Nothing to show."
    return text.splitlines()[0], as_dicts([section(text)])


def _count(left: int | None, of: int | None) -> str:
    left_text = f"{left:,}" if left is not None else "unknown"
    return f"{left_text} of {of:,}" if of is not None else left_text
