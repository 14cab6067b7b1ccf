"""`/zns status`, `/zns templates` and `/zns balance` answers: Slack's limits, masked phones."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from bot.esms.types import (
    Balance,
    OfficialAccount,
    ParamType,
    Quota,
    Template,
    TemplateParam,
    TemplateStatus,
)
from bot.lookup import Key, Lookup, SendView
from bot.status import status_fields
from handlers.ui.account import (
    PAGE_TEMPLATES_MAX,
    TEMPLATES_PAGE_ACTION,
    balance_blocks,
    template_pages,
    templates_blocks,
)
from handlers.ui.status import status_blocks
from standins import blockkit
from standins.blockkit import check_message_blocks

PHONE = "0901888484"
MASKED = "090****484"
SEND_ID = "zns-" + "a" * 32
OA = OfficialAccount("4097311281936189049", "Shop OA")
LINK = "https://example.slack.com/archives/C0APPROVALS/p1000000000000100"

VIEW = SendView(
    send_id=SEND_ID,
    where="live",
    state="failed",
    meaning="not delivered",
    template_id="231001",
    template_name="Order confirmation <!channel>",
    phone=PHONE,
    phone_erased=False,
    requester="slack:U0AGENT01",
    approver="slack:U0APPROVER1",
    sms_id="7b1e5b0c-4a11-4c1e-9a55-0f3a1c2d9e01",
    sandbox=False,
    result="this number has no Zalo account (Zalo code -118)",
    suggestion="ask the customer which number their Zalo uses",
    error_code=-118,
    created_at="2026-12-07T09:00:00.000000+00:00",
    updated_at="2026-12-07T09:01:00.000000+00:00",
    card=("C0APPROVALS", "1000000000.000100"),
)


def accepted(blocks: list[dict[str, Any]]) -> None:
    """What the strict Slack stand-in would refuse, refused here."""
    assert check_message_blocks(blocks) == []
    assert blockkit.blocks_text_length(blocks) <= blockkit.BLOCKS_TEXT_MAX


def test_one_send_shows_every_status_field_people_as_mentions_and_its_thread() -> None:
    lookup = Lookup((Key("send", SEND_ID),), Key("send", SEND_ID), [VIEW], 1)
    text, blocks = status_blocks(lookup, {SEND_ID: LINK})
    accepted(blocks)
    shown = json.dumps(blocks, ensure_ascii=False)
    assert text == f"ZNS send {SEND_ID}: failed"
    for label, _ in status_fields(VIEW):  # the CLI's fields, every one of them
        assert f"*{label}*" in shown
    assert "<@U0AGENT01>" in shown and "<@U0APPROVER1>" in shown
    assert MASKED in shown and PHONE not in shown
    assert "no Zalo account" in shown and VIEW.sms_id in shown
    assert f"<{LINK}|Request thread>" in shown
    assert "<!channel>" not in shown  # a template's name cannot ping anyone
    fields = [b for b in blocks if b.get("fields")]
    assert all(len(b["fields"]) <= 10 for b in fields)


def test_without_a_permalink_the_card_s_channel_is_named() -> None:
    lookup = Lookup((Key("send", SEND_ID),), Key("send", SEND_ID), [VIEW], 1)
    _, blocks = status_blocks(lookup, {SEND_ID: None})
    assert "<#C0APPROVALS>" in json.dumps(blocks)
    cli = dataclasses.replace(VIEW, card=None)
    _, blocks = status_blocks(Lookup((), Key("send", SEND_ID), [cli], 1), {})
    assert "No card in Slack" in json.dumps(blocks)


def test_a_phone_lists_ten_sends_masked_within_slack_s_limits() -> None:
    views = [
        dataclasses.replace(
            VIEW,
            send_id=f"zns-{i:032x}",
            result="x" * 3000,  # a long result is cut, not refused by Slack
            created_at=f"2026-12-07T09:{i:02d}:00.000000+00:00",
        )
        for i in range(10)
    ]
    key = Key("phone", PHONE)
    lookup = Lookup((key,), key, views, 25)
    text, blocks = status_blocks(lookup, {v.send_id: LINK for v in views})
    accepted(blocks)
    shown = json.dumps(blocks, ensure_ascii=False)
    assert text == f"25 send(s) to {MASKED}, newest first, the newest 10 shown"
    assert PHONE not in shown and shown.count("Request thread") == 10
    assert all(v.send_id in shown for v in views)


def test_nothing_found_is_one_line_with_the_phone_masked() -> None:
    tried = (Key("phone", PHONE), Key("sms", PHONE), Key("send", PHONE))
    text, blocks = status_blocks(Lookup(tried, None), {})
    accepted(blocks)
    assert text.startswith(f"no send found for phone {MASKED}")
    assert PHONE not in json.dumps(blocks) and len(blocks) == 1


def template(index: int, params: int, name_length: int = 20) -> Template:
    return Template(
        id=f"{231000 + index}",
        name=("Mẫu xác nhận đơn hàng " * 20)[:name_length],
        oaid=OA.oaid,
        params=tuple(
            TemplateParam(
                name=f"param_{p}_" + "n" * (name_length // 2),
                level=p,
                max_length=None if p % 5 == 0 else 30 + p,
                type=ParamType.DATE if p % 3 == 0 else ParamType.TEXT,
                required=p % 4 != 0,
            )
            for p in range(params)
        ),
        status=TemplateStatus.ENABLE,
    )


def test_twenty_templates_of_twenty_parameters_page_within_slack_s_limits() -> None:
    templates = [template(i, 20) for i in range(20)]
    pages = template_pages(templates)
    assert [t for page in pages for t in page] == templates  # every one, in order
    for number in range(1, len(pages) + 1):
        text, blocks = templates_blocks(OA, templates, number)
        accepted(blocks)
        assert f"page {number} of {len(pages)}" in text
    _, first = templates_blocks(OA, templates, 1)
    shown = json.dumps(first, ensure_ascii=False)
    assert "param_1_" in shown and "(date dd/MM/yyyy, max 33)" in shown
    assert "optional" in shown  # param_4 is not required


def test_long_names_and_many_parameters_are_cut_not_refused() -> None:
    templates = [template(i, 120, name_length=400) for i in range(45)]
    pages = template_pages(templates)
    assert len(pages) > 1 and all(len(p) <= PAGE_TEMPLATES_MAX for p in pages)
    for number in range(1, len(pages) + 1):
        _, blocks = templates_blocks(OA, templates, number)
        accepted(blocks)
        assert all(len(b["text"]["text"]) <= 3000 for b in blocks if b["type"] == "section")
    _, blocks = templates_blocks(OA, templates, 1)
    assert "more parameters" in json.dumps(blocks, ensure_ascii=False)


def test_a_page_has_a_more_button_except_the_last() -> None:
    templates = [template(i, 2) for i in range(PAGE_TEMPLATES_MAX + 1)]
    _, first = templates_blocks(OA, templates, 1)
    (actions,) = [b for b in first if b["type"] == "actions"]
    (button,) = actions["elements"]
    assert (button["action_id"], button["value"]) == (TEMPLATES_PAGE_ACTION, "2")
    assert "`/zns templates 2`" in json.dumps(first)
    text, last = templates_blocks(OA, templates, 99)  # past the end: the last page
    assert "page 2 of 2" in text and not [b for b in last if b["type"] == "actions"]
    text, _ = templates_blocks(OA, [], 1)
    assert "has no templates" in text


def test_balance_and_quota_and_what_esms_did_not_answer() -> None:
    quota = Quota(daily_quota=2000, remaining_quota=1500)
    text, blocks = balance_blocks(Balance(1234567.0), OA, quota)
    accepted(blocks)
    shown = json.dumps(blocks)
    assert text == "*eSMS balance*: 1,234,567 VND"
    assert "1,500 of 2,000" in shown and OA.oaid in shown
    _, blocks = balance_blocks(None, OA, None, ["eSMS did not answer with the balance: timeout"])
    accepted(blocks)
    assert "eSMS did not answer with the balance" in json.dumps(blocks)
