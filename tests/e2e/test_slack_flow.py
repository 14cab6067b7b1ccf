"""The Slack flow end to end: signed requests to the running bot, both stand-ins over HTTP."""

import asyncio

from standins.driver import initial_state, suggested
from standins.esms import (
    DISABLED_TEMPLATE,
    JOURNEY_TEMPLATE,
    ORDER_TEMPLATE,
    OTP_TEMPLATE,
    TWENTY_PARAMS_TEMPLATE,
)
from standins.payloads import block_action_body
from tests.harness import (
    AGENT,
    APPROVAL_CHANNEL,
    APPROVER,
    GROUP_APPROVER,
    NOTIFY_CHANNEL,
    ORDER,
    STRANGER,
    bot_settings,
    open_order_modal,
    request_order,
    running_bot,
    texts,
)


async def test_zns_opens_a_loading_modal_then_lists_only_enable_templates(bot, slack_standin):
    response = await bot.slash()
    assert response.status_code == 200
    opened = await slack_standin.await_for(
        lambda c: c.args.get("trigger_id") == bot.trigger_id, method="views.open"
    )
    assert "Loading templates" in texts(opened.args["view"])
    view = await bot.modal()
    template = next(b for b in view["blocks"] if b.get("block_id") == "template")
    assert template["element"]["type"] == "external_select"
    # One character is enough to search: "2" is in the id of every template of the OA.
    listed = {o["value"] for o in suggested(await bot.suggest(view, "template_select", "2"))}
    # not DISABLE, PENDING
    assert listed == {OTP_TEMPLATE, ORDER_TEMPLATE, JOURNEY_TEMPLATE, TWENTY_PARAMS_TEMPLATE}
    assert DISABLED_TEMPLATE not in texts(view) and "231004" not in texts(view)


async def test_zns_with_phone_prefills_it(bot):
    await bot.slash("0901888484")
    view = await bot.modal()
    phone = next(b for b in view["blocks"] if b.get("block_id") == "phone")
    assert phone["element"]["initial_value"] == "0901888484"


async def test_two_modals_open_at_once_each_change_lands_in_its_own(bot, slack_standin):
    def params(view):
        return [b["block_id"] for b in view["blocks"] if b["block_id"].startswith("param:")]

    await bot.slash("0901888484")
    first_trigger = bot.trigger_id
    await bot.slash("0912345678", user=APPROVER)
    second = await bot.modal()  # the view opened for the second command, not the latest one
    first = await bot.updated(await bot.opened(first_trigger))
    phones = [
        next(b for b in v["blocks"] if b["block_id"] == "phone")["element"]["initial_value"]
        for v in (first, second)
    ]
    assert phones == ["0901888484", "0912345678"]

    chosen = await bot.choose(first, "template_select", ORDER_TEMPLATE)
    assert chosen["id"] == first["id"] and "param:order_code" in params(chosen)
    assert params(slack_standin.view(second["id"])) == []  # the other modal is untouched
    chosen = await bot.choose(second, "template_select", OTP_TEMPLATE, user=APPROVER)
    assert chosen["id"] == second["id"] and params(chosen) == ["param:otp"]
    assert bot.updates(first["id"]) == 2 and bot.updates(second["id"]) == 2


async def test_zns_help_answers_with_usage_and_opens_nothing(bot, slack_standin):
    response = await bot.slash("help")
    assert response.status_code == 200
    assert "/zns 0901888484" in response.text
    assert slack_standin.calls("views.open") == []


async def test_choosing_a_template_adds_one_labelled_input_per_parameter(bot):
    view = await open_order_modal(bot)
    params = {b["block_id"]: b for b in view["blocks"] if b["block_id"].startswith("param:")}
    assert list(params) == [
        "param:customer_name",
        "param:order_code",
        "param:order_date",
        "param:amount",
        "param:tracking_url",
    ]
    assert params["param:customer_name"]["label"]["text"] == "customer_name (text, max 30)"
    assert params["param:customer_name"]["element"]["max_length"] == 30
    assert "date dd/MM/yyyy" in params["param:order_date"]["label"]["text"]
    assert "digits" in params["param:amount"]["label"]["text"]


