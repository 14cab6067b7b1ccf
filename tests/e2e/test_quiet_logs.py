"""An idle `zns-bot serve` at the default INFO level is quiet: at most 10 lines a minute."""

import asyncio
import json

import httpx
import pytest

from standins.process import BotProcess, standin_env

WINDOW_S = 60.0  # the measure: lines per minute of an idle bot
MAX_LINES = 10


@pytest.mark.long
async def test_an_idle_serve_at_info_writes_at_most_10_lines_a_minute(
    tmp_path, slack_standin, esms_standin
):
    # Default intervals and level: the relay every 2 s, polls every 10 s, reconcile every 60 s.
    env = standin_env(slack_standin, esms_standin, tmp_path / "data")
    env.pop("LOG_LEVEL", None)
    log_path = tmp_path / "serve.log"
    bot = BotProcess(env, cwd=tmp_path, log_path=log_path)
    await bot.start()
    try:
        # The window starts once the bot is healthy: start-up lines are not idle noise.
        before = log_path.read_text(encoding="utf-8").splitlines()
        await asyncio.sleep(WINDOW_S)
        after = log_path.read_text(encoding="utf-8").splitlines()
        async with httpx.AsyncClient(base_url=bot.url) as http:
            health = await http.get("/healthz")  # still serving at the end of the window
    finally:
        bot.stop()
    assert health.status_code == 200, health.text
    window = after[len(before) :]
    print(f"start-up: {len(before)} lines; idle {WINDOW_S:.0f} s: {len(window)} lines")
    print("\n".join(window))
    assert len(window) <= MAX_LINES, "\n".join(window)
    # Whatever it does write is one JSON object per line (no reprs, no tracebacks).
    for line in before + window:
        assert isinstance(json.loads(line), dict), line
