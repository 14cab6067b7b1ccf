"""The record of opened modals: one use per request view, kept on disk, swept by age."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from storage.store import Store
from storage.views import REQUEST, REVIEW
from tests.storage.storage_helpers import FakeClock


def test_a_view_is_recorded_and_read_back_after_a_reopen(tmp_path: Path) -> None:
    clock = FakeClock()
    with Store.open(tmp_path, fsync=False, clock=clock) as store:
        store.views.opened("V1", REQUEST, user="U0A", channel="C0SUPPORT")
        store.views.opened("V2", REVIEW, user="U0B", send_id="zns-1", digest="d1")
    with Store.open(tmp_path, fsync=False, clock=clock) as store:
        request, review = store.views.get("V1"), store.views.get("V2")
        assert request is not None and review is not None
        assert (request["kind"], request["user"], request["channel"]) == (
            REQUEST,
            "U0A",
            "C0SUPPORT",
        )
        assert (review["send_id"], review["digest"]) == ("zns-1", "d1")
        assert store.views.get("V3") is None


def test_a_request_view_makes_one_send_however_often_it_is_used(tmp_path: Path) -> None:
    with Store.open(tmp_path, fsync=False) as store:
        store.views.opened("V1", REQUEST, user="U0A")
        assert store.views.use("V1", "zns-1") is True
        assert store.views.use("V1", "zns-2") is False
        assert store.views.use("V0NEVER", "zns-3") is False
        view = store.views.get("V1")
        assert view is not None and view["used_by"] == "zns-1"


def test_a_use_undone_with_its_transaction_leaves_the_view_usable(tmp_path: Path) -> None:
    with Store.open(tmp_path, fsync=False) as store:
        store.views.opened("V1", REQUEST, user="U0A")
        try:
            with store.db.transaction():
                store.views.use("V1", "zns-1")
                raise RuntimeError("the send could not be stored")
        except RuntimeError:
            pass
        assert store.views.use("V1", "zns-2") is True


def test_the_sweep_forgets_only_views_opened_before_the_cutoff(tmp_path: Path) -> None:
    clock = FakeClock()
    with Store.open(tmp_path, fsync=False, clock=clock) as store:
        for n in range(50):
            store.views.opened(f"OLD{n}", REQUEST, user="U0A")
        clock.advance(3600)
        store.views.opened("NEW", REVIEW, user="U0B", send_id="zns-1")
        assert store.views.sweep(clock.now - timedelta(seconds=1)) == 50
        assert store.views.count() == 1 and store.views.get("NEW") is not None
        assert store.views.sweep(clock.now - timedelta(seconds=1)) == 0
