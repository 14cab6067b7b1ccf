"""`zns-bot serve` start-up rules, Socket Mode health, and Slack's retry handlers."""

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.harness import APPROVAL_CHANNEL, ORDER, bot_settings, open_order_modal, running_bot

ZNS_BOT = str(Path(sys.executable).parent / "zns-bot")


def test_serve_refuses_to_start_naming_every_missing_setting(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ESMS_", "ZNS_", "SLACK_"))}
    result = subprocess.run(
        [ZNS_BOT, "serve"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    for name in (
        "ESMS_API_KEY",
        "ESMS_SECRET_KEY",
        "SLACK_BOT_TOKEN",
        "ZNS_APPROVAL_CHANNEL",
        "SLACK_SIGNING_SECRET",
        "ZNS_APPROVERS",
    ):
        assert name in line
    assert "environment or in .env" in line


async def test_socket_mode_down_is_reported_while_http_keeps_serving(
    tmp_path, slack_standin, esms_standin
):
    settings = bot_settings(
        tmp_path / "d", slack_standin, esms_standin, slack_app_token="xapp-1-test"
    )
    async with running_bot(settings, slack_standin, esms_standin) as bot:
        # Not the stand-in's app-level token: apps.connections.open keeps answering invalid_auth.
        health = await bot.http.get("/healthz")
        assert health.status_code == 503
        assert health.json()["socket_mode"] == "down" and health.json()["store"] == "ok"
        assert (await bot.metrics()).status_code == 200  # HTTP still answers
        # Nothing is verified on HTTP in Socket Mode, so Slack's HTTP route is closed.
        assert (await bot.slash("help")).status_code == 404


async def test_slack_429_and_500_are_retried_and_the_card_posted_once(
    tmp_path, slack_standin, esms_standin
):
    settings = bot_settings(tmp_path / "d", slack_standin, esms_standin)
    async with running_bot(settings, slack_standin, esms_standin) as bot:
        view = await open_order_modal(bot)
        slack_standin.inject("chat.postMessage", status=429, retry_after=1)
        slack_standin.inject("chat.postMessage", status=500)
        response = await bot.submit_request(view, phone="0901888484", params=ORDER)
        assert response.status_code == 200
        card = await bot.card()  # after two faulted attempts
        assert card["ts"]
        tried = [
            c.status
            for c in slack_standin.calls("chat.postMessage")
            if c.args.get("channel") == APPROVAL_CHANNEL
        ]
        assert tried == [429, 500, 200]


async def test_serve_logs_json_lines_without_secrets(tmp_path, slack_standin, esms_standin):
    import json

    from standins.process import BOT_TOKEN, SIGNING_SECRET, BotProcess, standin_env

    env = standin_env(slack_standin, esms_standin, tmp_path / "data", log_level="DEBUG")
    log_path = tmp_path / "serve.log"  # the suite's log check reads it too
    bot = BotProcess(env, cwd=tmp_path, log_path=log_path)
    await bot.start()  # start-up warms caches: eSMS GETs carry the keys
    try:
        # a refused callback logs the caller; a template look-up logs eSMS calls
        async with httpx.AsyncClient(base_url=bot.url) as http:
            assert (await http.get("/esms/callback/nope?SMSID=1")).status_code == 404
    finally:
        bot.stop()
    text = log_path.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, "serve logged nothing"
    events = [json.loads(line) for line in lines]  # one JSON object per line, nothing else
    assert any("unknown token" in e["msg"] for e in events)
    assert any("GetZnsTemplateInfo" in e["msg"] for e in events)  # eSMS GETs were logged
    for secret in (esms_standin.api_key, esms_standin.secret_key, BOT_TOKEN, SIGNING_SECRET):
        assert secret not in text


async def test_metrics_are_served_only_on_the_loopback_metrics_listener(
    tmp_path, slack_standin, esms_standin
):
    from standins.process import BotProcess, standin_env

    bot = BotProcess(standin_env(slack_standin, esms_standin, tmp_path / "data"), cwd=tmp_path)
    await bot.start()
    try:
        assert bot.metrics_port != bot.port
        async with httpx.AsyncClient(timeout=10) as http:
            assert (await http.get(f"{bot.url}/metrics")).status_code == 404
            metrics = await http.get(f"{bot.metrics_url}/metrics")
            assert metrics.status_code == 200 and "zns_outbox_depth" in metrics.text
            # and the metrics listener serves nothing else
            assert (await http.get(f"{bot.metrics_url}/healthz")).status_code == 404
    finally:
        bot.stop()
