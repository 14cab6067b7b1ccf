"""Slack's Block Kit limits in the stand-in: just inside is accepted, just outside refused."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from standins.blockkit import (
    BLOCKS_TEXT_MAX,
    blocks_text_length,
    check_message_blocks,
    check_options_answer,
    check_view,
)
from standins.slack import Refusal, SlackStandIn
from tests.conftest import unexpected_refusals
from tests.harness import BOT_TOKEN, run_inner_session

CHANNEL = "C0APPROVE"


def plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}


def mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def modal(*blocks: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "type": "modal",
        "title": plain("Send ZNS"),
        "submit": plain("Send"),
        "blocks": list(blocks),
        **fields,
    }


def section(text: str = "Hello", **fields: Any) -> dict[str, Any]:
    return {"type": "section", "text": mrkdwn(text), **fields}


def input_block(element: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "type": "input",
        "block_id": "in",
        "label": plain("Phone"),
        "element": element,
        **fields,
    }


def text_input(**fields: Any) -> dict[str, Any]:
    return {"type": "plain_text_input", "action_id": "value", **fields}


def option(text: str = "Order shipped", value: str = "t1", **fields: Any) -> dict[str, Any]:
    return {"text": plain(text), "value": value, **fields}


def options(count: int) -> list[dict[str, Any]]:
    return [option(f"Template {i}", f"t{i}") for i in range(count)]


def select(**fields: Any) -> dict[str, Any]:
    return {"type": "static_select", "action_id": "template", **fields}


def button(**fields: Any) -> dict[str, Any]:
    return {"type": "button", "action_id": "review", "text": plain("Review"), **fields}


def actions(*elements: dict[str, Any]) -> dict[str, Any]:
    return {"type": "actions", "elements": list(elements)}


def sections(count: int) -> list[dict[str, Any]]:
    return [section(f"Line {i}") for i in range(count)]


@dataclass(frozen=True)
class Rule:
    """One limit: a payload just inside it, one just outside, and where Slack points."""

    name: str
    inside: Any
    outside: Any
    pointer: str
    says: str
    check: Callable[[Any], list[str]] = check_view


def in_message(name: str, inside: Any, outside: Any, pointer: str, says: str) -> Rule:
    return Rule(name, inside, outside, pointer, says, check_message_blocks)


def in_element(
    name: str, inside: dict[str, Any], outside: dict[str, Any], pointer: str, says: str
) -> Rule:
    """A rule on an input block's element, in a modal."""
    return Rule(
        name,
        modal(input_block(inside)),
        modal(input_block(outside)),
        f"/view/blocks/0/element{pointer}",
        says,
    )


TOO_LONG = "must be less than"
EMPTY = "must be at least 1 character"
TOO_MANY = "no more than"
NOT_OFFERED = "must be one of the provided options"
GROUPS = [
    {"label": plain("Orders"), "options": options(2)},
    {"label": plain("Payments"), "options": [option("Paid", "p1")]},
]

