"""Shared fixtures: the stand-ins, an eSMS client, a callback receiver, refusal and log checks."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bot.esms.client import EsmsClient
from bot.ops.logs import JsonFormatter, RedactionFilter, protect_records
from standins.esms import EsmsStandIn
from standins.process import BOT_TOKEN, SIGNING_SECRET, BotProcess
from standins.servers import ServerThread
from standins.slack import REFUSALS, Refusal
from tests.logcheck import leaks

pytest_plugins = ["pytester"]  # tests/standins/test_blockkit.py runs the refusal check in a session

# Distinctive on purpose: the secrets tests search every log line and error for them.
ESMS_API_KEY = "apikey-ZQX7-do-not-leak-31f9"
ESMS_SECRET_KEY = "secretkey-VWK2-do-not-leak-88c4"
# Every secret the tests give a bot or a client: no log line may hold one.
SECRETS = (ESMS_API_KEY, ESMS_SECRET_KEY, BOT_TOKEN, SIGNING_SECRET)
CLIENT_TIMEOUT = 0.5  # short, so timeout tests are quick; the stand-in answers in ~2 ms


class _Recorder(logging.Handler):
    """Keeps each record's line as `zns-bot serve` would write it: its handler's filter (with
    no secrets of its own: those must be caught without it) and its JSON formatter."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.addFilter(RedactionFilter())
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.hookimpl(trylast=True)  # after any shuffle (pytest-randomly), which it keeps
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long tests first: xdist hands out tests in this order, and a minute-long test handed
    out last would keep one worker busy after the other had finished."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.fixture(scope="session", autouse=True)
def logs_as_serve_configures_them() -> Iterator[_Recorder]:
    """Every record scrubbed as `zns-bot serve` scrubs it (the bot adds its settings' secrets
    when it is built), INFO and up emitted as serve's default, and one recorder on the root
    logger for `no_phone_or_secret_in_any_log_line` to read."""
    protect_records()
    root = logging.getLogger()
    recorder, level = _Recorder(), root.level
    root.addHandler(recorder)
    root.setLevel(min(level, logging.INFO))
    yield recorder
    root.removeHandler(recorder)
    root.setLevel(level)


@pytest.fixture(autouse=True)
def no_phone_or_secret_in_any_log_line(
    logs_as_serve_configures_them: _Recorder,
) -> Iterator[None]:
    """Fail the test if any log line of it (the bot's, a stand-in's, a library's; a `zns-bot
    serve` child's log file too) holds a full phone in any spelling or a test secret."""
    recorder = logs_as_serve_configures_them
    recorder.lines.clear()
    files = len(BotProcess.log_files)
    yield
    lines = recorder.lines + [
        line
        for path in BotProcess.log_files[files:]
        if path.exists()
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines()
    ]
    recorder.lines.clear()
    problems = [(found, line) for line in lines if (found := leaks(line, SECRETS))]
    if problems:
        shown = "\n".join(f"  {found}: {line[:300]}" for found, line in problems[:5])
        pytest.fail(
            f"{len(problems)} log line(s) hold a full phone or a secret:\n{shown}", pytrace=False
        )


