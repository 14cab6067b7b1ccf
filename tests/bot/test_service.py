"""The send workflow end to end: real store on disk, eSMS stand-in over HTTP."""

import asyncio
import logging

import pytest

from bot.config import Settings
from bot.errors import InputError
from bot.service import DecisionError, SendService
from bot.templates import TemplateCatalogue
from standins.esms import DEMO_OAID, DISABLED_TEMPLATE, JOURNEY_TEMPLATE, ORDER_TEMPLATE
from storage.store import Store
from tests.harness import ORDER


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "data") as opened:
        yield opened


@pytest.fixture
def settings(tmp_path):
    return Settings(
        _env_file=None,
        esms_oaid=DEMO_OAID,
        zns_data_dir=tmp_path / "data",
        public_base_url="https://bot.example",
    )


@pytest.fixture
def service(settings, store, esms_client):
    return SendService(
        settings=settings,
        store=store,
        client=esms_client,
        catalogue=TemplateCatalogue(esms_client),
    )


async def approved(service, params=ORDER, **kw):
    request = await service.prepare(
        phone="+84 901 888 484", template_id=ORDER_TEMPLATE, params=params, **kw
    )
    record = service.create(request, actor="slack:UREQ")
    service.approve(record["id"], actor="slack:UAPP")
    return record


async def test_accepted_send_goes_to_esms_with_ordered_params_and_callback(service, esms_standin):
    record = await approved(service, campaign="Black Friday")
    done = await service.submit(record["id"])
    assert done["state"] == "accepted"
    assert done["sms_id"] in esms_standin.stored_sms_ids()
    (body,) = esms_standin.sends()
    assert body["Phone"] == "0901888484"
    # ParamLevel order: customer_name, order_code, order_date, amount, tracking_url
    assert body["Params"] == [
        "Nguyễn Văn A",
        "DH-1001",
        "27/11/2026",
        "150000",
        "https://shop.example/t/DH-1001",
    ]
    assert body["RequestId"] == record["id"]
    assert body["campaignid"] == "Black Friday"
    assert body["CallbackUrl"] == f"https://bot.example/esms/callback/{record['callback_token']}"
    assert body["OAID"] == DEMO_OAID


async def test_every_transition_is_audited(service, store):
    record = await approved(service)
    await service.submit(record["id"], actor="slack:UAPP")
    moves = [(e["from_state"], e["to_state"]) for e in store.audit.for_send(record["id"])]
    assert moves[-3:] == [
        ("pending_approval", "approved"),
        ("approved", "submitting"),
        ("submitting", "accepted"),
    ]
    assert store.audit.verify().ok


async def test_journey_send_carries_is_journey_and_order_id(service, esms_standin):
    request = await service.prepare(
        phone="0901888484",
        template_id=JOURNEY_TEMPLATE,
        params={"order_code": "DH-1", "status": "Đang giao", "eta": "28/11/2026"},
        is_journey=True,
        order_id="ORDER-77",
    )
    record = service.create(request, actor="cli:test")
    service.approve(record["id"], actor="cli:test", check_self=False)
    assert (await service.submit(record["id"]))["state"] == "accepted"
    (body,) = esms_standin.sends()
    assert body["IsJourney"] is True
    assert body["OrderId"] == "ORDER-77"


async def test_prepare_reports_every_problem_and_stores_nothing(service, store):
    with pytest.raises(InputError) as info:
        await service.prepare(
            phone="12345",
            template_id=ORDER_TEMPLATE,
            params=dict(ORDER, amount="1.5", order_date="2026-11-27"),
            is_journey=True,
        )
    assert set(info.value.problems) == {"phone", "order_id", "param:amount", "param:order_date"}
    assert store.sends.count_by_state() == {} or sum(store.sends.count_by_state().values()) == 0
    assert store.audit.verify().count == 0


async def test_disabled_template_is_refused(service):
    with pytest.raises(InputError) as info:
        await service.prepare(
            phone="0901888484", template_id=DISABLED_TEMPLATE, params={"customer_name": "A"}
        )
    assert "DISABLE" in info.value.problems["template"]


