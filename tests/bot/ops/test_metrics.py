"""Metrics: the /metrics text a Prometheus server would scrape, read back with its parser."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bot.ops.metrics import ESMS_BUCKETS, MAX_LABEL_VALUES, Metrics, clean_label
from storage.sends import SendState
from storage.store import Store
from tests.storage.storage_helpers import FakeClock

PHONE = "0901888484"


def scrape(metrics: Metrics) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample of one scrape: {sample name: {sorted labels: value}}."""
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[labels] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[name][tuple(sorted(labels.items()))]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[Store]:
    with Store.open(tmp_path, fsync=False, clock=clock) as opened:
        yield opened


def new_send(store: Store) -> str:
    return store.sends.create({"phone": PHONE, "template_id": "T1"}, actor="U_REQ")["id"]


def test_empty_store_reports_every_state_as_zero_and_an_empty_outbox(store, clock):
    samples = scrape(Metrics(store, clock=clock))

    assert samples["zns_sends"] == {(("state", str(s)),): 0.0 for s in SendState}
    assert value(samples, "zns_outbox_depth") == 0
    assert value(samples, "zns_outbox_oldest_age_seconds") == 0
    assert value(samples, "zns_store_up") == 1


def test_send_gauges_follow_transitions_at_scrape_time(store, clock):
    metrics = Metrics(store, clock=clock)
    first, second, third = new_send(store), new_send(store), new_send(store)

    samples = scrape(metrics)
    assert value(samples, "zns_sends", state="pending_approval") == 3
    assert value(samples, "zns_sends", state="approved") == 0

    store.sends.transition(first, SendState.APPROVED, actor="U_APP")
    store.sends.transition(first, SendState.SUBMITTING, actor="system")
    store.sends.transition(first, SendState.ACCEPTED, actor="system", sms_id="1234")
    store.sends.transition(first, SendState.DELIVERED, actor="esms")
    store.sends.transition(second, SendState.REJECTED, actor="U_APP", reason="wrong OA")
    store.sends.transition(third, SendState.APPROVED, actor="U_APP")

    samples = scrape(metrics)
    assert value(samples, "zns_sends", state="pending_approval") == 0
    assert value(samples, "zns_sends", state="approved") == 1
    assert value(samples, "zns_sends", state="delivered") == 1
    assert value(samples, "zns_sends", state="rejected") == 1
    assert value(samples, "zns_sends", state="accepted") == 0
    assert sum(samples["zns_sends"].values()) == 3


def test_outbox_gauges_show_depth_and_the_age_of_the_oldest_pending_item(store, clock):
    metrics = Metrics(store, clock=clock)
    store.outbox.add("post", {"text": "a"}, key="k1", channel="C1")
    clock.advance(30)
    store.outbox.add("post", {"text": "b"}, key="k2", channel="C1")
    clock.advance(12.5)

    samples = scrape(metrics)
    assert value(samples, "zns_outbox_depth") == 2
    assert value(samples, "zns_outbox_oldest_age_seconds") == pytest.approx(42.5)

    oldest = store.outbox.due(clock())[0]
    store.outbox.mark_done(oldest["id"], {"ok": True})
    samples = scrape(metrics)
    assert value(samples, "zns_outbox_depth") == 1
    assert value(samples, "zns_outbox_oldest_age_seconds") == pytest.approx(12.5)

    remaining = store.outbox.due(clock())[0]
    store.outbox.mark_done(remaining["id"], {"ok": True})
    samples = scrape(metrics)
    assert value(samples, "zns_outbox_depth") == 0
    assert value(samples, "zns_outbox_oldest_age_seconds") == 0


def test_store_can_be_attached_later_but_only_once(store, clock):
    metrics = Metrics()
    assert "zns_sends" not in scrape(metrics)

    metrics.attach_store(store, clock=clock)
    new_send(store)
    assert value(scrape(metrics), "zns_sends", state="pending_approval") == 1
    with pytest.raises(RuntimeError):
        metrics.attach_store(store, clock=clock)


def test_an_unreadable_store_does_not_break_the_scrape(store, clock, monkeypatch):
    metrics = Metrics(store, clock=clock)
    metrics.callback_received("delivered")

    def broken() -> dict[str, int]:
        raise OSError("disk gone")

    monkeypatch.setattr(store.sends, "count_by_state", broken)
    samples = scrape(metrics)
    assert value(samples, "zns_store_up") == 0
    assert "zns_sends" not in samples
    assert value(samples, "zns_callbacks_total", outcome="delivered") == 1


def test_counters_count_by_their_labels():
    metrics = Metrics()
    for outcome in ["delivered", "delivered", "failed", "bad_token", "duplicate"]:
        metrics.callback_received(outcome)
    metrics.poll_call("QueryZnsStatus/", "ok")
    metrics.poll_call("QueryZnsStatus", "ok")
    metrics.poll_call("GetCallback", "error")
    metrics.slack_error("chat.postMessage", "channel_not_found")
    metrics.slack_error("chat.postMessage", "channel_not_found")
    metrics.slack_error("views.open", "expired_trigger_id")

    samples = scrape(metrics)
    assert value(samples, "zns_callbacks_total", outcome="delivered") == 2
    assert value(samples, "zns_callbacks_total", outcome="failed") == 1
    assert value(samples, "zns_callbacks_total", outcome="bad_token") == 1
    assert value(samples, "zns_callbacks_total", outcome="duplicate") == 1
    # A trailing slash on an endpoint name does not split its series.
    assert value(samples, "zns_poll_calls_total", endpoint="QueryZnsStatus", result="ok") == 2
    assert value(samples, "zns_poll_calls_total", endpoint="GetCallback", result="error") == 1
    assert (
        value(
            samples,
            "zns_slack_api_errors_total",
            kind="chat.postMessage",
            error="channel_not_found",
        )
        == 2
    )
    assert (
        value(samples, "zns_slack_api_errors_total", kind="views.open", error="expired_trigger_id")
        == 1
    )


