"""SIGKILL a writing process at random moments: every acknowledged write must survive."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from storage.engine import COMPACTION_STEPS
from storage.store import Store
from tests import ROOT

WRITER = Path(__file__).with_name("crash_writer.py")

ORDER = ["pending_approval", "approved", "submitting", "accepted", "delivered"]
KILLS = 60
# The writer's own thresholds, so that opening here may compact too.
COMPACT = {"compact_min_ops": 30, "compact_ratio": 0.2}


@dataclass
class Acked:
    """Everything the writer reported as done, over all its runs."""

    sends: dict[str, int] = field(default_factory=dict)  # id -> index in ORDER
    callbacks: set[str] = field(default_factory=set)
    outbox: set[str] = field(default_factory=set)
    audit: dict[int, str] = field(default_factory=dict)  # seq -> hash

    def take(self, line: str) -> None:
        kind, *words = line.split()
        if kind == "create":
            self.sends[words[0]] = 0
        elif kind == "state":
            self.sends[words[0]] = ORDER.index(words[1])
        elif kind == "callback":
            self.callbacks.add(words[0])
        elif kind == "outbox":
            self.outbox.add(words[0])
        elif kind == "audit":
            self.audit[int(words[0])] = words[1]
        else:
            raise AssertionError(f"unexpected writer output {line!r}")


def _run_and_kill(
    data_dir: Path,
    run: int,
    acked: Acked,
    *,
    kill_after: int | None,
    pause_at: str | None,
    stderr: Path,
) -> int:
    """Start the writer, SIGKILL it after `kill_after` acks (or once paused), take its acks."""
    args = [sys.executable, str(WRITER), str(data_dir), str(run)]
    if pause_at:
        args += ["--pause-at", pause_at]
    with stderr.open("w") as err:
        proc = subprocess.Popen(
            args, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True
        )
    assert proc.stdout is not None and proc.stdin is not None
    taken = 0
    try:
        for line in proc.stdout:
            if line.startswith("paused "):
                break
            acked.take(line)
            taken += 1
            if kill_after is not None and taken >= kill_after:
                break
        proc.kill()
        # Lines already in the pipe were printed after their write returned: acked too.
        for line in proc.stdout.read().splitlines(keepends=True):
            if line.endswith("\n") and not line.startswith("paused "):
                acked.take(line)
    finally:
        proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stdin.close()
    assert proc.returncode == -signal.SIGKILL, stderr.read_text()
    return taken


def _check(data_dir: Path, acked: Acked) -> None:
    with Store.open(data_dir, **COMPACT) as store:
        for send_id, index in acked.sends.items():
            record = store.sends.find(send_id)
            assert record is not None, f"acknowledged send {send_id} is missing"
            actual = ORDER.index(record["state"])
            # At most one more step may have landed without being acknowledged.
            assert index <= actual <= index + 1, (send_id, ORDER[index], record["state"])
            assert len(store.audit.for_send(send_id)) == 1 + actual
        for sms_id in acked.callbacks:
            assert [c["valid"] for c in store.callbacks.for_sms(sms_id)] == [True], sms_id
        outbox = store.db.table("outbox")
        for key in acked.outbox:
            assert outbox.find_ids_by("key", key), key
        events = store.db.table("audit")
        for seq, digest in acked.audit.items():
            event = events.get(doc_id=seq)
            assert event is not None and event["hash"] == digest, seq
        verification = store.audit.verify()
        assert verification.ok, verification.problems


def _generation(data_dir: Path) -> int:
    with (data_dir / "live.db").open() as file:
        return json.loads(file.readline())["gen"]


@pytest.mark.long
def test_random_sigkills_lose_no_acknowledged_write(tmp_path: Path) -> None:
    rng = random.Random(20260301)
    data_dir, acked = tmp_path / "data", Acked()
    paused_kills = 0
    for run in range(KILLS):
        # Every third run dies inside a compaction, at a random step of it.
        pause_at = rng.choice(COMPACTION_STEPS) if run % 3 == 2 else None
        kill_after = None if pause_at else rng.randint(1, 150)
        _run_and_kill(
            data_dir,
            run,
            acked,
            kill_after=kill_after,
            pause_at=pause_at,
            stderr=tmp_path / "stderr.txt",
        )
        paused_kills += pause_at is not None
        _check(data_dir, acked)
    assert paused_kills == KILLS // 3
    assert _generation(data_dir) > KILLS // 3  # compactions happened throughout
    assert len(acked.sends) > KILLS


@pytest.mark.parametrize("step", COMPACTION_STEPS)
def test_sigkill_at_each_compaction_step(tmp_path: Path, step: str) -> None:
    data_dir, acked = tmp_path / "data", Acked()
    _run_and_kill(data_dir, 0, acked, kill_after=None, pause_at=step, stderr=tmp_path / "err")
    temp_files = list(data_dir.glob("live.db.*.tmp"))
    assert bool(temp_files) == (step in ("temp_written", "temp_synced"))
    replaced = step in ("replaced", "dir_synced")
    assert _generation(data_dir) == (2 if replaced else 1)  # generation 1 is the new file
    assert acked.sends
    _check(data_dir, acked)
    assert list(data_dir.glob("live.db.*.tmp")) == []
