"""Marks every test here `e2e` (`make test-fast` leaves them out); the default running bot."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import PUBLIC_URL_FROM_SERVER, bot_settings, running_bot

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
async def bot(tmp_path, slack_standin, esms_standin):
    """The bot with the test settings, serving over HTTP; a module may override it."""
    settings = bot_settings(tmp_path / "data", slack_standin, esms_standin)
    async with running_bot(settings, slack_standin, esms_standin) as running:
        yield running


@pytest.fixture
async def callback_bot(tmp_path, slack_standin, esms_standin):
    """The bot at an address the eSMS stand-in calls back (its callbacks reach it)."""
    settings = bot_settings(
        tmp_path / "data", slack_standin, esms_standin, public_base_url=PUBLIC_URL_FROM_SERVER
    )
    async with running_bot(settings, slack_standin, esms_standin) as running:
        yield running
