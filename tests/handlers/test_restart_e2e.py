"""SIGKILL the real `zns-bot serve` mid-way, restart it: every send ends final, notified once."""

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx

from bot.esms_standin import DEMO_OAID
from bot.serving import loopback_socket
from bot.slack_driver import APPROVAL_CHANNEL, APPROVER, NOTIFY_CHANNEL, SlackDriver
from storage.store import Store
from tests.handlers.test_slack_flow import ORDER
from tests.harness import BOT_TOKEN, SIGNING_SECRET

ZNS_BOT = str(Path(sys.executable).parent / "zns-bot")
SENDS = 4


def free_port() -> int:
    with loopback_socket() as sock:
        return sock.getsockname()[1]


class BotProcess:
    def __init__(self, data_dir, slack, esms):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ESMS_", "ZNS_", "SLACK_"))}
        env.update(
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=slack.api_url,
            ESMS_API_KEY=esms.api_key,
            ESMS_SECRET_KEY=esms.secret_key,
            ESMS_BASE_URL=esms.base_url,
            ESMS_CALLBACK_API_URL=esms.callback_api_url,
            ESMS_OAID=DEMO_OAID,
            ESMS_TIMEOUT="2",
            ZNS_APPROVAL_CHANNEL=APPROVAL_CHANNEL,
            ZNS_NOTIFY_CHANNEL=NOTIFY_CHANNEL,
            ZNS_APPROVERS=APPROVER,
            ZNS_DATA_DIR=str(data_dir),
            ZNS_SLACK_PACE="0",  # pacing is tested in tests/bot/test_relay.py
            PUBLIC_BASE_URL=self.url,
            HOST="127.0.0.1",
            PORT=str(self.port),
        )
        self.env = env
        self.cwd = data_dir.parent
        self.proc = None

    async def start(self):
        self.proc = subprocess.Popen(
            [ZNS_BOT, "serve"],
            env=self.env,
            cwd=self.cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        async with httpx.AsyncClient() as http:
            for _ in range(300):  # readiness: bounded wait for the port to answer
                if self.proc.poll() is not None:
                    raise RuntimeError(f"zns-bot serve exited with {self.proc.returncode}")
                try:
                    if (await http.get(f"{self.url}/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError("zns-bot serve did not become healthy")

    async def outbox_drained(self, wait: float = 15.0):
        """Wait until the bot's own /metrics reports an empty outbox (bounded)."""
        async with httpx.AsyncClient(base_url=self.url) as http:
            for _ in range(int(wait / 0.05)):
                text = (await http.get("/metrics")).text
                if "\nzns_outbox_depth 0.0\n" in text:
                    return
                await asyncio.sleep(0.05)
        raise AssertionError("the outbox did not drain")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


async def test_sigkill_mid_way_then_restart_every_send_final_and_notified_once(
    tmp_path, slack_standin, esms_standin
):
    data_dir = tmp_path / "data"
    bot = BotProcess(data_dir, slack_standin, esms_standin)
    await bot.start()
    driver = SlackDriver(
        bot.url, slack=slack_standin, esms=esms_standin, signing_secret=SIGNING_SECRET
    )
    try:
        cards = []
        for n in range(SENDS):
            await driver.slash()
            view = await driver.modal()
            view = await driver.choose(view, "template_select", "231001")
            await driver.submit_request(view, phone=f"090188848{n}", params=ORDER)
            card = await driver.card(count=n + 1)
            cards.append(card)
            await driver.decide(await driver.review(card), "approve")
            await driver.thread_text(card, "Accepted by eSMS")
        sms_ids = esms_standin.stored_sms_ids()
        assert len(sms_ids) == SENDS
        for sms_id in sms_ids:
            esms_standin.deliver(sms_id)
        # Slack goes down; half the callbacks arrive and are applied, their Slack posts wait
        slack_standin.outage(500)
        for sms_id in sms_ids[: SENDS // 2]:
            assert await esms_standin.fire_callback(sms_id, success=True) == 200
        bot.kill()  # mid-way: notifications pending in the outbox, half the callbacks unseen

        with Store.open(data_dir) as store:  # the killed process held the lock: reopen works
            states = Counter(r["state"] for r in store.sends.in_states({"accepted", "delivered"}))
            assert states == {"delivered": SENDS // 2, "accepted": SENDS - SENDS // 2}
            assert store.outbox.depth() > 0
            assert store.audit.verify().ok

        slack_standin.recover()
        await bot.start()
        # eSMS retries the callbacks that timed out while the bot was down
        for sms_id in sms_ids[SENDS // 2 :]:
            assert await esms_standin.fire_callback(sms_id, success=True) == 200
        for card in cards:
            await driver.thread_text(card, "Delivered", wait=15)
        await slack_standin.await_for(
            lambda c: c.ok and c.args.get("channel") == NOTIFY_CHANNEL,
            method="chat.postMessage",
            count=SENDS,
            timeout=15,
        )
        await bot.outbox_drained()
    finally:
        bot.stop()
        await driver.aclose()

    with Store.open(data_dir) as store:
        assert Counter(r["state"] for r in store.sends.in_states({"delivered"})) == {
            "delivered": SENDS
        }
        assert store.outbox.depth() == 0
        assert store.audit.verify().ok
    posted = [c for c in slack_standin.calls("chat.postMessage") if c.ok]
    notes = Counter(c.args["text"] for c in posted if c.args.get("channel") == NOTIFY_CHANNEL)
    assert len(notes) == SENDS and set(notes.values()) == {1}
    for card in cards:
        delivered = [
            c
            for c in posted
            if c.args.get("thread_ts") == card["ts"] and "Delivered" in c.args.get("text", "")
        ]
        assert len(delivered) == 1