RULES = [
    # views
    Rule("title max", modal(title=plain("x" * 24)), modal(title=plain("x" * 25)),
         "/view/title/text", "must be less than 25 characters"),
    Rule("title min", modal(title=plain("x")), modal(title=plain("")), "/view/title/text", EMPTY),
    Rule("title plain", modal(), modal(title=mrkdwn("Send")), "/view/title", "plain_text"),
    Rule("submit max", modal(submit=plain("x" * 24)), modal(submit=plain("x" * 25)),
         "/view/submit/text", TOO_LONG),
    Rule("submit min", modal(submit=plain("x")), modal(submit=plain("")),
         "/view/submit/text", EMPTY),
    Rule("close max", modal(close=plain("x" * 24)), modal(close=plain("x" * 25)),
         "/view/close/text", TOO_LONG),
    Rule("close min", modal(close=plain("x")), modal(close=plain("")), "/view/close/text", EMPTY),
    Rule("private_metadata", modal(private_metadata="x" * 3000),
         modal(private_metadata="x" * 3001), "/view/private_metadata", TOO_LONG),
    Rule("callback_id", modal(callback_id="x" * 255), modal(callback_id="x" * 256),
         "/view/callback_id", TOO_LONG),
    Rule("external_id", modal(external_id="x" * 255), modal(external_id="x" * 256),
         "/view/external_id", TOO_LONG),
    Rule("view blocks", modal(*sections(100)), modal(*sections(101)), "/view/blocks",
         "no more than 100 items allowed"),
    Rule("home blocks", {"type": "home", "blocks": sections(100)},
         {"type": "home", "blocks": sections(101)}, "/view/blocks", TOO_MANY,
         lambda view: check_view(view, kinds=("home",))),
    Rule("submit with inputs", modal(input_block(text_input())),
         {k: v for k, v in modal(input_block(text_input())).items() if k != "submit"},
         "/view", "submit"),
    # blocks in a view and in a message
    in_message("message blocks", sections(50), sections(51), "/blocks",
               "no more than 50 items allowed"),
    Rule("block_id max", modal(section(block_id="x" * 255)), modal(section(block_id="x" * 256)),
         "/view/blocks/0/block_id", TOO_LONG),
    Rule("block_id unique in a view",
         modal(section(block_id="a"), section(block_id="b")),
         modal(section(block_id="a"), section(block_id="a")),
         "/view/blocks/1/block_id", "duplicate block_id"),
    in_message("block_id unique in a message",
               [section(block_id="a"), actions(button()) | {"block_id": "b"}],
               [section(block_id="a"), actions(button()) | {"block_id": "a"}],
               "/blocks/1/block_id", "duplicate block_id"),
    in_message("section text max", [section("x" * 3000)], [section("x" * 3001)],
               "/blocks/0/text/text", "must be less than 3001 characters"),
    in_message("section text min", [section("x")], [section("")], "/blocks/0/text/text", EMPTY),
    in_message("section fields count",
               [{"type": "section", "fields": [mrkdwn("f")] * 10}],
               [{"type": "section", "fields": [mrkdwn("f")] * 11}],
               "/blocks/0/fields", "no more than 10 items allowed"),
    in_message("section field max",
               [{"type": "section", "fields": [mrkdwn("x" * 2000)]}],
               [{"type": "section", "fields": [mrkdwn("x" * 2001)]}],
               "/blocks/0/fields/0/text", TOO_LONG),
    in_message("section field min",
               [{"type": "section", "fields": [mrkdwn("x")]}],
               [{"type": "section", "fields": [mrkdwn("")]}],
               "/blocks/0/fields/0/text", EMPTY),
    in_message("section needs text or fields",
               [{"type": "section", "fields": [mrkdwn("x")]}],
               [{"type": "section", "accessory": button()}],
               "/blocks/0", "must provide text or fields"),
    in_message("header max",
               [{"type": "header", "text": plain("x" * 150)}],
               [{"type": "header", "text": plain("x" * 151)}],
               "/blocks/0/text/text", "must be less than 151 characters"),
    in_message("header min",
               [{"type": "header", "text": plain("x")}],
               [{"type": "header", "text": plain("")}],
               "/blocks/0/text/text", EMPTY),
    in_message("context max",
               [{"type": "context", "elements": [mrkdwn("c")] * 10}],
               [{"type": "context", "elements": [mrkdwn("c")] * 11}],
               "/blocks/0/elements", TOO_MANY),
    in_message("context min",
               [{"type": "context", "elements": [mrkdwn("c")]}],
               [{"type": "context", "elements": []}],
               "/blocks/0/elements", "at least 1 item"),
    in_message("context text min",
               [{"type": "context", "elements": [mrkdwn("c")]}],
               [{"type": "context", "elements": [mrkdwn("")]}],
               "/blocks/0/elements/0/text", EMPTY),
    in_message("actions max", [actions(*[button()] * 25)], [actions(*[button()] * 26)],
               "/blocks/0/elements", "no more than 25 items allowed"),
    in_message("actions min", [actions(button())], [actions()], "/blocks/0/elements",
               "at least 1 item"),
    Rule("input label max", modal(input_block(text_input(), label=plain("x" * 2000))),
         modal(input_block(text_input(), label=plain("x" * 2001))),
         "/view/blocks/0/label/text", TOO_LONG),
    Rule("input label min", modal(input_block(text_input(), label=plain("x"))),
         modal(input_block(text_input(), label=plain(""))), "/view/blocks/0/label/text", EMPTY),
    Rule("input hint max", modal(input_block(text_input(), hint=plain("x" * 2000))),
         modal(input_block(text_input(), hint=plain("x" * 2001))),
         "/view/blocks/0/hint/text", TOO_LONG),
    Rule("input needs an element", modal(input_block(text_input())),
         modal({"type": "input", "label": plain("Phone")}), "/view/blocks/0", "element"),
    Rule("input has one element", modal(input_block(text_input())),
         modal(input_block([text_input(), text_input()])),
         "/view/blocks/0/element", "must be an object"),
    # buttons
    in_message("button text max", [actions(button(text=plain("x" * 75)))],
               [actions(button(text=plain("x" * 76)))], "/blocks/0/elements/0/text/text",
               "must be less than 76 characters"),
    in_message("button text min", [actions(button(text=plain("x")))],
               [actions(button(text=plain("")))], "/blocks/0/elements/0/text/text", EMPTY),
    in_message("button value", [actions(button(value="x" * 2000))],
               [actions(button(value="x" * 2001))], "/blocks/0/elements/0/value", TOO_LONG),
    in_message("button url", [actions(button(url="https://e.vn/" + "x" * 2987))],
               [actions(button(url="https://e.vn/" + "x" * 2988))],
               "/blocks/0/elements/0/url", TOO_LONG),
    in_message("action_id", [actions(button(action_id="x" * 255))],
               [actions(button(action_id="x" * 256))], "/blocks/0/elements/0/action_id",
               TOO_LONG),
    # plain_text_input
    in_element("max_length top", text_input(max_length=3000), text_input(max_length=3001),
               "/max_length", "must be at most 3000"),
    in_element("max_length bottom", text_input(max_length=1), text_input(max_length=0),
               "/max_length", "must be at least 1"),
    in_element("min_length top", text_input(min_length=3000), text_input(min_length=3001),
               "/min_length", "must be at most 3000"),
    in_element("min_length bottom", text_input(min_length=0), text_input(min_length=-1),
               "/min_length", "must be at least 0"),
    in_element("min_length under max_length", text_input(min_length=5, max_length=5),
               text_input(min_length=6, max_length=5), "/min_length", "max_length"),
    in_element("text input placeholder", text_input(placeholder=plain("x" * 150)),
               text_input(placeholder=plain("x" * 151)), "/placeholder/text", TOO_LONG),
    # static_select
    in_element("options count", select(options=options(100)), select(options=options(101)),
               "/options", "no more than 100 items allowed"),
    in_element("option_groups count",
               select(option_groups=[{"label": plain("G"), "options": options(1)}] * 100),
               select(option_groups=[{"label": plain("G"), "options": options(1)}] * 101),
               "/option_groups", TOO_MANY),
    in_element("options in a group",
               select(option_groups=[{"label": plain("G"), "options": options(100)}]),
               select(option_groups=[{"label": plain("G"), "options": options(101)}]),
               "/option_groups/0/options", TOO_MANY),
    in_element("group label", select(option_groups=[{"label": plain("x" * 75),
                                                      "options": options(1)}]),
               select(option_groups=[{"label": plain("x" * 76), "options": options(1)}]),
               "/option_groups/0/label/text", TOO_LONG),
    in_element("options or groups", select(options=options(1)), select(), "", "either options"),
    in_element("select placeholder", select(options=options(1), placeholder=plain("x" * 150)),
               select(options=options(1), placeholder=plain("x" * 151)),
               "/placeholder/text", TOO_LONG),
    in_element("initial_option among options",
               select(options=options(3), initial_option=option("Template 1", "t1")),
               select(options=options(3), initial_option=option("Template 1 (old)", "t1")),
               "/initial_option", NOT_OFFERED),
    in_element("initial_option among groups",
               select(option_groups=GROUPS, initial_option=option("Paid", "p1")),
               select(option_groups=GROUPS, initial_option=option("Paid", "p2")),
               "/initial_option", NOT_OFFERED),
    in_element("option text", select(options=[option("x" * 75)]),
               select(options=[option("x" * 76)]), "/options/0/text/text", TOO_LONG),
    in_element("option text min", select(options=[option("x")]), select(options=[option("")]),
               "/options/0/text/text", EMPTY),
    in_element("option value", select(options=[option(value="x" * 150)]),
               select(options=[option(value="x" * 151)]), "/options/0/value", TOO_LONG),
    in_element("option description",
               select(options=[option(description=plain("x" * 75))]),
               select(options=[option(description=plain("x" * 76))]),
               "/options/0/description/text", TOO_LONG),
    # external_select: no options here, but a well-formed initial option
    in_element("min_query_length",
               {"type": "external_select", "action_id": "t", "min_query_length": 0,
                "initial_option": option("Anything", "any")},
               {"type": "external_select", "action_id": "t", "min_query_length": -1},
               "/min_query_length", "must be at least 0"),
    in_element("external initial_option well-formed",
               {"type": "external_select", "action_id": "t", "initial_option": option("x" * 75)},
               {"type": "external_select", "action_id": "t", "initial_option": option("x" * 76)},
               "/initial_option/text/text", TOO_LONG),
    # checkboxes, radio_buttons, overflow
    in_element("checkboxes count", {"type": "checkboxes", "options": options(10)},
               {"type": "checkboxes", "options": options(11)}, "/options",
               "no more than 10 items allowed"),
    in_element("checkboxes initial_options",
               {"type": "checkboxes", "options": options(3), "initial_options": options(2)},
               {"type": "checkboxes", "options": options(3),
                "initial_options": [option("Template 9", "t9")]},
               "/initial_options/0", NOT_OFFERED),
    in_element("radio_buttons count", {"type": "radio_buttons", "options": options(10)},
               {"type": "radio_buttons", "options": options(11)}, "/options", TOO_MANY),
    in_element("radio_buttons initial_option",
               {"type": "radio_buttons", "options": options(3),
                "initial_option": option("Template 2", "t2")},
               {"type": "radio_buttons", "options": options(3),
                "initial_option": option("Template 2", "t3")},
               "/initial_option", NOT_OFFERED),
    in_message("overflow min",
               [section(accessory={"type": "overflow", "options": options(2)})],
               [section(accessory={"type": "overflow", "options": options(1)})],
               "/blocks/0/accessory/options", "at least 2 items"),
    in_message("overflow max",
               [section(accessory={"type": "overflow", "options": options(5)})],
               [section(accessory={"type": "overflow", "options": options(6)})],
               "/blocks/0/accessory/options", "no more than 5 items allowed"),
]  # fmt: skip


