"""Crash-test helper: archives and seals, and SIGKILLs itself at one named step.

Usage: python archive_crash_worker.py DATA_DIR STEP

Sends are made and delivered across a month boundary with a clock of its own, then archive
passes move them out with ZNS_LIVE_HOURS=0, which seals November on the way. The first time
the archive reaches STEP (storage.archive.COPY_STEPS or SEAL_STEPS), the process kills
itself: no cleanup, no flush, as a power cut or `kill -9` would leave it.
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from storage.sends import SendState
from storage.store import Store

START = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)
SENDS = 40
PATH = (SendState.APPROVED, SendState.SUBMITTING, SendState.ACCEPTED, SendState.DELIVERED)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def main() -> None:
    data_dir, step = Path(sys.argv[1]), sys.argv[2]

    def on_step(name: str) -> None:
        if name == step:
            os.kill(os.getpid(), signal.SIGKILL)

    clock = Clock()
    store = Store.open(
        data_dir, clock=clock, live_hours=0, compression="gzip", on_archive_step=on_step
    )
    for n in range(SENDS):
        send = store.sends.create(
            {"phone": f"0901{n:06d}", "template_id": "203435", "callback_token": f"t{n}"},
            actor="slack:U1",
        )
        for state in PATH:
            fields = {"sms_id": f"sms{n}"} if state == SendState.ACCEPTED else {}
            store.sends.transition(send["id"], state, actor="system", **fields)
        store.callbacks.record(f"sms{n}", "5", {"SMSID": f"sms{n}", "phonenumber": "84901"})
        clock.now += timedelta(minutes=15)
        if n % 10 == 9:
            store.archive.run_sync()
    store.archive.run_sync(seal=True)
    store.close()
    print("finished without reaching the step", flush=True)


if __name__ == "__main__":
    main()
