"""Building the runtime: what a start-up says in the log."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.app import build_runtime
from bot.config import Settings

TOKEN = "xoxb-111-222-startup"
UNUSED = "`token` will be unused"


def settings_for(data_dir: Path) -> Settings:
    return Settings(
        _env_file=None,
        esms_api_key="apikey-startup",
        esms_secret_key="secret-startup",
        slack_bot_token=TOKEN,
        slack_signing_secret="signing-startup",
        zns_approval_channel="C0APPROVALS",
        zns_approvers=["U0APPROVER"],
        zns_data_dir=data_dir,
    )


def start_up_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, env: str
) -> list[logging.LogRecord]:
    monkeypatch.setenv("SLACK_BOT_TOKEN", env)
    caplog.set_level(logging.DEBUG)
    runtime = build_runtime(settings_for(tmp_path / "data"))
    runtime.store.close()
    return [r for r in caplog.records if r.name.startswith("slack_bolt")]


def test_no_token_warning_when_bolt_reads_the_same_token_from_the_environment(
    tmp_path, caplog, monkeypatch
):
    records = start_up_log(tmp_path, caplog, monkeypatch, env=TOKEN)
    assert not [r for r in records if UNUSED in r.getMessage()]


def test_a_different_token_in_the_environment_is_still_reported(tmp_path, caplog, monkeypatch):
    records = start_up_log(tmp_path, caplog, monkeypatch, env="xoxb-999-other")
    assert [r.levelno for r in records if UNUSED in r.getMessage()] == [logging.WARNING]


def test_the_filter_is_gone_once_the_app_is_built(tmp_path, caplog, monkeypatch):
    start_up_log(tmp_path, caplog, monkeypatch, env=TOKEN)
    assert logging.getLogger("slack_bolt.AsyncApp").filters == []