@pytest.mark.parametrize("rule", RULES, ids=[rule.name for rule in RULES])
def test_just_inside_a_limit_is_accepted_and_just_outside_refused(rule: Rule) -> None:
    assert rule.check(rule.inside) == []
    problems = rule.check(rule.outside)
    pointed = [p for p in problems if p.endswith(f"[json-pointer:{rule.pointer}]")]
    assert pointed, problems
    assert pointed[0].startswith("[ERROR] ")
    assert rule.says in pointed[0], pointed


def test_a_home_tab_needs_no_title_and_a_modal_method_takes_no_home_tab() -> None:
    home = {"type": "home", "blocks": [section()]}
    assert check_view(home, kinds=("home",)) == []
    assert check_view(home) == ["[ERROR] must be 'modal' [json-pointer:/view/type]"]
    assert check_view(modal(), kinds=("home",)) == [
        "[ERROR] must be 'home' [json-pointer:/view/type]"
    ]


def test_blocks_text_length_counts_every_text_object() -> None:
    blocks = [
        section("abc", fields=[mrkdwn("de")]),
        actions(button(text=plain("Review"), value="not text")),
        {"type": "context", "elements": [mrkdwn("f")]},
    ]
    assert blocks_text_length(blocks) == len("abc" + "de" + "Review" + "f")


