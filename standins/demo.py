"""`make demo`: three ZNS requests through the real bot, with local Slack and eSMS stand-ins."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from bot.app import build_runtime
from standins import slacktext
from standins.driver import (
    AGENT,
    APPROVAL_CHANNEL,
    APPROVER,
    NOTIFY_CHANNEL,
    REQUEST_CHANNEL,
    SlackDriver,
)
from standins.esms import ORDER_TEMPLATE, EsmsStandIn
from standins.process import BOT_TOKEN, SIGNING_SECRET, standin_settings
from standins.servers import serve_in_loop
from standins.slack import DEMO_USERS, Call, SlackStandIn
from storage.history import History

ORDER = {
    "customer_name": "Nguyễn Văn An",
    "order_code": "DH-2611",
    "order_date": "27/11/2026",
    "amount": "459000",
    "tracking_url": "https://shop.example/track/DH-2611",
}

CHANNELS = {
    APPROVAL_CHANNEL: "approvals",
    NOTIFY_CHANNEL: "notifications",
    REQUEST_CHANNEL: "support",
}


def _raw(text: Mapping[str, Any]) -> str:
    """A text object's text as sent, markup and all."""
    return str(text.get("text", ""))


def flatten(blocks: Iterable[Mapping[str, Any]], show: Callable[[Any], str] = _raw) -> list[str]:
    """What a person sees in Block Kit blocks, one line per text, roughly as Slack lays it out.

    `show` turns a text object into what Slack displays (default: its text as sent).
    """
    lines: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind in ("header", "section"):
            if block.get("text"):
                lines.append(show(block["text"]))
            for field in block.get("fields") or []:
                lines.append(show(field).replace("\n", ": ", 1))
        elif kind == "context":
            lines.extend(show(e) for e in block.get("elements") or [] if "text" in e)
        elif kind == "input":
            element = block.get("element") or {}
            chosen = (element.get("initial_option") or {}).get("text")
            shown = element.get("initial_value") or (show(chosen) if chosen else "")
            options = ", ".join(show(o["text"]) for o in element.get("options") or [])
            extra = f" [{options}]" if options else (f" = {shown}" if shown else "")
            lines.append(f"[input] {show(block['label'])}{extra}")
        elif kind == "actions":
            buttons = " ".join(f"[{show(e['text'])}]" for e in block.get("elements") or [])
            lines.append(buttons)
    return lines


def _blocks(value: Any) -> list[dict[str, Any]]:
    """Blocks as a call carried them: a form-encoded call sends them as a JSON string."""
    return list(json.loads(value) if isinstance(value, str) else value or [])


