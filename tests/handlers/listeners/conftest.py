"""Fixtures for calling the Slack listeners directly: a real store and service, a fake Slack."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings
from bot.esms.client import EsmsClient
from bot.service import SendService
from bot.templates import TemplateCatalogue
from handlers.access import AccessList
from handlers.deps import CONTEXT_KEY, SlackDeps
from standins.blockkit import check_message_blocks, check_view
from standins.driver import AGENT, APPROVER
from standins.esms import DEMO_OAID, ORDER_TEMPLATE
from storage.store import Store
from tests.harness import APPROVER_GROUP, GROUP_APPROVER, ORDER

REQUEST_CHANNEL = "C0SUPPORT"
OPENED_VIEW = {"id": "V0OPENED", "hash": "1700000000.0000OPEN"}


class RecordingAck:
    """Bolt's `ack`: remembers what each call would have answered Slack."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.response: dict[str, Any] | None = None  # as Bolt's: None until acked

    async def __call__(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)
        self.response = kwargs

    @property
    def only(self) -> dict[str, Any]:
        """The one answer given; a listener must ack exactly once."""
        assert len(self.calls) == 1, f"acked {len(self.calls)} times: {self.calls}"
        return self.calls[0]


def _as_strict_as_slack(problems: list[str]) -> None:
    """A fake that takes what the real Slack refuses proves nothing: the same checks as the
    Slack stand-in (standins/blockkit.py) fail the test here."""
    assert not problems, "the real Slack would refuse this payload:\n" + "\n".join(problems)


class RecordingSlack:
    """The few AsyncWebClient methods the listeners call, recorded; user groups answered."""

    def __init__(self, usergroups: dict[str, list[str]]) -> None:
        self.usergroups = usergroups
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def called(self, method: str) -> list[dict[str, Any]]:
        return [kwargs for name, kwargs in self.calls if name == method]

    async def chat_postEphemeral(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("chat_postEphemeral", kwargs))
        _as_strict_as_slack(check_message_blocks(kwargs.get("blocks") or []))
        return {"ok": True, "message_ts": "1700000000.000100"}

    async def views_open(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("views_open", kwargs))
        _as_strict_as_slack(check_view(kwargs["view"]))
        return {"ok": True, "view": dict(OPENED_VIEW)}

    async def views_update(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("views_update", kwargs))
        _as_strict_as_slack(check_view(kwargs["view"]))
        return {"ok": True, "view": dict(OPENED_VIEW)}

    async def usergroups_users_list(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("usergroups_users_list", kwargs))
        return {"ok": True, "users": list(self.usergroups.get(kwargs["usergroup"], []))}


MakeContext = Callable[..., dict[str, Any]]
RequestSend = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def ack() -> RecordingAck:
    return RecordingAck()


@pytest.fixture
def slack() -> RecordingSlack:
    """ZNS_APPROVERS names APPROVER directly and GROUP_APPROVER through APPROVER_GROUP."""
    return RecordingSlack({APPROVER_GROUP: [GROUP_APPROVER]})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "data") as opened:
        yield opened


@pytest.fixture
def make_context(tmp_path: Path, store: Store, esms_client: EsmsClient) -> MakeContext:
    """Bolt's context as register_all() fills it, for the given ZNS_* settings."""

    def make(
        *,
        requesters: Iterable[str] = (),
        auditors: Iterable[str] = (),
        allow_self: bool = False,
    ) -> dict[str, Any]:
        settings = Settings(
            _env_file=None,
            esms_oaid=DEMO_OAID,
            zns_data_dir=tmp_path / "data",
            public_base_url="https://bot.example",
            zns_approvers=[APPROVER, APPROVER_GROUP],
            zns_requesters=list(requesters),
            zns_auditors=list(auditors),
            zns_allow_self_approval=allow_self,
        )
        service = SendService(
            settings=settings,
            store=store,
            client=esms_client,
            catalogue=TemplateCatalogue(esms_client),
        )
        deps = SlackDeps(
            settings=settings,
            service=service,
            approvers=AccessList(settings.zns_approvers),
            requesters=AccessList(settings.zns_requesters),
            auditors=AccessList(settings.zns_auditors),
        )
        return {CONTEXT_KEY: deps}

    return make


@pytest.fixture
def context(make_context: MakeContext) -> dict[str, Any]:
    """The default: anyone may request, two approvers, no self-approval."""
    return make_context()


@pytest.fixture
def request_send() -> RequestSend:
    """A valid order request made in Slack by `by`, stored pending approval."""

    async def make(context: dict[str, Any], *, by: str = AGENT) -> dict[str, Any]:
        service: SendService = context[CONTEXT_KEY].service
        request = await service.prepare(
            phone="0901 888 484", template_id=ORDER_TEMPLATE, params=ORDER
        )
        record = service.create(
            request, actor=f"slack:{by}", origin="slack", reply_channel=REQUEST_CHANNEL
        )
        assert record["state"] == "pending_approval"
        return record

    return make
