"""`make demo`: the README's front door tells three stories and ends with a verified log."""

import asyncio
import contextlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from standins.demo import run_demo
from storage.history import History

STORIES = (
    "Story 1 of 3 · Delivered",
    "Story 2 of 3 · Rejected",
    "Story 3 of 3 · Failed: the number has no Zalo account",
)


@dataclass(frozen=True)
class Demo:
    code: int
    out: str
    data_dir: Path


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """One run of the demo for every test here: it takes seconds of a shared machine."""
    data_dir = tmp_path_factory.mktemp("demo") / "data"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = asyncio.run(run_demo(data_dir))
    return Demo(code, out.getvalue(), data_dir)


def _story(out: str, n: int) -> str:
    start = out.index(STORIES[n])
    ends = [out.index(s) for s in STORIES[n + 1 :]] + [out.index("Behind the scenes")]
    return out[start : min(ends)]


def test_the_demo_tells_three_stories_and_verifies(demo: Demo) -> None:
    assert demo.code == 0, demo.out
    out = demo.out
    positions = [out.index(title) for title in STORIES]
    assert positions == sorted(positions)

    delivered, rejected, failed = (_story(out, n) for n in range(3))
    assert "✅ Delivered to 090****484." in delivered
    assert "zns-bot → #notifications: ✅ ZNS Order confirmation" in delivered
    assert "🚫 Rejected by @Minh Lê: The amount is 4,590,000 VND" in rejected
    assert "Accepted by eSMS" not in rejected  # a rejected request never reaches eSMS
    assert "Zalo code -118" in failed
    dm = failed.index("zns-bot → DM to @Mai Trần: ❌ Your ZNS message")
    assert "What to do:" in failed[dm:]

    assert "Archive pass: 3 send(s) left the live store" in out
    assert "hash chain intact" in out
    history = History.open(demo.data_dir)
    assert history.live_sends() == {}
    assert [e["action"] for e in history.events()][-1] == "archived"


def test_the_demo_prints_events_in_the_order_they_happened(demo: Demo) -> None:
    delivered = _story(demo.out, 0)
    # the thread's replies, then the callback, then the notification it caused
    order = [
        "zns-bot → thread under the card in #approvals: Approved by @Minh Lê",
        "zns-bot → thread under the card in #approvals: Accepted by eSMS",
        "eSMS → zns-bot: delivery callback",
        "zns-bot → thread under the card in #approvals: ✅ Delivered",
        "zns-bot → #notifications:",
    ]
    positions = [delivered.index(line) for line in order]
    assert positions == sorted(positions)
    # the agent's slash command comes before the modal it opens, the card before Review
    assert delivered.index("/zns 0901 888 484") < delivered.index(
        "opens the modal “Send a ZNS message”"
    )
    assert delivered.index("zns-bot → #approvals:") < delivered.index("clicks Review")


def test_the_demo_shows_slack_text_as_people_see_it(demo: Demo) -> None:
    out = demo.out
    assert not re.findall(r"<[@#!][A-Z0-9^|]+", out), "a raw Slack mention"
    assert not re.findall(r"<https?://", out), "a raw Slack link"
    assert not re.findall(r":[a-z][a-z0-9_+-]*:", out), "a raw emoji code"
    assert not re.findall(r"&(amp|lt|gt);", out), "a Slack escape"
    assert "@Mai Trần" in out
    assert "⏳ Waiting for an approver" in out