def test_esms_latency_fills_the_histogram_and_counts_codes():
    metrics = Metrics()
    metrics.esms_latency("SendZaloMessage_V4_post_json/", 0.003, "100")
    metrics.esms_latency("SendZaloMessage_V4_post_json/", 0.2, 100)
    metrics.esms_latency("SendZaloMessage_V4_post_json/", 20.0, "timeout")
    metrics.esms_latency("GetBalance_json", 0.04, None)

    samples = scrape(metrics)
    send = {"endpoint": "SendZaloMessage_V4_post_json"}
    assert value(samples, "zns_esms_request_seconds_count", **send) == 3
    assert value(samples, "zns_esms_request_seconds_sum", **send) == pytest.approx(20.203)
    assert value(samples, "zns_esms_request_seconds_bucket", le="0.005", **send) == 1
    assert value(samples, "zns_esms_request_seconds_bucket", le="0.25", **send) == 2
    assert value(samples, "zns_esms_request_seconds_bucket", le="15.0", **send) == 2
    assert value(samples, "zns_esms_request_seconds_bucket", le="30.0", **send) == 3
    buckets = {
        dict(labels)["le"]
        for labels in samples["zns_esms_request_seconds_bucket"]
        if dict(labels)["endpoint"] == "SendZaloMessage_V4_post_json"
    }
    assert buckets == {str(b) for b in ESMS_BUCKETS} | {"+Inf"}

    assert value(samples, "zns_esms_requests_total", code="100", **send) == 2
    assert value(samples, "zns_esms_requests_total", code="timeout", **send) == 1
    assert value(samples, "zns_esms_requests_total", endpoint="GetBalance_json", code="none") == 1


def test_gc_passes_fill_a_histogram_by_generation_and_keep_the_longest():
    metrics = Metrics()
    metrics.gc_pass(0, 0.0004)
    metrics.gc_pass(2, 0.12)
    metrics.gc_pass(2, 0.03)

    samples = scrape(metrics)
    assert value(samples, "zns_gc_pause_seconds_count", generation="0") == 1
    assert value(samples, "zns_gc_pause_seconds_count", generation="2") == 2
    assert value(samples, "zns_gc_pause_seconds_bucket", generation="2", le="0.05") == 1
    assert value(samples, "zns_gc_pause_max_seconds") == pytest.approx(0.12)


def test_phone_numbers_ids_and_query_strings_never_become_label_values():
    metrics = Metrics()
    metrics.callback_received(PHONE)
    metrics.slack_error("chat.postMessage", "zns-0f9c2a1b4d5e6f708192a3b4c5d6e7f8")
    metrics.esms_latency("GetBalance_json?ApiKey=KEY123&SecretKey=SEC456", 0.01, "100")

    body, _ = metrics.render()
    text = body.decode()
    assert PHONE not in text
    assert "0f9c2a1b4d5e6f70" not in text
    assert "KEY123" not in text and "SEC456" not in text
    samples = scrape(metrics)
    assert value(samples, "zns_callbacks_total", outcome="other") == 1
    assert value(samples, "zns_esms_requests_total", endpoint="GetBalance_json", code="100") == 1


def test_each_label_keeps_a_bounded_number_of_values():
    metrics = Metrics()
    for i in range(MAX_LABEL_VALUES + 25):
        metrics.slack_error("chat.postMessage", f"error_kind_{i}")

    series = scrape(metrics)["zns_slack_api_errors_total"]
    errors = {dict(labels)["error"] for labels in series}
    assert len(errors) == MAX_LABEL_VALUES + 1  # the first ones, then "other"
    assert "error_kind_0" in errors
    assert series[(("error", "other"), ("kind", "chat.postMessage"))] == 25
    # A value seen before the cap was reached keeps its own series.
    metrics.slack_error("chat.postMessage", "error_kind_0")
    series = scrape(metrics)["zns_slack_api_errors_total"]
    assert series[(("error", "error_kind_0"), ("kind", "chat.postMessage"))] == 2


def test_clean_label():
    assert clean_label("QueryZnsStatus/") == "QueryZnsStatus"
    assert clean_label("ZNS/GetQuota/") == "ZNS/GetQuota"
    assert clean_label(None) == "none"
    assert clean_label("") == "none"
    assert clean_label(124) == "124"
    assert clean_label("84901888484") == "other"
    assert clean_label("x" * 100) == "other"
    assert clean_label('bad "quote"\n') == "bad_quote"
    assert clean_label("///") == "none"


def test_instances_are_independent_and_leave_the_default_registry_alone(store, clock):
    before = generate_latest(REGISTRY)
    one, two = Metrics(store, clock=clock), Metrics()
    one.callback_received("delivered")
    one.esms_latency("GetBalance_json", 0.01, "100")
    two.callback_received("failed")

    first, second = scrape(one), scrape(two)
    assert first["zns_callbacks_total"] == {(("outcome", "delivered"),): 1.0}
    assert second["zns_callbacks_total"] == {(("outcome", "failed"),): 1.0}
    assert "zns_esms_requests_total" not in second
    assert "zns_sends" in first and "zns_sends" not in second
    assert one.registry is not two.registry and one.registry is not REGISTRY

    after = generate_latest(REGISTRY)
    assert b"zns_" not in after
    assert before.count(b"\n# HELP") == after.count(b"\n# HELP")
