"""Content checks and erasure on a real-sized history: `audit verify`, `verify --send` and
`privacy erase`, each as the operator runs it, with its wall time and peak RSS."""

# Usage: bench/privacy_bench.py HISTORY [--work DIR]
#   HISTORY: a data directory built by `bench/history_bench.py --days D --keep DIR`
#   (DIR/history). It is copied to DIR (default: a temporary directory) first; the copy is
#   what the commands change. The customer erased is the first one archived in the oldest
#   segment: the worst case for a rewrite (a sealed, compressed month).

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from storage.history import History
from storage.segments import stream_events

CLI = Path(sys.executable).with_name("zns-bot")


def run(data_dir: Path, *args: str) -> tuple[float, float, str, int]:
    """(seconds, peak RSS MiB, first line of output, exit code) of one `zns-bot` command,
    under GNU time, which reports the command's own peak (not this process's)."""
    env = {**os.environ, "ZNS_DATA_DIR": str(data_dir)}
    report = data_dir.parent / "time.txt"
    done = subprocess.run(
        ["/usr/bin/time", "-o", str(report), "-f", "%e %M", str(CLI), *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds, kib = report.read_text().split()[-2:]
    output = (done.stdout or done.stderr).strip().splitlines()
    return float(seconds), int(kib) / 1024, output[0] if output else "", done.returncode


def first_customer(data_dir: Path) -> tuple[str, str]:
    """(phone, send id) of the first send archived in the oldest segment."""
    history = History.open(data_dir)
    segment = history.segments[0]
    for event in stream_events(data_dir / "audit" / segment.file):
        fields = (event.get("personal") or {}).get("fields") or {}
        if event.get("action") == "archived" and fields.get("phone"):
            return str(fields["phone"]), str(event["send_id"])
    raise SystemExit(f"no archived send in {segment.file}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("history", type=Path, help="DIR/history of a history_bench run")
    parser.add_argument("--work", type=Path, help="where to copy it (default: a temp dir)")
    opts = parser.parse_args()
    work = opts.work or Path(tempfile.mkdtemp(prefix="privacy-bench-"))
    data_dir = work / "data"
    if data_dir.exists():
        shutil.rmtree(data_dir)
    shutil.copytree(opts.history, data_dir)
    phone, send_id = first_customer(data_dir)
    masked = f"{phone[:3]}****{phone[-3:]}"
    print(f"history: {opts.history}; customer {masked}, send {send_id}")
    steps = [
        ("audit verify (whole log)", ("audit", "verify")),
        ("audit verify --send (one archived send)", ("audit", "verify", "--send", send_id)),
        ("privacy erase --dry-run", ("privacy", "erase", "--phone", phone, "--dry-run")),
        ("privacy erase --yes", ("privacy", "erase", "--phone", phone, "--yes")),
        ("audit verify after the erasure", ("audit", "verify")),
        ("audit verify --send (the erased send)", ("audit", "verify", "--send", send_id)),
    ]
    print(f"{'step':<42}{'time':>9}{'peak RSS':>11}  exit  output")
    for label, args in steps:
        seconds, mib, line, code = run(data_dir, *args)
        print(f"{label:<42}{seconds:>7.2f} s{mib:>7.0f} MiB  {code:>4}  {line[:150]}")
    if opts.work is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
