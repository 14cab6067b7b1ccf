"""End to end: the approver reads every value in full, or the request is refused; short errors."""

from __future__ import annotations

import handlers.ui.blocks
from handlers.ui.blocks import VIEW_BLOCKS_MAX
from handlers.ui.text import slack_len
from standins.esms import TWENTY_PARAMS, TWENTY_PARAMS_LIMIT, TWENTY_PARAMS_TEMPLATE
from tests.harness import ORDER, open_order_modal, texts
from tests.reviewing import shown_values, value

LONG_VALUES = {f"clause_{n:02}": value(n, TWENTY_PARAMS_LIMIT) for n in range(1, TWENTY_PARAMS + 1)}


async def open_long_modal(bot):
    await bot.slash()
    return await bot.choose(await bot.modal(), "template_select", TWENTY_PARAMS_TEMPLATE)


async def test_twenty_values_at_their_limit_are_reviewed_in_full_and_sent_exactly(
    bot, esms_standin
):
    view = await open_long_modal(bot)
    response = await bot.submit_request(view, phone="0901 888 484", params=LONG_VALUES)
    assert response.status_code == 200 and response.text == "", response.text

    card = await bot.card()
    shown = texts(card)
    assert all(f"*{name}*" in shown for name in LONG_VALUES)
    assert "the approver sees every value in full" in shown
    assert "090****484" in shown and "0901888484" not in shown

    modal = await bot.review(card)  # through the card's real Review button
    assert len(modal["blocks"]) <= VIEW_BLOCKS_MAX
    assert shown_values(modal["blocks"]) == LONG_VALUES
    assert all(slack_len(b["text"]["text"]) <= 3000 for b in modal["blocks"] if "text" in b)
    record = bot.record_for(card)
    (created,) = [e for e in bot.store.audit.for_send(record["id"]) if e["action"] == "created"]
    in_modal = texts(modal)
    assert f"`{created['data']['content'][:16]}`" in in_modal
    assert "0901888484" in in_modal and f"Contract summary ({TWENTY_PARAMS_TEMPLATE})" in in_modal
    assert f"https://account.zalo.cloud/znspreview/{TWENTY_PARAMS_TEMPLATE}" in in_modal

    response = await bot.decide(modal, "approve")
    assert response.status_code == 200 and response.text == "", response.text
    await bot.thread_text(card, "Accepted by eSMS")
    (sent,) = esms_standin.sends()
    assert sent["Params"] == list(LONG_VALUES.values())
    assert sent["TempID"] == TWENTY_PARAMS_TEMPLATE and sent["Phone"] == "0901888484"


async def test_values_the_approver_could_not_see_are_refused_at_submit(bot, monkeypatch):
    # The stand-in's templates all fit (20 values of 3,000 need 40 of the 92 blocks), so
    # shrink the room to see the refusal the way a person would.
    monkeypatch.setattr(handlers.ui.blocks, "APPROVAL_PARAM_BLOCKS", 30)
    view = await open_long_modal(bot)
    response = await bot.submit_request(view, phone="0901 888 484", params=LONG_VALUES)
    errors = response.json()["errors"]
    assert errors == {
        "template": "These values need 40 blocks in the approver's modal and it holds 30: "
        "shorten the longest values and submit again."
    }
    assert bot.store.sends.count() == 0 and bot.store.audit.count() == 0


async def test_junk_in_the_phone_field_gets_a_short_error_that_says_what_to_type(bot):
    junk = "Khách hàng: Nguyễn Văn A <a@b.vn> & co; " * 50  # 2,000 characters
    assert len(junk) == 2000
    view = await open_order_modal(bot)
    response = await bot.submit_request(view, phone=junk, params=ORDER)
    body = response.json()
    assert body["response_action"] == "errors" and set(body["errors"]) == {"phone"}
    message = body["errors"]["phone"]
    assert len(message) < 200
    assert not any(junk[i : i + 21] in message for i in range(len(junk) - 20))
    assert "type a Vietnamese mobile number, 10 digits such as 0901 888 484" in message
    assert bot.store.sends.count() == 0