# --- over HTTP, against the running stand-in --------------------------------------------------


@pytest.fixture
def client(slack_standin: SlackStandIn) -> AsyncWebClient:
    return AsyncWebClient(token=BOT_TOKEN, base_url=slack_standin.api_url)


@pytest.mark.slack_refuses("invalid_arguments")
async def test_views_with_a_duplicate_block_id_are_refused_and_change_nothing(
    slack_standin: SlackStandIn, client: AsyncWebClient
) -> None:
    twice = modal(section(block_id="phone"), section(block_id="phone"))
    with pytest.raises(SlackApiError) as opening:
        await client.views_open(trigger_id="1.2.3", view=twice)
    opened = await client.views_open(trigger_id="1.2.4", view=modal(section(block_id="a")))
    with pytest.raises(SlackApiError) as updating:
        await client.views_update(view_id=opened["view"]["id"], view=twice)

    for caught in (opening, updating):
        assert caught.value.response["ok"] is False
        assert caught.value.response["error"] == "invalid_arguments"
        assert caught.value.response["response_metadata"]["messages"] == [
            "[ERROR] duplicate block_id [json-pointer:/view/blocks/1/block_id]"
        ]
    assert slack_standin.view(opened["view"]["id"])["blocks"] == [section(block_id="a")]
    assert [(r.method, r.error) for r in slack_standin.refusals()] == [
        ("views.open", "invalid_arguments"),
        ("views.update", "invalid_arguments"),
    ]