@pytest.fixture(autouse=True)
def slack_refusals_declared(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test if a Slack stand-in refused a payload it did not declare it expects
    (`@pytest.mark.slack_refuses("invalid_blocks")`): the real Slack would refuse it too.

    Autouse, so it is set up first and torn down last: it also sees what a bot sends while
    it stops.
    """
    mark = REFUSALS.mark()
    yield
    marker = request.node.get_closest_marker("slack_refuses")
    expected = set(marker.args) if marker else set()
    if problem := unexpected_refusals(REFUSALS.since(mark), expected):
        pytest.fail(problem, pytrace=False)


def unexpected_refusals(refusals: list[Refusal], expected: set[str]) -> str | None:
    """What to say about the refusals whose error the test did not declare (None: nothing)."""
    unexpected = [r for r in refusals if r.error not in expected]
    if not unexpected:
        return None
    # A bot retrying from its outbox repeats one refusal many times: say each once.
    counts: dict[Refusal, int] = {}
    for refusal in unexpected:
        counts[refusal] = counts.get(refusal, 0) + 1
    lines = [
        f"the Slack stand-in refused {len(unexpected)} payload(s), as the real Slack would; "
        "declare an expected refusal with @pytest.mark.slack_refuses(error, ...)"
    ]
    for refusal, count in counts.items():
        times = f" ({count} times)" if count > 1 else ""
        head, *messages = refusal.describe().splitlines()
        lines += [head + times, *messages]
    return "\n".join(lines)


@pytest.fixture(scope="session")
def esms_standin_server() -> Iterator[EsmsStandIn]:
    with EsmsStandIn(api_key=ESMS_API_KEY, secret_key=ESMS_SECRET_KEY) as standin:
        yield standin


@pytest.fixture
def esms_standin(esms_standin_server: EsmsStandIn) -> Iterator[EsmsStandIn]:
    """The shared stand-in, with no requests, faults or sends left over from other tests."""
    esms_standin_server.reset()
    yield esms_standin_server
    esms_standin_server.reset()


@pytest.fixture
async def esms_client(esms_standin: EsmsStandIn) -> AsyncIterator[EsmsClient]:
    client = EsmsClient(
        api_key=ESMS_API_KEY,
        secret_key=ESMS_SECRET_KEY,
        base_url=esms_standin.base_url,
        callback_api_url=esms_standin.callback_api_url,
        timeout=CLIENT_TIMEOUT,
        max_attempts=3,
        retry_backoff=0.01,
    )
    async with client:
        yield client


@pytest.fixture
def closed_port_url() -> Iterator[str]:
    """An http URL on 127.0.0.1 where nothing listens (connections are refused).

    The port stays bound, never listening, for the whole test: a port merely freed could
    be taken meanwhile by a server of pytest-xdist's other worker.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"


@dataclass(frozen=True)
class ReceivedCallback:
    path: str
    raw_query: str
    query: dict[str, str]


class CallbackReceiver:
    """A tiny HTTP server that records every GET it receives, like the bot's callback route."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._received: list[ReceivedCallback] = []
        self.status = 200
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET"])])
        self._server = ServerThread(app)

    async def _handle(self, request: Request) -> Response:
        item = ReceivedCallback(
            path=request.url.path,
            raw_query=request.scope["query_string"].decode("latin-1"),
            query=dict(request.query_params),
        )
        with self._cond:
            self._received.append(item)
            self._cond.notify_all()
            status = self.status
        return PlainTextResponse("ok", status_code=status)

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def received(self) -> list[ReceivedCallback]:
        with self._cond:
            return list(self._received)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedCallback]:
        """Block until `count` callbacks have arrived (or fail after `timeout`)."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._received) >= count, timeout):
                raise AssertionError(f"expected {count} callbacks, got {len(self._received)}")
            return list(self._received)

    def reset(self) -> None:
        with self._cond:
            self._received.clear()
            self.status = 200

    def start(self) -> CallbackReceiver:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()


@pytest.fixture(scope="session")
def callback_receiver_server() -> Iterator[CallbackReceiver]:
    receiver = CallbackReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def callback_receiver(callback_receiver_server: CallbackReceiver) -> Iterator[CallbackReceiver]:
    callback_receiver_server.reset()
    yield callback_receiver_server
    callback_receiver_server.reset()


@pytest.fixture(scope="session")
def slack_standin_server():
    from standins.slack import SlackStandIn
    from tests.harness import APPROVER_GROUP, BOT_TOKEN, GROUP_APPROVER

    with SlackStandIn(
        bot_token=BOT_TOKEN, usergroups={APPROVER_GROUP: [GROUP_APPROVER]}
    ) as standin:
        yield standin


@pytest.fixture
def slack_standin(slack_standin_server):
    """The shared Slack stand-in, with no calls, messages, views or faults left over."""
    slack_standin_server.reset()
    yield slack_standin_server
    slack_standin_server.reset()
