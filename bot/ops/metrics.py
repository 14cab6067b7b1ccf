"""Prometheus metrics for one zns-bot process, on a registry of its own (never the global one).

The composition root creates one `Metrics` per process, hands it to the parts that count
things (callbacks, polling, Slack errors, eSMS latency) and serves `render()` at `/metrics`.
Store-derived gauges (sends by state, outbox depth and age) are read at scrape time by
`StoreCollector`, so they are never stale and need no bookkeeping elsewhere.

Label values are bounded: they are cleaned (no query strings, nothing that looks like a phone
number or an id) and each label keeps at most `MAX_LABEL_VALUES` distinct values, after which
new ones are counted as "other". A phone number or a send id can never become a time series.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from storage.clock import utcnow

if TYPE_CHECKING:
    from storage.store import Store

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

# eSMS answers in tens of milliseconds when healthy; the client's timeout is 15 s by default.
ESMS_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    15.0,
    30.0,
)

# Outcomes the callback endpoint reports; anything else is still counted, within the cap.
CALLBACK_OUTCOMES = frozenset(
    {
        "delivered",
        "failed",
        "progress",
        "duplicate",
        "bad_token",
        "malformed",
        "mismatch",
        "stale",
        "late",
    }
)

# A healthy loop wakes within a millisecond or two; Slack gives up on an ack after 3 s.
LAG_BUCKETS: tuple[float, ...] = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 3.0)

MAX_LABEL_VALUES = 50  # distinct values per label of one metric before "other"
MAX_LABEL_LENGTH = 64
OTHER = "other"
NONE = "none"

_ALLOWED_CHARS = re.compile(r"[^A-Za-z0-9_.:/-]+")
_LONG_NUMBER = re.compile(r"\d{6,}")  # phone numbers, SMSIDs, timestamps
_HEX_RUN = re.compile(r"[0-9a-fA-F]{16,}")  # uuids and tokens


def clean_label(value: object) -> str:
    """A label value that cannot carry personal data or an id; "other" when it might."""
    if value is None:
        return NONE
    text = _ALLOWED_CHARS.sub("_", str(value).split("?", 1)[0].strip()).strip("/_")
    if not text:
        return NONE
    if len(text) > MAX_LABEL_LENGTH or _LONG_NUMBER.search(text) or _HEX_RUN.search(text):
        return OTHER
    return text


class _LabelCap:
    """Remembers the values seen for one label and folds every value past the cap into "other"."""

    def __init__(self, limit: int = MAX_LABEL_VALUES) -> None:
        self._limit = limit
        self._seen: set[str] = set()
        self._known: dict[str, str] = {}  # raw text -> its label, for the values seen most
        self._lock = threading.Lock()

    def __call__(self, value: object) -> str:
        known = self._known.get(value) if isinstance(value, str) else None
        if known is not None:
            return known  # hot paths (a callback each) skip the cleaning
        label = clean_label(value)
        with self._lock:
            if label not in self._seen:
                if len(self._seen) >= self._limit:
                    return OTHER
                self._seen.add(label)
            if isinstance(value, str) and len(self._known) < 4 * self._limit:
                self._known[value] = label
            return label


class StoreCollector(Collector):
    """Gauges read from the store at scrape time: sends by state and the Slack outbox.

    Call `collect()` (that is, scrape) from the thread that owns the store: the event loop's.
    When the store cannot be read, `zns_store_up` is 0 and the store gauges are left out, so
    one bad scrape does not fail the whole `/metrics` answer.
    """

    def __init__(self, store: Store, clock: Clock = utcnow) -> None:
        self._store = store
        self._clock = clock

    def describe(self) -> Iterable[Metric]:
        # Names only, so registering never touches the store.
        return [
            GaugeMetricFamily("zns_store_up", ""),
            GaugeMetricFamily("zns_sends", "", labels=["state"]),
            GaugeMetricFamily("zns_outbox_depth", ""),
            GaugeMetricFamily("zns_outbox_oldest_age_seconds", ""),
            GaugeMetricFamily("zns_archive_lag_seconds", ""),
            GaugeMetricFamily("zns_audit_segment_bytes", ""),
            GaugeMetricFamily("zns_audit_last_seal_timestamp_seconds", ""),
        ]

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("zns_store_up", "1 when the store could be read for this scrape")
        try:
            counts = self._store.sends.count_by_state()
            depth = self._store.outbox.depth()
            now = self._clock()
            age = self._store.outbox.oldest_pending_age(now)
            lag = self._store.archive.lag(now)
            segment_bytes = self._store.archive.segments.size
            archive = self._store.archive.state
            last_seal = archive["last_seal_at"] if archive else None
        except Exception:
            log.warning("metrics: could not read the store", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up

        sends = GaugeMetricFamily(
            "zns_sends",
            "Sends in the live store, by state: sends not final yet, and final ones until they "
            "have been final for ZNS_LIVE_HOURS (the audit log keeps them after that)",
            labels=["state"],
        )
        for state, count in sorted(counts.items()):
            sends.add_metric([str(state)], count)
        yield sends
        yield GaugeMetricFamily(
            "zns_outbox_depth", "Slack posts queued in the outbox and not done yet", value=depth
        )
        yield GaugeMetricFamily(
            "zns_outbox_oldest_age_seconds",
            "Seconds since the oldest not-done outbox item was queued (0 when empty)",
            value=max(age, 0.0) if age is not None else 0.0,
        )
        yield GaugeMetricFamily(
            "zns_archive_lag_seconds",
            "Age of the oldest audit event not yet copied to its segment (0 when none waits)",
            value=lag,
        )
        yield GaugeMetricFamily(
            "zns_audit_segment_bytes", "Size of the current audit segment file", value=segment_bytes
        )
        yield GaugeMetricFamily(
            "zns_audit_last_seal_timestamp_seconds",
            "When an audit segment was last sealed (Unix time; 0 before the first seal)",
            value=datetime.fromisoformat(last_seal).timestamp() if last_seal else 0.0,
        )


class Metrics:
    """Every zns-bot metric, on a `CollectorRegistry` owned by this instance.

    `store` may be given now or later with `attach_store()` (at most once).
    """

    def __init__(self, store: Store | None = None, *, clock: Clock = utcnow) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._store_collector: StoreCollector | None = None
        if store is not None:
            self.attach_store(store, clock=clock)

        self._callbacks = Counter(
            "zns_callbacks",
            "eSMS delivery callbacks received, by what the bot made of them",
            ["outcome"],
            registry=self.registry,
        )
        self._callbacks_refused = Counter(
            "zns_callbacks_refused",
            "eSMS callbacks refused as bad input (changing nothing), by why: bad_token, "
            "malformed, mismatch, out_of_range",
            ["reason"],
            registry=self.registry,
        )
        self._poll_calls = Counter(
            "zns_poll_calls",
            "Status polling calls to eSMS, by endpoint and result",
            ["endpoint", "result"],
            registry=self.registry,
        )
        self._slack_errors = Counter(
            "zns_slack_api_errors",
            "Slack Web API calls that failed, by method (or kind) and Slack error code",
            ["kind", "error"],
            registry=self.registry,
        )
        self._esms_seconds = Histogram(
            "zns_esms_request_seconds",
            "Time taken by eSMS API calls (retries included), by endpoint",
            ["endpoint"],
            buckets=ESMS_BUCKETS,
            registry=self.registry,
        )
        self._esms_requests = Counter(
            "zns_esms_requests",
            "eSMS API calls, by endpoint and result code",
            ["endpoint", "code"],
            registry=self.registry,
        )
        self._loop_lag = Histogram(
            "zns_event_loop_lag_seconds",
            "How late the event loop woke a 10 ms timer: every pause it took, as felt inside",
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
        self._loop_lag_max = Gauge(
            "zns_event_loop_lag_max_seconds",
            "The longest event-loop pause since the process started",
            registry=self.registry,
        )
        self._gc_pause = Histogram(
            "zns_gc_pause_seconds",
            "How long each garbage-collector pass stopped the thread that ran it",
            ["generation"],
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
        self._gc_pause_max = Gauge(
            "zns_gc_pause_max_seconds",
            "The longest garbage-collector pass since the process started",
            registry=self.registry,
        )
        self._caps: dict[tuple[str, str], _LabelCap] = {}
        self._loop_max = 0.0
        self._gc_max = 0.0

    def attach_store(self, store: Store, *, clock: Clock = utcnow) -> None:
        """Expose the store's gauges from now on; a second store is refused."""
        if self._store_collector is not None:
            raise RuntimeError("this Metrics already reads a store")
        collector = StoreCollector(store, clock)
        self.registry.register(collector)
        self._store_collector = collector

    def loop_lag(self, seconds: float) -> None:
        """Record one wake-up of the loop-lag probe (bot/ops/loop_lag.py)."""
        self._loop_lag.observe(seconds)
        if seconds > self._loop_max:
            self._loop_max = seconds
            self._loop_lag_max.set(seconds)

    def gc_pass(self, generation: int, seconds: float) -> None:
        """Record one garbage-collector pass (bot/ops/heap.py)."""
        self._gc_pause.labels(generation=str(generation)).observe(seconds)
        if seconds > self._gc_max:
            self._gc_max = seconds
            self._gc_pause_max.set(seconds)

    def callback_received(self, outcome: str) -> None:
        """Count one eSMS callback: delivered, failed, progress, duplicate, bad_token, ..."""
        self._callbacks.labels(outcome=self._label("callbacks", "outcome", outcome)).inc()

    def callback_refused(self, reason: str) -> None:
        """Count one eSMS callback refused as bad input, by reason ("out_of_range", ...)."""
        self._callbacks_refused.labels(reason=self._label("refused", "reason", reason)).inc()

    def poll_call(self, endpoint: str, result: str) -> None:
        """Count one polling call (QueryZnsStatus, GetCallback, ...) and how it went."""
        self._poll_calls.labels(
            endpoint=self._label("poll", "endpoint", endpoint),
            result=self._label("poll", "result", result),
        ).inc()

    def slack_error(self, method_or_kind: str, error: str) -> None:
        """Count one failed Slack call, e.g. ("chat.postMessage", "channel_not_found")."""
        self._slack_errors.labels(
            kind=self._label("slack", "kind", method_or_kind),
            error=self._label("slack", "error", error),
        ).inc()

    def esms_latency(self, endpoint: str, seconds: float, code: str | int | None) -> None:
        """Record one eSMS call: its duration and its result code ("100", "124", "timeout")."""
        name = self._label("esms", "endpoint", endpoint)
        self._esms_seconds.labels(endpoint=name).observe(max(float(seconds), 0.0))
        self._esms_requests.labels(endpoint=name, code=self._label("esms", "code", code)).inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type, for the `/metrics` response."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def _label(self, metric: str, label: str, value: object) -> str:
        cap = self._caps.get((metric, label))
        if cap is None:
            cap = self._caps.setdefault((metric, label), _LabelCap())
        return cap(value)
