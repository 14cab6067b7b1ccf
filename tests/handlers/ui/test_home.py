"""The App Home view: within Slack's limits however long the lists, phones masked."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from bot.config import Settings
from bot.home import HomeData, HomeItem
from bot.service import SendService
from handlers.ui.blocks import CANCEL_ACTION, REVIEW_ACTION
from handlers.ui.home import HOME_NEXT_ACTION, HOME_PREV_ACTION, home_view
from standins.blockkit import check_view
from storage.store import Store
from tests.bot.test_home import OA, request

APPROVER = "U0APPROVER1"


@pytest.fixture
def service(tmp_path):
    now = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
    with Store.open(tmp_path / "data", clock=lambda: now, fsync=False) as store:
        settings = Settings(_env_file=None, esms_oaid=OA, zns_data_dir=tmp_path / "data")
        yield SendService(settings=settings, store=store, client=None, catalogue=None)


def buttons(view):
    found = []
    for block in view["blocks"]:
        for element in [block.get("accessory"), *block.get("elements", [])]:
            if element and element.get("type") == "button":
                found.append((element["action_id"], element["value"]))
    return found


def test_500_waiting_requests_and_20_of_mine_stay_within_slacks_limits(service):
    with service.store.db.transaction():
        for n in range(500):
            service.create(request(f"09018{n:05d}"), actor=f"slack:U{n % 7}AGENT")
        for n in range(25):
            service.create(request(f"09128{n:05d}"), actor=f"slack:{APPROVER}")
    data = service.homes.gather_now(APPROVER, approver=True)
    view = home_view(data)
    assert check_view(view, kinds=("home",)) == []  # what views.publish accepts
    assert len(view["blocks"]) <= 100
    reviews = [v for a, v in buttons(view) if a == REVIEW_ACTION]
    cancels = [v for a, v in buttons(view) if a == CANCEL_ACTION]
    assert len(reviews) == 20 and len(cancels) == 20  # a page of waiting; my last 20
    assert not set(reviews) & set(cancels)  # my own requests are not mine to approve
    text = json.dumps(view, ensure_ascii=False)
    assert "Waiting for your approval* (500)" in text and "1–20 of 500" in text
    assert (HOME_NEXT_ACTION, "1") in buttons(view)
    assert not any(a == HOME_PREV_ACTION for a, _ in buttons(view))
    assert "0901800000" not in text and "090****000" in text  # phones masked


def test_the_last_page_pages_back_only(service):
    with service.store.db.transaction():
        for _n in range(45):
            service.create(request(), actor="slack:U0AGENT01")
    service.store.homes.update(APPROVER, page=99)  # beyond the end: the last page
    view = home_view(service.homes.gather_now(APPROVER, approver=True))
    assert "41–45 of 45" in json.dumps(view, ensure_ascii=False)
    assert (HOME_PREV_ACTION, "1") in buttons(view)
    assert not any(a == HOME_NEXT_ACTION for a, _ in buttons(view))
    assert check_view(view, kinds=("home",)) == []


def test_someone_else_sees_no_approvals_and_the_default_oas_counts(service):
    service.create(request(), actor="slack:U0AGENT01")
    view = home_view(service.homes.gather_now("U0STRANGER", approver=False))
    text = json.dumps(view, ensure_ascii=False)
    assert "Waiting for your approval" not in text and buttons(view) == []
    assert "made no requests lately" in text
    assert f"OA `{OA}`" in text and "waiting for approval: *1*" in text
    assert "eSMS balance: unavailable" in text  # nothing cached, eSMS not asked here
    assert check_view(view, kinds=("home",)) == []


def test_long_names_and_markup_in_a_template_name_are_tamed():
    item = HomeItem(
        send_id="zns-1",
        template="<!channel> *bold* " + "x" * 5000,
        phone="090****484",
        state="delivered",
        created_at=(datetime(2026, 12, 7, tzinfo=UTC) - timedelta(hours=1)).isoformat(),
        requester="U0AGENT01",
        card_channel="C0APPROVALS",
        card_ts="1.2",
    )
    data = HomeData(user="U0AGENT01", approver=False, day="2026-12-07", mine=[item] * 20)
    view = home_view(data, {"zns-1": "https://example.slack.com/archives/C0APPROVALS/p12"})
    text = json.dumps(view, ensure_ascii=False)
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "|thread>" in text
    assert check_view(view, kinds=("home",)) == []