async def test_invalid_submission_answers_inline_and_stores_nothing(bot):
    view = await open_order_modal(bot)
    bad = dict(ORDER, amount="150.000", order_date="2026-11-27")
    response = await bot.submit_request(view, phone="12345", params=bad, journey=True)
    body = response.json()
    assert body["response_action"] == "errors"
    assert set(body["errors"]) == {"phone", "param:amount", "param:order_date", "order_id"}
    assert "digits 0-9" in body["errors"]["param:amount"]
    assert bot.store.sends.count_by_state() == {} or not any(
        bot.store.sends.count_by_state().values()
    )
    assert bot.store.audit.verify().count == 0


async def test_valid_request_posts_a_masked_card_and_confirms_with_a_link(bot, slack_standin):
    card = await request_order(bot, campaign="Black Friday", note="VIP customer")
    shown = texts(card)
    assert "090****484" in shown and "0901888484" not in shown
    assert "Order confirmation" in shown and "Nguyễn Văn A" in shown
    assert "330 VND" in shown  # the stand-in's SummaryZaloMessage price
    assert "Black Friday" in shown and "VIP customer" in shown
    assert "Review" in shown and card["text"]
    ephemeral = await slack_standin.await_for(
        lambda c: c.args.get("user") == AGENT, method="chat.postEphemeral"
    )
    assert "waiting for approval" in ephemeral.args["text"]
    assert "http" in ephemeral.args["text"]  # permalink to the card
    record = bot.record_for(card)
    assert record["state"] == "pending_approval" and record["requester"] == f"slack:{AGENT}"


async def test_price_estimate_unavailable_is_said(bot, esms_standin):
    esms_standin.inject("SummaryZaloMessage_V4_post_json", code=103)
    card = await request_order(bot)
    assert "estimate unavailable" in texts(card)


async def test_requesters_list_refuses_others_and_audits_it(tmp_path, slack_standin, esms_standin):
    settings = bot_settings(tmp_path / "d", slack_standin, esms_standin, zns_requesters=[APPROVER])
    async with running_bot(settings, slack_standin, esms_standin) as bot:
        response = await bot.slash(user=STRANGER)
        assert "not allowed to request" in response.text
        assert slack_standin.calls("views.open") == []
        (event,) = list(bot.store.audit.iter_events())
        assert event["actor"] == f"slack:{STRANGER}" and event["action"] == "request_refused"


async def test_review_is_for_approvers_only_and_refusals_are_audited(bot, slack_standin):
    card = await request_order(bot)
    response = await bot.click("zns_review", card, STRANGER)
    assert response.status_code == 200
    told = await slack_standin.await_for(
        lambda c: c.args.get("user") == STRANGER, method="chat.postEphemeral"
    )
    assert "Only approvers" in told.args["text"]
    assert slack_standin.calls("views.open") == [] or all(
        c.args.get("view", {}).get("callback_id") != "zns_approval"
        for c in slack_standin.calls("views.open")
    )
    assert any(e["action"] == "review_refused" for e in bot.store.audit.iter_events())


async def test_approval_modal_shows_full_phone_estimate_and_quota(bot):
    card = await request_order(bot)
    view = await bot.review(card)
    shown = texts(view)
    assert "0901888484" in shown and "330 VND" in shown
    assert "remaining daily quota 500 of 500" in shown


async def test_group_member_can_review(bot):
    card = await request_order(bot)
    view = await bot.review(card, user=GROUP_APPROVER)
    assert view["callback_id"] == "zns_approval"