async def test_twenty_concurrent_submits_send_once(service, esms_standin):
    record = await approved(service)
    results = await asyncio.gather(*(service.submit(record["id"]) for _ in range(20)))
    assert len(esms_standin.sends()) == 1
    assert {r["id"] for r in results} == {record["id"]}


async def test_double_approval_decides_once(service, store):
    request = await service.prepare(phone="0901888484", template_id=ORDER_TEMPLATE, params=ORDER)
    record = service.create(request, actor="slack:UREQ")
    first = service.approve(record["id"], actor="slack:UA")
    second = service.approve(record["id"], actor="slack:UB")
    assert first is not None and second is None
    assert store.sends.get(record["id"])["approver"] == "slack:UA"


async def test_self_approval_is_refused(service):
    request = await service.prepare(phone="0901888484", template_id=ORDER_TEMPLATE, params=ORDER)
    record = service.create(request, actor="slack:UREQ")
    with pytest.raises(DecisionError):
        service.approve(record["id"], actor="slack:UREQ")


async def test_esms_error_fails_the_send_with_code_and_plain_reason(service, esms_standin):
    record = await approved(service)
    esms_standin.inject("SendZaloMessage_V4_post_json", code=103)
    done = await service.submit(record["id"])
    assert done["state"] == "failed"
    assert done["error_code"] == 103
    assert "balance" in done["error"]


async def test_lost_reply_is_unknown_not_failed(service, esms_standin):
    record = await approved(service)
    esms_standin.inject("SendZaloMessage_V4_post_json", delay=5, times=3)
    done = await service.submit(record["id"])
    assert done["state"] == "unknown"
    # every retry reused the request id, so eSMS could never send it twice
    assert {b["RequestId"] for b in esms_standin.sends()} == {record["id"]}


async def test_rejected_and_expired_can_never_be_approved(service, store):
    request = await service.prepare(phone="0901888484", template_id=ORDER_TEMPLATE, params=ORDER)
    rejected = service.create(request, actor="slack:UREQ")
    with pytest.raises(InputError):
        service.reject(rejected["id"], actor="slack:UA", reason="  ")
    assert service.reject(rejected["id"], actor="slack:UA", reason="wrong customer")
    assert service.approve(rejected["id"], actor="slack:UB") is None

    stale = service.create(request, actor="slack:UREQ")
    from datetime import UTC, datetime, timedelta

    later = datetime.now(UTC) + timedelta(seconds=service.settings.zns_approval_ttl + 1)
    assert [r["id"] for r in service.expire_stale(later)] == [stale["id"]]
    assert service.approve(stale["id"], actor="slack:UB") is None
    assert store.sends.get(stale["id"])["state"] == "expired"


async def test_an_approval_whose_submit_never_ran_is_resumed_once(service, esms_standin):
    from datetime import UTC, datetime, timedelta

    from bot.jobs.scheduler import resume_job

    record = await approved(service)  # approved, but the process "stopped" before submit
    assert await resume_job(service, datetime.now(UTC)) == 0  # too fresh: a submit may run
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert await resume_job(service, later) == 1
    assert service.store.sends.get(record["id"])["state"] == "accepted"
    assert await resume_job(service, later) == 0
    assert len(esms_standin.sends()) == 1


async def test_a_callback_before_the_submit_reply_keeps_its_smsid(service):
    from bot.delivery import DeliveryTracker
    from bot.esms.types import DeliveryReport

    record = await approved(service)
    submitting = service.store.sends.transition(
        record["id"], "submitting", actor="test", expect={"approved"}
    )
    report = DeliveryReport(sms_id="SMS-EARLY", send_status=5, send_success=1)
    assert DeliveryTracker(service).apply(submitting, report, source="esms-callback") == "early"
    assert service.store.sends.get(record["id"])["sms_id"] == "SMS-EARLY"


