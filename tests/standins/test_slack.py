"""The Slack Web API stand-in, driven over real HTTP by slack_sdk, and the signing helpers."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from standins.driver import AGENT, APPROVER
from standins.payloads import (
    block_action_body,
    checkboxes_state,
    option_state,
    signed_headers,
    slash_command_body,
    view_submission_body,
)
from standins.slack import BOT_USER_ID, DEMO_USERS, SlackStandIn

TOKEN = "xoxb-standin-test-token"
SECRET = "signing-secret-for-tests"
CHANNEL = "C0APPROVE"
MODAL = {
    "type": "modal",
    "callback_id": "zns_request",
    "title": {"type": "plain_text", "text": "Send ZNS"},
    "submit": {"type": "plain_text", "text": "Send"},
    "blocks": [
        {
            "type": "input",
            "block_id": "phone",
            "label": {"type": "plain_text", "text": "Phone"},
            "element": {"type": "plain_text_input", "action_id": "value"},
        }
    ],
}
CARD_BLOCKS = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "*ZNS request* to 090****484"}},
    {
        "type": "actions",
        "block_id": "card",
        "elements": [
            {
                "type": "button",
                "action_id": "review",
                "value": "req-1",
                "text": {"type": "plain_text", "text": "Review"},
            }
        ],
    },
]


@pytest.fixture(scope="module")
def standin_server() -> Iterator[SlackStandIn]:
    with SlackStandIn(bot_token=TOKEN) as standin:
        yield standin


@pytest.fixture
def standin(standin_server: SlackStandIn) -> Iterator[SlackStandIn]:
    standin_server.set_users(
        {
            "U1": {"real_name": "Nguyễn Văn An", "display_name": "an.nguyen"},
            "U2": "Trần Thị Bình",
        }
    )
    standin_server.set_usergroups({"S123": ["U1", "U2"]})
    standin_server.set_channels(None)
    standin_server.reset()
    yield standin_server
    standin_server.reset()


@pytest.fixture
def client(standin: SlackStandIn) -> AsyncWebClient:
    return AsyncWebClient(token=TOKEN, base_url=standin.api_url)


@pytest.fixture
async def http(standin: SlackStandIn) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=standin.api_url) as raw:
        yield raw


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- answering like Slack ---------------------------------------------------------------


async def test_auth_test_names_the_bot(client: AsyncWebClient) -> None:
    reply = await client.auth_test()
    assert reply["ok"] is True
    assert reply["user_id"] == BOT_USER_ID
    assert reply["bot_id"].startswith("B")
    assert reply["url"].startswith("https://")


async def test_a_wrong_or_missing_token_is_refused_and_changes_nothing(
    standin: SlackStandIn, http: httpx.AsyncClient
) -> None:
    wrong = AsyncWebClient(token="xoxb-not-the-bot", base_url=standin.api_url)
    with pytest.raises(SlackApiError) as caught:
        await wrong.chat_postMessage(channel=CHANNEL, text="hello")
    assert caught.value.response["error"] == "invalid_auth"

    reply = await http.post("chat.postMessage", data={"channel": CHANNEL, "text": "hi"})
    assert reply.json() == {"ok": False, "error": "not_authed"}

    assert standin.messages(CHANNEL) == []
    assert [c.error for c in standin.calls("chat.postMessage")] == ["invalid_auth", "not_authed"]
    assert all("token" not in c.args for c in standin.calls())


async def test_the_token_may_also_come_as_a_form_field(
    standin: SlackStandIn, http: httpx.AsyncClient
) -> None:
    reply = await http.post("auth.test", data={"token": TOKEN})
    assert reply.json()["ok"] is True
    assert standin.calls("auth.test")[0].args == {}


async def test_an_unknown_method_is_refused(client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as caught:
        await client.api_call("chat.postMesage", json={"channel": CHANNEL, "text": "typo"})
    assert caught.value.response["error"] == "unknown_method"


async def test_thread_replies_and_updates_are_visible_in_place(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    card = await client.chat_postMessage(channel=CHANNEL, text="ZNS request", blocks=CARD_BLOCKS)
    assert card["channel"] == CHANNEL
    assert card["message"]["blocks"] == CARD_BLOCKS
    first = await client.chat_postMessage(channel=CHANNEL, thread_ts=card["ts"], text="approved")
    # A reply to a reply lands in the parent's thread, as in Slack.
    second = await client.chat_postMessage(
        channel=CHANNEL, thread_ts=first["ts"], text="accepted (SMSID 42)"
    )
    await client.chat_update(
        channel=CHANNEL, ts=card["ts"], text="ZNS request: approved", blocks=CARD_BLOCKS[:1]
    )

    stamps = [card["ts"], first["ts"], second["ts"]]
    assert stamps == sorted(stamps, key=float) and len(set(stamps)) == 3
    assert all(len(ts.split(".")[1]) == 6 for ts in stamps)

    (top,) = standin.messages(CHANNEL)
    assert top["ts"] == card["ts"]
    assert top["text"] == "ZNS request: approved"
    assert top["blocks"] == CARD_BLOCKS[:1]  # the buttons are gone
    assert top["edited"]["user"] == BOT_USER_ID
    assert top["reply_count"] == 2
    replies = standin.thread(CHANNEL, card["ts"])
    assert [r["text"] for r in replies] == ["approved", "accepted (SMSID 42)"]
    assert {r["thread_ts"] for r in replies} == {card["ts"]}


@pytest.mark.slack_refuses("invalid_blocks")
async def test_message_errors_change_nothing(standin: SlackStandIn, client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as no_text:
        await client.api_call("chat.postMessage", json={"channel": CHANNEL})
    with pytest.raises(SlackApiError) as not_found:
        await client.chat_update(channel=CHANNEL, ts="1700000000.999900", text="edit")
    with pytest.raises(SlackApiError) as no_thread:
        await client.chat_postMessage(channel=CHANNEL, thread_ts="1700000000.999900", text="x")
    too_long = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]
    with pytest.raises(SlackApiError) as bad_blocks:
        await client.chat_postMessage(channel=CHANNEL, text="card", blocks=too_long)

    assert no_text.value.response["error"] == "no_text"
    assert not_found.value.response["error"] == "message_not_found"
    assert no_thread.value.response["error"] == "thread_not_found"
    assert bad_blocks.value.response["error"] == "invalid_blocks"
    assert "/blocks/0/text/text" in bad_blocks.value.response["response_metadata"]["messages"][0]
    assert standin.messages(CHANNEL) == []


async def test_form_bodies_with_json_string_blocks_and_json_bodies_both_work(
    standin: SlackStandIn, http: httpx.AsyncClient
) -> None:
    form = await http.post(
        "chat.postMessage",
        headers=bearer(),
        data={"channel": CHANNEL, "text": "form", "blocks": json.dumps(CARD_BLOCKS)},
    )
    as_json = await http.post(
        "chat.postMessage", headers=bearer(), json={"channel": CHANNEL, "text": "json"}
    )
    broken = await http.post(
        "chat.postMessage",
        headers=bearer(),
        data={"channel": CHANNEL, "text": "broken", "blocks": "[{not json"},
    )

    assert form.json()["ok"] and as_json.json()["ok"]
    assert broken.json() == {"ok": False, "error": "invalid_blocks_format"}
    assert [m["text"] for m in standin.messages(CHANNEL)] == ["form", "json"]
    assert standin.messages(CHANNEL)[0]["blocks"] == CARD_BLOCKS
    assert standin.calls("chat.postMessage")[0].args["blocks"] == CARD_BLOCKS


async def test_permalink_ephemeral_dm_and_delete(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    card = await client.chat_postMessage(channel=CHANNEL, text="card")
    reply = await client.chat_postMessage(channel=CHANNEL, thread_ts=card["ts"], text="reply")
    link = await client.chat_getPermalink(channel=CHANNEL, message_ts=card["ts"])
    reply_link = await client.chat_getPermalink(channel=CHANNEL, message_ts=reply["ts"])
    assert link["permalink"].endswith(f"/archives/{CHANNEL}/p{card['ts'].replace('.', '')}")
    assert f"thread_ts={card['ts']}" in reply_link["permalink"]

    eph = await client.chat_postEphemeral(channel="C0SUPPORT", user="U1", text=link["permalink"])
    assert standin.ephemerals("U1") == [
        {
            "channel": "C0SUPPORT",
            "user": "U1",
            "message_ts": eph["message_ts"],
            "text": link["permalink"],
        }
    ]
    assert standin.ephemerals("U2") == []

    opened = await client.conversations_open(users="U1")
    assert opened["channel"]["id"].startswith("D")
    await client.chat_postMessage(channel=opened["channel"]["id"], text="your ZNS failed")
    # Posting to a user id lands in the same DM.
    direct = await client.chat_postMessage(channel="U1", text="second note")
    assert direct["channel"] == opened["channel"]["id"]
    assert [m["text"] for m in standin.dms("U1")] == ["your ZNS failed", "second note"]
    again = await client.conversations_open(users=["U1"])
    assert again["channel"]["id"] == opened["channel"]["id"] and again["already_open"]

    await client.chat_delete(channel=CHANNEL, ts=reply["ts"])
    assert standin.thread(CHANNEL, card["ts"]) == []
    assert standin.message(CHANNEL, card["ts"])["reply_count"] == 0


@pytest.mark.slack_refuses("invalid_arguments")
async def test_views_open_update_and_push(standin: SlackStandIn, client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as no_trigger:
        await client.api_call("views.open", json={"view": MODAL})
    assert no_trigger.value.response["error"] == "invalid_arguments"

    opened = (await client.views_open(trigger_id="123.456.abc", view=MODAL))["view"]
    assert opened["id"].startswith("V") and opened["root_view_id"] == opened["id"]
    assert opened["callback_id"] == "zns_request" and opened["hash"]
    assert standin.last_view()["id"] == opened["id"]

    templates = {"type": "section", "text": {"type": "mrkdwn", "text": "Templates"}}
    loaded = {**MODAL, "private_metadata": '{"oa": "1"}', "blocks": [templates, *MODAL["blocks"]]}
    updated = await client.views_update(view_id=opened["id"], hash=opened["hash"], view=loaded)
    assert updated["view"]["id"] == opened["id"]
    assert updated["view"]["hash"] != opened["hash"]

    with pytest.raises(SlackApiError) as stale:
        await client.views_update(view_id=opened["id"], hash=opened["hash"], view=MODAL)
    assert stale.value.response["error"] == "hash_conflict"
    with pytest.raises(SlackApiError) as missing:
        await client.views_update(view_id="V0NOSUCH1", view=MODAL)
    assert missing.value.response["error"] == "not_found"

    now = standin.view(opened["id"])
    assert now["private_metadata"] == '{"oa": "1"}'
    assert [b["type"] for b in now["blocks"]] == ["section", "input"]

    pushed = (await client.views_push(trigger_id="123.456.def", view=MODAL))["view"]
    assert pushed["previous_view_id"] == opened["id"]
    assert pushed["root_view_id"] == opened["id"]
    assert [v["id"] for v in standin.views()] == [opened["id"], pushed["id"]]


@pytest.mark.slack_refuses("invalid_arguments")
async def test_views_by_external_id_and_modal_limits(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    await client.views_open(trigger_id="1.2.3", view={**MODAL, "external_id": "req-7"})
    await client.views_update(external_id="req-7", view={**MODAL, "external_id": "req-7"})
    assert standin.last_view()["external_id"] == "req-7"

    long_title = {
        **MODAL,
        "title": {"type": "plain_text", "text": "A title far too long for Slack"},
    }
    no_submit = {key: value for key, value in MODAL.items() if key != "submit"}
    for bad in (long_title, no_submit):
        with pytest.raises(SlackApiError) as caught:
            await client.views_open(trigger_id="1.2.4", view=bad)
        assert caught.value.response["error"] == "invalid_arguments"
        assert caught.value.response["response_metadata"]["messages"]
    assert len(standin.views()) == 1


async def test_usergroups_and_users(standin: SlackStandIn, client: AsyncWebClient) -> None:
    assert (await client.usergroups_users_list(usergroup="S123"))["users"] == ["U1", "U2"]
    standin.set_usergroup("S123", ["U2"])
    assert (await client.usergroups_users_list(usergroup="S123"))["users"] == ["U2"]
    with pytest.raises(SlackApiError) as caught:
        await client.usergroups_users_list(usergroup="S999")
    assert caught.value.response["error"] == "no_such_subteam"

    an = (await client.users_info(user="U1"))["user"]
    assert an["real_name"] == "Nguyễn Văn An"
    assert an["profile"]["display_name"] == "an.nguyen"
    assert an["profile"]["real_name_normalized"] == "Nguyen Van An"
    binh = (await client.users_info(user="U2"))["user"]
    assert binh["real_name"] == "Trần Thị Bình" and binh["profile"]["display_name"] == ""
    with pytest.raises(SlackApiError) as unknown:
        await client.users_info(user="U404")
    assert unknown.value.response["error"] == "user_not_found"


async def test_conversations_info_in_the_default_workspace(client: AsyncWebClient) -> None:
    # by default every channel id is a public channel the bot is in (tests post anywhere)
    channel = (await client.conversations_info(channel="C0ANY"))["channel"]
    assert channel["id"] == "C0ANY" and channel["is_member"] is True
    assert channel["is_channel"] is True and channel["is_private"] is False
    for not_a_channel in ("#general", "general", "U1"):
        with pytest.raises(SlackApiError) as caught:
            await client.conversations_info(channel=not_a_channel)
        assert caught.value.response["error"] == "channel_not_found"


async def test_conversations_info_knows_only_the_declared_channels(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    standin.set_channels(
        {
            "C1": "approvals",
            "C2": {"name": "notify", "member": False},
            "G3": {"name": "secret", "private": True, "member": False},
            "G4": {"name": "inner", "private": True},
            "C5": {"name": "old", "archived": True},
        }
    )
    one = (await client.conversations_info(channel="C1"))["channel"]
    assert (one["name"], one["is_member"], one["is_archived"]) == ("approvals", True, False)
    two = (await client.conversations_info(channel="C2"))["channel"]
    assert two["is_member"] is False  # public: visible, though the bot is not in it
    inner = (await client.conversations_info(channel="G4"))["channel"]
    assert inner["is_private"] is True and inner["is_member"] is True
    assert (await client.conversations_info(channel="C5"))["channel"]["is_archived"] is True
    # an unknown channel, and a private one the bot is not in, do not exist for the bot
    for hidden in ("C9", "G3"):
        with pytest.raises(SlackApiError) as caught:
            await client.conversations_info(channel=hidden)
        assert caught.value.response["error"] == "channel_not_found"
    with pytest.raises(SlackApiError) as history:
        await client.conversations_history(channel="C9")
    assert history.value.response["error"] == "channel_not_found"
    standin.set_channel("C9", "new")
    assert (await client.conversations_info(channel="C9"))["channel"]["name"] == "new"


async def test_conversations_info_of_an_opened_dm(client: AsyncWebClient) -> None:
    dm = (await client.conversations_open(users="U1"))["channel"]["id"]
    channel = (await client.conversations_info(channel=dm))["channel"]
    assert channel["is_im"] is True and channel["user"] == "U1"


async def test_conversations_info_refuses_a_wrong_token(standin: SlackStandIn) -> None:
    wrong = AsyncWebClient(token="xoxb-not-the-bot", base_url=standin.api_url)
    with pytest.raises(SlackApiError) as caught:
        await wrong.conversations_info(channel="C1")
    assert caught.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as auth:
        await wrong.auth_test()
    assert auth.value.response["error"] == "invalid_auth"


# --- message metadata and reading conversations ------------------------------------------

OUTBOX_META = {"event_type": "zns_outbox", "event_payload": {"key": "req-1:thread:approved"}}


async def test_message_ts_is_the_posting_time_and_always_increases() -> None:
    with SlackStandIn(bot_token=TOKEN, clock=lambda: 1_790_000_000.5) as frozen:
        client = AsyncWebClient(token=TOKEN, base_url=frozen.api_url)
        first = await client.chat_postMessage(channel=CHANNEL, text="one")
        second = await client.chat_postMessage(channel=CHANNEL, text="two")
    assert [first["ts"], second["ts"]] == ["1790000000.500000", "1790000000.500100"]


async def test_metadata_is_kept_and_shown_only_when_asked_for(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel=CHANNEL, text="card", metadata=OUTBOX_META)
    assert posted["message"]["metadata"] == OUTBOX_META
    assert standin.message(CHANNEL, posted["ts"])["metadata"] == OUTBOX_META

    plain = await client.conversations_history(channel=CHANNEL)
    assert "metadata" not in plain["messages"][0]
    full = await client.conversations_history(channel=CHANNEL, include_all_metadata=True)
    assert full["messages"][0]["metadata"] == OUTBOX_META
    # chat.update without metadata leaves it as it was
    await client.chat_update(channel=CHANNEL, ts=posted["ts"], text="card, approved")
    assert standin.message(CHANNEL, posted["ts"])["metadata"] == OUTBOX_META

    for bad in ({"event_type": "has space", "event_payload": {}}, {"event_type": "x"}):
        with pytest.raises(SlackApiError) as caught:
            await client.chat_postMessage(channel=CHANNEL, text="bad", metadata=bad)
        assert caught.value.response["error"] == "invalid_metadata_schema"
    assert len(standin.messages(CHANNEL)) == 1


async def test_history_lists_top_level_messages_newest_first_in_pages(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    stamps = [
        (await client.chat_postMessage(channel=CHANNEL, text=f"m{n}"))["ts"] for n in range(5)
    ]
    await client.chat_postMessage(channel=CHANNEL, thread_ts=stamps[0], text="hidden reply")
    await client.chat_postMessage(
        channel=CHANNEL, thread_ts=stamps[0], text="broadcast", reply_broadcast=True
    )

    everything = await client.conversations_history(channel=CHANNEL)
    assert [m["text"] for m in everything["messages"]] == [
        "broadcast",
        "m4",
        "m3",
        "m2",
        "m1",
        "m0",
    ]
    assert everything["has_more"] is False
    assert everything["response_metadata"] == {"next_cursor": ""}
    assert everything["messages"][-1]["reply_count"] == 2

    texts: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await client.conversations_history(channel=CHANNEL, limit=2, cursor=cursor)
        pages += 1
        texts += [m["text"] for m in page["messages"]]
        cursor = page["response_metadata"]["next_cursor"]
        assert page["has_more"] is bool(cursor)
        if not cursor:
            break
    assert pages == 3 and texts == [m["text"] for m in everything["messages"]]

    window = await client.conversations_history(channel=CHANNEL, oldest=stamps[1], latest=stamps[3])
    assert [m["text"] for m in window["messages"]] == ["m2"]  # bounds excluded by default
    inclusive = await client.conversations_history(
        channel=CHANNEL, oldest=stamps[1], latest=stamps[3], inclusive=True
    )
    assert [m["text"] for m in inclusive["messages"]] == ["m3", "m2", "m1"]


async def test_history_of_dms_and_errors(standin: SlackStandIn, client: AsyncWebClient) -> None:
    opened = await client.conversations_open(users="U1")
    await client.chat_postMessage(channel="U1", text="your ZNS failed", metadata=OUTBOX_META)
    dm = await client.conversations_history(
        channel=opened["channel"]["id"], include_all_metadata=True
    )
    assert [(m["text"], m["metadata"]) for m in dm["messages"]] == [
        ("your ZNS failed", OUTBOX_META)
    ]
    assert (await client.conversations_history(channel="C0QUIET"))["messages"] == []

    for channel in ("D0NOTOPEN", "U1", ""):
        with pytest.raises(SlackApiError) as caught:
            await client.api_call("conversations.history", params={"channel": channel})
        assert caught.value.response["error"] == "channel_not_found"
    with pytest.raises(SlackApiError) as bad_cursor:
        await client.conversations_history(channel=CHANNEL, cursor="not-a-cursor")
    assert bad_cursor.value.response["error"] == "invalid_cursor"
    with pytest.raises(SlackApiError) as bad_oldest:
        await client.conversations_history(channel=CHANNEL, oldest="yesterday")
    assert bad_oldest.value.response["error"] == "invalid_ts_oldest"


@pytest.mark.slack_refuses("invalid_arguments")
async def test_replies_list_the_parent_then_the_thread_oldest_first(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    card = await client.chat_postMessage(channel=CHANNEL, text="card")
    replies = []
    for n in range(3):
        meta = {"event_type": "zns_outbox", "event_payload": {"key": f"k{n}"}}
        reply = await client.chat_postMessage(
            channel=CHANNEL, thread_ts=card["ts"], text=f"r{n}", metadata=meta
        )
        replies.append(reply["ts"])
    await client.chat_postMessage(channel=CHANNEL, text="another card")

    thread = await client.conversations_replies(
        channel=CHANNEL, ts=card["ts"], include_all_metadata=True
    )
    assert [m["text"] for m in thread["messages"]] == ["card", "r0", "r1", "r2"]
    assert thread["messages"][0]["reply_count"] == 3
    assert {m["thread_ts"] for m in thread["messages"]} == {card["ts"]}
    assert [m["metadata"]["event_payload"]["key"] for m in thread["messages"][1:]] == [
        "k0",
        "k1",
        "k2",
    ]
    assert thread["has_more"] is False
    plain = await client.conversations_replies(channel=CHANNEL, ts=card["ts"])
    assert all("metadata" not in m for m in plain["messages"])

    by_reply = await client.conversations_replies(channel=CHANNEL, ts=replies[1])
    assert [m["text"] for m in by_reply["messages"]] == ["card", "r0", "r1", "r2"]

    first = await client.conversations_replies(channel=CHANNEL, ts=card["ts"], limit=2)
    assert [m["text"] for m in first["messages"]] == ["card", "r0", "r1"]
    assert first["has_more"] is True
    rest = await client.conversations_replies(
        channel=CHANNEL, ts=card["ts"], limit=2, cursor=first["response_metadata"]["next_cursor"]
    )
    assert [m["text"] for m in rest["messages"]] == ["r2"] and rest["has_more"] is False

    since = await client.conversations_replies(channel=CHANNEL, ts=card["ts"], oldest=replies[0])
    assert [m["text"] for m in since["messages"]] == ["card", "r1", "r2"]

    lone = (await client.conversations_history(channel=CHANNEL, limit=1))["messages"][0]
    alone = await client.conversations_replies(channel=CHANNEL, ts=lone["ts"])
    assert [m["text"] for m in alone["messages"]] == ["another card"]

    with pytest.raises(SlackApiError) as missing:
        await client.conversations_replies(channel=CHANNEL, ts="1700000000.999900")
    assert missing.value.response["error"] == "thread_not_found"
    with pytest.raises(SlackApiError) as no_ts:
        await client.api_call("conversations.replies", params={"channel": CHANNEL})
    assert no_ts.value.response["error"] == "invalid_arguments"


# --- faults and retries -----------------------------------------------------------------


async def test_rate_limit_retry_handler_honours_retry_after(
    standin: SlackStandIn, client: AsyncWebClient, http: httpx.AsyncClient
) -> None:
    standin.inject("chat.postMessage", status=429, retry_after=1)
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=1))

    posted = await client.chat_postMessage(channel=CHANNEL, text="after the limit")

    faulted, succeeded = standin.calls("chat.postMessage")
    assert faulted.faulted and faulted.status == 429 and faulted.error == "ratelimited"
    assert succeeded.ok and not succeeded.faulted
    assert [m["ts"] for m in standin.messages(CHANNEL)] == [posted["ts"]]

    standin.inject("auth.test", status=429, retry_after=1)
    raw = await http.post("auth.test", headers=bearer())
    assert raw.status_code == 429 and raw.headers["Retry-After"] == "1"


async def test_server_error_retry_handler_retries_500_and_503(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    standin.inject("views.open", status=500)
    standin.inject("views.open", status=503)
    client.retry_handlers.append(
        AsyncServerErrorRetryHandler(
            max_retry_count=2, interval_calculator=FixedValueRetryIntervalCalculator(0.01)
        )
    )

    opened = await client.views_open(trigger_id="1.2.3", view=MODAL)

    assert [c.status for c in standin.calls("views.open")] == [500, 503, 200]
    assert [v["id"] for v in standin.views()] == [opened["view"]["id"]]


async def test_faults_without_retries_surface_and_change_nothing(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    standin.inject("chat.postMessage", status=500)
    standin.inject("chat.postMessage", error="channel_not_found")
    with pytest.raises(SlackApiError) as server_error:
        await client.chat_postMessage(channel=CHANNEL, text="one")
    with pytest.raises(SlackApiError) as slack_error:
        await client.chat_postMessage(channel=CHANNEL, text="two")
    await client.chat_postMessage(channel=CHANNEL, text="three")

    assert server_error.value.response.status_code == 500
    assert slack_error.value.response.status_code == 200
    assert slack_error.value.response["error"] == "channel_not_found"
    assert [m["text"] for m in standin.messages(CHANNEL)] == ["three"]
    assert [c.faulted for c in standin.calls()] == [True, True, False]


async def test_outage_fails_everything_until_recovered(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    standin.outage(status=503)
    for call in (client.auth_test(), client.chat_postMessage(channel=CHANNEL, text="down")):
        with pytest.raises(SlackApiError) as caught:
            await call
        assert caught.value.response.status_code == 503
    standin.recover()
    await client.chat_postMessage(channel=CHANNEL, text="up")
    assert [m["text"] for m in standin.messages(CHANNEL)] == ["up"]


# --- waiting for calls ------------------------------------------------------------------


async def test_await_for_wakes_when_a_matching_call_arrives(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    waiting = asyncio.create_task(
        standin.await_for(lambda c: c.args.get("thread_ts") is not None, method="chat.postMessage")
    )
    card = await client.chat_postMessage(channel=CHANNEL, text="card")
    await client.chat_postMessage(channel=CHANNEL, thread_ts=card["ts"], text="delivered")

    call = await waiting
    assert call.args["text"] == "delivered" and call.response["ts"] != card["ts"]
    # Calls made before the wait count too.
    assert (await standin.await_for(method="chat.postMessage", count=2)).args["text"] == "delivered"
    with pytest.raises(TimeoutError, match=r"chat\.update"):
        await standin.await_for(method="chat.update", timeout=0.05)


async def test_wait_for_blocks_a_thread_until_the_call_arrives(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    found: list[Any] = []
    waiter = threading.Thread(target=lambda: found.append(standin.wait_for(method="views.open")))
    waiter.start()
    await client.views_open(trigger_id="1.2.3", view=MODAL)
    await asyncio.to_thread(waiter.join, 5)
    assert [c.response["view"]["id"] for c in found] == [standin.last_view()["id"]]


# --- signing helpers ---------------------------------------------------------------------


def test_signed_headers_pass_slack_verification_and_tampering_fails() -> None:
    body = slash_command_body(text="0901888484", user_id="U1")
    headers = signed_headers(body, SECRET)
    verifier = SignatureVerifier(SECRET)

    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert verifier.is_valid_request(body, headers)
    assert not verifier.is_valid_request(body.replace(b"0901888484", b"0901888485"), headers)
    assert not SignatureVerifier("another-secret").is_valid_request(body, headers)
    stale = signed_headers(body, SECRET, timestamp=int(time.time()) - 600)
    assert not verifier.is_valid_request(body, stale)
    assert signed_headers(b'{"type":"event_callback"}', SECRET)["Content-Type"] == (
        "application/json"
    )


def test_payload_builders_follow_slacks_shapes() -> None:
    command = {k: v[0] for k, v in parse_qs(slash_command_body(text="0901888484").decode()).items()}
    assert command["command"] == "/zns" and command["text"] == "0901888484"
    assert command["trigger_id"].count(".") == 2 and command["response_url"]

    message = {"type": "message", "ts": "1700000000.000100", "text": "card"}
    click = json.loads(
        parse_qs(block_action_body("review", "req-1", "U2", message=message, channel_id=CHANNEL))[
            b"payload"
        ][0]
    )
    assert click["type"] == "block_actions"
    assert click["container"] == {
        "type": "message",
        "message_ts": "1700000000.000100",
        "channel_id": CHANNEL,
        "is_ephemeral": False,
    }
    assert click["actions"][0]["value"] == "req-1" and click["user"]["id"] == "U2"

    view = {"id": "V1", "hash": "1.2", "blocks": [], "private_metadata": "ctx"}
    submit = json.loads(
        parse_qs(
            view_submission_body(
                "zns_request",
                {
                    "phone": {"value": "0901888484"},
                    "template": {"pick": option_state("231001", "Order confirmation")},
                    "journey": {"on": checkboxes_state(["yes"])},
                },
                view=view,
            )
        )[b"payload"][0]
    )
    assert submit["type"] == "view_submission"
    assert submit["view"]["id"] == "V1" and submit["view"]["private_metadata"] == "ctx"
    values = submit["view"]["state"]["values"]
    assert values["phone"]["value"] == {"type": "plain_text_input", "value": "0901888484"}
    assert values["template"]["pick"]["selected_option"]["value"] == "231001"
    assert values["journey"]["on"]["selected_options"][0]["value"] == "yes"


async def test_bolt_accepts_the_signed_requests_and_talks_to_the_standin(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    app = AsyncApp(client=client, signing_secret=SECRET, process_before_response=True)
    clicks: list[str] = []

    @app.command("/zns")
    async def open_modal(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await client.views_open(trigger_id=body["trigger_id"], view=MODAL)

    @app.action("review")
    async def review(ack: Any, action: dict[str, Any]) -> None:
        await ack()
        clicks.append(action["value"])

    @app.view("zns_request")
    async def submitted(ack: Any, view: dict[str, Any]) -> None:
        phone = view["state"]["values"]["phone"]["value"]["value"]
        await ack(response_action="errors", errors={"phone": f"{phone} is not a phone"})

    async def dispatch(body: bytes) -> Any:
        return await app.async_dispatch(
            AsyncBoltRequest(body=body.decode(), headers=signed_headers(body, SECRET))
        )

    assert (await dispatch(slash_command_body(trigger_id="9.9.abc"))).status == 200
    assert standin.calls("views.open")[-1].args["trigger_id"] == "9.9.abc"

    card = await client.chat_postMessage(channel=CHANNEL, text="card", blocks=CARD_BLOCKS)
    click = block_action_body(
        "review", "req-1", "U2", block_id="card", message=card["message"], channel_id=CHANNEL
    )
    assert (await dispatch(click)).status == 200
    assert clicks == ["req-1"]

    answer = await dispatch(
        view_submission_body("zns_request", {"phone": {"value": "12"}}, view=standin.last_view())
    )
    assert answer.status == 200
    assert json.loads(answer.body) == {
        "response_action": "errors",
        "errors": {"phone": "12 is not a phone"},
    }

    forged = slash_command_body()
    refused = await app.async_dispatch(
        AsyncBoltRequest(body=forged.decode(), headers=signed_headers(forged, "wrong-secret"))
    )
    assert refused.status == 401


def test_user_names_are_what_a_mention_shows() -> None:
    standin = SlackStandIn(
        users={"U1": "Mai Trần", "U2": {"real_name": "Lê Văn Minh", "display_name": "Minh"}}
    )
    names = standin.user_names()
    assert names["U1"] == "Mai Trần"
    assert names["U2"] == "Minh"  # Slack shows the display name when there is one
    assert names[BOT_USER_ID] == "zns-bot"


def test_the_demo_people_are_the_drivers_agent_and_approver() -> None:
    assert {AGENT, APPROVER} <= set(DEMO_USERS)


# --- files_upload_v2: getUploadURLExternal, the upload URL, completeUploadExternal ----------


async def test_files_upload_v2_shares_the_file_in_a_dm_with_its_comment(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    dm = (await client.conversations_open(users="U1"))["channel"]["id"]
    content = b"seq,phone\n1,090****484\n"
    done = await client.files_upload_v2(
        content=content,
        filename="audit.csv",
        title="ZNS audit",
        channel=dm,
        initial_comment="3 rows",
    )
    (file,) = done["files"]
    assert done["file"] == file and file["title"] == "ZNS audit" and file["id"].startswith("F")
    assert [c.method for c in standin.calls()][-3:] == [
        "files.getUploadURLExternal",
        "upload",
        "files.completeUploadExternal",
    ]
    asked = standin.calls("files.getUploadURLExternal")[0].args
    assert (asked["filename"], int(asked["length"])) == ("audit.csv", len(content))
    assert standin.file_bytes(file["id"]) == content
    (message,) = standin.dms("U1")
    assert message["text"] == "3 rows" and message["files"][0]["id"] == file["id"]
    (shown,) = standin.files()
    assert shown["completed"] and shown["channels"] == [dm] and shown["name"] == "audit.csv"


async def test_an_upload_of_another_length_or_twice_is_refused(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    started = await client.files_getUploadURLExternal(filename="a.csv", length=5)
    async with httpx.AsyncClient() as raw:
        short = await raw.post(started["upload_url"], content=b"abc")
        assert short.status_code == 400 and "expected 5 bytes, got 3" in short.text
        good = await raw.post(started["upload_url"], content=b"abcde")
        assert (good.status_code, good.text) == (200, "OK - 5")
        again = await raw.post(started["upload_url"], content=b"abcde")
        assert again.status_code == 400
        unknown = await raw.post(started["upload_url"] + "x", content=b"abcde")
        assert unknown.status_code == 404
        # a multipart form (curl -F) is refused plainly, not miscounted as raw bytes
        form = await client.files_getUploadURLExternal(filename="b.csv", length=3)
        sent = await raw.post(form["upload_url"], files={"file": ("b.csv", b"xyz")})
        assert sent.status_code == 415
    assert standin.file_bytes(started["file_id"]) == b"abcde"
    with pytest.raises(LookupError):
        standin.file_bytes(form["file_id"])


@pytest.mark.slack_refuses("invalid_arguments")
async def test_files_methods_refuse_what_slack_refuses(
    standin: SlackStandIn, client: AsyncWebClient
) -> None:
    for bad in ({"filename": "", "length": 3}, {"filename": "a.csv", "length": 0}):
        with pytest.raises(SlackApiError) as refused:
            await client.files_getUploadURLExternal(**bad)  # type: ignore[arg-type]
        assert refused.value.response["error"] == "invalid_arguments"

    started = await client.files_getUploadURLExternal(filename="a.csv", length=2)
    never_uploaded = {"id": started["file_id"], "title": "a"}
    for files, channel, error in (
        ([{"id": "F0NOSUCHFILE", "title": "x"}], None, "file_not_found"),
        ([never_uploaded], None, "file_not_found"),  # announced but no bytes sent
    ):
        with pytest.raises(SlackApiError) as refused:
            await client.files_completeUploadExternal(files=files, channel_id=channel)
        assert refused.value.response["error"] == error
    with pytest.raises(SlackApiError) as refused:
        await client.files_completeUploadExternal(files=[])
    assert refused.value.response["error"] == "invalid_arguments"

    async with httpx.AsyncClient() as raw:
        assert (await raw.post(started["upload_url"], content=b"ok")).status_code == 200
    with pytest.raises(SlackApiError) as refused:  # a DM nobody opened
        await client.files_completeUploadExternal(
            files=[never_uploaded], channel_id="D0NEVEROPENED"
        )
    assert refused.value.response["error"] == "channel_not_found"
    standin.set_channels({"C0PRIVATE": {"name": "ops", "private": True, "member": False}})
    with pytest.raises(SlackApiError) as refused:
        await client.files_completeUploadExternal(files=[never_uploaded], channel_id="C0PRIVATE")
    assert refused.value.response["error"] == "not_in_channel"
    assert not standin.files()[0]["completed"]  # a refusal changes nothing

    # without a channel Slack keeps the file private: completed, shared nowhere
    done = await client.files_completeUploadExternal(files=[never_uploaded])
    assert done["files"] == [{"id": started["file_id"], "title": "a"}]
    assert standin.files()[0]["channels"] == []
    with pytest.raises(SlackApiError) as refused:  # once only
        await client.files_completeUploadExternal(files=[never_uploaded])
    assert refused.value.response["error"] == "file_not_found"