async def test_requester_cannot_approve_their_own_request(tmp_path, slack_standin, esms_standin):
    settings = bot_settings(
        tmp_path / "d", slack_standin, esms_standin, zns_approvers=[AGENT, APPROVER]
    )
    async with running_bot(settings, slack_standin, esms_standin) as bot:
        card = await request_order(bot)
        await bot.click("zns_review", card, AGENT)
        told = await slack_standin.await_for(
            lambda c: c.args.get("user") == AGENT and "own request" in c.args.get("text", ""),
            method="chat.postEphemeral",
        )
        assert told
        assert bot.record_for(card)["state"] == "pending_approval"


async def test_self_approval_when_allowed(tmp_path, slack_standin, esms_standin):
    settings = bot_settings(
        tmp_path / "d",
        slack_standin,
        esms_standin,
        zns_approvers=[AGENT],
        zns_allow_self_approval=True,
    )
    async with running_bot(settings, slack_standin, esms_standin) as bot:
        card = await request_order(bot)
        view = await bot.review(card, user=AGENT)
        assert (await bot.decide(view, "approve", user=AGENT)).status_code == 200
        await bot.thread_text(card, "Accepted by eSMS")


async def test_approve_updates_card_sends_and_replies_in_thread(bot, slack_standin, esms_standin):
    card = await request_order(bot)
    view = await bot.review(card)
    response = await bot.decide(view, "approve")
    assert response.status_code == 200 and response.text == ""
    text = await bot.thread_text(card, "Accepted by eSMS")
    (sms_id,) = esms_standin.stored_sms_ids()
    assert f"SMSID `{sms_id}`" in text
    (body,) = esms_standin.sends()
    record = bot.record_for(card)
    assert body["RequestId"] == record["id"]
    assert body["CallbackUrl"].startswith("https://zns-bot.example/esms/callback/")
    assert record["callback_token"] in body["CallbackUrl"]
    await bot.thread_text(card, f"Approved by <@{APPROVER}>")
    updated = slack_standin.message(APPROVAL_CHANNEL, card["ts"])
    assert not any(b["type"] == "actions" for b in updated["blocks"])
    assert f"Approved by <@{APPROVER}> · :incoming_envelope: Accepted by eSMS" in texts(updated)


async def test_the_ack_does_not_wait_for_esms(bot, esms_standin):
    card = await request_order(bot)
    view = await bot.review(card)
    esms_standin.inject("SendZaloMessage_V4_post_json", delay=0.4)
    response = await bot.decide(view, "approve")
    assert response.status_code == 200
    # answered while eSMS was still holding the send
    assert bot.record_for(card)["state"] in ("approved", "submitting")
    await bot.thread_text(card, "Accepted by eSMS")


async def test_reject_needs_a_reason_then_updates_the_card(bot, slack_standin, esms_standin):
    card = await request_order(bot)
    view = await bot.review(card)
    missing = await bot.decide(view, "reject")
    assert missing.json()["response_action"] == "errors"
    assert "reason" in missing.json()["errors"]
    assert (await bot.decide(view, "reject", "wrong customer")).text == ""
    await bot.thread_text(card, "Rejected by")
    updated = slack_standin.message(APPROVAL_CHANNEL, card["ts"])
    assert f"Rejected by <@{APPROVER}>: wrong customer" in texts(updated)
    assert not any(b["type"] == "actions" for b in updated["blocks"])
    assert esms_standin.sends() == []


async def test_twenty_concurrent_approvals_send_exactly_once(bot, esms_standin):
    card = await request_order(bot)
    view = await bot.review(card)
    other = await bot.review(card, user=GROUP_APPROVER)  # each approver submits their own
    bodies = [bot.decision_body(view, "approve", user=APPROVER) for _ in range(10)]
    bodies += [bot.decision_body(other, "approve", user=GROUP_APPROVER) for _ in range(10)]
    responses = await asyncio.gather(*(bot.post(b) for b in bodies))
    winners = [r for r in responses if r.text == ""]
    losers = [r.json() for r in responses if r.text]
    assert len(winners) == 1 and len(losers) == 19
    assert all("already approved" in loser["errors"]["decision"] for loser in losers)
    await bot.thread_text(card, "Accepted by eSMS")
    assert len(esms_standin.sends()) == 1
    approvals = [
        e
        for e in bot.store.audit.iter_events()
        if e.get("to_state") == "approved" and e["send_id"] == bot.record_for(card)["id"]
    ]
    assert len(approvals) == 1


