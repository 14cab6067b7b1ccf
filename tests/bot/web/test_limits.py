"""The body limit against the largest submissions the bot's own modals can produce."""

from __future__ import annotations

from bot.config import Settings
from bot.esms.types import OfficialAccount, Template, TemplateParam
from bot.service import REASON_MAX
from handlers.ui.blocks import INPUT_MAX, request_modal
from standins.payloads import option_state, view_submission_body
from tests.handlers.ui.test_review_blocks import EVERYTHING, long_record, modal

LIMIT = Settings.model_fields["max_body_bytes"].default
LONGEST = "ễ" * INPUT_MAX  # 8 bytes a character once JSON-escaped and form-encoded


def test_the_largest_approval_submission_is_well_within_the_body_limit():
    # 20 parameters of 3000 Vietnamese characters, every optional block, the longest reason
    review = modal(long_record(20, INPUT_MAX, **EVERYTHING))
    values = {
        "decision": {"value": option_state("approve")},
        "reason": {"value": "ễ" * REASON_MAX},
    }
    body = view_submission_body("zns_approval", values, view=review)
    assert len(body) * 4 < LIMIT, len(body)  # 173 KiB


def test_the_largest_request_submission_is_within_the_body_limit():
    oa = OfficialAccount("4100000000000000000", "OA số 1")
    params = tuple(TemplateParam(f"p{n:02}", n, None) for n in range(1, 21))  # no eSMS limit
    template = Template(id="1", name="Hợp đồng " * 10, oaid=oa.oaid, params=params)
    view = request_modal(
        metadata={"oaid": oa.oaid}, oas=[oa], templates=[template], template=template
    )
    typed = {  # every text input typed full
        block["block_id"]: {block["element"]["action_id"]: LONGEST}
        for block in view["blocks"]
        if block.get("type") == "input" and block["element"]["type"] == "plain_text_input"
    }
    assert len(typed) >= 20
    body = view_submission_body("zns_request", typed, view=view)
    assert len(body) < LIMIT * 0.6, len(body)  # 575 KiB
