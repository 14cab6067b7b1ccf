"""Acts as Slack toward a running zns-bot: signed slash commands, clicks and modal submits.

Used by `make demo` and by the end-to-end tests; it reads what the bot did from the Slack
stand-in.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from standins.blockkit import check_options_answer
from standins.esms import EsmsStandIn
from standins.payloads import (
    app_home_opened_body,
    block_action_body,
    block_suggestion_body,
    checkboxes_state,
    new_trigger_id,
    option_state,
    signed_headers,
    slash_command_body,
    view_submission_body,
)
from standins.slack import REFUSALS, Call, Refusal, SlackStandIn
from storage.sends import SendState
from storage.store import Store

ESTIMATING = "estimating…"  # the card's price line until eSMS has priced the request

APPROVAL_CHANNEL = "C0APPROVALS"
NOTIFY_CHANNEL = "C0NOTIFY"
AGENT = "U0AGENT01"
APPROVER = "U0APPROVER1"
REQUEST_CHANNEL = "C0SUPPORT"


SELECTS = ("static_select", "external_select")


OPTIONS_REFUSED = "invalid_options_response"  # Slack names none: it just shows no options


def initial_state(view: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """What Slack reports as a modal's state before anyone types: the initial values."""
    state: dict[str, dict[str, Any]] = {}
    for block in view.get("blocks") or []:
        element = block.get("element") or {}
        if block.get("type") != "input":
            continue
        if element.get("type") == "plain_text_input":
            state[block["block_id"]] = {element["action_id"]: element.get("initial_value")}
        elif element.get("type") in SELECTS:
            chosen = {"type": element["type"], "selected_option": element.get("initial_option")}
            state[block["block_id"]] = {element["action_id"]: chosen}
    return state


