"""eSMS delivery callbacks end to end: the stand-in calls the running bot's callback URL."""

import logging

import httpx
import pytest

from tests.harness import (
    APPROVAL_CHANNEL,
    accepted_send,
    texts,
)

# esms-api.md §4, verbatim query strings.
VECTOR_114 = (
    "SMSID=f66545d2-c7e2-4603-984e-d2238c363c8292&SendFailed=1&SendStatus=5&SendSuccess=0"
    "&TotalPrice=0.0000&TotalReceiver=1&TotalSent=0&RequestId=&TypeId=25&telcoid=2"
    "&phonenumber=0901888484&partnerids=&error_info=%22{%5C%22error%5C%22%3A-114%2C%5C%22"
    "message%5C%22%3A%5C%22User%20is%20inactive%2C%20or%20reject%20the%20message%2C%20or"
    "%20using%20an%20outdated%20Zalo%20version%2C%20or%20other%20internal%20errors%5C%22}%22"
    "&oaid=1397492183140006179&tempid=2056446"
)
VECTOR_UID = (
    "SMSID=5450d5579bfa466a9f2a5911c82f4037&SendFailed=0&SendStatus=5&SendSuccess=1"
    "&TotalPrice=2104.0000&TotalReceiver=1&TotalSent=1&RequestId=&TypeId=25&telcoid=9"
    "&phonenumber=5308693166941955879&error_info={%22error%22%3A0%2C%22message%22%3A%22"
    "Success%22%2C%22data%22%3A{%22delivery_time%22%3Anull%2C%22message%22%3A%22The%20"
    "message%20was%20delivered%20to%20the%20user%27s%20phone%22%2C%22status%22%3A1}}"
    "&oaid=3639635426588416370&tempid=523194&partnerids=416f53d0cf0ec7569e19"
)
VECTOR_JOURNEY = (
    "SMSID=7d11c87a22934df390f73ec59d8defd6205&SendFailed=0&SendStatus=5&SendSuccess=1"
    "&TotalPrice=220.0000&TotalReceiver=1&TotalSent=1&RequestId=&TypeId=27"
    "&phonenumber=312158068343230&error_info=%257B%2522data%2522%3A%257B%2522message_id"
    "%2522%3A%2522e1a60e8890be9de4c4ab%2522%2C%2522user_id%2522%3A%252231215806834323092"
    "%2522%257D%2C%2522error%2522%3A0%2C%2522message%2522%3A%2522Success%2522%257D____24"
    "%2F04%2F2024%252016%3A58%3A01&oaid=4097311281936189049&partnerids=e1a60e8890be9derir3gfbff"
)
VECTOR_SMS_FAILED = (
    "SMSID=dc712784-9c5f-4c69-b9a8-ea69d56adc9a87&SendFailed=2&SendStatus=5&SendSuccess=0"
    "&TotalPrice=0.0000&TotalReceiver=2&TotalSent=2&RequestId=&TypeId=2&telcoid=1"
    "&phonenumber=0901888484&switchsmsid="
)


@pytest.fixture
def bot(callback_bot):
    return callback_bot


def deliveries(slack_standin, card):
    return [
        c
        for c in slack_standin.calls("chat.postMessage")
        if c.ok and c.args.get("thread_ts") == card["ts"] and "Delivered" in c.args["text"]
    ]


async def test_a_callback_delivers(bot, slack_standin, esms_standin):
    card, record = await accepted_send(bot)
    assert record["callback_token"] in esms_standin.sends()[0]["CallbackUrl"]
    esms_standin.deliver(record["sms_id"])
    assert await esms_standin.fire_callback(record["sms_id"], success=True) == 200
    text = await bot.thread_text(card, "Delivered")
    assert "090****484" in text
    assert bot.record_for(card)["state"] == "delivered"
    note = await slack_standin.await_for(
        lambda c: c.args.get("channel") == "C0NOTIFY", method="chat.postMessage"
    )
    assert "delivered" in note.args["text"] and "Order confirmation" in note.args["text"]
    assert "090****484" in note.args["text"] and "0901888484" not in note.args["text"]
    updated = slack_standin.message(APPROVAL_CHANNEL, card["ts"])
    assert ":white_check_mark: Delivered" in texts(updated)


async def test_a_failure_callback_explains_in_thread_dm_and_notify(
    bot, slack_standin, esms_standin
):
    card, record = await accepted_send(bot)
    esms_standin.deliver(record["sms_id"], success=False, zalo_error=-118)
    assert await esms_standin.fire_callback(record["sms_id"], encoding="plain") == 200
    text = await bot.thread_text(card, "Not sent")
    assert "no Zalo account" in text and "-118" in text
    dm = await slack_standin.await_for(
        lambda c: c.args.get("channel", "").startswith("D"), method="chat.postMessage"
    )
    assert "no Zalo account" in dm.args["text"] and "What to do" in dm.args["text"]
    assert bot.record_for(card)["state"] == "failed"


ZALO_ADVICE = {
    -133: ("may not be sent at night", "after 06:00"),
    -139: ("refused to receive this type", "chose not to receive"),
    -141: ("refused to receive ZNS", "chose not to receive"),
    -140: ("not allowed to send promotion", "promotion messages"),
    -1471: ("monthly limit of promotion", "wait until next month"),
}