async def test_deliveries_log_at_debug_and_every_other_change_at_info(service, caplog):
    from bot.delivery import DeliveryTracker
    from bot.esms.types import DeliveryReport

    caplog.set_level(logging.DEBUG, logger="bot.service")
    tracker = DeliveryTracker(service)
    outcomes = {}
    for success, failed, code in ((1, 0, None), (0, 1, -118)):
        record = await approved(service)
        sent = await service.submit(record["id"])
        report = DeliveryReport(
            sms_id=sent["sms_id"],
            send_status=5,
            send_success=success,
            send_failed=failed,
            error_code=code,
        )
        outcomes[record["id"]] = tracker.apply(sent, report, source="esms-callback")
    moves = [
        (r.send_id, r.state, r.levelname, r.phone)
        for r in caplog.records
        if r.name == "bot.service" and r.getMessage() == "transition"
    ]
    delivered, failed = outcomes
    assert outcomes == {delivered: "delivered", failed: "failed"}
    assert [(s, lv) for i, s, lv, _ in moves if i == delivered] == [
        ("approved", "INFO"),
        ("submitting", "INFO"),
        ("accepted", "INFO"),
        ("delivered", "DEBUG"),
    ]
    assert [(s, lv) for i, s, lv, _ in moves if i == failed][-1] == ("failed", "INFO")
    assert {phone for *_, phone in moves} == {"090****484"}


# --- sandbox sends --------------------------------------------------------------------------


def queued(store, send_id):
    """The Slack posts queued for a send, as (kind, state) pairs."""
    from datetime import UTC, datetime, timedelta

    later = datetime.now(UTC) + timedelta(days=1)
    return [
        (item["kind"], item["payload"].get("state"))
        for item in store.outbox.due(later, limit=1000)
        if item["send_id"] == send_id
    ]


async def test_a_sandbox_send_accepted_by_esms_ends_sandboxed(service, store, esms_standin):
    request = await service.prepare(
        phone="0901888484", template_id=ORDER_TEMPLATE, params=ORDER, sandbox=True
    )
    record = service.create(request, actor="slack:UREQ", origin="slack", reply_channel="C0REQ")
    service.approve(record["id"], actor="slack:UAPP")
    done = await service.submit(record["id"])

    assert done["state"] == "sandboxed"  # final: never polled, never reconciled
    assert done["sms_id"] and done["accepted_at"] and done["final_at"]
    assert "next_poll_at" not in done
    (body,) = esms_standin.sends()
    assert body["Sandbox"] == "1" and esms_standin.stored_sms_ids() == []
    event = store.audit.for_send(record["id"])[-1]
    assert (event["actor"], event["from_state"], event["to_state"]) == (
        "esms",
        "submitting",
        "sandboxed",
    )
    assert event["reason"] == (
        f"sandbox: accepted by eSMS, nothing delivered (SMSID {done['sms_id']})"
    )
    posts = queued(store, record["id"])
    assert ("thread", "sandboxed") in posts and ("thread", "accepted") not in posts
    # Nothing was delivered, so nobody is told about a delivery: no DM, no notification.
    assert {kind for kind, _ in posts} == {"card", "ephemeral", "thread"}
    assert store.audit.verify().ok


async def test_a_sandbox_send_esms_already_has_ends_sandboxed_without_an_smsid(
    service, store, esms_standin
):
    record = await approved(service, sandbox=True)
    esms_standin.inject("SendZaloMessage_V4_post_json", code=124)  # no SMSID in the answer
    done = await service.submit(record["id"])
    assert done["state"] == "sandboxed" and "sms_id" not in done
    assert store.audit.for_send(record["id"])[-1]["reason"] == (
        "sandbox: accepted by eSMS, nothing delivered"
    )