def suggested(answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every option in an options load answer, whether plain or in option groups."""
    if "option_groups" in answer:
        return [o for group in answer["option_groups"] for o in group["options"]]
    return list(answer["options"])


def _is_card(call: Call) -> bool:
    """A request card: a top-level post in the approvals channel that Slack accepted."""
    return call.ok and call.args.get("channel") == APPROVAL_CHANNEL and "thread_ts" not in call.args


class SlackDriver:
    """Slack's side of the conversation with one running bot.

    Every wait names the event it waits for: the view opened for a trigger id this driver
    sent, the next update of a given view id, the first card posted after the last submit.
    The stand-in is shared by every request, so "the latest view" or "any update" would
    answer with another request's modal whenever two are in flight or one ran before.
    """

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
        self.trigger_id: str | None = None  # of the last slash command this driver sent
        self.cards_before_submit = 0  # cards posted when this driver last submitted a request

    async def aclose(self) -> None:
        await self.http.aclose()

    async def post(self, body: bytes, *, secret: str | None = None) -> httpx.Response:
        headers = signed_headers(body, secret or self.signing_secret)
        return await self.http.post("/slack/events", content=body, headers=headers)

    async def slash(
        self, text: str = "", user: str = AGENT, channel: str = REQUEST_CHANNEL
    ) -> httpx.Response:
        self.trigger_id = new_trigger_id()
        body = slash_command_body(
            text=text, user_id=user, channel_id=channel, trigger_id=self.trigger_id
        )
        return await self.post(body)

    async def opened(self, trigger_id: str, wait: float = 5.0) -> str:
        """The id of the view the bot opened with `trigger_id`."""
        call = await self.slack.await_for(
            lambda c: c.args.get("trigger_id") == trigger_id, wait, method="views.open"
        )
        return _view_of(call)["id"]

    async def updated(self, view_id: str, count: int = 1, wait: float = 5.0) -> dict[str, Any]:
        """The view as the `count`-th views.update of `view_id` left it."""
        call = await self.slack.await_for(
            lambda c: c.args.get("view_id") == view_id, wait, method="views.update", count=count
        )
        return _view_of(call)

    def updates(self, view_id: str) -> int:
        """How many times the bot has updated `view_id` so far."""
        return sum(c.args.get("view_id") == view_id for c in self.slack.calls("views.update"))

    async def modal(self, wait: float = 5.0) -> dict[str, Any]:
        """The request modal opened for the last slash command, once its templates loaded."""
        assert self.trigger_id is not None, "modal() follows a slash()"
        return await self.updated(await self.opened(self.trigger_id, wait), wait=wait)

    async def suggest(
        self, view: Mapping[str, Any], action_id: str, typed: str, user: str = AGENT
    ) -> dict[str, Any]:
        """Type `typed` into the modal's type-ahead select: the bot's options load answer."""
        body = block_suggestion_body(
            action_id,
            typed,
            user,
            block_id=_block_of(view, action_id),
            view=view,
            state_values=initial_state(view),
        )
        response = await self.post(body)
        assert response.status_code == 200, response.text
        answer = dict(response.json())
        # Slack shows an empty menu for an answer it refuses: count it as a refusal, which
        # fails the test unless the test declares it
        if problems := check_options_answer(answer):
            REFUSALS.add(Refusal("block_suggestion", OPTIONS_REFUSED, tuple(problems)))
        return answer

    async def choose(
        self,
        view: Mapping[str, Any],
        action_id: str,
        value: str,
        user: str = AGENT,
        *,
        typed: str | None = None,
    ) -> dict[str, Any]:
        """Type `typed` (default: the value itself, an id), then pick the option `value`.

        Returns the modal as the bot re-renders it. As in Slack, only an option the bot
        offered for what was typed can be picked.
        """
        answer = await self.suggest(view, action_id, value if typed is None else typed, user)
        offered = [o for o in suggested(answer) if o["value"] == value]
        assert offered, f"typing {typed or value!r} does not offer {value!r}: {answer}"
        before = self.updates(view["id"])
        body = block_action_body(
            action_id,
            user_id=user,
            block_id=_block_of(view, action_id),
            action_type="external_select",
            view=view,
            state_values=initial_state(view),
            selected_option=offered[0],
        )
        response = await self.post(body)
        assert response.status_code == 200, response.text
        return await self.updated(view["id"], count=before + 1)

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
            values["template"] = {
                "template_select": option_state(template, element="external_select")
            }
        if any(b.get("block_id") == "sandbox" for b in view["blocks"]):
            values["sandbox"] = {"value": checkboxes_state(["yes"] if sandbox else [])}
        for name, value in params.items():
            values[f"param:{name}"] = {"value": value}
        self.cards_before_submit = self.cards_posted()
        return await self.post(view_submission_body("zns_request", values, user, view=view))

    def cards_posted(self) -> int:
        return sum(map(_is_card, self.slack.calls("chat.postMessage")))

    async def card(
        self, after: int | None = None, wait: float = 5.0, *, priced: bool = True
    ) -> dict[str, Any]:
        """The first card posted after `after` cards (default: after the last submit).

        The bot posts a request before eSMS has priced it; `priced` waits for the update
        that brings the estimate (or says it is unavailable), which always follows.
        """
        after = self.cards_before_submit if after is None else after
        call = await self.slack.await_for(
            _is_card, wait, method="chat.postMessage", count=after + 1
        )
        ts = call.response["ts"]
        card = self.slack.message(APPROVAL_CHANNEL, ts)
        if priced and ESTIMATING in json.dumps(card, ensure_ascii=False):
            await self.slack.await_for(
                lambda c: c.args.get("ts") == ts and ESTIMATING not in _blocks_text(c),
                wait,
                method="chat.update",
            )
            card = self.slack.message(APPROVAL_CHANNEL, ts)
        return card

    async def click(
        self,
        action_id: str,
        card: Mapping[str, Any],
        user: str,
        *,
        trigger_id: str | None = None,
    ) -> httpx.Response:
        value = next(
            e["value"]
            for b in card["blocks"]
            if b["type"] == "actions"
            for e in b["elements"]
            if e["action_id"] == action_id
        )
        body = block_action_body(
            action_id,
            value,
            user,
            block_id="decision",
            message=card,
            channel_id=APPROVAL_CHANNEL,
            trigger_id=trigger_id,
        )
        return await self.post(body)

    async def review(self, card: Mapping[str, Any], user: str = APPROVER) -> dict[str, Any]:
        """Click Review on `card`: the approval modal once its quota has loaded."""
        trigger_id = new_trigger_id()
        response = await self.click("zns_review", card, user, trigger_id=trigger_id)
        assert response.status_code == 200, response.text
        return await self.updated(await self.opened(trigger_id))

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

    def home(self, user: str) -> HomeWatch:
        """Watch `user`'s App Home from now on (open it with `.open()`)."""
        return HomeWatch(self, user)

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


class HomeWatch:
    """One person's App Home as the bot publishes it: each wait names the publication it
    waits for (the next one after those already seen), never "any" view."""

    def __init__(self, driver: SlackDriver, user: str) -> None:
        self.driver = driver
        self.user = user
        self.seen = self.published()

    def published(self) -> int:
        """How many times the bot has published this person's home so far (accepted)."""
        return sum(
            c.ok and c.args.get("user_id") == self.user
            for c in self.driver.slack.calls("views.publish")
        )

    async def next(self, wait: float = 15.0) -> dict[str, Any]:
        """The home as the next publication after the last one seen leaves it."""
        call = await self.driver.slack.await_for(
            lambda c: c.ok and c.args.get("user_id") == self.user,
            wait,
            method="views.publish",
            count=self.seen + 1,
        )
        self.seen += 1
        return _view_of(call)

    async def until(self, check: Any, wait: float = 30.0) -> dict[str, Any]:
        """The first publication from now on whose view passes `check(view)`."""
        while True:
            view = await self.next(wait)
            if check(view):
                return view

    async def open(self, *, tab: str = "home") -> httpx.Response:
        response = await self.driver.post(app_home_opened_body(self.user, tab=tab))
        assert response.status_code == 200, response.text
        return response

    async def click(
        self, view: Mapping[str, Any], action_id: str, value: str, *, trigger_id: str | None = None
    ) -> httpx.Response:
        """Click the button `action_id` valued `value` on this home (Slack sends the view)."""
        block = next(
            b
            for b in view["blocks"]
            for e in ([b["accessory"]] if b.get("accessory") else b.get("elements") or [])
            if e.get("action_id") == action_id and e.get("value") == value
        )
        body = block_action_body(
            action_id,
            value,
            self.user,
            block_id=block.get("block_id") or "home",
            view=view,
            trigger_id=trigger_id,
        )
        response = await self.driver.post(body)
        assert response.status_code == 200, response.text
        return response


def home_text(view: Mapping[str, Any]) -> str:
    """The home's text, all blocks, for looking things up in it."""
    return json.dumps(view.get("blocks") or [], ensure_ascii=False)


def _blocks_text(call: Call) -> str:
    """A call's blocks as text; a form-encoded call carries them as a JSON string."""
    blocks = call.args.get("blocks")
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    return json.dumps(blocks, ensure_ascii=False)


def _block_of(view: Mapping[str, Any], action_id: str) -> str:
    return str(
        next(
            b["block_id"]
            for b in view["blocks"]
            if (b.get("element") or {}).get("action_id") == action_id
        )
    )


def _view_of(call: Call) -> dict[str, Any]:
    """The view a views.open or views.update call left, or why Slack refused it."""
    if not call.ok:
        raise AssertionError(f"{call.method} was refused: {call.status} {call.response}")
    return dict(call.response["view"])