@pytest.mark.parametrize("code", sorted(ZALO_ADVICE))
async def test_the_dm_gives_zalos_corrected_meaning_and_advice(
    bot, slack_standin, esms_standin, code
):
    _card, record = await accepted_send(bot)
    esms_standin.deliver(record["sms_id"], success=False, zalo_error=code)
    assert await esms_standin.fire_callback(record["sms_id"], encoding="plain") == 200
    dm = await slack_standin.await_for(
        lambda c: c.args.get("channel", "").startswith("D"), method="chat.postMessage"
    )
    meaning, advice = ZALO_ADVICE[code]
    text = dm.args["text"]
    assert meaning in text and advice in text and str(code) in text
    if code != -133:  # the customer said no, or a promotion limit: never "use SMS instead"
        assert "SMS instead" not in text


async def test_duplicate_and_out_of_order_callbacks_end_in_one_reply(
    bot, slack_standin, esms_standin
):
    card, record = await accepted_send(bot)
    sms_id = record["sms_id"]
    esms_standin.deliver(sms_id)
    assert await esms_standin.fire_callback(sms_id, send_status=2) == 200  # progress
    assert await esms_standin.fire_callback(sms_id, success=True) == 200  # delivered
    assert await esms_standin.fire_callback(sms_id, success=True) == 200  # duplicate
    assert await esms_standin.fire_callback(sms_id, send_status=7) == 200  # late progress
    assert await esms_standin.fire_callback(sms_id, send_status=2) == 200  # duplicate "2"
    await bot.thread_text(card, "Delivered")
    # let the relay finish everything that was queued, then count
    await bot.runtime.relay.run_until_idle()
    assert len(deliveries(slack_standin, card)) == 1
    final = bot.record_for(card)
    assert final["state"] == "delivered"
    moves = [e for e in bot.store.audit.for_send(final["id"]) if e.get("to_state") == "delivered"]
    assert len(moves) == 1


async def test_a_forged_token_is_refused_and_changes_nothing(bot, esms_standin, caplog):
    card, record = await accepted_send(bot)
    before = bot.store.audit.verify().count
    caplog.set_level(logging.WARNING)
    query = f"SMSID={record['sms_id']}&SendStatus=5&SendSuccess=1&SendFailed=0"
    for path in ("/esms/callback/forged-token", "/esms/callback/"):
        response = await bot.http.get(f"{path}?{query}")
        assert response.status_code == 404
    assert bot.record_for(card)["state"] == "accepted"
    assert bot.store.audit.verify().count == before
    assert bot.store.callbacks.count() == 0
    assert any("127.0.0.1" in r.getMessage() for r in caplog.records)


async def test_malformed_callback_gets_400_and_is_kept(bot):
    card, record = await accepted_send(bot)
    path = f"/esms/callback/{record['callback_token']}"
    for query in (
        "SendStatus=5",
        f"SMSID={record['sms_id']}&SendStatus=five&SendSuccess=x",
        f"SMSID={record['sms_id']}&SendSuccess=1",
    ):
        response = await bot.http.get(f"{path}?{query}")
        assert response.status_code == 400
    assert bot.store.callbacks.count() == 3
    assert bot.record_for(card)["state"] == "accepted"


async def test_an_smsid_from_another_send_is_refused_and_audited(bot):
    card, record = await accepted_send(bot)
    path = f"/esms/callback/{record['callback_token']}"
    response = await bot.http.get(f"{path}?SMSID=someone-else&SendStatus=5&SendSuccess=1")
    assert response.status_code == 400
    assert bot.record_for(card)["state"] == "accepted"
    refused = [e for e in bot.store.audit.iter_events() if e["action"] == "callback_refused"]
    assert len(refused) == 1 and "someone-else" in refused[0]["reason"]


@pytest.mark.parametrize(
    ("query", "state", "reason"),
    [
        (VECTOR_114, "failed", "Zalo is inactive"),
        (VECTOR_UID, "delivered", None),
        (VECTOR_JOURNEY, "delivered", None),
        (VECTOR_SMS_FAILED, "failed", "Zalo gave no reason"),
    ],
)
async def test_every_documented_callback_vector(bot, query, state, reason):
    sms_id = httpx.QueryParams(query)["SMSID"]
    card, record = await accepted_send(bot)
    # pretend eSMS had given this send the vector's SMSID
    bot.store.sends.update_fields(record["id"], sms_id=sms_id)
    response = await bot.http.get(f"/esms/callback/{record['callback_token']}?{query}")
    assert response.status_code == 200, response.text
    final = bot.record_for(card)
    assert final["state"] == state
    if reason:
        assert reason in final["error"]
    if "-114" in query or "%3A-114" in query:
        assert final["error_code"] == -114


async def test_metrics_show_sends_callbacks_outbox_and_esms_latency(bot, esms_standin):
    from prometheus_client.parser import text_string_to_metric_families

    _card, record = await accepted_send(bot)
    esms_standin.deliver(record["sms_id"])
    await esms_standin.fire_callback(record["sms_id"], success=True)
    await esms_standin.fire_callback(record["sms_id"], success=True)  # duplicate
    await bot.http.get("/esms/callback/forged")
    response = await bot.metrics()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    assert samples[("zns_sends", (("state", "delivered"),))] == 1
    assert samples[("zns_sends", (("state", "pending_approval"),))] == 0
    assert samples[("zns_callbacks_total", (("outcome", "delivered"),))] == 1
    assert samples[("zns_callbacks_total", (("outcome", "duplicate"),))] == 1
    assert samples[("zns_callbacks_total", (("outcome", "bad_token"),))] == 1
    assert ("zns_outbox_depth", ()) in samples
    sends = samples[
        ("zns_esms_requests_total", (("code", "100"), ("endpoint", "SendZaloMessage_V4_post_json")))
    ]
    assert sends == 1
    assert "0901888484" not in response.text and record["callback_token"] not in response.text