async def test_stale_modal_after_reject_is_told_who_decided(bot):
    card = await request_order(bot)
    first = await bot.review(card)
    second = await bot.review(card, user=GROUP_APPROVER)
    assert (await bot.decide(first, "reject", "duplicate")).text == ""
    late = await bot.decide(second, "approve", user=GROUP_APPROVER)
    assert f"already rejected (by <@{APPROVER}>)" in late.json()["errors"]["decision"]


async def test_requester_can_cancel_while_pending_others_cannot(bot, slack_standin):
    card = await request_order(bot)
    await bot.click("zns_cancel", card, STRANGER)
    await slack_standin.await_for(
        lambda c: c.args.get("user") == STRANGER and "Only the person" in c.args.get("text", ""),
        method="chat.postEphemeral",
    )
    assert bot.record_for(card)["state"] == "pending_approval"
    await bot.click("zns_cancel", card, AGENT)
    await bot.thread_text(card, "Cancelled by")
    assert bot.record_for(card)["state"] == "cancelled"
    assert any(e["action"] == "cancel_refused" for e in bot.store.audit.iter_events())
    updated = slack_standin.message(APPROVAL_CHANNEL, card["ts"])
    assert "Cancelled by the requester" in texts(updated)
    assert not any(b["type"] == "actions" for b in updated["blocks"])


async def test_expired_request_says_so_and_cannot_be_approved(bot, slack_standin):
    from datetime import UTC, datetime, timedelta

    card = await request_order(bot)
    view = await bot.review(card)
    later = datetime.now(UTC) + timedelta(days=2)
    assert len(bot.runtime.service.expire_stale(later)) == 1
    await bot.thread_text(card, "Expired")
    updated = slack_standin.message(APPROVAL_CHANNEL, card["ts"])
    assert "Expired" in texts(updated)
    late = await bot.decide(view, "approve")
    assert "already expired" in late.json()["errors"]["decision"]


async def test_esms_refusal_is_explained_in_thread_and_dm(bot, slack_standin, esms_standin):
    card = await request_order(bot)
    view = await bot.review(card)
    esms_standin.inject("SendZaloMessage_V4_post_json", code=789)
    await bot.decide(view, "approve")
    text = await bot.thread_text(card, "Not sent")
    assert "not configured for this OA" in text and "789" in text
    dm = await slack_standin.await_for(
        lambda c: c.args.get("channel", "").startswith("D"), method="chat.postMessage"
    )
    assert "was not delivered" in dm.args["text"] and "090****484" in dm.args["text"]
    assert bot.record_for(card)["state"] == "failed"


async def test_esms_timeout_shows_outcome_unknown(bot, esms_standin):
    card = await request_order(bot)
    view = await bot.review(card)
    esms_standin.inject("SendZaloMessage_V4_post_json", delay=3, times=3)
    await bot.decide(view, "approve")
    text = await bot.thread_text(card, "Outcome unknown")
    assert "checking" in text.lower()


async def test_sandbox_mode_marks_every_message(tmp_path, slack_standin, esms_standin):
    settings = bot_settings(tmp_path / "d", slack_standin, esms_standin, esms_sandbox=True)
    async with running_bot(settings, slack_standin, esms_standin) as bot:
        card = await request_order(bot)
        assert "SANDBOX" in card["text"] and "SANDBOX" in texts(card["blocks"])
        view = await bot.review(card)
        assert "SANDBOX" in texts(view)
        await bot.decide(view, "approve")
        text = await bot.thread_text(card, "accepted by eSMS")
        assert text.startswith("sandbox: accepted by eSMS, nothing delivered")
        assert esms_standin.sends()[0]["Sandbox"] == "1"
        assert bot.record_for(card)["state"] == "sandboxed"


