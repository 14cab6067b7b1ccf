"""Delivery reports (callbacks, polls) turned into final send states, each change once."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.esms.types import DeliveryReport
from bot.esms.zalo import parse_callback, suggestion, zalo_reason
from bot.service import SendService
from storage.sends import FINAL_STATES, SendRecord, SendState

DONE = 5  # SendStatus: processing finished; SendSuccess / SendFailed say how
REJECTED_BY_ESMS = 4
PROGRESS = {1: "waiting for eSMS approval", 2: "waiting to be sent", 7: "sent, awaiting report"}
# States a delivery report may move a send out of.
TRACKED = frozenset({SendState.ACCEPTED, SendState.UNKNOWN})


class Applied(enum.StrEnum):
    """What one delivery report did to its send. The values are metric labels: kept as is."""

    DELIVERED = "delivered"
    FAILED = "failed"
    PROGRESS = "progress"  # a new intermediate status, recorded
    STALE = "stale"  # the send had already ended (or moved on meanwhile)
    NONE = "none"  # nothing new
    EARLY = "early"  # the report beat eSMS's own reply to our submit


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a report means for a send: a final state with its reason, or progress."""

    state: SendState | None  # None: progress only, or nothing to conclude yet
    reason: str
    fields: dict[str, Any]


def outcome_of(report: DeliveryReport) -> Outcome:
    """Read one report: status 5 + SendSuccess ≥ 1 is delivered, + SendFailed ≥ 1 is failed."""
    status = report.send_status
    if status == DONE and report.send_success >= 1:
        return Outcome(SendState.DELIVERED, "delivered to the customer's Zalo", {})
    if (status == DONE and report.send_failed >= 1) or status == REJECTED_BY_ESMS:
        code = report.error_code
        if status == REJECTED_BY_ESMS and code in (None, 0):
            reason = "eSMS rejected the message"
        else:
            reason = zalo_reason(code)
        coded = f"{reason} (Zalo code {code})" if code not in (None, 0) else reason
        return Outcome(
            SendState.FAILED,
            coded,
            {
                "error": coded,
                "error_code": code,
                "error_category": "delivery",
                "suggestion": suggestion(code),
            },
        )
    if status in PROGRESS:
        return Outcome(None, PROGRESS[status], {"progress": status})
    return Outcome(None, f"no conclusion from SendStatus {status}", {})


class DeliveryTracker:
    """Applies delivery reports to sends through the workflow's compare-and-set transitions."""

    def __init__(self, service: SendService) -> None:
        self.service = service
        self.store = service.store

    @staticmethod
    def parse(query: Mapping[str, str]) -> DeliveryReport:
        """A callback's query string as a report; InputError when it is malformed."""
        return parse_callback(query)

    def apply(self, record: SendRecord, report: DeliveryReport, *, source: str) -> Applied:
        """Apply one report; return what happened: delivered, failed, progress, stale, none.

        A final state never moves: a late "pending" after "delivered" is `stale`.
        """
        outcome = outcome_of(report)
        state = SendState(record["state"])
        if state in FINAL_STATES:
            return Applied.STALE
        if outcome.state is None:
            if (
                outcome.fields.get("progress")
                and record.get("progress") != outcome.fields["progress"]
            ):
                self.store.sends.update_fields(
                    record["id"],
                    actor=source,
                    reason=f"progress: {outcome.reason}",
                    progress=outcome.fields["progress"],
                )
                return Applied.PROGRESS
            return Applied.NONE
        if state not in TRACKED:
            # Still `submitting`: the callback beat our own submit reply. Keep its SMSID, so
            # that a lost reply still leaves something to look the result up by.
            if report.sms_id and not record.get("sms_id"):
                self.store.sends.update_fields(record["id"], sms_id=report.sms_id)
            return Applied.EARLY
        fields = dict(outcome.fields)
        if report.sms_id and not record.get("sms_id"):
            fields["sms_id"] = report.sms_id
        if report.total_price is not None:
            fields["price"] = report.total_price
        done = self.service.move(
            record["id"],
            outcome.state,
            actor=source,
            reason=outcome.reason,
            expect=set(TRACKED),
            **fields,
        )
        return Applied.STALE if done is None else Applied(outcome.state.value)
