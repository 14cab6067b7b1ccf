"""Acts as Slack toward a running zns-bot: signed slash commands, clicks and modal submits.

Used by `make demo` and by the end-to-end tests; it reads what the bot did from the Slack
stand-in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from bot.esms_standin import EsmsStandIn
from bot.slack_payloads import (
    block_action_body,
    checkboxes_state,
    option_state,
    signed_headers,
    slash_command_body,
    view_submission_body,
)
from bot.slack_standin import SlackStandIn
from storage.sends import SendState
from storage.store import Store

APPROVAL_CHANNEL = "C0APPROVALS"
NOTIFY_CHANNEL = "C0NOTIFY"
AGENT = "U0AGENT01"
APPROVER = "U0APPROVER1"
REQUEST_CHANNEL = "C0SUPPORT"


def initial_state(view: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """What Slack reports as a modal's state before anyone types: the initial values."""
    state: dict[str, dict[str, Any]] = {}
    for block in view.get("blocks") or []:
        element = block.get("element") or {}
        if block.get("type") == "input" and element.get("type") == "plain_text_input":
            state[block["block_id"]] = {element["action_id"]: element.get("initial_value")}
    return state


class SlackDriver:
    """Slack's side of the conversation with one running bot."""

    def __init__(
        self,
        url: str,
        *,
        store: Store | None = None,
        slack: SlackStandIn,
        esms: EsmsStandIn,
        signing_secret: str,
    ) -> None:
        self.url = url
        self.store = store
        self.slack = slack
        self.esms = esms
        self.signing_secret = signing_secret
        self.http = httpx.AsyncClient(base_url=url, timeout=30)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def post(self, body: bytes, *, secret: str | None = None) -> httpx.Response:
        headers = signed_headers(body, secret or self.signing_secret)
        return await self.http.post("/slack/events", content=body, headers=headers)

    async def slash(
        self, text: str = "", user: str = AGENT, channel: str = "C0SUPPORT"
    ) -> httpx.Response:
        return await self.post(slash_command_body(text=text, user_id=user, channel_id=channel))

    async def modal(self, wait: float = 5.0) -> dict[str, Any]:
        """The request modal once its templates have loaded (after views.update)."""
        await self.slack.await_for(method="views.update", timeout=wait)
        return self.slack.last_view()

    async def choose(
        self, view: Mapping[str, Any], action_id: str, value: str, user: str = AGENT
    ) -> dict[str, Any]:
        before = len(self.slack.calls("views.update"))
        block = next(
            b["block_id"]
            for b in view["blocks"]
            if (b.get("element") or {}).get("action_id") == action_id
        )
        body = block_action_body(
            action_id,
            value,
            user,
            block_id=block,
            action_type="static_select",
            view=view,
            state_values=initial_state(view),
        )
        response = await self.post(body)
        assert response.status_code == 200, response.text
        await self.slack.await_for(method="views.update", count=before + 1)
        return self.slack.last_view()

    async def submit_request(
        self,
        view: Mapping[str, Any],
        *,
        phone: str,
        params: Mapping[str, str],
        template: str | None = None,
        journey: bool = False,
        order_id: str | None = None,
        campaign: str | None = None,
        note: str | None = None,
        sandbox: bool = False,
        user: str = AGENT,
    ) -> httpx.Response:
        values: dict[str, dict[str, Any]] = {
            "phone": {"value": phone},
            "journey": {"value": checkboxes_state(["yes"] if journey else [])},
            "order_id": {"value": order_id},
            "campaign": {"value": campaign},
            "note": {"value": note},
        }
        if template:
            values["template"] = {"template_select": option_state(template)}
        if any(b.get("block_id") == "sandbox" for b in view["blocks"]):
            values["sandbox"] = {"value": checkboxes_state(["yes"] if sandbox else [])}
        for name, value in params.items():
            values[f"param:{name}"] = {"value": value}
        return await self.post(view_submission_body("zns_request", values, user, view=view))

    async def card(self, count: int = 1) -> dict[str, Any]:
        call = await self.slack.await_for(
            lambda c: c.args.get("channel") == APPROVAL_CHANNEL and "thread_ts" not in c.args,
            method="chat.postMessage",
            count=count,
        )
        return self.slack.message(APPROVAL_CHANNEL, call.response["ts"])

    async def click(self, action_id: str, card: Mapping[str, Any], user: str) -> httpx.Response:
        value = next(
            e["value"]
            for b in card["blocks"]
            if b["type"] == "actions"
            for e in b["elements"]
            if e["action_id"] == action_id
        )
        body = block_action_body(
            action_id, value, user, block_id="decision", message=card, channel_id=APPROVAL_CHANNEL
        )
        return await self.post(body)

    async def review(self, card: Mapping[str, Any], user: str = APPROVER) -> dict[str, Any]:
        before = len(self.slack.calls("views.update"))
        response = await self.click("zns_review", card, user)
        assert response.status_code == 200, response.text
        await self.slack.await_for(method="views.update", count=before + 1)
        return self.slack.last_view()

    def decision_body(
        self, view: Mapping[str, Any], decision: str, reason: str = "", user: str = APPROVER
    ) -> bytes:
        values = {
            "decision": {"value": option_state(decision)},
            "reason": {"value": reason or None},
        }
        return view_submission_body("zns_approval", values, user, view=view)

    async def decide(
        self, view: Mapping[str, Any], decision: str, reason: str = "", user: str = APPROVER
    ) -> httpx.Response:
        return await self.post(self.decision_body(view, decision, reason, user))

    def record_for(self, card: Mapping[str, Any]) -> dict[str, Any]:
        assert self.store is not None, "the driver was given no store to look in"
        (record,) = [
            r for r in self.store.sends.in_states(set(SendState)) if r.get("card_ts") == card["ts"]
        ]
        return record

    async def thread_text(self, card: Mapping[str, Any], needle: str, wait: float = 10.0) -> str:
        call = await self.slack.await_for(
            lambda c: (
                c.args.get("thread_ts") == card["ts"] and needle in (c.args.get("text") or "")
            ),
            method="chat.postMessage",
            timeout=wait,
        )
        return call.args["text"]
