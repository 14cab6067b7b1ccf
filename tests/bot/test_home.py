"""The App Home's data: counts per day kept apart from the sends, one refresh per person."""

from datetime import UTC, datetime, timedelta

import pytest

from bot.config import Settings
from bot.home import HOME_GAP, HomeBook
from bot.posts import Kind
from bot.service import SendRequest, SendService
from storage.outbox import PENDING
from storage.sends import SendState
from storage.store import Store

OA = "4097311281936189049"
AGENT, APPROVER, OTHER = "U0AGENT01", "U0APPROVER1", "U0OTHER"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


START = datetime(2026, 12, 7, 17, 30, tzinfo=UTC)  # 00:30 on the 8th in Hanoi


def service_on(data_dir, store: Store) -> SendService:
    settings = Settings(_env_file=None, esms_oaid=OA, zns_data_dir=data_dir)
    # No eSMS here: nothing below submits, prices or asks for a quota.
    return SendService(settings=settings, store=store, client=None, catalogue=None)


@pytest.fixture
def clock():
    return Clock(START)


@pytest.fixture
def store(tmp_path, clock):
    with Store.open(tmp_path / "data", clock=clock, fsync=False, live_hours=0) as opened:
        yield opened


@pytest.fixture
def service(tmp_path, store):
    return service_on(tmp_path / "data", store)


def request(phone: str = "0901888484") -> SendRequest:
    return SendRequest(
        phone=phone,
        oaid=OA,
        template_id="205644",
        template_name="Order confirmation",
        params={"otp": "1"},
        ordered_params=("1",),
    )


def make(service: SendService, user: str = AGENT) -> str:
    # origin "cli": no card to post, so a final send may leave the live store at once
    return service.create(request(), actor=f"slack:{user}")["id"]


def pending_homes(store: Store) -> list[dict]:
    due = store.outbox.due_ids(store.clock() + timedelta(days=1))
    return [
        i
        for i in store.outbox.due(store.clock() + timedelta(days=1), len(due) + 1)
        if i["kind"] == Kind.HOME and i["status"] == PENDING
    ]


def test_a_day_is_counted_in_zns_timezone(service):
    assert service.homes.today() == "2026-12-08"  # 17:30 UTC is past midnight in Hanoi


def test_counts_follow_each_send_by_state_and_outlive_the_live_store(service, store):
    ids = [make(service) for _ in range(3)]
    service.approve(ids[0], actor=f"slack:{APPROVER}")
    service.reject(ids[1], actor=f"slack:{APPROVER}", reason="wrong number")
    service.cancel(ids[2], actor=f"slack:{AGENT}")
    day = service.homes.today()
    assert store.day_counts.of_day(day, [OA]) == {
        OA: {"approved": 1, "rejected": 1, "cancelled": 1}
    }
    # the two final sends leave the live store; they still count, and still list
    store.archive.run_sync(store.clock() + timedelta(hours=1))
    assert store.sends.find(ids[1]) is None and store.sends.find(ids[2]) is None
    assert store.day_counts.of_day(day, [OA])[OA]["rejected"] == 1
    mine = service.homes.mine(AGENT)
    assert [i.send_id for i in mine] == ids[::-1]  # newest first
    assert [i.state for i in mine] == ["cancelled", "rejected", "approved"]
    assert {i.phone for i in mine} == {"090****484"}  # masked, live or archived


def test_a_burst_of_changes_queues_one_publication_per_person(service, store):
    for user in (AGENT, APPROVER, OTHER):
        service.homes.opened(user, approver=user == APPROVER)
        store.homes.update(user, oas=[OA])
    assert len(pending_homes(store)) == 3  # one each, for the opening
    for _ in range(50):
        make(service)
    assert len(pending_homes(store)) == 3  # every change coalesced into the pending ones


def test_nobody_who_did_not_open_their_home_is_refreshed(service, store):
    make(service)
    assert pending_homes(store) == []


def test_a_refresh_waits_for_the_gap_after_the_last_publication(service, store, clock):
    book: HomeBook = service.homes
    store.homes.opened(OTHER, approver=False)
    store.homes.update(OTHER, oas=[OA])
    book.published(OTHER, "hash-1")
    make(service)  # a change OTHER sees: queued, not due before the gap
    (item,) = pending_homes(store)
    assert item["id"] not in store.outbox.due_ids(clock())
    clock.tick(HOME_GAP.total_seconds())
    assert item["id"] in store.outbox.due_ids(clock())
    # due on time: the relay may take it now; an urgent one (an open) at any time
    assert book.take(item["id"], OTHER)


def test_the_relay_defers_an_item_that_comes_too_early(service, store, clock):
    book: HomeBook = service.homes
    store.homes.opened(OTHER, approver=False)
    book.published(OTHER, "hash-1")
    item_id = store.outbox.add(Kind.HOME, {"user": OTHER}, key="home:x")
    assert not book.take(item_id, OTHER)
    assert item_id not in store.outbox.due_ids(clock())
    clock.tick(10)
    assert item_id in store.outbox.due_ids(clock())


def test_opening_makes_a_deferred_refresh_due_now(service, store, clock):
    store.homes.opened(OTHER, approver=False)
    store.homes.update(OTHER, oas=[OA])
    service.homes.published(OTHER, "hash-1")
    make(service)
    (item,) = pending_homes(store)
    service.homes.opened(OTHER, approver=False)
    assert [i["id"] for i in pending_homes(store)] == [item["id"]]  # the same item, now due
    assert item["id"] in store.outbox.due_ids(clock())


def test_approvers_see_what_waits_oldest_first_but_not_their_own(service, store):
    first, second = make(service), make(service)
    own = make(service, user=APPROVER)
    waiting = [r["id"] for r in service.homes.waiting(APPROVER)]
    assert waiting == [first, second] and own not in waiting
    service.settings.zns_allow_self_approval = True
    assert [r["id"] for r in service.homes.waiting(APPROVER)] == [first, second, own]


def test_sweep_keeps_the_live_store_bounded(service, store, clock):
    store.homes.opened(OTHER, approver=False)
    make(service)
    clock.tick(8 * 86400)
    store.homes.opened(AGENT, approver=False)
    swept = service.homes.sweep()
    assert swept == {"homes": 1, "days": 1, "recent": 0}
    assert store.homes.get(OTHER) is None and store.homes.get(AGENT) is not None
    assert store.day_counts.count() == 0
    clock.tick(31 * 86400)
    assert service.homes.sweep()["recent"] == 1


def test_a_send_moving_out_of_pending_refreshes_the_approvers(service, store):
    send_id = make(service)
    store.homes.opened(APPROVER, approver=True)  # sees no OA's counts: only what waits
    assert service.homes.moved(store.sends.get(send_id), SendState.PENDING_APPROVAL) == 1
