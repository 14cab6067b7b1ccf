"""Block Kit builders: Slack's limits and what user text can and cannot do on a card."""

from handlers.ui.blocks import (
    STATUS_LINES,
    mrkdwn_escape,
    option_text,
    request_card,
    status_line,
    thread_text,
)
from storage.sends import FINAL_STATES, SendState

RECORD = {
    "id": "zns-1",
    "state": "pending_approval",
    "phone": "0901888484",
    "oaid": "1",
    "template_id": "231001",
    "template_name": "Order confirmation",
    "params": {"customer_name": "<https://evil.example|www.bank.vn> <!channel>"},
    "requester": "slack:U1",
    "note": "call <@U2> & <!here>",
    "campaign": "*bold* <b>",
    "is_journey": True,
    "order_id": "`x` <y>",
}


def test_option_text_keeps_the_id_within_75_characters():
    name = "Công ty TNHH Thương mại Dịch vụ Vận chuyển Nhanh Sài Gòn"
    text = option_text(name, "4097311281936189049")
    assert len(text) <= 75 and text.endswith("(4097311281936189049)")
    assert option_text("OTP", "205644") == "OTP (205644)"


def test_user_text_cannot_link_or_mention_on_the_card():
    shown = str(request_card(RECORD)["blocks"])
    for smuggled in ("<https://evil", "<!channel>", "<!here>", "<@U2>", "<b>", "<y>"):
        assert smuggled not in shown
    assert "&lt;https://evil.example|www.bank.vn&gt;" in shown
    assert mrkdwn_escape("a & b") == "a &amp; b"


def test_a_sandboxed_send_says_so_in_its_thread_and_on_its_card():
    ended = {**RECORD, "state": "sandboxed", "sandbox": True, "approver": "slack:U9"}
    assert thread_text(ended, "sandboxed") == "sandbox: accepted by eSMS, nothing delivered"
    with_id = {**ended, "sms_id": "SMS-7"}
    assert thread_text(with_id, "sandboxed") == (
        "sandbox: accepted by eSMS, nothing delivered. SMSID `SMS-7`."
    )
    line = status_line(with_id)
    assert line == (
        "Approved by <@U9> · :test_tube: Sandbox — accepted by eSMS, nothing delivered"
        " · SMSID `SMS-7`"
    )
    card = request_card(with_id)
    assert "nothing delivered" in card["text"] and "SMSID `SMS-7`" in str(card["blocks"])
    assert "zns_review" not in str(card["blocks"])  # final: no buttons


def test_every_final_state_has_its_own_status_line():
    # Rejected is spelled with its approver and reason; every other final state has a line.
    assert FINAL_STATES - {SendState.REJECTED} <= STATUS_LINES.keys()
