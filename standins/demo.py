"""`make demo`: one ZNS request driven through the real bot, with local Slack and eSMS stand-ins."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.app import build_runtime
from standins.driver import AGENT, APPROVAL_CHANNEL, APPROVER, NOTIFY_CHANNEL, SlackDriver
from standins.esms import ORDER_TEMPLATE, EsmsStandIn
from standins.process import BOT_TOKEN, SIGNING_SECRET, standin_settings
from standins.servers import serve_in_loop
from standins.slack import SlackStandIn
from storage.history import History

ORDER = {
    "customer_name": "Nguyễn Văn An",
    "order_code": "DH-2611",
    "order_date": "27/11/2026",
    "amount": "459000",
    "tracking_url": "https://shop.example/track/DH-2611",
}


def flatten(blocks: Iterable[Mapping[str, Any]]) -> list[str]:
    """What a person sees in Block Kit blocks, one line per text, roughly as Slack lays it out."""
    lines: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind in ("header", "section"):
            if block.get("text"):
                lines.append(block["text"]["text"])
            for field in block.get("fields") or []:
                lines.append(field["text"].replace("\n", ": ", 1))
        elif kind == "context":
            lines.extend(e.get("text", "") for e in block.get("elements") or [])
        elif kind == "input":
            element = block.get("element") or {}
            chosen = (element.get("initial_option") or {}).get("text") or {}
            shown = element.get("initial_value") or chosen.get("text") or ""
            options = ", ".join(o["text"]["text"] for o in element.get("options") or [])
            extra = f" [{options}]" if options else (f" = {shown}" if shown else "")
            lines.append(f"[input] {block['label']['text']}{extra}")
        elif kind == "actions":
            buttons = " ".join(f"[{e['text']['text']}]" for e in block.get("elements") or [])
            lines.append(buttons)
    return lines


class Transcript:
    def __init__(self, out: Any = sys.stdout) -> None:
        self.out = out

    def say(self, who: str, what: str, lines: Iterable[str] = ()) -> None:
        print(f"\n{who}: {what}", file=self.out)
        for line in lines:
            for part in line.splitlines():
                print(f"    │ {part}", file=self.out)


async def drive(driver: SlackDriver, show: Transcript) -> str:
    """Slash command → modal → template → submit → Review → Approve → delivery → thread."""
    show.say(f"<@{AGENT}> in #support", "/zns 0901 888 484")
    await driver.slash("0901 888 484")
    view = await driver.modal()
    show.say("zns-bot → modal", view["title"]["text"], flatten(view["blocks"]))
    view = await driver.choose(view, "template_select", ORDER_TEMPLATE, typed="order")
    show.say(
        f"<@{AGENT}>",
        "types “order”, chooses “Order confirmation”; the modal grows one input per parameter",
    )
    show.say("zns-bot → modal", view["title"]["text"], flatten(view["blocks"]))
    filled = [f"{k} = {v}" for k, v in ORDER.items()]
    show.say(f"<@{AGENT}>", "fills it in and presses “Request approval”", filled)
    response = await driver.submit_request(
        view, phone="0901 888 484", params=ORDER, campaign="Black Friday", note="VIP customer"
    )
    response.raise_for_status()
    card = await driver.card()
    show.say(f"zns-bot → #approvals ({APPROVAL_CHANNEL})", "request card", flatten(card["blocks"]))
    confirmation = await driver.slack.await_for(
        lambda c: c.args.get("user") == AGENT, method="chat.postEphemeral"
    )
    show.say(f"zns-bot → <@{AGENT}> (only visible to you)", confirmation.args["text"])
    review = await driver.review(card, user=APPROVER)
    show.say(f"<@{APPROVER}>", "clicks Review")
    show.say("zns-bot → approval modal", review["title"]["text"], flatten(review["blocks"]))
    response = await driver.decide(review, "approve", user=APPROVER)
    response.raise_for_status()
    show.say(f"<@{APPROVER}>", "chooses “Approve and send” and confirms")
    accepted = await driver.thread_text(card, "Accepted by eSMS")
    (sms_id,) = driver.esms.stored_sms_ids()
    driver.esms.deliver(sms_id)
    status = await driver.esms.fire_callback(sms_id, success=True)
    show.say("eSMS → zns-bot", f"delivery callback for SMSID {sms_id} (HTTP {status})")
    await driver.thread_text(card, "Delivered")
    note = await driver.slack.await_for(
        lambda c: c.ok and c.args.get("channel") == NOTIFY_CHANNEL, method="chat.postMessage"
    )
    show.say(f"zns-bot → #notifications ({NOTIFY_CHANNEL})", note.args["text"])
    replies = driver.slack.thread(APPROVAL_CHANNEL, card["ts"])
    show.say("zns-bot → thread under the card", "", [r["text"] for r in replies])
    updated = driver.slack.message(APPROVAL_CHANNEL, card["ts"])
    show.say("zns-bot → card, updated in place", "", flatten(updated["blocks"]))
    return accepted


async def run_demo(data_dir: Path) -> int:
    show = Transcript()
    with (
        EsmsStandIn() as esms,
        SlackStandIn(bot_token=BOT_TOKEN) as slack,
    ):
        # a final send leaves the live store at the next archive pass: the demo shows it
        settings = standin_settings(slack, esms, data_dir, zns_live_hours=0)
        runtime = build_runtime(settings)
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
            driver = SlackDriver(
                url, store=runtime.store, slack=slack, esms=esms, signing_secret=SIGNING_SECRET
            )
            try:
                await drive(driver, show)
                await runtime.relay.run_until_idle()
                archived = await runtime.store.archive.run()
                # read as `zns-bot audit verify` reads it: beside the running bot
                history = History.open(data_dir)
                verification = history.verify()
                events = list(history.events())
            finally:
                await driver.aclose()
        refused = slack.refusals()
        (sent,) = esms.sends()
    print("\nWhat eSMS received (credentials hidden):")
    for key in ("Phone", "TempID", "OAID", "Params", "RequestId", "campaignid", "Sandbox"):
        print(f"    {key}: {sent.get(key)}")
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
