"""Delivery polling and reconcile: a real store on disk, the eSMS stand-in over HTTP, and an
injected clock that jumps ahead instead of sleeping."""

import asyncio
from datetime import datetime, timedelta
from itertools import pairwise

import pytest

from bot.config import Settings
from bot.delivery import DeliveryTracker
from bot.jobs.polling import DeliveryPoller, RateLimiter, human
from bot.service import SendService
from bot.templates import TemplateCatalogue
from standins.esms import DEMO_OAID, ORDER_TEMPLATE
from storage.clock import iso
from storage.sends import SendState
from storage.store import Store
from tests.harness import ORDER

SEND = "SendZaloMessage_V4_post_json"
QUERY = "QueryZnsStatus"
TEMPLATE_TIMEOUT = timedelta(hours=2)  # the stand-in's Timeout for every template


class FakeClock:
    """Aware UTC time that moves only when a test says so."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def at(self, **offset: float) -> "FakeClock":
        self.now = self.start + timedelta(**offset)
        return self


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def settings(data_dir):
    return Settings(
        _env_file=None,
        esms_oaid=DEMO_OAID,
        zns_data_dir=data_dir,
        public_base_url="https://bot.example",
        esms_timeout=0.5,
    )


@pytest.fixture
def store(data_dir):
    with Store.open(data_dir, fsync=False) as opened:
        yield opened


def make_service(settings, store, client):
    return SendService(
        settings=settings, store=store, client=client, catalogue=TemplateCatalogue(client)
    )


@pytest.fixture
def service(settings, store, esms_client):
    return make_service(settings, store, esms_client)


def make_poller(service, clock, **kw):
    return DeliveryPoller(service, DeliveryTracker(service), clock=clock, **kw)


async def approved(service):
    request = await service.prepare(phone="0901888484", template_id=ORDER_TEMPLATE, params=ORDER)
    record = service.create(request, actor="cli:agent")
    service.approve(record["id"], actor="cli:approver")
    return record


async def accepted(service):
    record = await service.submit((await approved(service))["id"])
    assert record["state"] == "accepted" and record["sms_id"]
    return record


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def queries(esms_standin):
    return len(esms_standin.requests_to(QUERY))


# --- the poll schedule -----------------------------------------------------------------------


async def test_polls_at_30s_1m_2m_5m_then_every_15m_without_auditing(service, store, esms_standin):
    record = await accepted(service)
    clock = FakeClock(at(record["accepted_at"]))
    poller = make_poller(service, clock)
    audit_before = store.audit.count()

    await poller.poll()  # just accepted: nothing is due
    clock.at(seconds=29)
    await poller.poll()
    assert queries(esms_standin) == 0

    expected_next = {30: 60, 60: 120, 120: 300, 300: 300 + 900, 1200: 1200 + 900}
    for count, (now_s, next_s) in enumerate(expected_next.items(), start=1):
        clock.at(seconds=now_s)
        results = await poller.poll()
        assert results == {"pending": 1}
        assert queries(esms_standin) == count
        polled = store.sends.get(record["id"])
        assert polled["state"] == "accepted" and polled["poll_count"] == count
        assert at(polled["next_poll_at"]) == clock.start + timedelta(seconds=next_s)
        clock.at(seconds=next_s - 1)
        await poller.poll()  # a second early: not due
        assert queries(esms_standin) == count

    assert store.sends.get(record["id"])["timeout_ms"] == TEMPLATE_TIMEOUT.total_seconds() * 1000
    # The schedule is bookkeeping, never audited; only eSMS's progress (once) is.
    new_events = list(store.audit.iter_events())[audit_before:]
    assert [(e["action"], e["reason"]) for e in new_events] == [
        ("update", "progress: waiting to be sent")
    ]


async def test_a_restart_resumes_the_schedule_from_the_store(
    settings, store, esms_client, esms_standin
):
    service = make_service(settings, store, esms_client)
    record = await accepted(service)
    clock = FakeClock(at(record["accepted_at"]))
    await make_poller(service, clock.at(seconds=30)).poll()
    store.close()

    with Store.open(settings.zns_data_dir, fsync=False) as reopened:
        poller = make_poller(make_service(settings, reopened, esms_client), clock)
        await poller.poll()  # same moment again: already polled, not due
        clock.at(seconds=59)
        await poller.poll()
        assert queries(esms_standin) == 1
        clock.at(seconds=60)
        await poller.poll()
        assert queries(esms_standin) == 2
        assert reopened.sends.get(record["id"])["poll_count"] == 2


# --- what a poll finds -----------------------------------------------------------------------


async def test_poll_finds_the_send_delivered(service, store, esms_standin):
    record = await accepted(service)
    esms_standin.deliver(record["sms_id"])
    clock = FakeClock(at(record["accepted_at"])).at(seconds=31)
    poller = make_poller(service, clock)
    assert await poller.poll() == {"delivered": 1}
    done = store.sends.get(record["id"])
    assert done["state"] == "delivered" and done["price"] == 330.0
    (event,) = [e for e in store.audit.for_send(record["id"]) if e["to_state"] == "delivered"]
    assert event["actor"] == "esms-poll"
    clock.at(hours=1)
    assert await poller.poll() == {}  # final: never asked about again
    assert queries(esms_standin) == 1


async def test_poll_finds_the_send_failed_with_zalos_reason(service, store, esms_standin):
    record = await accepted(service)
    esms_standin.deliver(record["sms_id"], success=False, zalo_error=-118)
    poller = make_poller(service, FakeClock(at(record["accepted_at"])).at(seconds=30))
    assert await poller.poll() == {"failed": 1}
    failed = store.sends.get(record["id"])
    assert failed["state"] == "failed" and failed["error_code"] == -118
    assert "Zalo" in failed["error"]


async def test_not_yet_just_reschedules(service, store, esms_standin):
    record = await accepted(service)
    esms_standin.inject(QUERY, code=105)
    poller = make_poller(service, FakeClock(at(record["accepted_at"])).at(seconds=30))
    assert await poller.poll() == {"pending": 1}
    polled = store.sends.get(record["id"])
    assert polled["state"] == "accepted" and polled["poll_count"] == 1
    assert not polled.get("check_error")


async def test_an_esms_error_is_noted_and_rescheduled_never_raised(service, store, esms_standin):
    record = await accepted(service)
    esms_standin.inject(QUERY, status=503, times=3)  # every attempt of the client's retries
    clock = FakeClock(at(record["accepted_at"])).at(seconds=30)
    poller = make_poller(service, clock)
    assert await poller.poll() == {"error": 1}
    polled = store.sends.get(record["id"])
    assert polled["state"] == "accepted" and "HTTP 503" in polled["check_error"]
    assert at(polled["next_poll_at"]) == clock.start + timedelta(seconds=60)
    esms_standin.deliver(record["sms_id"])
    clock.at(seconds=60)
    assert await poller.poll() == {"delivered": 1}


async def test_a_broken_record_does_not_stop_the_others(service, store, esms_standin, monkeypatch):
    first, second = await accepted(service), await accepted(service)
    esms_standin.deliver(second["sms_id"])
    real = service.client.query_zns_status

    async def query(sms_id):
        if sms_id == first["sms_id"]:
            raise RuntimeError("boom")
        return await real(sms_id)

    monkeypatch.setattr(service.client, "query_zns_status", query)
    poller = make_poller(service, FakeClock(at(second["accepted_at"])).at(seconds=30))
    assert await poller.poll() == {"error": 1, "delivered": 1}
    assert store.sends.get(first["id"])["state"] == "accepted"


async def sandbox_approved(service, origin="cli"):
    request = await service.prepare(
        phone="0901888484", template_id=ORDER_TEMPLATE, params=ORDER, sandbox=True
    )
    record = service.create(request, actor="slack:UREQ", origin=origin, reply_channel="C0REQ")
    service.approve(record["id"], actor="slack:UAPP")
    return record


def thread_posts(store, send_id):
    later = datetime.fromisoformat("2100-01-01T00:00:00+00:00")
    return [
        item["payload"]["state"]
        for item in store.outbox.due(later, limit=1000)
        if item["send_id"] == send_id and item["kind"] == "thread"
    ]


async def test_sandbox_sends_end_sandboxed_and_are_never_polled_or_reconciled(
    service, store, esms_standin
):
    done = await service.submit((await sandbox_approved(service))["id"])
    assert done["state"] == "sandboxed" and done["sms_id"]
    clock = FakeClock(at(done["accepted_at"]))
    poller = make_poller(service, clock)
    for hours in (0, 1, 30, 24 * 8):
        clock.at(hours=hours)
        assert await poller.poll() == {}
        assert await poller.reconcile() == {}
    assert queries(esms_standin) == 0 and len(esms_standin.sends()) == 1
    assert store.sends.get(done["id"]) == done


async def test_an_accepted_sandbox_send_left_by_an_older_release_ends_at_the_first_poll(
    service, store, esms_standin
):
    record = await sandbox_approved(service, origin="slack")
    # What release 0.1.0 did: a sandbox send accepted like any other, and never polled.
    service.move(
        record["id"], SendState.SUBMITTING, actor="system", reason="s", expect={SendState.APPROVED}
    )
    legacy = service.move(
        record["id"],
        SendState.ACCEPTED,
        actor="esms",
        reason="accepted by eSMS",
        expect={SendState.SUBMITTING},
        sms_id="SMS-OLD-1",
        accepted_at=iso(datetime.fromisoformat("2026-11-01T08:00:00+00:00")),
    )
    clock = FakeClock(at(legacy["accepted_at"]))  # due at once: no 30 s wait
    poller = make_poller(service, clock)
    assert await poller.poll() == {"sandboxed": 1}

    ended = store.sends.get(record["id"])
    assert ended["state"] == "sandboxed"
    assert (ended["sms_id"], ended["accepted_at"]) == ("SMS-OLD-1", legacy["accepted_at"])
    event = store.audit.for_send(record["id"])[-1]
    assert (event["actor"], event["from_state"], event["to_state"], event["reason"]) == (
        "esms-poll",
        "accepted",
        "sandboxed",
        "sandbox: accepted by eSMS, nothing delivered",
    )
    assert thread_posts(store, record["id"]) == ["approved", "accepted", "sandboxed"]
    assert queries(esms_standin) == 0  # eSMS is not asked about a sandbox send
    clock.at(hours=30)
    assert await poller.poll() == {} and await poller.reconcile() == {}


async def test_a_sandbox_send_whose_reply_was_lost_is_resubmitted_and_ends_sandboxed(
    service, store, esms_standin
):
    record = await sandbox_approved(service)
    esms_standin.inject(SEND, status=502, times=3)
    unknown = await service.submit(record["id"])
    assert unknown["state"] == "unknown" and not unknown.get("sms_id")
    # A day later, past the window in which a real send may be re-submitted: a sandbox
    # send is never delivered, so a second one cannot reach the customer either.
    poller = make_poller(service, FakeClock(at(unknown["updated_at"])).at(hours=25))
    assert await poller.reconcile() == {"sandboxed": 1}

    ended = store.sends.get(record["id"])
    assert ended["state"] == "sandboxed" and ended["sms_id"] and ended["accepted_at"]
    bodies = esms_standin.sends()
    assert {b["RequestId"] for b in bodies} == {record["id"]}
    assert {b["Sandbox"] for b in bodies} == {"1"}
    event = store.audit.for_send(record["id"])[-1]
    assert (event["actor"], event["from_state"], event["to_state"]) == (
        "esms-reconcile",
        "unknown",
        "sandboxed",
    )
    assert event["reason"] == (
        "re-submitted with the same RequestId; sandbox: accepted by eSMS, nothing delivered "
        f"(SMSID {ended['sms_id']})"
    )
    assert queries(esms_standin) == 0


async def test_an_unknown_sandbox_send_with_an_smsid_ends_without_asking_esms(
    service, store, esms_standin
):
    record = await sandbox_approved(service)
    service.move(
        record["id"], SendState.SUBMITTING, actor="system", reason="s", expect={SendState.APPROVED}
    )
    unknown = service.move(
        record["id"],
        SendState.UNKNOWN,
        actor="esms",
        reason="no reply",
        expect={SendState.SUBMITTING},
        sms_id="SMS-EARLY-1",  # an early callback gave it, then the submit reply was lost
        next_reconcile_at=iso(datetime.fromisoformat("2026-11-01T08:00:00+00:00")),
    )
    poller = make_poller(service, FakeClock(at(unknown["next_reconcile_at"])))
    asked = len(esms_standin.requests)
    assert await poller.reconcile() == {"sandboxed": 1}
    ended = store.sends.get(record["id"])
    assert (ended["state"], ended["sms_id"]) == ("sandboxed", "SMS-EARLY-1")
    assert store.audit.for_send(record["id"])[-1]["reason"] == (
        "sandbox: accepted by eSMS, nothing delivered"
    )
    # No GetCallback, no QueryZnsStatus, no re-submit: an SMSID means eSMS accepted it.
    assert len(esms_standin.requests) == asked


async def test_a_sandbox_send_stuck_submitting_after_a_crash_ends_sandboxed(
    service, store, esms_standin
):
    record = await sandbox_approved(service)
    stuck = store.sends.transition(
        record["id"], SendState.SUBMITTING, actor="system", expect={SendState.APPROVED}
    )
    poller = make_poller(service, FakeClock(at(stuck["updated_at"])).at(minutes=3))
    assert await poller.reconcile() == {"unstuck": 1, "sandboxed": 1}
    moves = [(e["from_state"], e["to_state"]) for e in store.audit.for_send(record["id"])]
    assert moves[-2:] == [("submitting", "unknown"), ("unknown", "sandboxed")]


# --- giving up -------------------------------------------------------------------------------


async def test_after_the_templates_timeout_the_send_becomes_unknown(service, store, esms_standin):
    record = await accepted(service)
    clock = FakeClock(at(record["accepted_at"]))
    poller = make_poller(service, clock)
    for minutes in (1, 2, 5, 20, 35, 50, 65, 80, 95, 110, 125):
        clock.at(minutes=minutes)
        await poller.poll()
    # The last regular poll is held back to the deadline: the window plus a grace period.
    waiting = store.sends.get(record["id"])
    assert waiting["state"] == "accepted"
    deadline = at(waiting["next_poll_at"])
    assert deadline == clock.start + TEMPLATE_TIMEOUT + timedelta(minutes=15)

    clock.now = deadline
    assert await poller.poll() == {"gave_up": 1}
    unknown = store.sends.get(record["id"])
    assert unknown["state"] == "unknown"
    assert unknown["unknown_reason"] == (
        "no delivery report from eSMS within the template's 2 h delivery window"
    )
    (event,) = [e for e in store.audit.for_send(record["id"]) if e["to_state"] == "unknown"]
    assert event["actor"] == "esms-poll" and event["from_state"] == "accepted"
    asked = queries(esms_standin)
    clock.at(hours=5)
    await poller.poll()
    assert queries(esms_standin) == asked  # no longer polled


async def test_reconcile_leaves_a_given_up_send_unknown_until_a_final_report(
    service, store, esms_standin
):
    record = await accepted(service)
    clock = FakeClock(at(record["accepted_at"])).at(hours=3)
    poller = make_poller(service, clock)
    assert await poller.poll() == {"gave_up": 1}

    clock.at(hours=3, minutes=1)
    assert await poller.reconcile() == {}  # first reconcile only after a pause
    clock.at(hours=3, minutes=2)
    assert await poller.reconcile() == {"pending": 1}  # still pending: no loop back to polling
    assert store.sends.get(record["id"])["state"] == "unknown"

    esms_standin.deliver(record["sms_id"])
    clock.at(hours=3, minutes=3)
    assert await poller.reconcile() == {}  # not due again yet
    clock.at(hours=3, minutes=7)
    assert await poller.reconcile() == {"delivered": 1}
    assert store.sends.get(record["id"])["state"] == "delivered"
    # The send had a CallbackUrl, so the missed callback was replayed first.
    assert len(esms_standin.requests_to("GetCallback")) == 2


async def test_reconcile_gives_up_after_a_week(service, store, esms_standin):
    record = await accepted(service)
    clock = FakeClock(at(record["accepted_at"])).at(hours=3)
    poller = make_poller(service, clock)
    await poller.poll()
    clock.at(hours=3, minutes=2)
    await poller.reconcile()
    clock.at(days=7)  # 6 days 21 h after polling gave up
    assert await poller.reconcile() == {"pending": 1}
    clock.at(days=7, hours=4)
    assert await poller.reconcile() == {"stopped": 1}
    assert "7 days" in store.sends.get(record["id"])["reconcile_stopped"]
    clock.at(days=9)
    assert await poller.reconcile() == {}


# --- reconcile of a lost submit reply -------------------------------------------------------


async def lost_reply(service, esms_standin):
    """A send whose every submit attempt got a 502: eSMS may or may not have it."""
    record = await approved(service)
    esms_standin.inject(SEND, status=502, times=3)
    unknown = await service.submit(record["id"])
    assert unknown["state"] == "unknown" and not unknown.get("sms_id")
    return unknown


async def test_lost_reply_is_resubmitted_with_the_same_request_id_once(
    service, store, esms_standin
):
    record = await lost_reply(service, esms_standin)
    clock = FakeClock(at(record["updated_at"]))
    poller = make_poller(service, clock)
    assert await poller.reconcile() == {"accepted": 1}

    resumed = store.sends.get(record["id"])
    (sms_id,) = esms_standin.stored_sms_ids()  # eSMS holds exactly one message
    assert resumed["state"] == "accepted" and resumed["sms_id"] == sms_id
    assert {body["RequestId"] for body in esms_standin.sends()} == {record["id"]}
    assert esms_standin.sends()[-1]["CallbackUrl"].endswith(record["callback_token"])
    (event,) = [e for e in store.audit.for_send(record["id"]) if e["from_state"] == "unknown"]
    assert event["actor"] == "esms-reconcile" and "same RequestId" in event["reason"]

    # From here on it is an ordinary accepted send.
    esms_standin.deliver(sms_id)
    clock.at(seconds=30)
    assert await poller.poll() == {"delivered": 1}


async def test_already_submitted_without_smsid_is_noted_once_and_left_unknown(
    service, store, esms_client, esms_standin
):
    record = await approved(service)
    # An earlier attempt reached eSMS, but its reply (with the SMSID) never came back.
    await esms_client.send_zns(service._message(record, request_id=record["id"]))
    unknown = await service.submit(record["id"])
    assert unknown["state"] == "unknown" and "124" in unknown["unknown_reason"]
    clock = FakeClock(at(unknown["updated_at"]))
    poller = make_poller(service, clock)

    assert await poller.reconcile() == {"stopped": 1}
    stopped = store.sends.get(record["id"])
    assert stopped["state"] == "unknown"
    assert "eSMS has it but gave no SMSID" in stopped["reconcile_stopped"]
    sent = len(esms_standin.sends())
    clock.at(hours=2)
    assert await poller.reconcile() == {}
    assert len(esms_standin.sends()) == sent
    notes = [e for e in store.audit.for_send(record["id"]) if e["action"] == "update"]
    assert len(notes) == 1 and "gave no SMSID" in notes[0]["reason"]
    assert len(esms_standin.stored_sms_ids()) == 1


async def test_a_definite_refusal_on_resubmit_fails_the_send(service, store, esms_standin):
    record = await lost_reply(service, esms_standin)
    esms_standin.inject(SEND, code=789)
    poller = make_poller(service, FakeClock(at(record["updated_at"])))
    assert await poller.reconcile() == {"failed": 1}
    failed = store.sends.get(record["id"])
    assert failed["state"] == "failed" and failed["error_code"] == 789


async def test_a_transient_error_on_resubmit_retries_later_not_sooner(service, store, esms_standin):
    record = await lost_reply(service, esms_standin)
    clock = FakeClock(at(record["updated_at"]))
    poller = make_poller(service, clock)
    esms_standin.inject(SEND, status=502, times=3)
    assert await poller.reconcile() == {"pending": 1}
    waiting = store.sends.get(record["id"])
    assert waiting["state"] == "unknown" and "502" in waiting["check_error"]
    assert at(waiting["next_reconcile_at"]) == clock.start + timedelta(minutes=2)
    sent = len(esms_standin.sends())
    clock.at(minutes=1)
    assert await poller.reconcile() == {}
    assert len(esms_standin.sends()) == sent
    clock.at(minutes=2)
    assert await poller.reconcile() == {"accepted": 1}
    assert len(esms_standin.stored_sms_ids()) == 1


async def test_no_resubmit_once_esms_may_have_forgotten_the_request_id(
    service, store, esms_standin
):
    record = await lost_reply(service, esms_standin)
    sent = len(esms_standin.sends())
    poller = make_poller(service, FakeClock(at(record["updated_at"])).at(hours=23, minutes=30))
    assert await poller.reconcile() == {"stopped": 1}
    assert len(esms_standin.sends()) == sent
    stopped = store.sends.get(record["id"])
    assert stopped["state"] == "unknown" and "24 h" in stopped["reconcile_stopped"]


async def test_a_send_stuck_submitting_after_a_crash_is_reconciled(service, store, esms_standin):
    record = await approved(service)
    # The process died right after this transition, before eSMS was asked.
    stuck = store.sends.transition(
        record["id"], SendState.SUBMITTING, actor="system", expect={SendState.APPROVED}
    )
    clock = FakeClock(at(stuck["updated_at"]))
    poller = make_poller(service, clock)
    clock.at(seconds=90)
    assert await poller.reconcile() == {}  # a slow submit may still be running
    assert store.sends.get(record["id"])["state"] == "submitting"
    clock.at(minutes=3)
    assert await poller.reconcile() == {"unstuck": 1, "accepted": 1}
    done = store.sends.get(record["id"])
    assert done["state"] == "accepted" and done["sms_id"] in esms_standin.stored_sms_ids()
    moves = [(e["from_state"], e["to_state"]) for e in store.audit.for_send(record["id"])]
    assert moves[-2:] == [("submitting", "unknown"), ("unknown", "accepted")]


# --- staying under eSMS's rate limits -------------------------------------------------------


def test_rate_limiter_spaces_calls_under_the_limit():
    now = [100.0]
    limiter = RateLimiter(80, clock=lambda: now[0])
    waits = [limiter.reserve() for _ in range(300)]
    assert waits[0] == 0
    assert all(b - a == pytest.approx(1 / 80) for a, b in pairwise(waits))
    starts = [now[0] + w for w in waits]
    for first in starts:  # no window of one second holds more than rate + 1 calls
        assert sum(first <= s < first + 1 for s in starts) <= 81
    now[0] += 10  # idle long enough: the next call goes at once
    assert limiter.reserve() == 0
    limiter.pause(2)
    assert limiter.reserve() == pytest.approx(2)


async def test_poll_goes_through_the_limiter_with_bounded_concurrency(
    service, store, esms_standin, monkeypatch
):
    records = [await accepted(service) for _ in range(12)]
    waits = []

    async def sleep(seconds):
        waits.append(seconds)

    limiter = RateLimiter(50, clock=lambda: 0.0, sleep=sleep)
    in_flight = peak = 0
    real = service.client.query_zns_status

    async def query(sms_id):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await asyncio.sleep(0)
            return await real(sms_id)
        finally:
            in_flight -= 1

    monkeypatch.setattr(service.client, "query_zns_status", query)
    clock = FakeClock(at(records[-1]["accepted_at"])).at(seconds=30)
    poller = make_poller(service, clock, query_limiter=limiter, concurrency=3, poll_batch=8)

    assert await poller.poll() == {"pending": 8, "deferred": 4}
    assert peak <= 3
    # Every request waited for its own slot, 1/50 s after the one before.
    assert waits == pytest.approx([n / 50 for n in range(1, 8)])
    assert queries(esms_standin) == 8
    # The oldest (most overdue) went first; the rest come on the next run.
    polled = {r["id"] for r in records if store.sends.get(r["id"]).get("poll_count")}
    assert polled == {r["id"] for r in records[:8]}
    assert await poller.poll() == {"pending": 4}
    assert queries(esms_standin) == 12


def test_human_durations():
    assert human(timedelta(seconds=30)) == "30 s"
    assert human(timedelta(minutes=15)) == "15 min"
    assert human(timedelta(hours=2)) == "2 h"
    assert human(timedelta(hours=2, minutes=15)) == "2 h 15 min"
    assert human(timedelta(days=7)) == "7 days"


async def test_both_jobs_are_scheduled_one_instance_at_a_time(service, store):
    from bot.jobs.relay import Relay
    from bot.jobs.scheduler import POLL_JOB, RECONCILE_JOB, build_scheduler

    scheduler = build_scheduler(service, Relay(store, poster=None), template_ttl=600)
    scheduler.start(paused=True)
    try:
        for job_id in (POLL_JOB, RECONCILE_JOB):
            job = scheduler.get_job(job_id)
            assert job.max_instances == 1 and job.coalesce is True
            assert isinstance(job.args[0], DeliveryPoller)
    finally:
        scheduler.shutdown(wait=False)


async def test_a_job_cancelled_by_shutdown_is_not_reported_as_a_failure(caplog):
    import asyncio
    import logging

    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from bot.jobs.scheduler import quiet_on_shutdown

    started, stopped = asyncio.Event(), asyncio.Event()

    async def busy_job() -> None:
        started.set()
        try:
            await asyncio.Event().wait()  # a job mid-way through a slow eSMS call
        finally:
            stopped.set()

    caplog.set_level(logging.INFO)
    scheduler = AsyncIOScheduler()
    scheduler.add_job(quiet_on_shutdown(busy_job), "date", id="busy")
    scheduler.start()
    await started.wait()
    scheduler.shutdown(wait=False)
    await stopped.wait()
    for _ in range(3):  # let the executor's done-callback run (loop steps, not time)
        await asyncio.sleep(0)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("stopped by shutdown" in r.getMessage() for r in caplog.records)
