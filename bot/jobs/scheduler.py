"""Scheduled jobs as plain functions, and the APScheduler that runs them."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.delivery import DeliveryTracker
from bot.jobs.polling import DeliveryPoller, Step
from bot.jobs.relay import Relay
from bot.ops import heap
from bot.ops.logs import log_event
from bot.service import SendService
from storage.archiver import PassReport
from storage.sends import SendState
from storage.store import Store

log = logging.getLogger(__name__)

RELAY_JOB = "relay"
RELAY_INTERVAL_S = 2.0
POLL_JOB = "poll"
POLL_INTERVAL_S = 10.0  # how often due sends are looked for; each send has its own schedule
RECONCILE_JOB = "reconcile"
RECONCILE_INTERVAL_S = 60.0
ARCHIVE_JOB = "archive"


# A poll run worth a line in the log at INFO; the rest are routine.
NOTEWORTHY = (Step.DELIVERED, Step.FAILED, Step.GAVE_UP, Step.ERROR, Step.DEFERRED)


async def relay_job(relay: Relay) -> int:
    """Drain the outbox until nothing more is deliverable right now."""
    return await relay.run_until_idle()


def _counts(results: Mapping[Step, int]) -> dict[str, Any]:
    """A run's summary as log fields, one per step that happened (`delivered=2`)."""
    return {str(step): n for step, n in results.items() if n}


async def poll_job(poller: DeliveryPoller) -> int:
    """Ask eSMS about the accepted sends that are due; return how many were looked at."""
    results = await poller.poll()
    looked = sum(n for step, n in results.items() if step != Step.DEFERRED)
    if any(results[k] for k in NOTEWORTHY):
        log_event(log, "poll", **_counts(results))
    return looked


async def reconcile_job(poller: DeliveryPoller) -> int:
    """Settle sends whose outcome is unknown; return how many were looked at."""
    results = await poller.reconcile()
    looked = sum(n for step, n in results.items() if step != Step.DEFERRED)
    if looked:
        log_event(log, "reconcile", **_counts(results))
    return looked


RESUME_AFTER_S = 30.0


async def resume_job(service: SendService, now: datetime | None = None) -> int:
    """Submit approved sends whose submit never started (the process stopped right after
    the approval). The approved → submitting compare-and-set keeps this to one send."""
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=RESUME_AFTER_S)
    resumed = 0
    for record in service.store.sends.in_states({SendState.APPROVED}):
        decided = record.get("decided_at") or record["updated_at"]
        if datetime.fromisoformat(decided) <= cutoff:
            await service.submit(record["id"], actor="system")
            resumed += 1
    return resumed


async def expire_job(service: SendService) -> int:
    """End stale approvals, forget stale opened views, price requests a restart left
    unpriced; async so it runs on the loop, the only thread that owns the store."""
    expired = service.expire_stale()
    if expired:
        log_event(log, "expired stale approvals", expired=len(expired))
    # The same sweep forgets modals opened too long ago: the live store stays bounded.
    swept = service.sweep_views()
    if swept:
        log_event(log, "forgot opened views past their TTL", level=logging.DEBUG, views=swept)
    # And the App Home's records: homes not opened for a day, counts of past days.
    homes = service.homes.sweep()
    if any(homes.values()):
        log_event(log, "forgot old App Home records", level=logging.DEBUG, forgot=homes)
    repriced = await service.reprice_stale()
    if repriced:
        log_event(log, "priced requests whose estimate a restart lost", requests=repriced)
    return len(expired)


async def archive_job(store: Store) -> PassReport:
    """Move what may leave the live store to the audit segments; seal a past month."""
    started = time.monotonic()
    report = await store.archive.run()
    seconds = round(time.monotonic() - started, 3)  # the pass's span, for the history bench
    if report.sends or report.events or report.outbox or report.callbacks:
        await asyncio.to_thread(heap.release_free_memory)
    if report.sends or report.sealed:
        log_event(
            log,
            "archive",
            sends=report.sends,
            events=report.events,
            sealed=report.sealed,
            seconds=seconds,
        )
    return report


async def templates_job(service: SendService) -> None:
    oaids = {oa.oaid for oa in await service.catalogue.oas()}
    for oaid in sorted(oaids):
        await service.catalogue.refresh(oaid)


class _SkipNoise(logging.Filter):
    """A job still running when its next tick comes is expected here (max_instances=1 is the
    point), so APScheduler's warning about the skipped tick is noise, not news."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


def quiet_on_shutdown(job: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """A job cancelled by shutdown ends quietly: its state is in the store and the next start
    resumes it, so APScheduler's "raised an exception" traceback would be a false alarm."""

    @functools.wraps(job)
    async def run(*args: Any) -> Any:
        try:
            return await job(*args)
        except asyncio.CancelledError:
            log.info("job %s stopped by shutdown; it resumes at the next start", job.__name__)
            return None

    return run


def build_scheduler(
    service: SendService,
    relay: Relay,
    *,
    template_ttl: float,
    poller: DeliveryPoller | None = None,
    archive_every: float = 300.0,
) -> AsyncIOScheduler:
    """Every job, each at most one instance at a time; `poller` defaults to one on `service`."""
    scheduler_log = logging.getLogger("apscheduler.scheduler")
    if not any(isinstance(f, _SkipNoise) for f in scheduler_log.filters):
        scheduler_log.addFilter(_SkipNoise())
    scheduler = AsyncIOScheduler(
        timezone=UTC, job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 30}
    )
    scheduler.add_job(
        quiet_on_shutdown(relay_job),
        "interval",
        args=[relay],
        seconds=RELAY_INTERVAL_S,
        id=RELAY_JOB,
    )
    scheduler.add_job(
        quiet_on_shutdown(expire_job), "interval", args=[service], seconds=60, id="expire"
    )
    scheduler.add_job(
        quiet_on_shutdown(resume_job), "interval", args=[service], seconds=60, id="resume"
    )
    scheduler.add_job(
        quiet_on_shutdown(templates_job),
        "interval",
        args=[service],
        seconds=template_ttl,
        id="templates",
    )
    poller = poller or DeliveryPoller(service, DeliveryTracker(service))
    scheduler.add_job(
        quiet_on_shutdown(poll_job), "interval", args=[poller], seconds=POLL_INTERVAL_S, id=POLL_JOB
    )
    scheduler.add_job(
        quiet_on_shutdown(reconcile_job),
        "interval",
        args=[poller],
        seconds=RECONCILE_INTERVAL_S,
        id=RECONCILE_JOB,
    )
    scheduler.add_job(
        quiet_on_shutdown(archive_job),
        "interval",
        args=[service.store],
        seconds=archive_every,
        id=ARCHIVE_JOB,
    )
    return scheduler


def kick_relay(scheduler: AsyncIOScheduler, relay: Relay) -> None:
    """New outbox items: a running drain takes them, otherwise the relay job runs now."""
    if not relay.request_run():
        run_soon(scheduler, RELAY_JOB)


def run_soon(scheduler: AsyncIOScheduler, job_id: str) -> None:
    """Ask a job to run now instead of waiting for its interval (a no-op if stopped)."""
    job = scheduler.get_job(job_id)
    if job is not None and scheduler.running:
        job.modify(next_run_time=datetime.now(UTC))