async def test_journey_request_from_the_modal(bot, esms_standin):
    await bot.slash()
    view = await bot.choose(await bot.modal(), "template_select", JOURNEY_TEMPLATE)
    params = {"order_code": "DH-1", "status": "Đang giao", "eta": "28/11/2026"}
    response = await bot.submit_request(
        view, phone="+84901888484", params=params, journey=True, order_id="ORD-1"
    )
    assert response.text == ""
    card = await bot.card()
    assert "ORD-1" in texts(card)
    await bot.decide(await bot.review(card), "approve")
    await bot.thread_text(card, "Accepted by eSMS")
    (body,) = esms_standin.sends()
    assert body["IsJourney"] is True and body["OrderId"] == "ORD-1"


async def test_unsigned_or_forged_requests_are_refused(bot, slack_standin):
    response = await bot.post(b"command=%2Fzns&text=&user_id=U1", secret="not-the-secret")
    assert response.status_code == 401
    warmup = {"usergroups.users.list"}  # the start-up cache fill, not this request
    assert [c.method for c in slack_standin.calls() if c.method not in warmup] == []
    assert bot.store.audit.verify().count == 0


async def test_healthz(bot, tmp_path):
    response = await bot.http.get("/healthz")
    assert response.status_code == 200
    assert response.json()["ok"] is True and response.json()["socket_mode"] == "off"


async def test_healthz_503_when_the_store_cannot_be_written(bot, monkeypatch):
    from bot.errors import StoreError

    async def broken():
        raise StoreError("disk full")

    monkeypatch.setattr(bot.store, "check_writable_off_loop", broken)
    response = await bot.http.get("/healthz")
    assert response.status_code == 503 and "disk full" in response.json()["store"]


async def test_choosing_another_oa_lists_its_templates(bot):
    from standins.esms import SECOND_OA_TEMPLATE, SECOND_OAID

    async def offered(view):  # "0" is in the id of every template of both OAs
        return {o["value"] for o in suggested(await bot.suggest(view, "template_select", "0"))}

    await bot.slash()
    view = await bot.modal()
    assert ORDER_TEMPLATE in await offered(view)
    assert SECOND_OA_TEMPLATE not in await offered(view)
    view = await bot.choose(view, "oa_select", SECOND_OAID, typed="logistics")
    oa = next(b for b in view["blocks"] if b.get("block_id") == "oaid")
    assert oa["element"]["initial_option"]["value"] == SECOND_OAID
    assert await offered(view) == {SECOND_OA_TEMPLATE}


async def test_sandbox_checkbox_only_when_allowed(tmp_path, slack_standin, esms_standin):
    settings = bot_settings(tmp_path / "d", slack_standin, esms_standin, zns_allow_sandbox=False)
    async with running_bot(settings, slack_standin, esms_standin) as bot:
        await bot.slash()
        view = await bot.modal()
        assert "sandbox" not in {b.get("block_id") for b in view["blocks"]}


