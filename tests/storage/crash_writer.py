"""Crash-test helper: writes to a store forever, printing each write after it is acknowledged.

Usage: python crash_writer.py DATA_DIR RUN [--pause-at STEP]

Every line on stdout names a write whose call has returned. With --pause-at, the writer
stops inside its first compaction at STEP (printing "paused STEP") and waits on stdin, so
the test can SIGKILL it at exactly that point.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from storage.engine import open_db
from storage.sends import SendState
from storage.store import FILE_NAME, Store

COMPACT_MIN_OPS = 30
COMPACT_RATIO = 0.2
PATH = (
    SendState.APPROVED,
    SendState.SUBMITTING,
    SendState.ACCEPTED,
    SendState.DELIVERED,
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("run", type=int)
    parser.add_argument("--pause-at")
    args = parser.parse_args()
    armed = False

    def on_step(step: str) -> None:
        if armed and step == args.pause_at:
            print(f"paused {step}", flush=True)
            sys.stdin.readline()  # blocks until the test kills us

    args.data_dir.mkdir(parents=True, exist_ok=True)
    db = open_db(
        args.data_dir / FILE_NAME,
        compact_min_ops=COMPACT_MIN_OPS,
        compact_ratio=COMPACT_RATIO,
        on_compaction_step=on_step,
    )
    store = Store(db, args.data_dir)
    armed = args.pause_at is not None  # not during the open: only a compaction after writes

    def ack(*words: object) -> None:
        print(*words, flush=True)

    i = 0
    while True:
        send_id = f"r{args.run}-{i}"
        store.sends.create({"id": send_id, "phone": "0901888484"}, actor="writer")
        ack("create", send_id)
        for state in PATH:
            extra = {"sms_id": f"sms-{send_id}"} if state == SendState.ACCEPTED else {}
            done = store.sends.transition(send_id, state, actor="writer", **extra)
            assert done is not None
            ack("state", send_id, state)
        store.callbacks.record(f"sms-{send_id}", 1, {"SMSID": f"sms-{send_id}"})
        ack("callback", f"sms-{send_id}")
        store.outbox.add("card", {"n": i}, key=f"{send_id}:card", send_id=send_id)
        ack("outbox", f"{send_id}:card")
        event = store.audit.append("writer", "note", reason=f"note {send_id}")
        ack("audit", event["seq"], event["hash"])
        i += 1


if __name__ == "__main__":
    main()
