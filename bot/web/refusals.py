"""Refused Slack requests: one short line for the first, then one summary a minute, no body."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping

from starlette.requests import Request

from bot.ops.logs import log_event

log = logging.getLogger(__name__)

WINDOW = 60.0  # seconds a flood of refusals is summed up over
MAX_AGE = 60 * 5  # what slack_sdk's SignatureVerifier accepts, either way
MAX_CALLERS = 5  # callers named in a summary (the busiest); the rest are only counted
_MAX_TRACKED = 1000  # distinct callers counted per window: a spoofed flood stays bounded


def refusal_reason(headers: Mapping[str, str], now: float) -> str:
    """Why Slack's signature check refused a request, from its headers alone (never the body)."""
    stamp = headers.get("x-slack-request-timestamp", "")
    if not stamp or not headers.get("x-slack-signature"):
        return "unsigned"
    # Slack's are Unix seconds: 10 digits. Anything else (or 400 nines, which int() takes but
    # float arithmetic does not) is no timestamp at all.
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 10):
        return "bad timestamp"
    sent = int(stamp)
    if abs(now - sent) > MAX_AGE:
        return "too old" if sent < now else "timestamp in the future"
    return "bad signature"


def caller(request: Request) -> str:
    """The caller's address: the peer, or X-Forwarded-For's when uvicorn trusts the peer as a
    proxy (FORWARDED_ALLOW_IPS; uvicorn has then put it in the ASGI scope's client)."""
    return request.client.host if request.client else "unknown"


class RefusalLog:
    """Logs refused Slack requests without letting a flood of them flood the log.

    The first refusal after a quiet spell is logged at once; the refusals that follow are
    counted (per reason, and per caller for the busiest few) and summed up in one line at the
    end of each `window` while they keep coming.
    """

    def __init__(self, window: float = WINDOW, clock: Callable[[], float] = time.time) -> None:
        self.window = window
        self.clock = clock
        self._open = False
        self._reasons: Counter[str] = Counter()
        self._callers: Counter[str] = Counter()
        self._timer: asyncio.TimerHandle | None = None

    def note(self, request: Request, reason: str | None = None) -> None:
        """Log (or count) one refused request: why (`reason`, else read from its headers)."""
        reason = reason or refusal_reason(request.headers, self.clock())
        address = caller(request)
        if not self._open:
            self._open = True
            log_event(
                log,
                "refused a Slack request",
                level=logging.WARNING,
                reason=reason,
                client=address,
                path=request.url.path,
            )
            self._schedule()
            return
        self._reasons[reason] += 1
        if address in self._callers or len(self._callers) < _MAX_TRACKED:
            self._callers[address] += 1

    def flush(self) -> None:
        """Sum up the refusals counted since the last line; a quiet window closes the flood."""
        self._timer = None
        total = sum(self._reasons.values())
        if not total:
            self._open = False
            return
        log_event(
            log,
            f"refused {total} more Slack requests in the last {self.window:.0f} s",
            level=logging.WARNING,
            refused=total,
            reasons=dict(self._reasons),
            clients=dict(self._callers.most_common(MAX_CALLERS)),
            other_clients=max(0, len(self._callers) - MAX_CALLERS),
        )
        self._reasons.clear()
        self._callers.clear()
        self._schedule()

    def close(self) -> None:
        """Stop the timer and write what is counted (at shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
        self.flush()
        self._open = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a unit test calls note() directly): flush() by hand
            return
        self._timer = loop.call_later(self.window, self.flush)