class Transcript:
    """What people do and what the bot does, in the order it happened.

    A person's action is printed as it is taken; before it, every Slack call the bot made
    since the last one, in the stand-in's record order (one sequence across channels,
    threads, DMs, ephemerals and views), so a late reply never jumps ahead of what
    followed it. Text is shown as the Slack client shows it (standins.slacktext).
    """

    def __init__(
        self, slack: SlackStandIn, channels: Mapping[str, str], out: TextIO | None = None
    ) -> None:
        self.slack = slack
        self.channels = dict(channels)
        self.out = out or sys.stdout  # at call time: a test may have replaced sys.stdout
        self.views = True  # whole modals; a story may show only their titles
        self._seen = 0  # calls already shown
        self._shown: dict[str, list[str]] = {}  # message ts or view id -> lines last shown
        self._ims: dict[str, str] = {}  # DM channel id -> the user it is with

    def text(self, text: str) -> str:
        return slacktext.render(text, self.slack.user_names(), self.channels)

    def show(self, obj: Mapping[str, Any]) -> str:
        """A text object as Slack displays it: mrkdwn is rendered, plain_text only gets emoji."""
        if obj.get("type") == "plain_text":
            return slacktext.render_plain(str(obj.get("text", "")), emoji=obj.get("emoji", True))
        return self.text(str(obj.get("text", "")))

    def title(self, heading: str) -> None:
        self.flush()
        print(f"\n{'═' * 78}\n{heading}\n{'═' * 78}", file=self.out)

    def say(self, who: str, what: str, lines: Iterable[str] = ()) -> None:
        """A person (or eSMS) acts: first everything the bot did before it."""
        self.flush()
        self._print(self.text(who), self.text(what), lines)

    def _print(self, who: str, what: str, lines: Iterable[str] = ()) -> None:
        print(f"\n{who}: {what}" if what else f"\n{who}:", file=self.out)
        for line in lines:
            for part in line.splitlines():
                print(f"    │ {part}", file=self.out)

    def flush(self) -> None:
        """Print the Slack calls recorded since the last flush, in the order Slack took them."""
        calls = self.slack.calls()
        for call in calls[self._seen :]:
            if call.ok:
                self._event(call)
        self._seen = len(calls)

    def _event(self, call: Call) -> None:
        args, response = call.args, call.response
        if call.method == "conversations.open":
            self._ims[response["channel"]["id"]] = str(args.get("users") or "")
        elif call.method == "chat.postMessage":
            channel = str(response["channel"])
            message = response["message"]
            lines = flatten(_blocks(message.get("blocks")), self.show)
            self._shown[message["ts"]] = lines
            if message.get("thread_ts"):
                where = f"thread under the card in {self._channel(channel)}"
            elif channel in self._ims or channel.startswith("D"):
                who = self._ims.get(channel, "")
                where = f"DM to {self.text(f'<@{who}>') if who else 'a user'}"
            else:
                where = self._channel(channel)
            self._print(f"zns-bot → {where}", "" if lines else self.text(message["text"]), lines)
        elif call.method == "chat.update":
            ts = str(args.get("ts"))
            lines = flatten(_blocks(args.get("blocks")), self.show) or [self.text(args["text"])]
            new = _changed(self._shown.get(ts, []), lines)
            self._shown[ts] = lines
            if not new:  # re-sent as it was (the bot renders the card from each event)
                return
            where = self._channel(str(response.get("channel", args.get("channel"))))
            self._print("zns-bot", f"updates the card in {where}", new)
        elif call.method == "chat.postEphemeral":
            who = self.text(f"<@{args.get('user')}>")
            self._print(f"zns-bot → {who} (only visible to them)", self.text(str(args["text"])))
        elif call.method in ("views.open", "views.push", "views.update"):
            view = response["view"]
            if view["type"] != "modal":
                return
            lines = flatten(view.get("blocks") or [], self.show)
            title = self.show(view["title"])
            if call.method == "views.update":
                if not self.views:
                    return
                lines = _changed(self._shown.get(view["id"], []), lines)
                what = f"updates the modal “{title}”"
            else:
                what = f"opens the modal “{title}”"
            self._shown[view["id"]] = flatten(view.get("blocks") or [], self.show)
            self._print("zns-bot", what, lines if self.views else [])

    def _channel(self, channel: str) -> str:
        return f"#{self.channels[channel]}" if channel in self.channels else channel


def _changed(before: list[str], after: list[str]) -> list[str]:
    """The lines of `after` that `before` did not have: what an update brought."""
    return [line for line in after if line not in before]


