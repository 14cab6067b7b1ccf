"""Scheduled jobs as plain functions, and the APScheduler that runs them."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.relay import Relay
from bot.service import SendService

log = logging.getLogger(__name__)

RELAY_JOB = "relay"
RELAY_INTERVAL_S = 2.0


async def relay_job(relay: Relay) -> int:
    """Drain the outbox until nothing more is deliverable right now."""
    return await relay.run_until_idle()


def expire_job(service: SendService) -> int:
    expired = service.expire_stale()
    if expired:
        log.info("expired %d stale approval(s)", len(expired))
    return len(expired)


async def templates_job(service: SendService) -> None:
    oaids = {oa.oaid for oa in await service.catalogue.oas()}
    for oaid in sorted(oaids):
        await service.catalogue.refresh(oaid)


class _SkipNoise(logging.Filter):
    """A job still running when its next tick comes is expected here (max_instances=1 is the
    point), so APScheduler's warning about the skipped tick is noise, not news."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


def build_scheduler(service: SendService, relay: Relay, *, template_ttl: float) -> AsyncIOScheduler:
    scheduler_log = logging.getLogger("apscheduler.scheduler")
    if not any(isinstance(f, _SkipNoise) for f in scheduler_log.filters):
        scheduler_log.addFilter(_SkipNoise())
    scheduler = AsyncIOScheduler(
        timezone=UTC, job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 30}
    )
    scheduler.add_job(relay_job, "interval", args=[relay], seconds=RELAY_INTERVAL_S, id=RELAY_JOB)
    scheduler.add_job(expire_job, "interval", args=[service], seconds=60, id="expire")
    scheduler.add_job(
        templates_job, "interval", args=[service], seconds=template_ttl, id="templates"
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
