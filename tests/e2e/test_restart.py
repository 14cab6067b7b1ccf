"""SIGKILL the real `zns-bot serve` mid-way, restart it: every send ends final, notified once."""

from collections import Counter

from standins.driver import NOTIFY_CHANNEL, SlackDriver
from standins.process import SIGNING_SECRET, BotProcess, standin_env
from storage.store import Store
from tests.harness import ORDER

SENDS = 4


async def test_sigkill_mid_way_then_restart_every_send_final_and_notified_once(
    tmp_path, slack_standin, esms_standin
):
    data_dir = tmp_path / "data"
    env = standin_env(
        slack_standin,
        esms_standin,
        data_dir,
        esms_timeout=2,
        zns_slack_pace=0,  # pacing is tested in tests/bot/jobs/test_relay.py
    )
    bot = BotProcess(env, cwd=tmp_path)
    bot.env["PUBLIC_BASE_URL"] = bot.url  # where eSMS's callbacks reach this process
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
            card = await driver.card()
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
