"""The approval modal shows every value in full; the card lists every parameter, shortened."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.service import ContentCheck
from handlers.ui.blocks import (
    APPROVAL_PARAM_BLOCKS,
    VIEW_BLOCKS_MAX,
    approval_modal,
    approval_overflow,
    request_card,
)
from handlers.ui.text import slack_len
from tests.reviewing import shown_values, value

DIGEST = "0123456789abcdef" + "f" * 48


def long_record(count: int = 20, length: int = 3000, **more: Any) -> dict[str, Any]:
    params = {f"clause_{n:02}": value(n, length) for n in range(1, count + 1)}
    return {
        "id": "zns-long",
        "state": "pending_approval",
        "phone": "0901888484",
        "oaid": "4097311281936189049",
        "template_id": "231020",
        "template_name": "Contract summary",
        "params": params,
        "ordered_params": list(params.values()),
        "requester": "slack:U1",
        "estimate": {"total_price": 330.0, "total_receiver": 1},
        "extra": {"preview_url": "https://account.zalo.cloud/znspreview/231020"},
        **more,
    }


EVERYTHING = {  # every optional block the approval modal can have
    "sandbox": True,
    "note": "& <" * 166,
    "is_journey": True,
    "order_id": "DH-1",
    "campaign": "<x>" * 80,
}


def modal(record: dict[str, Any], content: ContentCheck | None = None) -> dict[str, Any]:
    content = content or ContentCheck(chained=DIGEST, intact=True)
    return approval_modal(
        record, quota="remaining daily quota 5 of 10", metadata={}, content=content
    )


def all_texts(blocks: list[dict[str, Any]]) -> list[str]:
    """Every text object's text in the blocks."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("plain_text", "mrkdwn") and "text" in node:
                found.append(node["text"])
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(blocks)
    return found


def assert_within_slack_limits(blocks: list[dict[str, Any]]) -> None:
    for block in blocks:
        if block["type"] == "section":
            if "text" in block:
                assert 1 <= slack_len(block["text"]["text"]) <= 3000
            for field in block.get("fields") or []:
                assert 1 <= slack_len(field["text"]) <= 2000
            assert len(block.get("fields") or []) <= 10
    assert all(text for text in all_texts(blocks))


def test_twenty_values_at_their_limit_appear_exactly_and_in_full_within_100_blocks():
    record = long_record(**EVERYTHING)
    view = modal(record)
    blocks = view["blocks"]
    assert len(blocks) <= VIEW_BLOCKS_MAX
    assert_within_slack_limits(blocks)
    assert shown_values(blocks) == record["params"]
    # a 3,000-character value does not fit one section beside its name: it continues
    shown = json.dumps(blocks, ensure_ascii=False)
    assert "clause_01 (3,000 characters):" in shown and "clause_01 (continued):" in shown
    # plain text, not mrkdwn: nothing escaped, no emoji conversion, exactly what is sent
    value_sections = [b for b in blocks if b.get("text", {}).get("type") == "plain_text"]
    assert all(b["text"]["emoji"] is False for b in value_sections)


def test_the_approver_sees_the_full_phone_template_preview_and_digest():
    shown = json.dumps(modal(long_record())["blocks"], ensure_ascii=False)
    assert "0901888484" in shown
    assert "Contract summary (231020)" in shown
    assert "<https://account.zalo.cloud/znspreview/231020|Open preview>" in shown
    assert "`0123456789abcdef`" in shown and DIGEST not in shown
    assert "chained in the audit log" in shown
    assert "no longer matches" not in shown


def test_a_send_edited_since_its_digest_was_chained_is_flagged_to_the_approver():
    shown = json.dumps(modal(long_record(), ContentCheck(chained=DIGEST, intact=False))["blocks"])
    assert "no longer matches this digest" in shown and "Do not approve" in shown


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "https://x.example/a|Click here", "https://x.example/<!here>"]
)
def test_a_preview_address_that_could_bend_the_link_is_not_shown(url):
    record = long_record(1, 10, extra={"preview_url": url})
    shown = json.dumps(modal(record)["blocks"])
    assert "Open preview" not in shown and url not in shown


