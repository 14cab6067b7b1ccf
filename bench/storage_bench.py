"""Store latency at 1k and 100k records: audit append, send transition, open time, file size."""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tinydb.table import Document

from storage.audit import GENESIS, HEAD_DOC_ID, event_hash
from storage.sends import SendState
from storage.store import Store

SIZES = (1_000, 100_000)
SAMPLES = 2_000
LOOKUPS = 20_000


def build(data_dir: Path, count: int) -> None:
    """`count` chained audit events and `count` pending sends, written in one go."""
    events, prev = [], GENESIS
    for seq in range(1, count + 1):
        event = {
            "seq": seq,
            "ts": "2026-03-01T09:00:00.000000+00:00",
            "actor": f"U{seq % 50}",
            "action": "transition",
            "send_id": f"zns-bench-{seq}",
            "from_state": "pending_approval",
            "to_state": "approved",
            "reason": "bench",
            "data": {"version": 2},
            "prev": prev,
        }
        event["hash"] = prev = event_hash(event)
        events.append(Document(event, doc_id=seq))
    sends = [
        {
            "id": f"zns-bench-{n}",
            "phone": "0901888484",
            "template_id": "1234",
            "ordered_params": ["Nguyen Van A", "12/03/2026", "ORDER-1"],
            "state": str(SendState.PENDING_APPROVAL),
            "sms_id": f"sms-{n}",
            "created_at": "2026-03-01T09:00:00.000000+00:00",
            "updated_at": "2026-03-01T09:00:00.000000+00:00",
            "version": 1,
        }
        for n in range(1, count + 1)
    ]
    with Store.open(data_dir) as store, store.db.transaction():
        store.db.table("audit").insert_multiple(events)
        head = {"key": "audit_head", "seq": count, "hash": prev}
        store.db.table("meta").insert(Document(head, doc_id=HEAD_DOC_ID))
        store.db.table("sends").insert_multiple(sends)


def timed(fn: Callable[[int], object], samples: int) -> list[float]:
    """Milliseconds per call of fn(i)."""
    out = []
    for i in range(samples):
        start = time.perf_counter_ns()
        fn(i)
        out.append((time.perf_counter_ns() - start) / 1e6)
    return out


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def measure(base: Path, count: int) -> dict[str, float]:
    data_dir = base / f"store-{count}"
    start = time.perf_counter()
    build(data_dir, count)
    built = time.perf_counter() - start
    start = time.perf_counter()
    with Store.open(data_dir):  # replays the log once, then compacts it into a snapshot
        pass
    first_open = time.perf_counter() - start
    os.sync()  # let the build's writeback finish so it does not pollute the fsync timings
    start = time.perf_counter()
    store = Store.open(data_dir)
    open_s = time.perf_counter() - start
    with store:
        generation = store.db.storage.generation
        append = timed(lambda i: store.audit.append("bench", "note", reason=str(i)), SAMPLES)
        targets = random.Random(1).sample(range(1, count + 1), min(SAMPLES, count))
        transition = timed(
            lambda i: store.sends.transition(
                f"zns-bench-{targets[i]}", SendState.APPROVED, actor="bench", reason="ok"
            ),
            len(targets),
        )
        start = time.perf_counter()
        for i in range(LOOKUPS):
            store.sends.by_sms_id(f"sms-{i % count + 1}")
        lookups = LOOKUPS / (time.perf_counter() - start)
        compactions = store.db.storage.generation - generation
        start = time.perf_counter()
        store.db.compact()
        compact_s = time.perf_counter() - start
        verify_start = time.perf_counter()
        assert store.audit.verify().ok
        verify_s = time.perf_counter() - verify_start
    return {
        "build_s": built,
        "first_open_s": first_open,
        "open_s": open_s,
        "append_p50": pct(append, 50),
        "append_p99": pct(append, 99),
        "transition_p50": pct(transition, 50),
        "transition_p99": pct(transition, 99),
        "lookups_per_s": lookups,
        "compactions": compactions,
        "compact_s": compact_s,
        "verify_s": verify_s,
        "file_mb": (data_dir / "live.db").stat().st_size / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, help="where to build the stores (default: a temp dir)")
    args = parser.parse_args()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        results = {count: measure(Path(tmp), count) for count in SIZES}
    small, big = (results[n] for n in SIZES)
    rows = [
        ("audit append p50 (ms)", "append_p50", ".3f"),
        ("audit append p99 (ms)", "append_p99", ".3f"),
        ("transition+audit p50 (ms)", "transition_p50", ".3f"),
        ("transition+audit p99 (ms)", "transition_p99", ".3f"),
        ("by_sms_id lookups/s", "lookups_per_s", ",.0f"),
        ("open, snapshot only (s)", "open_s", ".3f"),
        ("open, replay + compact (s)", "first_open_s", ".3f"),
        ("one full compaction (s)", "compact_s", ".3f"),
        ("audit verify (s)", "verify_s", ".3f"),
        ("compactions while measuring", "compactions", ".0f"),
        ("build (s)", "build_s", ".2f"),
        ("file size (MB)", "file_mb", ".2f"),
    ]
    print(f"zns-bot store bench: fsync on, {SAMPLES} samples each; N sends + N audit events")
    print(f"{'':30}{'N=1k':>12}{'N=100k':>12}{'100k/1k':>10}")
    for label, key, fmt in rows:
        ratio = big[key] / small[key] if small[key] else float("nan")
        print(f"{label:30}{small[key]:>12{fmt}}{big[key]:>12{fmt}}{ratio:>10.2f}")
    print(f"total bench time: {time.perf_counter() - began:.1f} s")


if __name__ == "__main__":
    main()
