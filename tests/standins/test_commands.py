"""`python -m standins.slack`, `.esms` and `python -m standins`: a newcomer's commands."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from standins.esms import DEFAULT_API_KEY, DEFAULT_SECRET_KEY, DEMO_OAID, OTP_TEMPLATE
from standins.slack import DEFAULT_BOT_TOKEN, DEMO_USERS
from tests import ROOT

STARTUP = 20.0  # seconds a stand-in has to print its banner; a bound, not a pause


class Command:
    """A stand-in's command as a child process, read line by line as it prints."""

    def __init__(self, module: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.printed = ""

    @property
    def lines(self) -> list[str]:
        return self.printed.splitlines()

    def read_until(self, needle: str) -> str:
        """What it printed, once `needle` is in it; fails after STARTUP seconds without."""
        assert self.proc.stdout is not None
        # os.read, not readline: a text reader's buffer could hold lines select() cannot see
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + STARTUP
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while needle not in self.printed:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    pytest.fail(f"no {needle!r} within {STARTUP}s: {self.printed!r}")
                chunk = os.read(fd, 65536)
                if not chunk:
                    code = self.proc.wait()
                    pytest.fail(f"exited with {code} before {needle!r}: {self.printed!r}")
                self.printed += chunk.decode()
        return self.printed

    def setting(self, name: str) -> str:
        """The value of a `NAME=value` line of the banner."""
        match = re.search(rf"^  {name}=(\S+)", self.printed, re.MULTILINE)
        assert match, f"no {name}= line in {self.lines}"
        return match.group(1)

    def interrupt(self) -> tuple[int, str, str]:
        """Ctrl-C: its exit status and what else it printed."""
        self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=STARTUP)
        return self.proc.returncode, out.decode(), err.decode()


@pytest.fixture
def commands() -> Iterator[list[Command]]:
    started: list[Command] = []
    yield started
    for command in started:  # a failed test must not leave a server behind
        if command.proc.poll() is None:
            command.proc.kill()
            command.proc.wait()


def test_the_slack_standin_runs_from_one_command(commands: list[Command]) -> None:
    slack = Command("standins.slack", "--port", "0")
    commands.append(slack)
    banner = slack.read_until("Ctrl-C")
    api_url = slack.setting("SLACK_API_URL")
    assert api_url.startswith("http://127.0.0.1:")
    assert slack.setting("SLACK_BOT_TOKEN") == DEFAULT_BOT_TOKEN
    assert "Mai Trần" in banner  # the default people, named
    reply = httpx.post(
        api_url + "auth.test", headers={"Authorization": f"Bearer {DEFAULT_BOT_TOKEN}"}
    ).json()
    assert reply["ok"] is True
    info = httpx.post(
        api_url + "users.info",
        data={"user": "U0AGENT01"},
        headers={"Authorization": f"Bearer {DEFAULT_BOT_TOKEN}"},
    ).json()
    assert info["user"]["real_name"] == DEMO_USERS["U0AGENT01"]
    code, _, err = slack.interrupt()
    assert code == 0
    assert "Traceback" not in err


def test_the_esms_standin_runs_from_one_command(commands: list[Command]) -> None:
    esms = Command("standins.esms", "--port", "0", "--api-key", "k1", "--secret-key", "s1")
    commands.append(esms)
    esms.read_until("Ctrl-C")
    base_url = esms.setting("ESMS_BASE_URL")
    assert base_url.startswith("http://127.0.0.1:")
    assert esms.setting("ESMS_CALLBACK_API_URL").startswith("http://127.0.0.1:")
    assert (esms.setting("ESMS_API_KEY"), esms.setting("ESMS_SECRET_KEY")) == ("k1", "s1")
    assert esms.setting("ESMS_OAID") == DEMO_OAID
    reply = httpx.post(base_url + "GetBalance_json", json={"ApiKey": "k1", "SecretKey": "s1"})
    assert reply.json()["CodeResponse"] == "100"
    code, _, err = esms.interrupt()
    assert code == 0
    assert "Traceback" not in err


def test_a_taken_port_is_one_line_and_exit_2(commands: list[Command]) -> None:
    first = Command("standins.esms", "--port", "0")
    commands.append(first)
    first.read_until("Ctrl-C")
    port = first.setting("ESMS_BASE_URL").split(":")[2].split("/")[0]
    second = subprocess.run(
        [sys.executable, "-m", "standins.esms", "--port", port],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=STARTUP,
        check=False,
    )
    assert second.returncode == 2
    assert second.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use "
        "(--port 0 picks a free port)"
    ]


def test_both_standins_print_a_dotenv_zns_bot_works_with(
    commands: list[Command], tmp_path: Path
) -> None:
    both = Command("standins", "--slack-port", "0", "--esms-port", "0")
    commands.append(both)
    both.read_until("Ctrl-C stops both")
    dotenv = [line for line in both.lines if re.match(r"^[A-Z_]+=", line)]
    # the .env as printed, in a directory of its own: the bot reads it as any .env
    (tmp_path / ".env").write_text("\n".join(dotenv) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ESMS_", "ZNS_"))}
    script = str(Path(sys.executable).with_name("zns-bot"))

    def zns_bot(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [script, *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    checked = zns_bot("check")
    assert checked.returncode == 0, checked.stderr
    assert "ok   eSMS: credentials accepted" in checked.stdout
    sent = zns_bot(
        "send", "--phone", "0901888484", "--template", OTP_TEMPLATE, "--param", "otp=686868"
    )
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.startswith("accepted: SMSID ")
    assert (tmp_path / "demo-data" / "standins" / "live.db").exists()  # not ./data
    code, _, err = both.interrupt()
    assert code == 0
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("module", "defaults"),
    [
        (
            "standins.slack",
            ["127.0.0.1", "3101", DEFAULT_BOT_TOKEN, "U0AGENT01=Mai Trần", "Socket Mode"],
        ),
        (
            "standins.esms",
            ["127.0.0.1", "3102", DEFAULT_API_KEY, DEFAULT_SECRET_KEY, "-118"],
        ),
        ("standins", ["127.0.0.1", "3101", "3102", "2.0", "-118"]),
    ],
)
def test_help_shows_the_defaults(module: str, defaults: list[str]) -> None:
    shown = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=STARTUP,
        check=True,
        # wide enough that no default is broken across lines
        env={**os.environ, "COLUMNS": "200"},
    ).stdout
    assert f"python -m {module}" in shown
    for default in defaults:
        assert default in shown, f"{default!r} not in --help:\n{shown}"
