"""The suite-wide log check (tests/conftest.py) fails a test whose log lines leak."""

from __future__ import annotations

import pytest

from tests.harness import run_inner_session
from tests.logcheck import leaks

INNER_TESTS = """
import logging

from standins.process import BotProcess
from tests.conftest import ESMS_API_KEY


def test_a_phone_typed_any_way_is_masked_before_any_line_is_written():
    logging.getLogger("slack_bolt.inner").warning("typed +84 901-888-484 and 0901.888.484")


def test_a_secret_no_component_registered():
    logging.getLogger("some.library").warning("calling with %s", ESMS_API_KEY)


def test_a_phone_in_a_bot_process_log_file(tmp_path):
    log_path = tmp_path / "bot.log"
    BotProcess({}, cwd=tmp_path, log_path=log_path)
    log_path.write_text('{"msg": "to 84901888484"}\\n')


def test_a_clean_log():
    logging.getLogger("bot.inner").warning("sent to 090****484")
"""

INNER_CONFTEST = """
from tests.conftest import (  # noqa: F401
    logs_as_serve_configures_them,
    no_phone_or_secret_in_any_log_line,
)
"""


def test_the_autouse_check_fails_a_test_whose_log_holds_a_phone_or_a_secret(
    pytester: pytest.Pytester,
) -> None:
    result = run_inner_session(pytester, INNER_CONFTEST, INNER_TESTS)

    result.assert_outcomes(passed=4, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_a_secret_no_component_registered*",
            "*1 log line(s) hold a full phone or a secret*",
            "*ERROR at teardown of test_a_phone_in_a_bot_process_log_file*",
            "*0901888484*",
        ]
    )


@pytest.mark.parametrize(
    ("line", "found"),
    [
        ("to 0901888484", ["0901888484"]),
        ("to +84 (901) 888-484", ["0901888484"]),
        ("phone=%2B84901888484&x=1", ["0901888484"]),
        ("to 0901+888+484", ["0901888484"]),
        ("payload=%7B%22phone%22%3A%220901888484%22%7D", ["0901888484"]),  # after %22
        ("payload=%7B%22p%22%3A+%2284901888484%22%7D", ["0901888484"]),
        ("to 090****484, at 1733580000.123, SMSID 12345678901234", []),
    ],
)
def test_the_check_finds_a_phone_however_it_is_spelt(line: str, found: list[str]) -> None:
    assert leaks(line, ("s3cret-value",)) == found
    assert leaks(f"{line} s3cret-value", ("s3cret-value",)) == ["s3cret-value", *found]
