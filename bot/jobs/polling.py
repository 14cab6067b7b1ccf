"""Delivery polling and reconciliation: the jobs that find out what became of accepted sends.

`DeliveryPoller.poll` asks eSMS's QueryZnsStatus about accepted sends on a backoff schedule
(30 s, 1 min, 2 min and 5 min after acceptance, then every 15 min) until a final report
arrives or the template's delivery window (`Timeout`) has passed; then the send becomes
`unknown`. `DeliveryPoller.reconcile` follows `unknown` sends up: it replays their callback
(GetCallback), asks QueryZnsStatus, or re-submits a send whose submit reply was lost with the
same RequestId, which eSMS deduplicates for 24 h, so it cannot send twice.

A sandbox send is checked by eSMS but never delivered, so it is never polled: once eSMS has
it, it ends `sandboxed`. The poller ends a sandbox send that an older release left
`accepted` the first time it sees it, and reconcile ends an `unknown` one once eSMS is found
to have it (re-submitted when no SMSID came back).

Every schedule lives in the send record (fields below, written without an audit event), so a
restarted process resumes where the last one stopped:

- `poll_count`, `next_poll_at` (ISO UTC), `timeout_ms` (the delivery window used), and
  `check_error` (the last eSMS error, for whoever looks at the record);
- `poll_gave_up_at`: set when polling gave up; reconcile then never moves the send back to
  `accepted` (it would only be given up again), it only applies a final report;
- `reconcile_count`, `next_reconcile_at`, `reconcile_since`, and `reconcile_stopped` (why
  reconcile will not try this send again; written once, audited).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.config import Settings
from bot.delivery import Applied, DeliveryTracker, outcome_of
from bot.errors import (
    ErrorCategory,
    EsmsError,
    EsmsNotYetError,
    EsmsThrottledError,
    TemplateError,
)
from bot.esms.types import DeliveryReport, SubmitOutcome
from bot.service import (
    FIRST_POLL_AFTER,
    SANDBOX_REASON,
    TAKEN_OUTCOMES,
    SendService,
    accepted_fields,
    sandbox_reason,
)
from storage.clock import Clock, iso, utcnow
from storage.sends import SendRecord, SendState

log = logging.getLogger(__name__)


class Step(enum.StrEnum):
    """What one poll or reconcile step did to a send; a run's summary counts them."""

    DELIVERED = "delivered"
    FAILED = "failed"
    STALE = "stale"
    ACCEPTED = "accepted"  # a lost submit found accepted after all
    PENDING = "pending"  # no answer yet: asked again later
    GAVE_UP = "gave_up"  # no answer within the template's timeout: outcome unknown
    STOPPED = "stopped"
    MOVED = "moved"  # a callback or a person got there first
    ERROR = "error"
    UNSTUCK = "unstuck"
    DEFERRED = "deferred"  # due, but past this run's batch
    SANDBOXED = "sandboxed"  # a sandbox send eSMS has: ended, nothing to wait for


FINAL_APPLIED = frozenset({Applied.DELIVERED, Applied.FAILED, Applied.STALE})
POLL_SOURCE = "esms-poll"
RECONCILE_SOURCE = "esms-reconcile"

# QueryZnsStatus after acceptance: at these offsets, then every POLL_EVERY after the last poll.
POLL_OFFSETS = (
    FIRST_POLL_AFTER,
    timedelta(minutes=1),
    timedelta(minutes=2),
    timedelta(minutes=5),
)
POLL_EVERY = timedelta(minutes=15)
POLL_MIN_GAP = timedelta(seconds=15)  # after a late run (a restart), no burst to catch up
DEFAULT_TIMEOUT = timedelta(hours=24)  # when the template's Timeout is unknown
# eSMS reports a send Zalo could not deliver in time (ErrorInfo 1001) only after the window
# ends, so the last poll waits this much longer.
GIVE_UP_GRACE = timedelta(minutes=15)

