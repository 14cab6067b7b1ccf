"""/zns: who may open the request modal, and the audited refusal for everyone else."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from handlers.listeners.commands import handle_zns
from standins.driver import AGENT
from standins.payloads import slash_command_body
from storage.store import Store
from tests.harness import STRANGER

if TYPE_CHECKING:
    from tests.handlers.listeners.conftest import MakeContext, RecordingAck, RecordingSlack

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