async def _card_and_review(
    driver: SlackDriver, show: Transcript
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The card the last submit posted, and the approval modal its Review opens."""
    card = await driver.card()
    # the agent's "waiting for approval" note and the priced card are in before the click
    permalink_ts = "p" + card["ts"].replace(".", "")
    await driver.slack.await_for(
        lambda c: c.args.get("user") == AGENT and permalink_ts in str(c.args.get("text")),
        method="chat.postEphemeral",
    )
    show.say(f"<@{APPROVER}>", "clicks Review on the card")
    review = await driver.review(card, user=APPROVER)
    return card, review


async def request(
    driver: SlackDriver, show: Transcript, phone: str, order: Mapping[str, str], note: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The agent asks for one Order confirmation; returns the card and the approval modal."""
    show.say(f"<@{AGENT}> in #support", f"/zns {phone}")
    await driver.slash(phone)
    view = await driver.modal()
    show.say(
        f"<@{AGENT}>",
        "types “order”, chooses “Order confirmation”; the modal grows one input per parameter",
    )
    view = await driver.choose(view, "template_select", ORDER_TEMPLATE, typed="order")
    filled = [f"{k} = {v}" for k, v in order.items()] + [f"Note to the approver = {note}"]
    show.say(f"<@{AGENT}>", "fills it in and presses “Request approval”", filled)
    response = await driver.submit_request(
        view, phone=phone, params=order, campaign="Black Friday", note=note
    )
    response.raise_for_status()
    return await _card_and_review(driver, show)


async def delivered(driver: SlackDriver, show: Transcript) -> None:
    """Slash command → modal → template → submit → Review → Approve → delivery → thread."""
    show.title("Story 1 of 3 · Delivered: the agent asks, an approver approves, Zalo delivers")
    card, review = await request(driver, show, "0901 888 484", ORDER, "VIP customer")
    show.say(f"<@{APPROVER}>", "reads it, chooses “Approve and send” and confirms")
    (await driver.decide(review, "approve", user=APPROVER)).raise_for_status()
    await driver.thread_text(card, "Accepted by eSMS")
    (sms_id,) = driver.esms.stored_sms_ids()
    driver.esms.deliver(sms_id)
    show.say("eSMS → zns-bot", f"delivery callback: SMSID {sms_id} delivered")
    await driver.esms.fire_callback(sms_id, success=True)
    await driver.thread_text(card, "Delivered")
    await driver.slack.await_for(
        lambda c: c.ok and c.args.get("channel") == NOTIFY_CHANNEL, method="chat.postMessage"
    )
    show.flush()


async def rejected(driver: SlackDriver, show: Transcript) -> None:
    """The approver says no, with a reason the agent reads: nothing reaches eSMS."""
    show.title("Story 2 of 3 · Rejected: the approver says no, and why")
    show.views = False  # the same modals as story 1: their titles are enough
    order = {**ORDER, "order_code": "DH-2612", "tracking_url": "https://shop.example/track/DH-2612"}
    order["amount"] = "4590000"
    card, review = await request(driver, show, "0912 345 678", order, "Please send today")
    reason = "The amount is 4,590,000 VND but the order says 459,000. Please check and resend."
    show.say(f"<@{APPROVER}>", "chooses “Reject” and gives the reason", [reason])
    (await driver.decide(review, "reject", reason, user=APPROVER)).raise_for_status()
    await driver.thread_text(card, "Rejected")
    show.flush()


async def no_zalo_account(driver: SlackDriver, show: Transcript) -> None:
    """Approved and accepted, but the number has no Zalo account: eSMS reports -118."""
    show.title("Story 3 of 3 · Failed: the number has no Zalo account (Zalo error -118)")
    before = set(driver.esms.stored_sms_ids())
    order = {**ORDER, "order_code": "DH-2613", "tracking_url": "https://shop.example/track/DH-2613"}
    card, review = await request(driver, show, "0903 456 000", order, "New customer")
    show.say(f"<@{APPROVER}>", "chooses “Approve and send” and confirms")
    (await driver.decide(review, "approve", user=APPROVER)).raise_for_status()
    await driver.thread_text(card, "Accepted by eSMS")
    (sms_id,) = set(driver.esms.stored_sms_ids()) - before
    driver.esms.deliver(sms_id, success=False, zalo_error=-118)
    show.say("eSMS → zns-bot", f"delivery callback: SMSID {sms_id} failed, Zalo error -118")
    await driver.esms.fire_callback(sms_id, success=False, zalo_error=-118)
    # the DM that tells the agent what to do next
    await driver.slack.await_for(
        lambda c: (
            c.ok
            and str(c.response.get("channel", "")).startswith("D")
            and "-118" in str(c.args.get("text") or "")  # this story's DM, not an earlier one
        ),
        method="chat.postMessage",
    )
    show.flush()


async def run_demo(data_dir: Path) -> int:
    with (
        EsmsStandIn() as esms,
        SlackStandIn(bot_token=BOT_TOKEN, users=DEMO_USERS) as slack,
    ):
        # a final send leaves the live store at the next archive pass: the demo shows it
        settings = standin_settings(slack, esms, data_dir, zns_live_hours=0)
        runtime = build_runtime(settings)
        show = Transcript(slack, CHANNELS)
        print("zns-bot demo: the real server, store and scheduler; Slack and eSMS are local")
        print(f"  Slack Web API stand-in  {slack.api_url}")
        print(f"  eSMS stand-in           {esms.base_url}")
        async with (
            serve_in_loop(runtime.asgi) as url,
            serve_in_loop(runtime.metrics_asgi, lifespan="off") as metrics_url,
        ):
            # eSMS reaches the bot at its real (ephemeral) address: the demo's public URL
            runtime.settings.public_base_url = url
            print(f"  zns-bot                 {url}  (/slack/events, /esms/callback)")
            print(f"  zns-bot metrics         {metrics_url}/metrics")
            names = slack.user_names()
            print(f"  people: {names[AGENT]} (agent), {names[APPROVER]} (approver)")
            driver = SlackDriver(
                url, store=runtime.store, slack=slack, esms=esms, signing_secret=SIGNING_SECRET
            )
            try:
                for story in (delivered, rejected, no_zalo_account):
                    await story(driver, show)
                await runtime.relay.run_until_idle()
                show.flush()
                archived = await runtime.store.archive.run()
                # read as `zns-bot audit verify` reads it: beside the running bot
                history = History.open(data_dir)
                verification = history.verify()
                events = list(history.events())
            finally:
                await driver.aclose()
        refused = slack.refusals()
        sent = esms.sends()
    show.title("Behind the scenes")
    print("\nWhat eSMS received (credentials hidden):")
    for body in sent:
        print(f"    Phone {body.get('Phone')}  TempID {body.get('TempID')}  ", end="")
        print(f"RequestId {body.get('RequestId')}  Sandbox {body.get('Sandbox')}")
        print(f"        Params {body.get('Params')}")
    print("    (nothing for story 2: a rejected request never reaches eSMS)")
    print(
        f"\nArchive pass: {archived.sends} send(s) left the live store for the audit log "
        f"({archived.events} events copied to {data_dir / 'audit'})"
    )
    print(
        f"\nAudit log: {len(events)} events, hash chain {'intact' if verification.ok else 'BROKEN'}"
    )
    for event in events:
        move = f"{event.get('from_state') or ''} → {event.get('to_state') or ''}".strip(" →")
        print(f"    #{event['seq']} {event['actor']:<18} {event['action']:<13} {move}")
    print(f"\nStore: {runtime.store.path}")
    print(
        f"Inspect it: ZNS_DATA_DIR={data_dir} .venv/bin/zns-bot audit verify   "
        f"(or: audit export --csv - --phone 0901888484)"
    )
    if refused:  # the real Slack would have refused these: the demo must not pass
        print(f"\nSlack would have refused {len(refused)} payload(s):")
        for refusal in refused:
            print(refusal.describe())
    return 0 if verification.ok and not refused else 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m standins.demo", description=__doc__)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    # apart from data/, the live store's default: `make clean-demo` removes these
    parser.add_argument("--data-dir", type=Path, default=Path("demo-data") / stamp)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(run_demo(args.data_dir)))


if __name__ == "__main__":
    main()
