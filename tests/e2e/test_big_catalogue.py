"""A big eSMS catalogue end to end: 130 OAs, 159 templates, found by typing, sent as expected."""

from typing import Any

import pytest

from standins.catalogue import (
    BIG_OA_COUNT,
    DEMO_OA_POSITION,
    NO_LIMIT_TEMPLATE,
    OVER_SLACK_TEMPLATE,
    REPEAT_TEMPLATE,
    big_oas,
    use_big_catalogue,
)
from standins.driver import suggested
from standins.esms import DEMO_OAID
from tests.harness import bot_settings, running_bot, texts


@pytest.fixture
async def bot(tmp_path, slack_standin, esms_standin):
    use_big_catalogue(esms_standin)
    # Loading 159 templates asks GetZnsTemplateInfo 159 times at once; on a busy test
    # machine the default half second per reply is too tight to be about anything here.
    settings = bot_settings(tmp_path / "data", slack_standin, esms_standin, esms_timeout=10.0)
    async with running_bot(settings, slack_standin, esms_standin) as running:
        yield running


def block(view: dict[str, Any], block_id: str) -> dict[str, Any]:
    return next(b for b in view["blocks"] if b.get("block_id") == block_id)


def params(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["block_id"]: b for b in view["blocks"] if b["block_id"].startswith("param:")}


async def open_modal(bot) -> dict[str, Any]:
    response = await bot.slash("0901888484")
    assert response.status_code == 200
    return await bot.modal(wait=20.0)  # views.open and views.update both accepted


async def test_the_default_oa_past_the_100th_is_the_initial_option(bot):
    view = await open_modal(bot)
    assert DEMO_OA_POSITION >= 100 and len(big_oas()) == BIG_OA_COUNT
    oa = block(view, "oaid")["element"]
    assert oa["type"] == "external_select"
    assert oa["initial_option"]["value"] == DEMO_OAID
    assert oa["initial_option"]["text"]["text"] == f"Demo Shop ({DEMO_OAID})"


async def test_an_oa_past_the_100th_is_chosen_by_typing_part_of_its_name(bot):
    view = await open_modal(bot)
    oaid, name = big_oas()[125]  # "… – chi nhánh số 126"
    assert "chi nhánh số 126" in name
    view = await bot.choose(view, "oa_select", oaid, typed="chi nhanh so 126")
    assert block(view, "oaid")["element"]["initial_option"]["value"] == oaid
    assert "has no ENABLE templates" in texts(view)
    view = await bot.choose(view, "oa_select", DEMO_OAID, typed="demo sh")
    assert block(view, "template")["element"]["type"] == "external_select"


async def test_typing_without_accents_finds_a_template_among_more_than_a_hundred(bot):
    view = await open_modal(bot)
    answer = await bot.suggest(view, "template_select", "don hang")
    (group,) = answer["option_groups"]
    assert group["label"]["text"] == "First 100 of 151 — type more to narrow"
    texts_shown = [o["text"]["text"] for o in group["options"]]
    assert all(len(t) <= 75 for t in texts_shown) and len(set(texts_shown)) == 100
    assert group["options"][0]["value"] == REPEAT_TEMPLATE  # its name starts "Đơn hàng"
    narrowed = await bot.suggest(view, "template_select", "don hang da giao thanh cong")
    assert [o["value"] for o in suggested(narrowed)] == [REPEAT_TEMPLATE]


async def test_a_repeated_parameter_has_one_input_and_is_sent_once(bot, esms_standin):
    view = await open_modal(bot)
    view = await bot.choose(view, "template_select", REPEAT_TEMPLATE, typed="don hang")
    assert block(view, "template")["element"]["initial_option"]["value"] == REPEAT_TEMPLATE
    assert list(params(view)) == ["param:customer_name", "param:order_code"]
    response = await bot.submit_request(
        view,
        phone="0901888484",
        params={"customer_name": "Trần Thị Lan", "order_code": "DH-2001"},
        template=REPEAT_TEMPLATE,
    )
    assert response.status_code == 200 and response.text == "", response.text
    card = await bot.card()
    await bot.decide(await bot.review(card), "approve")
    await bot.thread_text(card, "Accepted by eSMS")
    (sent,) = esms_standin.sends()
    assert (sent["TempID"], sent["Params"]) == (REPEAT_TEMPLATE, ["Trần Thị Lan", "DH-2001"])


async def test_a_limit_beyond_slacks_is_capped_with_a_hint_and_a_missing_one_is_not_set(bot):
    view = await open_modal(bot)
    view = await bot.choose(view, "template_select", OVER_SLACK_TEMPLATE, typed="thu cam on")
    message = params(view)["param:message"]
    assert message["element"]["max_length"] == 3000
    assert message["hint"]["text"] == "eSMS allows 4,000 characters; Slack's box takes 3,000."
    view = await bot.choose(view, "template_select", NO_LIMIT_TEMPLATE, typed="ma gioi thieu")
    code = params(view)["param:referral_code"]
    assert "max_length" not in code["element"]
    assert code["label"]["text"] == "referral_code (text)"


@pytest.mark.parametrize(
    ("template", "typed", "values"),
    [
        # Slack's box takes 3,000 of the 4,000 eSMS allows: a full box is sent as typed
        (
            OVER_SLACK_TEMPLATE,
            "thu cam on",
            {"customer_name": "Lan", "message": "Cảm ơn & " * 333 + "hết"},
        ),
        # no limit from eSMS: no max_length here, and eSMS judges the length itself
        (NO_LIMIT_TEMPLATE, "ma gioi thieu", {"referral_code": "REF-" + "9" * 3500}),
    ],
)
async def test_templates_with_unusual_limits_are_approved_and_sent_as_typed(
    bot, esms_standin, template, typed, values
):
    view = await open_modal(bot)
    view = await bot.choose(view, "template_select", template, typed=typed)
    response = await bot.submit_request(view, phone="0901888484", params=values, template=template)
    assert response.status_code == 200 and response.text == "", response.text
    card = await bot.card()
    await bot.decide(await bot.review(card), "approve")
    await bot.thread_text(card, "Accepted by eSMS")
    (sent,) = esms_standin.sends()
    assert (sent["TempID"], sent["Params"]) == (template, list(values.values()))
