"""Crash-test helper: migrates a release 0.1 data directory and SIGKILLs itself on the way.

Usage: python migrate_worker.py DATA_DIR NOW LIVE_HOURS COMPRESSION (--at STEP [--nth N] |
       --after N)

`--at STEP --nth N`: killed the Nth time the migration reaches STEP (one of
storage.migrate.MIGRATION_STEPS). `--after N`: killed at the Nth step of any name. Exits 0
when the migration finished first. Batches and checkpoints are made tiny so that every
repeated step happens several times on the small fixture.
"""

from __future__ import annotations

import argparse
import os
import signal
from datetime import datetime
from pathlib import Path

from storage import archiver, migrate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("now")
    parser.add_argument("live_hours", type=float)
    parser.add_argument("compression")
    parser.add_argument("--at")
    parser.add_argument("--nth", type=int, default=1)
    parser.add_argument("--after", type=int)
    args = parser.parse_args()
    now = datetime.fromisoformat(args.now)
    migrate.SEND_BATCH = 7
    migrate.ORPHAN_BATCH = 2
    migrate.EVENT_BATCH = 50
    migrate.CHECKPOINT_BYTES = 40_000
    archiver.COPY_BATCH = 40
    seen: dict[str, int] = {}
    total = 0

    def on_step(step: str) -> None:
        nonlocal total
        assert step in migrate.MIGRATION_STEPS, step
        seen[step] = seen.get(step, 0) + 1
        total += 1
        if (step == args.at and seen[step] == args.nth) or total == args.after:
            os.kill(os.getpid(), signal.SIGKILL)

    migrate.migrate_if_needed(
        args.data_dir,
        clock=lambda: now,
        live_hours=args.live_hours,
        compression=None if args.compression == "none" else args.compression,
        on_step=on_step,
    )


if __name__ == "__main__":
    main()