async def test_a_sandbox_send_esms_refuses_fails_and_a_lost_reply_stays_unknown(
    service, esms_standin
):
    refused = await approved(service, sandbox=True)
    esms_standin.inject("SendZaloMessage_V4_post_json", code=789)
    assert (await service.submit(refused["id"]))["state"] == "failed"
    lost = await approved(service, sandbox=True)
    esms_standin.inject("SendZaloMessage_V4_post_json", status=502, times=3)
    assert (await service.submit(lost["id"]))["state"] == "unknown"


async def test_the_approver_is_shown_the_chained_digest_and_whether_the_send_still_matches(
    service, store
):
    request = await service.prepare(phone="0901888484", template_id=ORDER_TEMPLATE, params=ORDER)
    record = service.create(request, actor="slack:UREQ")
    # GetZnsTemplateInfo's PreviewUrl is kept with the request, for the approval modal
    assert record["extra"] == {
        "preview_url": f"https://account.zalo.cloud/znspreview/{ORDER_TEMPLATE}"
    }
    (created,) = [e for e in store.audit.for_send(record["id"]) if e["action"] == "created"]
    check = service.content_check(service.get(record["id"]))
    assert check.chained == created["data"]["content"] and check.intact
    # an edit behind the workflow's back (the digest binds the content, not the record)
    store.sends.update_fields(record["id"], params={**ORDER, "amount": "990000"})
    edited = service.content_check(service.get(record["id"]))
    assert edited.chained == check.chained and not edited.intact


async def test_the_expire_job_forgets_views_past_their_ttl(service, store):
    from datetime import timedelta

    from bot import policy
    from bot.jobs.scheduler import expire_job

    service.opened_request("V0OLD", user="U0A", channel="C0SUPPORT")
    view = store.views.get("V0OLD")
    assert view is not None
    # age it past the TTL, as hours of waiting would
    aged = {**view, "opened_at": (store.clock() - policy.VIEW_TTL - timedelta(1)).isoformat()}
    store.db.table("views").put(store.db.table("views").first_id_by("view_id", "V0OLD"), aged)
    service.opened_request("V0NEW", user="U0A", channel="C0SUPPORT")
    await expire_job(service)
    assert store.views.get("V0OLD") is None and store.views.get("V0NEW") is not None


async def test_a_request_view_stores_one_send_and_its_estimate_joins_later(service, store):
    request = await service.prepare(phone="0901888484", template_id=ORDER_TEMPLATE, params=ORDER)
    service.opened_request("V1", user="UREQ", channel="C0SUPPORT")
    record = service.create_once("V1", request, actor="slack:UREQ", reply_channel="C0SUPPORT")
    assert record is not None and record["estimate_pending"] is True
    again = service.create_once("V1", request, actor="slack:UREQ", reply_channel="C0SUPPORT")
    assert again is None and store.sends.count() == 1
    priced = service.add_estimate(record["id"], {"total_price": 330, "total_receiver": 1})
    assert priced["estimate"] == {"total_price": 330, "total_receiver": 1}
    assert priced["estimate_pending"] is False
    # the card is queued again, to show the price
    cards = [k for k in (i["key"] for i in store.outbox.due(store.clock())) if ":card:" in k]
    assert len(cards) == 2


async def test_a_request_left_unpriced_by_a_restart_is_priced_by_the_expire_job(service, store):
    from datetime import timedelta

    from bot.service import REPRICE_AFTER

    request = await service.prepare(phone="0901888484", template_id=ORDER_TEMPLATE, params=ORDER)
    service.opened_request("V1", user="UREQ", channel="C0SUPPORT")
    record = service.create_once("V1", request, actor="slack:UREQ", reply_channel="C0SUPPORT")
    assert record is not None
    assert await service.reprice_stale() == 0  # its own estimate may still be on its way
    later = store.clock() + REPRICE_AFTER + timedelta(seconds=1)
    assert await service.reprice_stale(now=later) == 1
    priced = store.sends.get(record["id"])
    assert priced["estimate_pending"] is False
    assert priced["estimate"] is not None and priced["estimate"]["total_price"] > 0
    assert await service.reprice_stale(now=later) == 0  # priced once
