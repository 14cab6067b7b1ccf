"""`make demo`: the README's front door runs the whole flow and ends with a verified log."""

from pathlib import Path

import pytest

from standins.demo import run_demo
from storage.history import History


async def test_the_demo_sends_archives_and_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run_demo(tmp_path / "demo") == 0
    out = capsys.readouterr().out
    assert "Archive pass: 1 send(s) left the live store" in out
    assert "hash chain intact" in out
    history = History.open(tmp_path / "demo")
    assert history.live_sends() == {}
    assert [e["action"] for e in history.events()][-1] == "archived"
