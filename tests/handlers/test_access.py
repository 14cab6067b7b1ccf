"""AccessList: user ids, user groups through usergroups.users.list, cached; Slack failures."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError

from handlers import access
from handlers.access import AccessList


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeSlack:
    """usergroups.users.list only: members per group, a failure to raise, or a hang."""

    def __init__(self, groups: dict[str, list[str]]) -> None:
        self.groups = groups
        self.calls: list[str] = []
        self.error: Exception | None = None
        self.hang = False

    async def usergroups_users_list(self, *, usergroup: str) -> dict[str, Any]:
        self.calls.append(usergroup)
        if self.hang:
            await asyncio.sleep(60)
        if self.error is not None:
            raise self.error
        return {"ok": True, "users": list(self.groups.get(usergroup, []))}


def refused() -> SlackApiError:
    return SlackApiError("refused", {"ok": False, "error": "missing_scope"})


async def test_user_ids_match_without_asking_slack() -> None:
    slack = FakeSlack({})
    approvers = AccessList(["U1", "", "U2"])
    assert approvers.entries == ["U1", "U2"] and not approvers.empty
    assert await approvers.contains("U2", slack)  # type: ignore[arg-type]
    assert not await approvers.contains("U3", slack)  # type: ignore[arg-type]
    assert slack.calls == []
    assert AccessList([""]).empty


async def test_groups_expand_and_are_cached_for_the_ttl() -> None:
    clock, slack = Clock(), FakeSlack({"S1": ["U1"], "S2": ["U2"]})
    approvers = AccessList(["S1", "S2"], ttl=300, clock=clock)
    assert await approvers.contains("U2", slack)  # type: ignore[arg-type]
    assert not await approvers.contains("U3", slack)  # type: ignore[arg-type]
    clock.now = 299
    assert await approvers.contains("U1", slack)  # type: ignore[arg-type]
    assert slack.calls == ["S1", "S2"]


async def test_a_stale_list_answers_at_once_while_slack_is_asked_again() -> None:
    clock, slack = Clock(), FakeSlack({"S1": ["U1"]})
    approvers = AccessList(["S1"], ttl=300, clock=clock)
    await approvers.warm(slack)  # type: ignore[arg-type]
    clock.now = 300
    slack.groups["S1"] = ["U2"]
    assert await approvers.contains("U1", slack)  # type: ignore[arg-type]  # the old list
    assert await approvers.contains("U1", slack)  # type: ignore[arg-type]  # one refresh only
    await approvers.settled()
    assert slack.calls == ["S1", "S1"]
    assert await approvers.contains("U2", slack)  # type: ignore[arg-type]  # refreshed
    assert not await approvers.contains("U1", slack)  # type: ignore[arg-type]


async def test_a_failed_refresh_keeps_the_old_members(caplog: pytest.LogCaptureFixture) -> None:
    clock, slack = Clock(), FakeSlack({"S1": ["U1"]})
    approvers = AccessList(["S1"], ttl=300, clock=clock)
    await approvers.warm(slack)  # type: ignore[arg-type]
    clock.now, slack.error = 300, refused()
    await approvers.warm(slack)  # type: ignore[arg-type]
    assert await approvers.contains("U1", slack)  # type: ignore[arg-type]
    await approvers.settled()
    assert len(slack.calls) == 3  # tried again: the kept list is still stale
    assert "cannot list user group S1: missing_scope" in caplog.text


async def test_a_group_never_read_grants_nothing(caplog: pytest.LogCaptureFixture) -> None:
    slack = FakeSlack({"S1": ["U1"]})
    slack.error = refused()
    approvers = AccessList(["S1"])
    await approvers.warm(slack)  # type: ignore[arg-type]  # does not raise
    assert not await approvers.contains("U1", slack)  # type: ignore[arg-type]
    slack.error = None
    assert await approvers.contains("U1", slack)  # type: ignore[arg-type]  # nothing cached
    assert slack.calls == ["S1", "S1", "S1"]
    assert caplog.text.count("cannot list user group S1") == 2


async def test_a_slow_slack_is_bounded(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(access, "FETCH_WAIT_S", 0.05)
    caplog.set_level(logging.WARNING, logger="handlers.access")
    slack = FakeSlack({"S1": ["U1"]})
    slack.hang = True
    assert not await AccessList(["S1"]).contains("U1", slack)  # type: ignore[arg-type]
    # (the message names no cause here: `error or type(exc).__name__` keeps the exception)
    assert "cannot list user group S1" in caplog.text