@pytest.mark.parametrize(("count", "length"), [(20, 4000), (20, 5000), (45, 3000), (92, 10)])
def test_worst_cases_fit_the_block_budget(count, length):
    # 20 values of 4,000 (beyond Slack's 3,000-character input) take 2 sections each: 40
    # blocks of the 92 left beside the 8 others; 92 short values take one each.
    record = long_record(count, length, **EVERYTHING)
    assert approval_overflow(record["params"]) is None
    blocks = modal(record)["blocks"]
    assert len(blocks) <= VIEW_BLOCKS_MAX
    assert_within_slack_limits(blocks)
    assert shown_values(blocks) == record["params"]


def test_values_that_cannot_fit_are_refused_with_a_short_clear_reason():
    too_many = long_record(APPROVAL_PARAM_BLOCKS + 1, 10)["params"]
    too_long = long_record(20, 15_000)["params"]  # 6 sections each: 120 blocks
    for params in (too_many, too_long):
        reason = approval_overflow(params)
        assert reason is not None and len(reason) < 200
        assert "shorten the longest values" in reason
    assert approval_overflow(long_record(APPROVAL_PARAM_BLOCKS, 10)["params"]) is None


def test_a_stored_request_over_the_budget_still_opens_and_says_what_is_missing():
    blocks = modal(long_record(APPROVAL_PARAM_BLOCKS + 5, 10, **EVERYTHING))["blocks"]
    assert len(blocks) == VIEW_BLOCKS_MAX
    assert "remaining values do not fit" in json.dumps(blocks)


def test_the_card_names_every_parameter_and_says_it_shortened_long_values():
    record = long_record(**EVERYTHING)
    card = request_card(record)
    blocks = card["blocks"]
    assert len(blocks) <= 50
    assert_within_slack_limits(blocks)
    assert sum(map(len, all_texts(blocks))) <= 12_000  # Slack refuses about 13,000
    shown = json.dumps(blocks, ensure_ascii=False)
    assert all(f"*{name}*" in shown for name in record["params"])
    assert "20 long values are shortened here" in shown
    assert "the approver sees every value in full" in shown
    assert "090****484" in shown and "0901888484" not in shown
    assert "<b>" not in shown and "<@U666>" not in shown  # escaped on the card


def test_a_card_with_short_values_shows_them_whole_and_claims_no_shortening():
    record = long_record(5, 40)
    shown = json.dumps(request_card(record)["blocks"], ensure_ascii=False)
    for v in record["params"].values():
        escaped = v.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        assert escaped in shown
    assert "shortened" not in shown


@pytest.mark.parametrize("count", [1, 20, APPROVAL_PARAM_BLOCKS])
def test_any_card_stays_within_a_messages_limits(count):
    card = request_card(long_record(count, 3000, **EVERYTHING))
    blocks = card["blocks"]
    assert len(blocks) <= 50
    assert_within_slack_limits(blocks)
    assert sum(map(len, all_texts(blocks))) <= 12_000
    shown = json.dumps(blocks)
    assert all(f"clause_{n:02}" in shown for n in range(1, count + 1))


def test_a_value_cannot_pass_itself_off_as_another_parameter_on_the_card():
    from handlers.ui.blocks import card_parameters

    forged = "Lan\n• *order_code*: DH-9999\r\nend"
    (section,) = [b for b in card_parameters({"customer_name": forged, "order_code": "DH-1"})]
    lines = section.to_dict()["text"]["text"].split("\n")
    assert lines == [
        "*Parameters*",
        "• *customer_name*: Lan ↵ • *order_code*: DH-9999 ↵ end",
        "• *order_code*: DH-1",
    ]
