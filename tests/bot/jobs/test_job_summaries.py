"""Job summaries are logged as fields (JSON keys in serve's log), not as Python reprs."""

import json
import logging
from collections import Counter
from typing import Any

import pytest

from bot.jobs.polling import Step
from bot.jobs.scheduler import poll_job, reconcile_job
from bot.ops.logs import JsonFormatter


class CannedPoller:
    """A poller whose runs return the given summaries (what the job does with them is tested)."""

    def __init__(self, results: Counter[Step]) -> None:
        self.results = results

    async def poll(self) -> Counter[Step]:
        return self.results

    async def reconcile(self) -> Counter[Step]:
        return self.results


def rendered(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    formatter = JsonFormatter()
    return [json.loads(formatter.format(r)) for r in caplog.records]


@pytest.mark.parametrize(("job", "event"), [(poll_job, "poll"), (reconcile_job, "reconcile")])
async def test_a_run_worth_a_line_logs_its_counts_as_fields(caplog, job, event):
    caplog.set_level(logging.INFO, logger="bot.jobs.scheduler")
    results = Counter({Step.DELIVERED: 2, Step.PENDING: 1, Step.FAILED: 0})
    looked = await job(CannedPoller(results))  # type: ignore[arg-type]
    assert looked == 3
    (line,) = rendered(caplog)
    assert line["msg"] == event
    assert line["delivered"] == 2 and line["pending"] == 1
    assert "failed" not in line  # a step that did not happen is not a field
    assert "{" not in line["msg"] and "Step" not in json.dumps(line)


async def test_a_routine_poll_logs_nothing(caplog):
    caplog.set_level(logging.DEBUG, logger="bot.jobs.scheduler")
    assert await poll_job(CannedPoller(Counter({Step.PENDING: 4}))) == 4  # type: ignore[arg-type]
    assert caplog.records == []
