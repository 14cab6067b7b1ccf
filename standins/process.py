"""The bot wired to the local stand-ins: settings, environment and a `zns-bot serve` process.

One place for what the demo, the end-to-end tests and the benchmarks all need.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import httpx

from bot.config import Settings
from standins.driver import APPROVAL_CHANNEL, APPROVER, NOTIFY_CHANNEL
from standins.esms import DEMO_OAID, EsmsStandIn
from standins.servers import loopback_socket
from standins.slack import SlackStandIn

SIGNING_SECRET = "standin-signing-secret"  # noqa: S105 - the stand-in's, not a real one
BOT_TOKEN = "xoxb-standin-bot"  # noqa: S105


def standin_values(
    slack: SlackStandIn, esms: EsmsStandIn, data_dir: Path, **overrides: Any
) -> dict[str, Any]:
    """Settings (field name → value) that point the bot at both stand-ins."""
    values: dict[str, Any] = {
        "slack_bot_token": BOT_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": slack.api_url,
        "esms_api_key": esms.api_key,
        "esms_secret_key": esms.secret_key,
        "esms_base_url": esms.base_url,
        "esms_callback_api_url": esms.callback_api_url,
        "esms_oaid": DEMO_OAID,
        "zns_approval_channel": APPROVAL_CHANNEL,
        "zns_notify_channel": NOTIFY_CHANNEL,
        "zns_approvers": [APPROVER],
        "zns_data_dir": data_dir,
    }
    values.update(overrides)
    return values


def standin_settings(
    slack: SlackStandIn, esms: EsmsStandIn, data_dir: Path, **overrides: Any
) -> Settings:
    return Settings(_env_file=None, **standin_values(slack, esms, data_dir, **overrides))


def standin_env(
    slack: SlackStandIn, esms: EsmsStandIn, data_dir: Path, **overrides: Any
) -> dict[str, str]:
    """The environment for a `zns-bot serve` process pointed at both stand-ins.

    None of the caller's own zns-bot settings leak in (SLACK_APP_TOKEN would switch the bot
    to Socket Mode); run it in a directory without a .env.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "ESMS_", "ZNS_", "METRICS_")) and k not in SERVER_SETTINGS
    }
    for name, value in standin_values(slack, esms, data_dir, **overrides).items():
        if value is None:
            continue
        text = ",".join(value) if isinstance(value, list) else str(value)
        env[name.upper()] = text
    return env


# The bot's own web-server settings: a caller's would change what the bot under test does.
SERVER_SETTINGS = (
    "HOST",
    "PORT",
    "MAX_BODY_BYTES",
    "MAX_QUERY_BYTES",
    "MAX_HEADER_BYTES",
    "HEADER_TIMEOUT",
    "KEEPALIVE_TIMEOUT",
    "MAX_CONNECTIONS",
)


def free_port() -> int:
    with loopback_socket() as sock:
        return int(sock.getsockname()[1])


async def wait_healthy(
    url: str,
    alive: Callable[[], bool],
    timeout: float = 15.0,  # noqa: ASYNC109 - a deadline over many probes, not one call's
) -> None:
    """Until `url`/healthz answers 200; RuntimeError once `alive()` is false or at `timeout`."""
    deadline = time.monotonic() + timeout
    # A short per-probe timeout: a server still starting must not eat the whole deadline.
    async with httpx.AsyncClient(base_url=url, timeout=2) as http:
        while time.monotonic() < deadline and alive():
            with contextlib.suppress(httpx.TransportError):
                if (await http.get("/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.05)
    raise RuntimeError(f"the server on {url} did not become healthy")


class BotProcess:
    """`zns-bot serve` as a child process on a loopback port (a free one unless given).

    With `log_path`, its stdout and stderr are appended to that file (restarts included) and
    a failed start quotes the file's tail; without it, stdout is dropped and stderr goes
    wherever `start(stderr=...)` says.
    """

    # Every log file a BotProcess wrote to, so the test suite can check each of its lines.
    log_files: list[Path] = []  # noqa: RUF012 - shared on purpose

    def __init__(
        self,
        env: dict[str, str],
        *,
        cwd: Path,
        port: int | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # /metrics has its own loopback listener; a given METRICS_PORT is kept across restarts
        self.metrics_port = int(env.get("METRICS_PORT") or free_port())
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}"
        self.env = {
            **env,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "METRICS_PORT": str(self.metrics_port),
        }
        self.cwd = cwd
        self.log_path = log_path
        if log_path is not None:
            BotProcess.log_files.append(log_path)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    async def start(
        self, *, wait: float = 15.0, stderr: int | IO[bytes] = subprocess.DEVNULL
    ) -> None:
        """Start it and wait (at most `wait` seconds) until /healthz answers 200."""
        script = Path(sys.executable).with_name("zns-bot")
        with contextlib.ExitStack() as files:
            stdout: int | IO[bytes] = subprocess.DEVNULL
            if self.log_path is not None:  # both: a crash's traceback belongs with the log
                stdout = stderr = files.enter_context(self.log_path.open("ab"))
            # the command is our own console script; readiness is awaited below
            self.proc = subprocess.Popen(  # noqa: S603, ASYNC220
                [str(script), "serve"], env=self.env, cwd=self.cwd, stdout=stdout, stderr=stderr
            )
        proc = self.proc
        try:
            await wait_healthy(self.url, lambda: proc.poll() is None, wait)
        except RuntimeError:
            code = proc.poll()
            why = "did not become healthy" if code is None else f"exited with {code}"
            tail = ""
            if self.log_path is not None:
                tail = ":\n" + self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"zns-bot serve on {self.url} {why}{tail}") from None

    async def outbox_drained(self, wait: float = 15.0) -> None:
        """Until the bot's own /metrics reports an empty outbox (bounded)."""
        async with httpx.AsyncClient(base_url=self.metrics_url) as http:
            for _ in range(int(wait / 0.05)):
                if "\nzns_outbox_depth 0.0\n" in (await http.get("/metrics")).text:
                    return
                await asyncio.sleep(0.05)
        raise AssertionError("the outbox did not drain")

    def kill(self) -> int:
        """SIGKILL: no shutdown at all, as a crash or the OOM killer would leave it."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        return self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10.0, *, force: bool = False) -> int | None:
        """SIGTERM (a graceful uvicorn + lifespan shutdown); the exit code, None if never started.

        A bot still running after `timeout` raises subprocess.TimeoutExpired, or with `force`
        is SIGKILLed: a test wants the hang to fail it, a bench wants to report it and go on.
        """
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                if not force:
                    raise
                self.kill()
        return self.proc.returncode if self.proc is not None else None
