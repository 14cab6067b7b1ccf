"""/zns: who may open the request modal, and the audited refusal for everyone else."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from bot.policy import Refusal, refusal_line
from handlers.listeners.commands import SUBCOMMANDS, handle_zns, on_templates_page
from handlers.ui.account import TEMPLATES_PAGE_ACTION
from handlers.ui.blocks import help_text
from standins.driver import AGENT
from standins.payloads import slash_command_body
from storage.store import Store
from tests.handlers.listeners.conftest import REQUEST_CHANNEL, RecordingSlack
from tests.harness import STRANGER

if TYPE_CHECKING:
    from tests.handlers.listeners.conftest import MakeContext, RecordingAck, RequestSend

REQUESTER_GROUP = "S0REQUESTERS"
GROUP_REQUESTER = "U0REQUESTER2"
TRIGGER = "1111111111111.2222222222.abcdef0123456789abcdef0123456789"


def slash(text: str = "", user: str = AGENT) -> dict[str, Any]:
    """The command dict Bolt hands a listener: Slack's form fields, one value each."""
    body = slash_command_body(text=text, user_id=user, trigger_id=TRIGGER)
    return dict(parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=True))


def events(store: Store) -> list[dict[str, Any]]:
    return list(store.audit.iter_events())


def assert_modal_opened(slack: RecordingSlack) -> None:
    (opened,) = slack.called("views_open")
    assert opened["trigger_id"] == TRIGGER
    assert opened["view"]["callback_id"] == "zns_request"
    (filled,) = slack.called("views_update")
    assert filled["view_id"] == "V0OPENED"


async def test_someone_not_on_zns_requesters_is_told_no_audited_and_shown_no_modal(
    make_context: MakeContext, ack: RecordingAck, slack: RecordingSlack, store: Store
) -> None:
    context = make_context(requesters=[AGENT, REQUESTER_GROUP])
    slack.usergroups[REQUESTER_GROUP] = [GROUP_REQUESTER]

    await handle_zns(ack, slash("0901888484", user=STRANGER), slack, context)

    text = ack.only["text"]
    assert "not allowed to request ZNS sends" in text
    assert "ZNS_REQUESTERS" in text
    (event,) = events(store)
    assert event["actor"] == f"slack:{STRANGER}"
    assert event["action"] == "request_refused"
    assert event["reason"] == "not in ZNS_REQUESTERS"
    assert type(event["reason"]) is str  # as the audit log keeps it on disk
    assert event["send_id"] is None
    assert slack.called("views_open") == []
    assert slack.called("views_update") == []
    # the group was consulted before refusing: a member of it would have been let in
    assert slack.called("usergroups_users_list") == [{"usergroup": REQUESTER_GROUP}]


async def test_someone_named_in_zns_requesters_gets_the_request_modal(
    make_context: MakeContext, ack: RecordingAck, slack: RecordingSlack, store: Store
) -> None:
    context = make_context(requesters=[AGENT, REQUESTER_GROUP])

    await handle_zns(ack, slash(user=AGENT), slack, context)

    assert ack.only == {}
    assert_modal_opened(slack)
    assert events(store) == []
    assert slack.called("usergroups_users_list") == []  # a named user needs no Slack call


async def test_a_member_of_a_user_group_in_zns_requesters_gets_the_request_modal(
    make_context: MakeContext, ack: RecordingAck, slack: RecordingSlack, store: Store
) -> None:
    context = make_context(requesters=[AGENT, REQUESTER_GROUP])
    slack.usergroups[REQUESTER_GROUP] = [GROUP_REQUESTER]

    await handle_zns(ack, slash(user=GROUP_REQUESTER), slack, context)

    assert ack.only == {}
    assert_modal_opened(slack)
    assert events(store) == []


async def test_an_empty_zns_requesters_lets_anyone_in(
    context: dict[str, Any], ack: RecordingAck, slack: RecordingSlack, store: Store
) -> None:
    await handle_zns(ack, slash("0901888484", user=STRANGER), slack, context)

    assert ack.only == {}
    assert_modal_opened(slack)
    assert events(store) == []
    assert slack.called("usergroups_users_list") == []


async def test_help_is_answered_even_to_someone_not_on_zns_requesters(
    make_context: MakeContext, ack: RecordingAck, slack: RecordingSlack, store: Store
) -> None:
    context = make_context(requesters=[AGENT])

    await handle_zns(ack, slash("help", user=STRANGER), slack, context)

    assert "/zns" in ack.only["text"]
    assert "not allowed" not in ack.only["text"]
    assert events(store) == []
    assert slack.calls == []