@pytest.mark.slack_refuses("invalid_blocks")
async def test_a_message_of_51_blocks_is_refused_with_invalid_blocks(
    slack_standin: SlackStandIn, client: AsyncWebClient
) -> None:
    with pytest.raises(SlackApiError) as posting:
        await client.chat_postMessage(channel=CHANNEL, text="card", blocks=sections(51))
    card = await client.chat_postMessage(channel=CHANNEL, text="card", blocks=sections(50))
    with pytest.raises(SlackApiError) as updating:
        await client.chat_update(channel=CHANNEL, ts=card["ts"], text="x", blocks=sections(51))
    with pytest.raises(SlackApiError) as ephemeral:
        await client.chat_postEphemeral(channel=CHANNEL, user="U1", text="x", blocks=sections(51))

    for caught in (posting, updating, ephemeral):
        assert caught.value.response["error"] == "invalid_blocks"
        assert caught.value.response["response_metadata"]["messages"] == [
            "[ERROR] no more than 50 items allowed [json-pointer:/blocks]"
        ]
    assert len(slack_standin.message(CHANNEL, card["ts"])["blocks"]) == 50
    assert slack_standin.ephemerals() == []


@pytest.mark.slack_refuses("msg_blocks_too_long", "msg_too_long")
async def test_too_much_text_across_blocks_or_in_text_is_refused(
    slack_standin: SlackStandIn, client: AsyncWebClient
) -> None:
    # Each section stays under 3,000: only the sum breaks the limit.
    at_cap = [section("x" * 2600) for _ in range(BLOCKS_TEXT_MAX // 2600)]
    assert blocks_text_length(at_cap) == BLOCKS_TEXT_MAX
    await client.chat_postMessage(channel=CHANNEL, text="long", blocks=at_cap)
    with pytest.raises(SlackApiError) as blocks:
        await client.chat_postMessage(channel=CHANNEL, text="long", blocks=[*at_cap, section("y")])
    await client.chat_postMessage(channel=CHANNEL, text="x" * 40_000)
    with pytest.raises(SlackApiError) as text:
        await client.chat_postMessage(channel=CHANNEL, text="x" * 40_001)

    assert blocks.value.response["error"] == "msg_blocks_too_long"
    assert "13,001" in blocks.value.response["response_metadata"]["messages"][0]
    assert text.value.response["error"] == "msg_too_long"
    assert len(slack_standin.messages(CHANNEL)) == 2


@pytest.mark.slack_refuses("invalid_arguments")
async def test_views_publish_keeps_one_home_tab_per_user(
    slack_standin: SlackStandIn, client: AsyncWebClient
) -> None:
    first = await client.views_publish(user_id="U1", view={"type": "home", "blocks": [section()]})
    again = await client.views_publish(
        user_id="U1", view={"type": "home", "blocks": [section("Updated")]}
    )
    with pytest.raises(SlackApiError) as too_many:
        await client.views_publish(user_id="U1", view={"type": "home", "blocks": sections(101)})

    assert again["view"]["id"] == first["view"]["id"]
    assert slack_standin.home("U1")["blocks"] == [section("Updated")]
    assert too_many.value.response["response_metadata"]["messages"] == [
        "[ERROR] no more than 100 items allowed [json-pointer:/view/blocks]"
    ]


async def test_an_injected_fault_is_not_a_refusal(
    slack_standin: SlackStandIn, client: AsyncWebClient
) -> None:
    # No slack_refuses marker: the autouse check would fail this test if it counted faults.
    slack_standin.inject("chat.postMessage", error="invalid_blocks")
    with pytest.raises(SlackApiError) as caught:
        await client.chat_postMessage(channel=CHANNEL, text="card", blocks=sections(1))
    assert caught.value.response["error"] == "invalid_blocks"
    (call,) = slack_standin.calls("chat.postMessage")
    assert call.faulted and not call.refused
    assert slack_standin.refusals() == []


# --- the autouse check in tests/conftest.py ----------------------------------------------------


def test_unexpected_refusals_names_each_refusal_and_its_messages() -> None:
    blocks = Refusal("chat.postMessage", "invalid_blocks", ("[ERROR] no more than 50 items",))
    view = Refusal("views.update", "invalid_arguments", ("[ERROR] duplicate block_id",))

    assert unexpected_refusals([], set()) is None
    assert unexpected_refusals([blocks, view], {"invalid_blocks", "invalid_arguments"}) is None
    said = unexpected_refusals([blocks, blocks, view], {"invalid_arguments"})
    assert said is not None
    assert "chat.postMessage -> invalid_blocks (2 times)" in said
    assert "[ERROR] no more than 50 items" in said
    assert "views.update" not in said


INNER_TESTS = """
import httpx
import pytest

from standins.slack import SlackStandIn

SECTIONS = [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}] * 51


def post(standin):
    return httpx.post(
        f"{standin.api_url}chat.postMessage",
        headers={"Authorization": "Bearer xoxb-inner"},
        json={"channel": "C1", "text": "card", "blocks": SECTIONS},
    ).json()


def test_undeclared():
    with SlackStandIn(bot_token="xoxb-inner") as standin:
        assert post(standin)["error"] == "invalid_blocks"


@pytest.mark.slack_refuses("invalid_blocks")
def test_declared():
    with SlackStandIn(bot_token="xoxb-inner") as standin:
        assert post(standin)["error"] == "invalid_blocks"


@pytest.mark.slack_refuses("invalid_arguments")
def test_declared_another_error():
    with SlackStandIn(bot_token="xoxb-inner") as standin:
        assert post(standin)["error"] == "invalid_blocks"


def test_injected_fault():
    with SlackStandIn(bot_token="xoxb-inner") as standin:
        standin.inject("chat.postMessage", error="invalid_blocks")
        assert post(standin)["error"] == "invalid_blocks"
"""

INNER_CONFTEST = """
from tests.conftest import slack_refusals_declared  # noqa: F401


def pytest_configure(config):
    config.addinivalue_line("markers", "slack_refuses(*errors): expected refusals")
"""


def test_the_autouse_check_fails_a_test_with_an_undeclared_refusal(
    pytester: pytest.Pytester,
) -> None:
    result = run_inner_session(pytester, INNER_CONFTEST, INNER_TESTS)

    result.assert_outcomes(passed=4, errors=2)
    # fnmatch reads "[...]" as a character class: the messages are matched as plain text.
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_undeclared*",
            "*the Slack stand-in refused 1 payload(s)*",
            "chat.postMessage -> invalid_blocks",
            "*no more than 50 items allowed*",
            "*ERROR at teardown of test_declared_another_error*",
        ]
    )
    assert "[ERROR] no more than 50 items allowed [json-pointer:/blocks]" in result.stdout.str()


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ({"options": [option(str(i)) for i in range(101)]}, "no more than 100 items"),
        ({"option_groups": [{"label": plain("g"), "options": [option("1")] * 101}]}, "100"),
        ({"options": [{"text": {"type": "mrkdwn", "text": "*a*"}, "value": "a"}]}, "plain_text"),
        ({"options": [{"text": plain("x" * 76), "value": "a"}]}, "less than 76"),
        ({"options": [{"text": plain("😀" * 38), "value": "a"}]}, "less than 76"),  # 76 units
        ({"options": [], "option_groups": []}, "either options or option_groups"),
    ],
)
def test_an_options_load_answer_breaking_a_limit_is_refused(answer, problem):
    problems = check_options_answer(answer)
    assert problems and any(problem in p for p in problems), problems


def test_an_options_load_answer_within_the_limits_is_accepted():
    assert check_options_answer({"options": [option(str(i)) for i in range(100)]}) == []
    assert check_options_answer({"options": [{"text": plain("😀" * 37), "value": "a"}]}) == []