async def test_sandbox_checkbox_makes_a_sandbox_send_that_ends_sandboxed(
    bot, slack_standin, esms_standin
):
    view = await open_order_modal(bot)
    assert "sandbox" in {b.get("block_id") for b in view["blocks"]}
    await bot.submit_request(view, phone="0901888484", params=ORDER, sandbox=True)
    card = await bot.card()
    assert "SANDBOX" in card["text"]
    await bot.decide(await bot.review(card), "approve")
    text = await bot.thread_text(card, "sandbox: accepted by eSMS, nothing delivered")
    assert esms_standin.sends()[0]["Sandbox"] == "1"
    record = bot.record_for(card)
    assert record["state"] == "sandboxed"  # final: nothing is left to poll for
    assert text == f"sandbox: accepted by eSMS, nothing delivered. SMSID `{record['sms_id']}`."
    replies = [m["text"] for m in slack_standin.thread(APPROVAL_CHANNEL, card["ts"])]
    assert not any("Accepted by eSMS" in r for r in replies)  # no "waiting for a report"
    await slack_standin.await_for(
        lambda c: c.args.get("ts") == card["ts"] and "nothing delivered" in texts(c.args),
        method="chat.update",
    )
    assert "nothing delivered" in slack_standin.message(APPROVAL_CHANNEL, card["ts"])["text"]
    for _ in range(200):  # every queued post is out: no DM or notification follows
        if bot.store.outbox.depth() == 0:
            break
        await asyncio.sleep(0.05)
    assert bot.store.outbox.depth() == 0
    posted_to = {c.args.get("channel") for c in slack_standin.calls("chat.postMessage")}
    assert NOTIFY_CHANNEL not in posted_to and not any(c.startswith("D") for c in posted_to)


async def test_slow_esms_during_submit_answers_inside_slacks_3_seconds(
    tmp_path, slack_standin, esms_standin
):
    settings = bot_settings(tmp_path / "d", slack_standin, esms_standin, esms_timeout=5)
    async with running_bot(settings, slack_standin, esms_standin) as bot:
        view = await open_order_modal(bot)
        # A template that is not ENABLE forces a fresh look-up at eSMS, which now hangs.
        esms_standin.inject("GetTemplate", delay=4)
        response = await bot.submit_request(
            view, phone="0901888484", params={"customer_name": "A"}, template=DISABLED_TEMPLATE
        )
        body = response.json()
        assert body["response_action"] == "errors"
        assert "eSMS is slow" in body["errors"]["template"]
        assert bot.store.audit.verify().count == 0


async def test_a_request_the_store_cannot_save_is_refused_in_the_modal_not_lost(bot, monkeypatch):
    from bot.errors import StoreError

    def broken(*args, **kwargs):
        raise StoreError("the disk is full")

    view = await open_order_modal(bot)
    with monkeypatch.context() as patch:
        patch.setattr(bot.runtime.service.store.sends, "create", broken)
        response = await bot.submit_request(view, phone="0901888484", params=ORDER)
    # stored before the ack: the modal stays open and says why, rather than closing on a
    # request that was never kept
    (error,) = response.json()["errors"].values()
    assert "could not save" in error and "the disk is full" in error
    assert bot.store.sends.count() == 0
    # the failed write left the modal usable: the same submission, once the disk is back
    response = await bot.submit_request(view, phone="0901888484", params=ORDER)
    assert response.text == ""
    assert bot.record_for(await bot.card())["state"] == "pending_approval"


async def test_a_second_quick_pick_wins_over_the_views_hash(bot, slack_standin):
    await bot.slash()
    view = await bot.modal()
    await bot.choose(view, "template_select", ORDER_TEMPLATE)
    # a second pick made before Slack showed the first: its payload carries the old hash
    before = len(slack_standin.calls("views.update"))
    response = await bot.post(
        block_action_body(
            "template_select",
            user_id=AGENT,
            block_id="template",
            action_type="external_select",
            view=view,
            state_values=initial_state(view),
            selected_option={"text": {"type": "plain_text", "text": "OTP"}, "value": OTP_TEMPLATE},
        )
    )
    assert response.status_code == 200
    retry = await slack_standin.await_for(method="views.update", count=before + 2)
    conflict = slack_standin.calls("views.update")[before]
    assert conflict.error == "hash_conflict" and retry.ok
    assert "hash" not in retry.args  # the retry: this pick is the person's latest
    latest = slack_standin.view(view["id"])
    assert "param:otp" in {b.get("block_id") for b in latest["blocks"]}
    assert slack_standin.ephemerals(AGENT) == []  # nothing to tell: nothing failed