# Reconcile an unknown send after these delays, then every RECONCILE_EVERY, for at most
# RECONCILE_HORIZON (GetSendStatus keeps 7 days; after that nobody can tell).
RECONCILE_DELAYS = (
    timedelta(minutes=2),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(minutes=30),
)
RECONCILE_EVERY = timedelta(hours=1)
RECONCILE_HORIZON = timedelta(days=7)
# eSMS refuses a repeated RequestId for 24 h only; re-submitting later could send twice.
RESUBMIT_WINDOW = timedelta(hours=23)
STUCK_SUBMITTING = timedelta(minutes=2)  # at least; longer when a submit may take longer

POLL_BATCH = 500  # sends polled per run at most, most overdue first
RECONCILE_BATCH = 200
CONCURRENCY = 10
QUERY_RATE = 80.0  # QueryZnsStatus allows 100 req/s; the client's own retries need room
CALLBACK_RATE = 15.0  # GetCallback allows 20 req/s
SUBMIT_RATE = 10.0
THROTTLE_PAUSE_S = 1.0  # after eSMS code 160

# A re-submit refused with one of these was refused for good: the send failed.
DEFINITE_REFUSALS = frozenset(
    {
        ErrorCategory.CONFIG,
        ErrorCategory.BALANCE,
        ErrorCategory.BAD_INPUT,
        ErrorCategory.RECIPIENT,
    }
)


class RateLimiter:
    """Spaces calls at least 1/rate seconds apart, across every caller sharing it.

    Each `acquire` claims the next free slot and sleeps until it, so no window of one second
    ever holds more than `rate` + 1 calls, however many tasks wait at once.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._next = float("-inf")

    def reserve(self) -> float:
        """Claim the next slot; return how many seconds until it starts (0 when now)."""
        now = self._clock()
        slot = max(now, self._next)
        self._next = slot + self.interval
        return slot - now

    async def acquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            await self._sleep(wait)

    def pause(self, seconds: float) -> None:
        """Hold every caller back for `seconds` (eSMS said we were too fast)."""
        self._next = max(self._next, self._clock() + seconds)


def poll_delay_after(count: int) -> timedelta | None:
    """The offset from acceptance of poll number `count` + 1, or None once on POLL_EVERY."""
    return POLL_OFFSETS[count] if count < len(POLL_OFFSETS) else None


def human(delta: timedelta) -> str:
    """A duration as people write it: `2 h`, `90 s`, `1 h 30 min`."""
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    if not hours:
        return f"{minutes} min"
    if hours >= 48 and not hours % 24 and not minutes:
        return f"{hours // 24} days"
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def longest_submit(settings: Settings) -> timedelta:
    """An upper bound on one submit with all its retries, so a slow one is never taken for
    a lost one: each attempt may spend the timeout on connect, write and read, and the
    backoff doubles (with up to a quarter of jitter) between attempts."""
    attempts = settings.esms_max_attempts
    waiting = 3 * settings.esms_timeout * attempts
    backoff = 1.25 * settings.esms_retry_backoff * (2 ** (attempts - 1) - 1)
    return timedelta(seconds=waiting + backoff + 10)


def _at(value: Any) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _since(record: SendRecord) -> datetime:
    """When polling's clock started for a send: its acceptance (or its last change)."""
    moment = _at(record.get("accepted_at")) or _at(record.get("updated_at"))
    assert moment is not None
    return moment


@dataclass(frozen=True, slots=True)
class _Polled:
    """One send's poll: what eSMS said (or the error) and the send's delivery window."""

    send_id: str
    now: datetime
    deadline: datetime
    timeout: timedelta
    report: DeliveryReport | None
    error: EsmsError | None


