"""Options load requests: the OA and template type-ahead answers, from the eSMS catalogue."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from handlers.listeners.options import handle_oa_options, handle_template_options
from handlers.ui.blocks import OA_ACTION, TEMPLATE_ACTION
from handlers.ui.suggestions import UNAVAILABLE
from standins.catalogue import REPEAT_TEMPLATE, use_big_catalogue
from standins.driver import suggested
from standins.esms import DEMO_OAID, ORDER_TEMPLATE, SECOND_OA_TEMPLATE, SECOND_OAID, EsmsStandIn
from standins.payloads import block_suggestion_body, option_state

if TYPE_CHECKING:
    from tests.handlers.listeners.conftest import RecordingAck

MODAL = {"id": "V0REQUEST", "private_metadata": json.dumps({"oaid": DEMO_OAID}), "blocks": []}


def typed(action_id: str, value: str, state: dict[str, Any] | None = None) -> dict[str, Any]:
    """The body Bolt hands a listener when someone types `value` into a select of MODAL."""
    form = block_suggestion_body(
        action_id, value, block_id="b", view=MODAL, state_values=state or {}
    )
    payload: dict[str, Any] = json.loads(parse_qs(form.decode())["payload"][0])
    return payload


def values(ack: RecordingAck) -> list[str]:
    return [o["value"] for o in suggested(ack.only)]


async def test_every_oa_is_reachable_by_typing_part_of_its_name(
    context: dict[str, Any], ack: RecordingAck, esms_standin: EsmsStandIn
):
    use_big_catalogue(esms_standin)
    await handle_oa_options(ack, typed(OA_ACTION, "demo shop"), context)
    assert values(ack) == [DEMO_OAID]  # the 117th of 130: past what a static select holds
    assert ack.only["options"][0]["text"]["text"] == f"Demo Shop ({DEMO_OAID})"


async def test_more_matches_than_slack_shows_are_labelled_with_how_to_narrow(
    context: dict[str, Any], ack: RecordingAck, esms_standin: EsmsStandIn
):
    use_big_catalogue(esms_standin)
    await handle_oa_options(ack, typed(OA_ACTION, "chi nhanh"), context)
    (group,) = ack.only["option_groups"]
    assert group["label"]["text"] == "First 100 of 128 — type more to narrow"
    assert len(group["options"]) == 100


async def test_templates_come_from_the_oa_chosen_in_the_modal_not_the_default(
    context: dict[str, Any], ack: RecordingAck, esms_standin: EsmsStandIn
):
    chosen = {"oaid": {OA_ACTION: option_state(SECOND_OAID, element="external_select")}}
    await handle_template_options(ack, typed(TEMPLATE_ACTION, "0", chosen), context)
    assert values(ack) == [SECOND_OA_TEMPLATE]


async def test_templates_of_the_modals_oa_match_without_accents(
    context: dict[str, Any], ack: RecordingAck, esms_standin: EsmsStandIn
):
    use_big_catalogue(esms_standin)
    await handle_template_options(ack, typed(TEMPLATE_ACTION, "don hang da giao"), context)
    assert values(ack)[0] == REPEAT_TEMPLATE  # its name starts with "Đơn hàng đã giao"


async def test_an_id_finds_its_template(
    context: dict[str, Any], ack: RecordingAck, esms_standin: EsmsStandIn
):
    await handle_template_options(ack, typed(TEMPLATE_ACTION, ORDER_TEMPLATE), context)
    assert values(ack) == [ORDER_TEMPLATE]


async def test_when_esms_fails_the_select_says_so_rather_than_no_results(
    context: dict[str, Any], ack: RecordingAck, esms_standin: EsmsStandIn
):
    esms_standin.inject("ZNS/GetListZOA", status=503, times=5)
    await handle_oa_options(ack, typed(OA_ACTION, "demo"), context)
    (option,) = ack.only["options"]
    assert option["value"] == UNAVAILABLE
    assert "eSMS did not answer" in option["text"]["text"] and len(option["text"]["text"]) <= 75
