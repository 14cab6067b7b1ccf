"""`zns-bot check` beside a running bot: it reads the store without its lock and writes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from standins.process import standin_env
from tests.harness import APPROVER, APPROVER_GROUP

ZNS_BOT = str(Path(sys.executable).parent / "zns-bot")


def snapshot(data_dir: Path) -> dict[str, tuple[int, int]]:
    """Every file and directory under `data_dir`: its size and modification time."""
    return {
        str(path.relative_to(data_dir)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in [data_dir, *data_dir.rglob("*")]
    }


async def test_check_beside_serve_reads_the_store_and_changes_nothing(
    bot, tmp_path, slack_standin, esms_standin
):
    data_dir = tmp_path / "data"  # the `bot` fixture's store, open and locked by it
    env = standin_env(
        slack_standin,
        esms_standin,
        data_dir,
        zns_approvers=[APPROVER, APPROVER_GROUP],
        public_base_url="https://zns-bot.example",
    )
    before = snapshot(data_dir)
    # Run while the bot's loop waits: any change to the data directory is check's own.
    result = subprocess.run(
        [ZNS_BOT, "check"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (store,) = [line for line in result.stdout.splitlines() if line.startswith("ok   store:")]
    assert "reads (read-only" in store, store
    assert snapshot(data_dir) == before
    # ...while the bot does hold the store: a command that needs it alone is refused.
    seal = subprocess.run(
        [ZNS_BOT, "audit", "seal"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert seal.returncode == 1 and "stop `zns-bot serve` first" in seal.stderr
    assert snapshot(data_dir) == before