class DeliveryPoller:
    """The poll and reconcile jobs; every decision is read from and written to the store."""

    def __init__(
        self,
        service: SendService,
        tracker: DeliveryTracker,
        *,
        clock: Clock = utcnow,
        query_limiter: RateLimiter | None = None,
        callback_limiter: RateLimiter | None = None,
        submit_limiter: RateLimiter | None = None,
        concurrency: int = CONCURRENCY,
        poll_batch: int = POLL_BATCH,
        reconcile_batch: int = RECONCILE_BATCH,
    ) -> None:
        self.service = service
        self.tracker = tracker
        self.store = service.store
        self.client = service.client
        self.clock = clock
        # One limiter per endpoint, shared by both jobs: the limits are per account.
        self.query_limiter = query_limiter or RateLimiter(QUERY_RATE)
        self.callback_limiter = callback_limiter or RateLimiter(CALLBACK_RATE)
        self.submit_limiter = submit_limiter or RateLimiter(SUBMIT_RATE)
        self.concurrency = concurrency
        self.count: Callable[[str, str], None] = lambda endpoint, result: None
        self.poll_batch = poll_batch
        self.reconcile_batch = reconcile_batch
        self.stuck_after = max(STUCK_SUBMITTING, longest_submit(service.settings))

    # --- poll ----------------------------------------------------------------------------

    async def poll(self) -> Counter[Step]:
        """Poll the accepted sends that are due; return what happened to them, by outcome."""
        now = self.clock()
        # Stored times are fixed-width UTC text, so they compare as strings: no parsing of
        # every accepted send on each run.
        cutoff, first_cutoff = iso(now), iso(now - POLL_OFFSETS[0])

        def due_at(record: SendRecord) -> str | None:
            if record.get("sandbox"):
                # Left accepted by a release before 0.2: eSMS never delivers a sandbox send,
                # so it ends now, first in line, without asking eSMS anything.
                return ""
            scheduled = record.get("next_poll_at")
            if scheduled:
                return scheduled if scheduled <= cutoff else None
            # Never polled, and accepted before next_poll_at was written at acceptance.
            since = record.get("accepted_at") or record.get("updated_at") or ""
            return since if since <= first_cutoff else None

        due, count = await self.store.sends.earliest({SendState.ACCEPTED}, due_at, self.poll_batch)
        results: Counter[Step] = Counter()
        if count > len(due):
            results[Step.DEFERRED] = count - len(due)
        results.update(
            self._end_sandbox(r, POLL_SOURCE, expect=SendState.ACCEPTED)
            for r in due
            if r.get("sandbox")
        )
        gate = asyncio.Semaphore(self.concurrency)
        outcomes = await asyncio.gather(
            *(self._poll_one(r, now, gate) for r in due if not r.get("sandbox"))
        )
        results.update(outcomes)
        return results

    def _end_sandbox(
        self,
        record: SendRecord,
        source: str,
        *,
        expect: SendState,
        reason: str = SANDBOX_REASON,
        **fields: Any,
    ) -> Step:
        """A sandbox send eSMS has → sandboxed: its final state, said once in its thread."""
        moved = self.service.move(
            record["id"],
            SendState.SANDBOXED,
            actor=source,
            reason=reason,
            expect={expect},
            **fields,
        )
        return Step.SANDBOXED if moved is not None else Step.MOVED

    async def _poll_one(self, record: SendRecord, now: datetime, gate: asyncio.Semaphore) -> Step:
        send_id = record["id"]
        try:
            timeout, learned = await self._timeout(record)
            deadline = _since(record) + timeout + GIVE_UP_GRACE
            report, error = None, None
            if record.get("sms_id"):
                report, error = await self._query(record["sms_id"], gate)
            polled = _Polled(send_id, now, deadline, timeout, report, error)
            # What this poll learned is written as one line whose fsync is shared with
            # whatever else is being written (off the event loop).
            with self.store.db.transaction(sync=False):
                outcome = self._conclude(polled, learned)
            await self.store.synced()
            return outcome
        except Exception:
            log.exception("polling send=%s failed; trying again later", send_id)
            return Step.ERROR

    def _conclude(self, polled: _Polled, learned_timeout_ms: int | None) -> Step:
        send_id, report = polled.send_id, polled.report
        fresh: SendRecord | None = self.store.sends.find(send_id)
        if fresh is None or fresh["state"] != SendState.ACCEPTED:
            return Step.MOVED  # a callback (or a person) got there first
        if learned_timeout_ms is not None:
            fresh = self.store.sends.update_fields(send_id, timeout_ms=learned_timeout_ms)
        if report is not None:
            applied = self.tracker.apply(fresh, report, source=POLL_SOURCE)
            if applied in FINAL_APPLIED:
                return Step(applied)
        return self._reschedule(polled)

    async def _timeout(self, record: SendRecord) -> tuple[timedelta, int | None]:
        """The template's delivery window, and its ms when newly learned (to keep in the
        record, so it is looked up once)."""
        stored = record.get("timeout_ms")
        if isinstance(stored, int) and stored > 0:
            return timedelta(milliseconds=stored), None
        default_ms = int(DEFAULT_TIMEOUT.total_seconds() * 1000)
        try:
            template = await self.service.catalogue.get(record["template_id"], record["oaid"])
            timeout_ms = template.timeout_ms or default_ms
        except TemplateError:  # the template is gone: its Timeout will not come back
            timeout_ms = default_ms
        except Exception as exc:  # eSMS unreachable: the default serves this run only
            log.info("no template Timeout for send=%s (%s); using 24 h", record["id"], exc)
            return DEFAULT_TIMEOUT, None
        return timedelta(milliseconds=timeout_ms), timeout_ms

    async def _query(
        self, sms_id: str, gate: asyncio.Semaphore
    ) -> tuple[DeliveryReport | None, EsmsError | None]:
        async with gate:
            await self.query_limiter.acquire()
            try:
                report = await self.client.query_zns_status(sms_id)
            except EsmsNotYetError as exc:  # 105/854: eSMS has nothing yet
                self.count("QueryZnsStatus", "not_yet")
                return None, exc
            except EsmsThrottledError as exc:
                self.count("QueryZnsStatus", "throttled")
                self.query_limiter.pause(THROTTLE_PAUSE_S)
                log.warning("eSMS throttled QueryZnsStatus; slowing down")
                return None, exc
            except EsmsError as exc:
                self.count("QueryZnsStatus", "error")
                log.warning("QueryZnsStatus for SMSID %s failed: %s", sms_id, exc)
                return None, exc
            self.count("QueryZnsStatus", "ok")
            return report, None

    def _reschedule(self, polled: _Polled) -> Step:
        send_id, now, deadline = polled.send_id, polled.now, polled.deadline
        timeout, report, error = polled.timeout, polled.report, polled.error
        record = self.store.sends.get(send_id)
        count = int(record.get("poll_count") or 0) + (1 if record.get("sms_id") else 0)
        checked = _check_fields(record, error)
        if now >= deadline:
            last = (
                f"last check: {error}"
                if error is not None and not isinstance(error, EsmsNotYetError)
                else f"eSMS: {outcome_of(report).reason}"
                if report is not None
                else "eSMS has no status for it"
            )
            window = f"the template's {human(timeout)} delivery window"
            moved = self.service.move(
                send_id,
                SendState.UNKNOWN,
                actor=POLL_SOURCE,
                reason=f"no delivery report within {window} (+{human(GIVE_UP_GRACE)}); {last}",
                expect={SendState.ACCEPTED},
                unknown_reason=f"no delivery report from eSMS within {window}",
                poll_count=count,
                poll_gave_up_at=iso(now),
                next_reconcile_at=iso(now + RECONCILE_DELAYS[0]),
                reconcile_count=1,
                reconcile_since=iso(now),
                **checked,
            )
            return Step.GAVE_UP if moved is not None else Step.MOVED
        if record.get("sms_id"):
            offset = poll_delay_after(count)
            planned = _since(record) + offset if offset is not None else now + POLL_EVERY
            upcoming = min(max(planned, now + POLL_MIN_GAP), deadline)
        else:
            upcoming = deadline  # nothing to ask eSMS about; a callback may still come
        self.store.sends.update_fields(
            send_id, poll_count=count, next_poll_at=iso(upcoming), **checked
        )
        if error is None or isinstance(error, EsmsNotYetError):
            return Step.PENDING
        return Step.ERROR

    # --- reconcile -----------------------------------------------------------------------

    async def reconcile(self) -> Counter[Step]:
        """Settle sends whose outcome is unknown; return what happened, by outcome."""
        now = self.clock()
        results: Counter[Step] = Counter()
        for record in self.store.sends.in_states({SendState.SUBMITTING}):
            # Conservative: any later bookkeeping only makes the send look younger.
            last_change = _at(record.get("updated_at"))
            if last_change is not None and now - last_change >= self.stuck_after:
                moved = self.service.move(
                    record["id"],
                    SendState.UNKNOWN,
                    actor=RECONCILE_SOURCE,
                    reason=(
                        f"still submitting after {human(self.stuck_after)}: the bot stopped "
                        "before eSMS answered"
                    ),
                    expect={SendState.SUBMITTING},
                    unknown_reason="the bot stopped while submitting it; checking with eSMS",
                )
                if moved is not None:
                    results[Step.UNSTUCK] += 1
        cutoff = iso(now)

        def due_at(record: SendRecord) -> str | None:
            if record.get("reconcile_stopped"):
                return None
            scheduled = record.get("next_reconcile_at") or ""
            return scheduled if scheduled <= cutoff else None

        due, count = await self.store.sends.earliest(
            {SendState.UNKNOWN}, due_at, self.reconcile_batch
        )
        if count > len(due):
            results[Step.DEFERRED] = count - len(due)
        # A sandbox send with an SMSID was accepted, and eSMS never delivers it: nothing to ask.
        results.update(
            self._end_sandbox(r, RECONCILE_SOURCE, expect=SendState.UNKNOWN)
            for r in due
            if r.get("sandbox") and r.get("sms_id")
        )
        due = [r for r in due if not (r.get("sandbox") and r.get("sms_id"))]
        gate = asyncio.Semaphore(self.concurrency)
        known = [r for r in due if r.get("sms_id")]
        replayed = await self._replay_callbacks(known)
        outcomes = await asyncio.gather(
            *(self._reconcile_known(r, replayed.get(r["sms_id"]), now, gate) for r in known),
            *(self._resubmit(r, now, gate) for r in due if not r.get("sms_id")),
        )
        results.update(outcomes)
        return results

    async def _replay_callbacks(self, records: list[SendRecord]) -> dict[str, DeliveryReport]:
        """GetCallback for the sends made with a CallbackUrl, per OA (≤200 SMSIDs a call)."""
        by_oa: dict[str, list[str]] = {}
        for record in records:
            if self.service.callback_url(record) is not None:
                by_oa.setdefault(record["oaid"], []).append(record["sms_id"])
        reports: dict[str, DeliveryReport] = {}
        for oaid, sms_ids in by_oa.items():
            for start in range(0, len(sms_ids), 200):
                await self.callback_limiter.acquire()
                try:
                    found = await self.client.get_callbacks(sms_ids[start : start + 200], oaid)
                except EsmsError as exc:
                    if isinstance(exc, EsmsThrottledError):
                        self.callback_limiter.pause(THROTTLE_PAUSE_S)
                    log.warning("GetCallback for OA %s failed: %s", oaid, exc)
                    continue
                except Exception:
                    log.exception("GetCallback for OA %s failed", oaid)
                    continue
                reports.update((r.sms_id, r) for r in found if r.sms_id)
        return reports

    async def _reconcile_known(
        self,
        record: SendRecord,
        replayed: DeliveryReport | None,
        now: datetime,
        gate: asyncio.Semaphore,
    ) -> Step:
        send_id = record["id"]
        try:
            if replayed is not None and outcome_of(replayed).state is not None:
                fresh = self.store.sends.get(send_id)
                applied = self.tracker.apply(fresh, replayed, source=RECONCILE_SOURCE)
                if applied in FINAL_APPLIED:
                    return Step(applied)
            report, error = await self._query(record["sms_id"], gate)
            fresh = self.store.sends.get(send_id)
            if fresh["state"] != SendState.UNKNOWN:
                return Step.MOVED
            if report is not None:
                applied = self.tracker.apply(fresh, report, source=RECONCILE_SOURCE)
                if applied in FINAL_APPLIED:
                    return Step(applied)
                if not fresh.get("poll_gave_up_at"):
                    return self._resume_polling(
                        fresh,
                        now,
                        f"eSMS has it (SMSID {fresh['sms_id']}), still pending: "
                        f"{outcome_of(report).reason}; polling resumes",
                    )
            return self._reconcile_later(send_id, now, error)
        except Exception:
            log.exception("reconciling send=%s failed; trying again later", send_id)
            return self._later_after_crash(send_id, now)

    async def _resubmit(self, record: SendRecord, now: datetime, gate: asyncio.Semaphore) -> Step:
        """A lost submit reply: send again with the same RequestId (eSMS deduplicates it)."""
        send_id = record["id"]
        try:
            first = self._first_submit(record)
            # A sandbox send is never delivered: a second one could not reach anyone either.
            if now - first > RESUBMIT_WINDOW and not record.get("sandbox"):
                return self._stop(
                    send_id,
                    f"not re-submitted: over {human(RESUBMIT_WINDOW)} since the first submit, "
                    "and eSMS forgets RequestIds after 24 h, so a re-submit could send it twice",
                )
            message = self.service._message(
                record, request_id=send_id, callback_url=self.service.callback_url(record)
            )
            async with gate:
                await self.submit_limiter.acquire()
                try:
                    result = await self.client.send_zns(message)
                except EsmsError as exc:
                    return self._refused(send_id, now, exc)
            fresh = self.store.sends.get(send_id)
            if fresh["state"] != SendState.UNKNOWN:
                return Step.MOVED
            if fresh.get("sandbox") and result.outcome in TAKEN_OUTCOMES:
                return self._end_sandbox(
                    fresh,
                    RECONCILE_SOURCE,
                    expect=SendState.UNKNOWN,
                    reason=f"re-submitted with the same RequestId; {sandbox_reason(result.sms_id)}",
                    **accepted_fields(result.sms_id, now),
                )
            if result.outcome is SubmitOutcome.ACCEPTED or (
                result.outcome is SubmitOutcome.ALREADY_SUBMITTED and result.sms_id
            ):
                detail = f", SMSID {result.sms_id}" if result.sms_id else " (no SMSID given)"
                return self._resume_polling(
                    fresh,
                    now,
                    f"re-submitted with the same RequestId; accepted by eSMS{detail}",
                    sms_id=result.sms_id,
                    accepted_at=iso(now),
                )
            if result.outcome is SubmitOutcome.ALREADY_SUBMITTED:
                return self._stop(
                    send_id,
                    "eSMS has it but gave no SMSID (code 124: this RequestId was already "
                    "submitted); its delivery cannot be checked, so reconcile stops",
                )
            log.info("re-submit of send=%s got no answer: %s", send_id, result.detail)
            return self._reconcile_later(send_id, now, None, note=result.detail)
        except Exception:
            log.exception("re-submitting send=%s failed; trying again later", send_id)
            return self._later_after_crash(send_id, now)

    def _refused(self, send_id: str, now: datetime, exc: EsmsError) -> Step:
        if exc.category in DEFINITE_REFUSALS:
            moved = self.service.move(
                send_id,
                SendState.FAILED,
                actor=RECONCILE_SOURCE,
                reason=f"re-submitted with the same RequestId; eSMS refused it: {exc}",
                expect={SendState.UNKNOWN},
                error=str(exc),
                error_code=exc.code,
                error_category=exc.category.value,
            )
            return Step.FAILED if moved is not None else Step.MOVED
        if isinstance(exc, EsmsThrottledError):
            self.submit_limiter.pause(THROTTLE_PAUSE_S)
        log.warning("re-submit of send=%s failed: %s", send_id, exc)
        return self._reconcile_later(send_id, now, exc)

    def _first_submit(self, record: SendRecord) -> datetime:
        """When the send was first submitted (from the audit log; earlier times are safe)."""
        times = [
            _at(event.get("ts"))
            for event in self.store.audit.for_send(record["id"])
            if event.get("to_state") == SendState.SUBMITTING
        ]
        found = [t for t in times if t is not None]
        if found:
            return min(found)
        fallback = _at(record.get("decided_at")) or _at(record.get("created_at"))
        assert fallback is not None
        return fallback

    def _resume_polling(
        self, record: SendRecord, now: datetime, reason: str, **fields: Any
    ) -> Step:
        """unknown → accepted, with a fresh poll schedule."""
        fields.setdefault("accepted_at", record.get("accepted_at") or iso(now))
        moved = self.service.move(
            record["id"],
            SendState.ACCEPTED,
            actor=RECONCILE_SOURCE,
            reason=reason,
            expect={SendState.UNKNOWN},
            poll_count=0,
            next_poll_at=iso(now + POLL_OFFSETS[0]),
            **fields,
        )
        return Step.ACCEPTED if moved is not None else Step.MOVED

    def _later_after_crash(self, send_id: str, now: datetime) -> Step:
        """A crash still moves the next attempt on, so it cannot repeat every run forever."""
        try:
            self._reconcile_later(send_id, now, None, note="internal error; see the logs")
        except Exception:
            log.exception("could not reschedule send=%s", send_id)
        return Step.ERROR

    def _reconcile_later(
        self, send_id: str, now: datetime, error: EsmsError | None, *, note: str = ""
    ) -> Step:
        record = self.store.sends.get(send_id)
        if record["state"] != SendState.UNKNOWN:
            return Step.MOVED
        since = _at(record.get("reconcile_since")) or now
        if now - since > RECONCILE_HORIZON:
            return self._stop(
                send_id, f"no answer from eSMS within {human(RECONCILE_HORIZON)}; reconcile stops"
            )
        count = int(record.get("reconcile_count") or 0)
        delay = RECONCILE_DELAYS[count] if count < len(RECONCILE_DELAYS) else RECONCILE_EVERY
        fields = _check_fields(record, error)
        fields["reconcile_since"] = iso(since)
        if note and error is None:
            fields["check_error"] = note
        self.store.sends.update_fields(
            send_id, reconcile_count=count + 1, next_reconcile_at=iso(now + delay), **fields
        )
        return Step.PENDING if error is None or isinstance(error, EsmsNotYetError) else Step.ERROR

    def _stop(self, send_id: str, why: str) -> Step:
        """Reconcile gives up on a send: said once, in the audit log and the record."""
        record = self.store.sends.get(send_id)
        if record["state"] != SendState.UNKNOWN or record.get("reconcile_stopped"):
            return Step.MOVED
        self.store.sends.update_fields(
            send_id, actor=RECONCILE_SOURCE, reason=why, reconcile_stopped=why
        )
        log.warning("send=%s stays unknown: %s", send_id, why)
        return Step.STOPPED


def _check_fields(record: SendRecord, error: EsmsError | None) -> dict[str, Any]:
    """`check_error` as it should now read: the last real error, cleared by an answer."""
    if error is not None and not isinstance(error, EsmsNotYetError):
        return {"check_error": str(error)}
    if record.get("check_error"):
        return {"check_error": None}
    return {}