# --- /zns status: roles, the audited lookup, the bounded thread link ----------------------

AUDITOR = "U0AUDITOR1"
CARD = ("C0APPROVALS", "1700000000.000200")


class SlowPermalinks(RecordingSlack):
    """Slack that never answers chat.getPermalink: the ack must not wait for it."""

    async def chat_getPermalink(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("chat_getPermalink", kwargs))
        await asyncio.Event().wait()  # never set: cancelled by the bound
        raise AssertionError("unreachable")


class Permalinks(RecordingSlack):
    async def chat_getPermalink(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("chat_getPermalink", kwargs))
        ts = kwargs["message_ts"].replace(".", "")
        return {"ok": True, "permalink": f"https://t.slack.com/archives/{kwargs['channel']}/p{ts}"}


async def test_status_for_someone_with_no_role_is_refused_audited_and_looks_nothing_up(
    make_context: MakeContext, ack: RecordingAck, slack: RecordingSlack, store: Store
) -> None:
    context = make_context(requesters=[AGENT], auditors=[AUDITOR])
    await handle_zns(ack, slash("status 0901888484", user=STRANGER), slack, context)
    assert ack.only == {"text": refusal_line(Refusal.NO_ROLE)}
    (event,) = events(store)
    assert (event["actor"], event["action"], event["reason"]) == (
        f"slack:{STRANGER}",
        "status_refused",
        "not a requester, approver or auditor",
    )


async def test_status_by_an_auditor_is_audited_with_the_phone_masked(
    make_context: MakeContext,
    ack: RecordingAck,
    store: Store,
    request_send: RequestSend,
) -> None:
    context = make_context(requesters=[AGENT], auditors=[AUDITOR])
    record = await request_send(context)
    store.sends.update_fields(record["id"], card_channel=CARD[0], card_ts=CARD[1])
    slack = Permalinks({})
    await handle_zns(ack, slash("status 0901 888 484", user=AUDITOR), slack, context)
    answer = ack.only
    assert answer["text"] == "1 send(s) to 090****484, newest first"
    shown = str(answer["blocks"])
    assert record["id"] in shown and "0901888484" not in shown
    assert "https://t.slack.com/archives/C0APPROVALS/p1700000000000200|Request thread" in shown
    assert slack.called("chat_getPermalink") == [{"channel": CARD[0], "message_ts": CARD[1]}]
    lookup = events(store)[-1]
    assert (lookup["actor"], lookup["action"]) == (f"slack:{AUDITOR}", "status_lookup")
    assert lookup["reason"] == "phone 090****484: 1 send(s) found"


async def test_a_slow_permalink_names_the_channel_instead_of_missing_the_ack(
    make_context: MakeContext, ack: RecordingAck, store: Store, request_send: RequestSend
) -> None:
    context = make_context()
    record = await request_send(context)
    store.sends.update_fields(record["id"], card_channel=CARD[0], card_ts=CARD[1])
    await handle_zns(ack, slash(f"status {record['id']}"), SlowPermalinks({}), context)
    shown = str(ack.only["blocks"])
    assert f"Request card in <#{CARD[0]}>" in shown
    assert "pending_approval: waiting for an approver" in shown


async def test_every_help_line_names_a_subcommand_of_the_table() -> None:
    text = help_text()
    for name in SUBCOMMANDS:
        assert f"`/zns {name}" in text, name


async def test_a_more_button_kept_from_before_a_role_was_taken_is_refused(
    make_context: MakeContext, ack: RecordingAck, slack: RecordingSlack, store: Store
) -> None:
    context = make_context(requesters=[AGENT])
    body = {
        "type": "block_actions",
        "user": {"id": STRANGER},
        "channel": {"id": REQUEST_CHANNEL},
        "actions": [{"action_id": TEMPLATES_PAGE_ACTION, "value": "2"}],
    }
    await on_templates_page(ack, body, slack, context)
    assert ack.only == {}
    (told,) = slack.called("chat_postEphemeral")
    assert told == {
        "channel": REQUEST_CHANNEL,
        "user": STRANGER,
        "text": refusal_line(Refusal.NO_ROLE),
    }
    (event,) = events(store)
    assert (event["action"], event["reason"]) == (
        "templates_refused",
        "not a requester, approver or auditor",
    )
