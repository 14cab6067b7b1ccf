"""A local Slack Web API stand-in: a real HTTP server on 127.0.0.1 for tests and `make demo`."""

from __future__ import annotations

import argparse
import base64
import copy
import itertools
import json
import logging
import secrets
import threading
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute

from standins import blockkit
from standins.changes import Changes
from standins.servers import ServerThread, run_until_stopped
from standins.socket_mode import DEFAULT_APP_TOKEN, LINK_PATH, SocketMode

DEFAULT_BOT_TOKEN = "xoxb-test"  # noqa: S105 - a fake token for the fake workspace
TEAM_ID = "T0ZNSTEAM"
TEAM_NAME = "ZNS Stand-in"
TEAM_DOMAIN = "zns-standin"
APP_ID = "A0ZNSAPP1"
BOT_ID = "B0ZNSBOT1"
BOT_USER_ID = "U0ZNSBOT1"
BOT_USER_NAME = "zns-bot"

_TS_STEP_MICROS = 100  # message ts are the posting time, at least this far apart
_HISTORY_LIMIT = (100, 999)  # conversations.history: default and largest page
_REPLIES_LIMIT = (1000, 1000)  # conversations.replies: default and largest page
_MAX_VIEW_STACK = 3  # Slack's modal stack depth
_FAULT_ERRORS = {429: "ratelimited", 500: "internal_error", 503: "service_unavailable"}
# Fields slack_sdk may send as JSON strings inside form data, with Slack's error for bad JSON.
_JSON_FIELDS = {
    "blocks": "invalid_blocks_format",
    "attachments": "invalid_attachments",
    "view": "invalid_arguments",
    "metadata": "invalid_metadata_format",
    "files": "invalid_arguments",  # files.completeUploadExternal's [{id, title}]
}
UPLOAD_PATH = "/upload/v1"  # where files.getUploadURLExternal's upload_url points

# The errors with which Slack refuses a payload that breaks one of its limits: a test that
# meets one it did not declare fails (tests/conftest.py), since the real Slack would refuse it.
REFUSAL_ERRORS = frozenset(
    {"invalid_arguments", "invalid_blocks", "msg_blocks_too_long", "msg_too_long"}
)

UserSpec = Mapping[str, Any] | str
# A channel: its name, or {"name": ..., "private": bool, "member": bool, "archived": bool}
# (defaults: public, the bot in it, not archived).
ChannelSpec = Mapping[str, Any] | str
# The people of `make demo` and of `python -m standins.slack` unless --user is given; their
# ids are standins.driver's AGENT and APPROVER.
DEMO_USERS: dict[str, UserSpec] = {"U0AGENT01": "Mai Trần", "U0APPROVER1": "Minh Lê"}
CallPredicate = Callable[["Call"], bool]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Call:
    """One Web API call the stand-in answered (args without the token)."""

    seq: int
    method: str
    args: dict[str, Any]
    time: float
    status: int
    response: dict[str, Any]
    faulted: bool = False

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.response.get("ok"))

    @property
    def error(self) -> str | None:
        return self.response.get("error")

    @property
    def refused(self) -> bool:
        """Refused for breaking a limit (an injected fault is not a refusal)."""
        return not self.faulted and self.error in REFUSAL_ERRORS


@dataclass(frozen=True, slots=True)
class Refusal:
    """A payload a stand-in refused, as Slack would, for breaking one of Slack's limits."""

    method: str
    error: str
    messages: tuple[str, ...]

    def describe(self) -> str:
        lines = [f"{self.method} -> {self.error}"]
        lines += [f"    {message}" for message in self.messages]
        return "\n".join(lines)


class RefusalLog:
    """Every refusal of every stand-in in this process, in order; never cleared, so a test
    can take a mark before it runs and read what came after, whatever reset() meanwhile."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refusals: list[Refusal] = []

    def add(self, refusal: Refusal) -> None:
        with self._lock:
            self._refusals.append(refusal)

    def mark(self) -> int:
        with self._lock:
            return len(self._refusals)

    def since(self, mark: int) -> list[Refusal]:
        with self._lock:
            return self._refusals[mark:]


REFUSALS = RefusalLog()


@dataclass(slots=True)
class _File:
    """A file being uploaded: announced (getUploadURLExternal), uploaded, completed."""

    id: str
    name: str
    length: int
    key: str  # the secret part of its upload URL
    data: bytes | None = None
    completed: bool = False
    title: str = ""
    channels: list[str] = field(default_factory=list)

    def describe(self, *, with_data: bool = True) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "title": self.title or self.name,
            "size": self.length,
            "completed": self.completed,
            "channels": list(self.channels),
        }
        if with_data:
            shown["uploaded"] = self.data
        return shown


@dataclass(slots=True)
class _Fault:
    method: str  # a Web API method, or "*" for every method
    status: int
    retry_after: int | None
    error: str
    remaining: int | None  # None: until cleared

    def reply(self) -> tuple[int, dict[str, Any], dict[str, str]]:
        headers = {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}
        return self.status, {"ok": False, "error": self.error}, headers


class _BadRequest(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class SlackStandIn:
    """Answers Slack Web API calls like Slack, keeps the workspace's state, records every call.

    Thread-safe: the server runs in its own thread and event loop, tests read from theirs.
    """

    def __init__(
        self,
        bot_token: str = DEFAULT_BOT_TOKEN,
        users: Mapping[str, UserSpec] | None = None,
        usergroups: Mapping[str, Sequence[str]] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        app_token: str = DEFAULT_APP_TOKEN,
        channels: Mapping[str, ChannelSpec] | None = None,
    ) -> None:
        """`clock` (Unix seconds) stamps messages: a ts is its posting time, like Slack's.
        `app_token` is the app-level token (xapp-…) that may open Socket Mode links.
        `channels`: the workspace's channels by id (see set_channels); None, the default,
        means every C… or G… id is a public channel the bot is in."""
        self._host = host
        self._clock = clock
        self._last_ts_micros = 0
        # A re-entrant lock: predicates given to wait_for may call the read helpers.
        self._cond = threading.Condition(threading.RLock())
        self._bot_token = bot_token
        self._users: dict[str, UserSpec] = dict(users or {})
        self._usergroups: dict[str, list[str]] = {k: list(v) for k, v in (usergroups or {}).items()}
        self._channels = _channel_table(channels)
        self._id_counter = itertools.count(1)
        self._calls: list[Call] = []
        self._messages: dict[str, list[dict[str, Any]]] = {}
        self._ephemerals: list[dict[str, Any]] = []
        self._views: dict[str, dict[str, Any]] = {}
        self._last_view_id: str | None = None
        self._homes: dict[str, str] = {}  # user id -> the id of their App Home view
        self._ims: dict[tuple[str, ...], str] = {}
        self._files: dict[str, _File] = {}  # by file id, from files.getUploadURLExternal on
        self._faults: list[_Fault] = []
        self._outage: _Fault | None = None
        self._changes = Changes(self._cond)
        self._methods: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "views.push": self._views_push,
            "views.publish": self._views_publish,
            "usergroups.users.list": self._usergroups_users_list,
            "users.info": self._users_info,
            "conversations.info": self._conversations_info,
            "conversations.open": self._conversations_open,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "files.getUploadURLExternal": self._files_get_upload_url_external,
            "files.completeUploadExternal": self._files_complete_upload_external,
        }
        self.socket_mode = SocketMode(app_token, app_id=APP_ID)
        app = Starlette(
            routes=[
                Route("/api/{method}", self._handle, methods=["GET", "POST"]),
                Route(UPLOAD_PATH + "/{key}", self._upload, methods=["POST"]),
                WebSocketRoute(LINK_PATH, self.socket_mode.endpoint),
            ]
        )
        self._server = ServerThread(
            app,
            host=host,
            port=port,
            name="Slack stand-in",
            thread_name="slack-standin",
            ws="websockets-sansio",  # Socket Mode's link; the `websockets` package serves it
        )

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def port(self) -> int:
        if not self._server.port:
            raise RuntimeError("the Slack stand-in is not started")
        return self._server.port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def api_url(self) -> str:
        """The base URL for slack_sdk's `base_url` / the bot's SLACK_API_URL."""
        return f"{self.url}/api/"

    @property
    def bot_token(self) -> str:
        """The one bot token it accepts (the bot's SLACK_BOT_TOKEN)."""
        with self._cond:
            return self._bot_token

    def start(self, timeout: float = 10.0) -> Self:
        self._server.start(timeout)
        self.socket_mode.base_url = f"ws://{self._host}:{self.port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- configuration ------------------------------------------------------------------

    def set_bot_token(self, token: str) -> None:
        with self._cond:
            self._bot_token = token

    def set_users(self, users: Mapping[str, UserSpec]) -> None:
        """Replace the workspace's people: {"U1": "Real Name"} or {"U1": {"real_name": ...,
        "display_name": ..., "email": ..., "tz": ..., "is_bot": ..., "deleted": ...}}."""
        with self._cond:
            self._users = dict(users)

    def set_user(self, user_id: str, spec: UserSpec) -> None:
        with self._cond:
            self._users[user_id] = spec

    def user_names(self) -> dict[str, str]:
        """Each user's name as Slack shows it in a mention: the display name, else the real one."""
        with self._cond:
            users = {**self._users, BOT_USER_ID: {"real_name": BOT_USER_NAME}}
            objects = [_user_object(uid, spec, False) for uid, spec in users.items()]
        return {o["id"]: o["profile"]["display_name"] or o["profile"]["real_name"] for o in objects}

    def set_usergroups(self, usergroups: Mapping[str, Sequence[str]]) -> None:
        with self._cond:
            self._usergroups = {k: list(v) for k, v in usergroups.items()}

    def set_usergroup(self, usergroup_id: str, members: Sequence[str]) -> None:
        with self._cond:
            self._usergroups[usergroup_id] = list(members)

    def set_channels(self, channels: Mapping[str, ChannelSpec] | None) -> None:
        """Replace the workspace's channels: {"C1": "general"} or {"C1": {"name": ...,
        "private": ..., "member": ..., "archived": ...}}. Only these exist then (Slack answers
        channel_not_found for any other); None: every C…/G… id is a public channel the bot
        is in, the default that lets tests post anywhere without declaring channels."""
        with self._cond:
            self._channels = _channel_table(channels)

    def set_channel(self, channel_id: str, spec: ChannelSpec) -> None:
        """Add or change one channel (the workspace then has only the channels declared)."""
        with self._cond:
            self._channels = {**(self._channels or {}), channel_id: _channel_spec(spec)}

    def reset(self) -> None:
        """Forget calls, messages, views, DMs and faults; keep the configuration.
        Timestamps and ids keep counting up, so stale references never match new things."""
        with self._cond:
            self._calls.clear()
            self._messages.clear()
            self._ephemerals.clear()
            self._views.clear()
            self._last_view_id = None
            self._homes.clear()
            self._ims.clear()
            self._files.clear()
            self._faults.clear()
            self._outage = None
        self.socket_mode.reset()

    # --- fault injection ----------------------------------------------------------------

    def inject(
        self,
        method: str,
        *,
        status: int | None = None,
        retry_after: int = 1,
        error: str | None = None,
        times: int | None = 1,
    ) -> None:
        """Fail the next `times` calls of `method` ("*" = any; times=None = until cleared).

        status defaults to 429 (with `Retry-After: retry_after`), or to 200 when only an
        `error` is given: then the reply is Slack's `{"ok": false, "error": error}`.
        Faults queue in order; a faulted call is recorded and changes nothing.
        """
        if status is None:
            status = 200 if error else 429
        if status == 200 and not error:
            raise ValueError("a fault with HTTP 200 needs an error code")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for until cleared)")
        fault = _Fault(
            method=method,
            status=status,
            retry_after=retry_after if status == 429 else None,
            error=error or _FAULT_ERRORS.get(status, "request_failed"),
            remaining=times,
        )
        with self._cond:
            self._faults.append(fault)

    def outage(self, status: int = 500, *, error: str | None = None) -> None:
        """Fail every call with HTTP `status` until recover()."""
        with self._cond:
            self._outage = _Fault(
                method="*",
                status=status,
                retry_after=1 if status == 429 else None,
                error=error or _FAULT_ERRORS.get(status, "request_failed"),
                remaining=None,
            )

    def recover(self) -> None:
        with self._cond:
            self._outage = None

    def clear_faults(self) -> None:
        with self._cond:
            self._faults.clear()
            self._outage = None

    def _take_fault(self, method: str) -> _Fault | None:
        if self._outage is not None:
            return self._outage
        for fault in self._faults:
            if fault.method in (method, "*"):
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                return fault
        return None

    # --- reading the state (all return copies) ------------------------------------------

    def calls(self, method: str | None = None) -> list[Call]:
        with self._cond:
            return [c for c in self._calls if method is None or c.method == method]

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """The channel's messages as its history shows them: top level and broadcast replies,
        oldest first, with chat.update edits applied. A user id means the bot's DM with them."""
        with self._cond:
            return copy.deepcopy(
                [
                    m
                    for m in self._messages.get(self._known_channel(channel), [])
                    if m.get("thread_ts", m["ts"]) == m["ts"]
                    or m.get("subtype") == "thread_broadcast"
                ]
            )

    def thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """The replies (not the parent) in the thread under `ts`, oldest first."""
        with self._cond:
            return copy.deepcopy(
                [
                    m
                    for m in self._messages.get(self._known_channel(channel), [])
                    if m.get("thread_ts") == ts and m["ts"] != ts
                ]
            )

    def message(self, channel: str, ts: str) -> dict[str, Any]:
        with self._cond:
            found = self._find(self._known_channel(channel), ts)
            if found is None:
                raise LookupError(f"no message {ts} in {channel}")
            return copy.deepcopy(found)

    def refusals(self) -> list[Refusal]:
        """The payloads refused since reset() for breaking a limit, in order."""
        with self._cond:
            return [_refusal(c) for c in self._calls if c.refused]

    def views(self) -> list[dict[str, Any]]:
        """Every view opened, pushed or published, in order, as it is now (after
        views.update)."""
        with self._cond:
            return copy.deepcopy(list(self._views.values()))

    def view(self, view_id: str) -> dict[str, Any]:
        with self._cond:
            if view_id not in self._views:
                raise LookupError(f"no view {view_id}")
            return copy.deepcopy(self._views[view_id])

    def home(self, user: str) -> dict[str, Any]:
        """The App Home view last published for `user`."""
        with self._cond:
            if user not in self._homes:
                raise LookupError(f"no App Home published for {user}")
            return copy.deepcopy(self._views[self._homes[user]])

    def last_view(self) -> dict[str, Any]:
        """The view most recently opened, pushed or updated."""
        with self._cond:
            if self._last_view_id is None:
                raise LookupError("no view has been opened")
            return copy.deepcopy(self._views[self._last_view_id])

    def ephemerals(self, user: str | None = None) -> list[dict[str, Any]]:
        """Ephemeral messages ({channel, user, message_ts, text, blocks?, thread_ts?})."""
        with self._cond:
            return copy.deepcopy([e for e in self._ephemerals if user is None or e["user"] == user])

    def dms(self, user: str) -> list[dict[str, Any]]:
        """Messages the bot sent in its DM with `user` (via conversations.open or a U-id)."""
        with self._cond:
            im = self._ims.get((user,))
            return [] if im is None else self.messages(im)

    def files(self) -> list[dict[str, Any]]:
        """Every file whose upload was started, in order: {id, name, title, length,
        uploaded (the bytes, or None), completed, channels}."""
        with self._cond:
            return [f.describe() for f in self._files.values()]

    def file_bytes(self, file_id: str) -> bytes:
        """What was uploaded for `file_id` (a test reads the CSV the bot sent)."""
        with self._cond:
            found = self._files.get(file_id)
            if found is None or found.data is None:
                raise LookupError(f"no uploaded file {file_id}")
            return found.data

    # --- waiting ------------------------------------------------------------------------

    def wait_for(
        self,
        predicate: CallPredicate | None = None,
        timeout: float = 5.0,
        *,
        method: str | None = None,
        count: int = 1,
    ) -> Call:
        """Block until `count` recorded calls (faulted ones included; calls made before this
        wait count too) match `method` and `predicate`; return the count-th match.
        From an asyncio test whose loop runs the bot, use `await_for` instead."""
        with self._cond:
            if not self._cond.wait_for(
                lambda: len(self._matching(predicate, method)) >= count, timeout
            ):
                raise TimeoutError(self._timeout_message(timeout, method, count))
            return self._matching(predicate, method)[count - 1]

    async def await_for(
        self,
        predicate: CallPredicate | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109 - the same signature as wait_for
        *,
        method: str | None = None,
        count: int = 1,
    ) -> Call:
        """`wait_for` for asyncio: the caller's loop keeps running while it waits."""

        def found() -> Call | None:
            matching = self._matching(predicate, method)
            return matching[count - 1] if len(matching) >= count else None

        try:
            return await self._changes.until(found, timeout)
        except TimeoutError:
            with self._cond:
                message = self._timeout_message(timeout, method, count)
            raise TimeoutError(message) from None

    def _matching(self, predicate: CallPredicate | None, method: str | None) -> list[Call]:
        return [
            c
            for c in self._calls
            if (method is None or c.method == method) and (predicate is None or predicate(c))
        ]

    def _timeout_message(self, timeout: float, method: str | None, count: int) -> str:
        seen = ", ".join(f"{c.method}({'ok' if c.ok else c.error})" for c in self._calls[-20:])
        wanted = f"{count} matching {method or 'Slack'} call(s)"
        return f"no {wanted} within {timeout}s; last calls: [{seen}]"

    # --- HTTP -----------------------------------------------------------------------------

    async def _handle(self, request: Request) -> JSONResponse:
        method = request.path_params["method"]
        bad_request: str | None = None
        try:
            args = await _read_args(request)
        except _BadRequest as exc:
            args, bad_request = {}, exc.error
        token = _bearer(request.headers.get("authorization")) or args.get("token")
        args.pop("token", None)  # a secret: never recorded
        headers: dict[str, str] = {}
        with self._cond:
            fault = self._take_fault(method)
            handler = self._methods.get(method)
            if fault is not None:
                status, body, headers = fault.reply()
            elif method == "apps.connections.open":  # Socket Mode: the app-level token's call
                status = 200
                body = self.socket_mode.connections_open(token, bot_token=self._bot_token)
            elif handler is None:
                status, body = 404, {"ok": False, "error": "unknown_method", "req_method": method}
            elif bad_request is not None:
                status, body = 200, {"ok": False, "error": bad_request}
            elif not token:
                status, body = 200, {"ok": False, "error": "not_authed"}
            elif token == self.socket_mode.app_token:  # an xapp- token calls no Web API method
                status, body = 200, {"ok": False, "error": "not_allowed_token_type"}
            elif token != self._bot_token:
                status, body = 200, {"ok": False, "error": "invalid_auth"}
            else:
                status, body = 200, handler(args)
            self._record(method, args, status, body, faulted=fault is not None)
        logger.info("slack stand-in: %s -> %s", method, "ok" if body.get("ok") else body["error"])
        return JSONResponse(body, status_code=status, headers=headers)

    async def _upload(self, request: Request) -> PlainTextResponse:
        """The upload URL of files.getUploadURLExternal: the file's bytes, raw, as slack_sdk
        sends them. No token: the URL is the credential. Slack answers 200 with
        "OK - <length>". Slack also takes a multipart form; the stand-in refuses one (415)
        rather than miscount it, since nothing here sends one (no form parser installed)."""
        key = request.path_params["key"]
        data = await request.body()
        multipart = request.headers.get("content-type", "").startswith("multipart/")
        with self._cond:
            found = next((f for f in self._files.values() if f.key == key), None)
            if multipart:
                status, text = 415, "the stand-in takes the file as raw bytes"
            elif found is None:
                status, text = 404, "upload URL not found"
            elif found.data is not None or found.completed:
                status, text = 400, "this upload URL was already used"
            elif len(data) != found.length:
                # The length given to files.getUploadURLExternal is what Slack expects.
                status, text = 400, f"expected {found.length} bytes, got {len(data)}"
            else:
                found.data = data
                status, text = 200, f"OK - {len(data)}"
            args = {"file_id": found.id if found else None, "length": len(data)}
            self._record("upload", args, status, {"ok": status == 200, "text": text}, faulted=False)
        logger.info("slack stand-in: upload -> %s", status)
        return PlainTextResponse(text, status_code=status)

    def _record(
        self, method: str, args: dict[str, Any], status: int, body: dict[str, Any], *, faulted: bool
    ) -> None:
        call = Call(
            seq=len(self._calls),
            method=method,
            args=copy.deepcopy(args),
            time=time.time(),
            status=status,
            response=copy.deepcopy(body),
            faulted=faulted,
        )
        self._calls.append(call)
        if call.refused:
            REFUSALS.add(_refusal(call))
        self._changes.notify()

    # --- state helpers (callers hold the lock) ---------------------------------------------

    def _next_ts(self) -> str:
        micros = max(int(self._clock() * 1_000_000), self._last_ts_micros + _TS_STEP_MICROS)
        self._last_ts_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}0{next(self._id_counter):08X}"

    def _find(self, channel: str, ts: str) -> dict[str, Any] | None:
        return next((m for m in self._messages.get(channel, []) if m["ts"] == ts), None)

    def _known_channel(self, channel: str) -> str:
        """A user id stands for the bot's DM with that user, if there is one."""
        return self._ims.get((channel,), channel) if channel.startswith(("U", "W")) else channel

    def _im_for(self, users: tuple[str, ...]) -> tuple[str, bool]:
        """The DM (one user) or group DM with `users`, opening it if needed."""
        key = tuple(sorted(users))
        if key in self._ims:
            return self._ims[key], True
        self._ims[key] = self._new_id("D" if len(key) == 1 else "G")
        return self._ims[key], False

    def _bot_message(self, args: Mapping[str, Any], ts: str) -> dict[str, Any]:
        message: dict[str, Any] = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": TEAM_ID,
            "text": args.get("text") or "",
            "ts": ts,
        }
        for key in ("blocks", "attachments", "metadata"):
            if args.get(key):
                message[key] = args[key]
        return message

    # --- methods (callers hold the lock; a method changes state only when it succeeds) ------

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": f"https://{TEAM_DOMAIN}.slack.com/",
            "team": TEAM_NAME,
            "user": BOT_USER_NAME,
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel") or "")
        if not channel:
            return _error("channel_not_found")
        if problem := _check_message(args):
            return problem
        if channel.startswith(("U", "W")):  # posting to a user id posts in the bot's DM
            channel, _ = self._im_for((channel,))
        thread_ts = args.get("thread_ts") or None
        parent = None
        if thread_ts:
            parent = self._find(channel, str(thread_ts))
            if parent is None:
                return _error("thread_not_found")
            if parent.get("thread_ts", parent["ts"]) != parent["ts"]:
                # A reply to a reply joins the parent's thread.
                parent = self._find(channel, parent["thread_ts"])
                assert parent is not None
        ts = self._next_ts()
        message = self._bot_message(args, ts)
        if parent is not None:
            message["thread_ts"] = parent["ts"]
            if _flag(args.get("reply_broadcast")):
                message["subtype"] = "thread_broadcast"
            parent["thread_ts"] = parent["ts"]
            parent["reply_count"] = parent.get("reply_count", 0) + 1
            parent["reply_users"] = [BOT_USER_ID]
            parent["reply_users_count"] = 1
            parent["latest_reply"] = ts
        self._messages.setdefault(channel, []).append(message)
        return {"ok": True, "channel": channel, "ts": ts, "message": copy.deepcopy(message)}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._known_channel(str(args.get("channel") or ""))
        message = self._find(channel, str(args.get("ts") or ""))
        if message is None:
            return _error("message_not_found")
        if problem := _check_message(args):
            return problem
        # Fields given replace the old ones; fields left out stay as they were.
        if "text" in args:
            message["text"] = args["text"] or ""
        for key in ("blocks", "attachments", "metadata"):
            if key in args:
                if args[key]:
                    message[key] = args[key]
                else:
                    message.pop(key, None)
        message["edited"] = {"user": BOT_USER_ID, "ts": self._next_ts()}
        return {
            "ok": True,
            "channel": channel,
            "ts": message["ts"],
            "text": message["text"],
            "message": copy.deepcopy(message),
        }

    def _chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._known_channel(str(args.get("channel") or ""))
        message = self._find(channel, str(args.get("ts") or ""))
        if message is None:
            return _error("message_not_found")
        self._messages[channel].remove(message)
        thread_ts = message.get("thread_ts")
        if thread_ts and thread_ts != message["ts"]:
            parent = self._find(channel, thread_ts)
            if parent is not None:
                parent["reply_count"] = max(parent.get("reply_count", 1) - 1, 0)
        return {"ok": True, "channel": channel, "ts": message["ts"]}

    def _chat_post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel") or "")
        user = str(args.get("user") or "")
        if not channel:
            return _error("channel_not_found")
        if not user:
            return _error("user_not_found")
        if problem := _check_message(args):
            return problem
        ts = self._next_ts()
        ephemeral: dict[str, Any] = {
            "channel": channel,
            "user": user,
            "message_ts": ts,
            "text": args.get("text") or "",
        }
        for key in ("blocks", "attachments", "thread_ts"):
            if args.get(key):
                ephemeral[key] = args[key]
        self._ephemerals.append(ephemeral)
        return {"ok": True, "message_ts": ts}

    def _chat_get_permalink(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._known_channel(str(args.get("channel") or ""))
        message = self._find(channel, str(args.get("message_ts") or ""))
        if message is None:
            return _error("message_not_found")
        link = (
            f"https://{TEAM_DOMAIN}.slack.com/archives/{channel}/p{message['ts'].replace('.', '')}"
        )
        thread_ts = message.get("thread_ts")
        if thread_ts and thread_ts != message["ts"]:
            link += f"?thread_ts={thread_ts}&cid={channel}"
        return {"ok": True, "channel": channel, "permalink": link}

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("trigger_id"):
            return _invalid_arguments(["[ERROR] missing required field: trigger_id"])
        return self._create_view(args, previous=None)

    def _views_push(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("trigger_id"):
            return _invalid_arguments(["[ERROR] missing required field: trigger_id"])
        # The stand-in cannot tell which modal a trigger came from: it pushes onto the newest.
        previous = self._views.get(self._last_view_id or "")
        if previous is None:
            return _error("not_found")
        depth, cursor = 1, previous
        while cursor.get("previous_view_id") in self._views:
            depth, cursor = depth + 1, self._views[cursor["previous_view_id"]]
        if depth >= _MAX_VIEW_STACK:
            return _error("push_limit_reached")
        return self._create_view(args, previous=previous)

    def _create_view(self, args: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
        spec = args.get("view")
        if problems := blockkit.check_view(spec, kinds=("modal",)):
            return _invalid_arguments(problems)
        assert isinstance(spec, Mapping)
        external_id = spec.get("external_id") or ""
        if external_id and any(v["external_id"] == external_id for v in self._views.values()):
            return _error("duplicate_external_id")
        view_id = self._new_id("V")
        view = {
            "id": view_id,
            "team_id": TEAM_ID,
            "type": spec["type"],
            "previous_view_id": previous["id"] if previous else None,
            "root_view_id": previous["root_view_id"] if previous else view_id,
            "app_id": APP_ID,
            "app_installed_team_id": TEAM_ID,
            "bot_id": BOT_ID,
            "external_id": external_id,
        }
        _apply_view_spec(view, spec, view_hash=self._new_hash())
        self._views[view_id] = view
        self._last_view_id = view_id
        return {"ok": True, "view": copy.deepcopy(view)}

    def _views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        view_id, external_id = args.get("view_id"), args.get("external_id")
        if not view_id and not external_id:
            return _invalid_arguments(["[ERROR] either view_id or external_id is required"])
        if view_id:
            view = self._views.get(str(view_id))
        else:
            view = next((v for v in self._views.values() if v["external_id"] == external_id), None)
        if view is None:
            return _error("not_found")
        if args.get("hash") and args["hash"] != view["hash"]:
            return _error("hash_conflict")
        spec = args.get("view")
        # A modal stays a modal and a Home tab a Home tab.
        if problems := blockkit.check_view(spec, kinds=(view["type"],)):
            return _invalid_arguments(problems)
        assert isinstance(spec, Mapping)
        _apply_view_spec(view, spec, view_hash=self._new_hash())
        if view["type"] == "modal":
            self._last_view_id = view["id"]
        return {"ok": True, "view": copy.deepcopy(view)}

    def _views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        """A user's App Home tab: published anew or replaced in place."""
        user = str(args.get("user_id") or "")
        if not user:
            return _invalid_arguments(["[ERROR] missing required field: user_id"])
        spec = args.get("view")
        if problems := blockkit.check_view(spec, kinds=("home",)):
            return _invalid_arguments(problems)
        assert isinstance(spec, Mapping)
        view = self._views.get(self._homes.get(user, ""))
        if view is not None and args.get("hash") and args["hash"] != view["hash"]:
            return _error("hash_conflict")
        if view is None:
            view_id = self._new_id("V")
            view = {
                "id": view_id,
                "team_id": TEAM_ID,
                "type": "home",
                "previous_view_id": None,
                "root_view_id": view_id,
                "app_id": APP_ID,
                "app_installed_team_id": TEAM_ID,
                "bot_id": BOT_ID,
                "external_id": "",
            }
            self._views[view_id] = view
            self._homes[user] = view_id
        _apply_view_spec(view, spec, view_hash=self._new_hash())
        return {"ok": True, "view": copy.deepcopy(view)}

    def _new_hash(self) -> str:
        return f"1700000000.{next(self._id_counter):08X}"

    def _files_get_upload_url_external(self, args: dict[str, Any]) -> dict[str, Any]:
        """Step 1 of an upload: a file id and a one-time URL for `length` bytes."""
        problems = []
        filename = args.get("filename")
        if not isinstance(filename, str) or not filename.strip():
            problems.append("[ERROR] missing required field: filename")
        try:
            length = int(args.get("length"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            length = -1
        if length < 1:
            problems.append("[ERROR] length must be a positive integer")
        if problems:
            return _invalid_arguments(problems)
        file_id = self._new_id("F")
        key = secrets.token_urlsafe(12)
        self._files[file_id] = _File(file_id, str(filename), length, key)
        return {"ok": True, "upload_url": f"{self.url}{UPLOAD_PATH}/{key}", "file_id": file_id}

    def _files_complete_upload_external(self, args: dict[str, Any]) -> dict[str, Any]:
        """Step 3: the uploaded files shared in `channel_id` (or private without one), with
        `initial_comment` as the message that carries them."""
        wanted = args.get("files")
        if (
            not isinstance(wanted, list)
            or not wanted
            or not all(isinstance(f, dict) and isinstance(f.get("id"), str) for f in wanted)
        ):
            return _invalid_arguments(["[ERROR] files must be a list of {id, title}"])
        found = [self._files.get(f["id"]) for f in wanted]
        if any(f is None or f.data is None or f.completed for f in found):
            return _error("file_not_found")  # unknown, never uploaded, or completed already
        if args.get("channels"):
            return _error("invalid_arguments")  # the stand-in knows channel_id only
        channel = self._share_target(args)
        if isinstance(channel, dict):
            return channel
        shared = []
        for entry, file in zip(wanted, found, strict=True):
            assert file is not None
            file.completed = True
            file.title = str(entry.get("title") or file.name)
            if channel:
                file.channels.append(channel)
            shared.append({"id": file.id, "title": file.title})
        if channel:
            comment = {"text": args.get("initial_comment") or ""}
            message = self._bot_message(comment, self._next_ts())
            message["files"] = [f.describe(with_data=False) for f in found if f is not None]
            if args.get("thread_ts"):
                message["thread_ts"] = str(args["thread_ts"])
            self._messages.setdefault(channel, []).append(message)
        return {"ok": True, "files": shared}

    def _share_target(self, args: Mapping[str, Any]) -> str | dict[str, Any]:
        """Where completed files are shared ("" for nowhere), or Slack's error."""
        channel = str(args.get("channel_id") or "")
        if channel.startswith(("U", "W")):
            channel, _ = self._im_for((channel,))
        elif channel:
            if problem := self._check_conversation(channel):
                return problem
            spec = None if channel.startswith("D") else self._channel(channel)
            if spec is not None and not spec.get("member", True):
                return _error("not_in_channel")
        thread_ts = args.get("thread_ts")
        if thread_ts and not (channel and self._find(channel, str(thread_ts))):
            return _error("invalid_thread_ts")
        return channel

    def _usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        group = args.get("usergroup")
        if not group:
            return _invalid_arguments(["[ERROR] missing required field: usergroup"])
        if group not in self._usergroups:
            return _error("no_such_subteam")
        return {"ok": True, "users": list(self._usergroups[group])}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user_id = str(args.get("user") or "")
        if user_id == BOT_USER_ID:
            return {"ok": True, "user": _user_object(BOT_USER_ID, {"real_name": "ZNS bot"}, True)}
        if user_id not in self._users:
            return _error("user_not_found")
        return {"ok": True, "user": _user_object(user_id, self._users[user_id], False)}

    def _conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        """A channel as the bot sees it; a private one it is not in does not exist for it."""
        channel = str(args.get("channel") or "")
        if channel.startswith("D") and channel in self._ims.values():
            user = next(users[0] for users, im in self._ims.items() if im == channel)
            return {"ok": True, "channel": _im_object(channel, user)}
        spec = self._channel(channel)
        if spec is None or (spec["private"] and not spec["member"]):
            return _error("channel_not_found")
        return {"ok": True, "channel": _channel_object(channel, spec)}

    def _channel(self, channel: str) -> dict[str, Any] | None:
        """The channel's spec, or None when the workspace has no such channel."""
        if self._channels is None:
            return _channel_spec(channel.lower()) if _is_channel_id(channel) else None
        return self._channels.get(channel)

    def _conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        if args.get("channel"):
            return {
                "ok": True,
                "no_op": True,
                "already_open": True,
                "channel": {"id": args["channel"]},
            }
        users = args.get("users") or ""
        members = tuple(
            u.strip() for u in (users.split(",") if isinstance(users, str) else users) if u.strip()
        )
        if not members:
            return _error("users_list_not_supplied")
        if len(members) > 8:
            return _error("too_many_users")
        channel, existed = self._im_for(members)
        reply: dict[str, Any] = {"ok": True, "channel": {"id": channel}}
        if existed:
            reply |= {"no_op": True, "already_open": True}
        return reply

    def _conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        """Top-level messages (and thread broadcasts), newest first, a page at a time."""
        channel = str(args.get("channel") or "")
        if problem := self._check_conversation(channel):
            return problem
        window = _Window.parse(args, _HISTORY_LIMIT)
        if isinstance(window, dict):
            return window
        shown = [
            m
            for m in reversed(self._messages.get(channel, []))
            if m.get("thread_ts", m["ts"]) == m["ts"] or m.get("subtype") == "thread_broadcast"
        ]
        page, more = window.page(shown, newest_first=True)
        reply: dict[str, Any] = {
            "ok": True,
            "messages": [_as_listed(m, window.metadata) for m in page],
            "has_more": more,
            "pin_count": 0,
            "channel_actions_ts": None,
            "channel_actions_count": 0,
            "response_metadata": {"next_cursor": _cursor(page[-1]["ts"]) if more else ""},
        }
        if args.get("latest"):
            reply["latest"] = str(args["latest"])
        return reply

    def _conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        """A thread: its parent first, then the replies oldest first, a page at a time.
        The ts of a reply stands for its whole thread; an unthreaded message comes alone."""
        channel = str(args.get("channel") or "")
        if problem := self._check_conversation(channel):
            return problem
        if not args.get("ts"):
            return _invalid_arguments(["[ERROR] missing required field: ts"])
        message = self._find(channel, str(args["ts"]))
        if message is None:
            return _error("thread_not_found")
        parent = self._find(channel, message.get("thread_ts", message["ts"])) or message
        window = _Window.parse(args, _REPLIES_LIMIT)
        if isinstance(window, dict):
            return window
        replies = [
            m
            for m in self._messages.get(channel, [])
            if m.get("thread_ts") == parent["ts"] and m["ts"] != parent["ts"]
        ]
        page, more = window.page(replies, newest_first=False)
        if window.cursor is None:  # the first page leads with the parent
            page = [parent, *page]
        return {
            "ok": True,
            "messages": [_as_listed(m, window.metadata) for m in page],
            "has_more": more,
            "response_metadata": {"next_cursor": _cursor(page[-1]["ts"]) if more else ""},
        }

    def _check_conversation(self, channel: str) -> dict[str, Any] | None:
        """Reading a conversation: a channel of the workspace; a DM only once opened."""
        if not channel or channel.startswith(("U", "W")):
            return _error("channel_not_found")
        if channel.startswith("D"):
            return None if channel in self._ims.values() else _error("channel_not_found")
        if self._channels is not None and channel not in self._channels:
            return _error("channel_not_found")
        return None


@dataclass(frozen=True, slots=True)
class _Window:
    """The oldest/latest/inclusive/limit/cursor arguments of a conversations.* read."""

    oldest: int  # microseconds
    latest: int | None
    inclusive: bool
    limit: int
    cursor: int | None  # the ts (microseconds) of the last message already shown
    metadata: bool

    @classmethod
    def parse(cls, args: Mapping[str, Any], limits: tuple[int, int]) -> _Window | dict[str, Any]:
        oldest = _micros(args.get("oldest") or "0")
        if oldest is None:
            return _error("invalid_ts_oldest")
        latest = _micros(args["latest"]) if args.get("latest") else None
        if args.get("latest") and latest is None:
            return _error("invalid_ts_latest")
        cursor = None
        if args.get("cursor"):
            try:
                prefix, _, value = base64.b64decode(str(args["cursor"])).decode().partition(":")
                cursor = int(value) if prefix == "next_ts" and value.isdigit() else None
            except ValueError:
                cursor = None
            if cursor is None:
                return _error("invalid_cursor")
        try:
            limit = int(args.get("limit") or limits[0])
        except ValueError:
            return _error("invalid_limit")
        return cls(
            oldest=oldest,
            latest=latest,
            inclusive=_flag(args.get("inclusive")),
            limit=max(1, min(limit, limits[1])),
            cursor=cursor,
            metadata=_flag(args.get("include_all_metadata")),
        )

    def page(
        self, messages: list[dict[str, Any]], *, newest_first: bool
    ) -> tuple[list[dict[str, Any]], bool]:
        """The messages in the window after the cursor, one page, and whether more follow."""

        def inside(message: Mapping[str, Any]) -> bool:
            ts = _micros(message["ts"]) or 0
            if ts < self.oldest or (self.latest is not None and ts > self.latest):
                return False
            if not self.inclusive and (ts == self.oldest or ts == self.latest):
                return False
            if self.cursor is not None:
                return ts < self.cursor if newest_first else ts > self.cursor
            return True

        chosen = [m for m in messages if inside(m)]
        return chosen[: self.limit], len(chosen) > self.limit


def _micros(ts: Any) -> int | None:
    """A Slack ts ("1700000000.000100", or a whole number of seconds) in microseconds."""
    try:
        value = Decimal(str(ts))
    except InvalidOperation:
        return None
    return int(value * 1_000_000) if value.is_finite() and value >= 0 else None


def _cursor(ts: str) -> str:
    """Slack's cursor shape: base64 of "next_ts:<ts in microseconds>"."""
    return base64.b64encode(f"next_ts:{_micros(ts)}".encode()).decode()


def _as_listed(message: Mapping[str, Any], metadata: bool) -> dict[str, Any]:
    """A stored message as conversations.* list it: metadata only when asked for."""
    listed = copy.deepcopy(dict(message))
    if not metadata:
        listed.pop("metadata", None)
    return listed


# --- request parsing and validation ----------------------------------------------------------


async def _read_args(request: Request) -> dict[str, Any]:
    """Query string and body (JSON or form) merged, the body winning, as Slack reads them."""
    args: dict[str, Any] = dict(request.query_params)
    body = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if body and content_type == "application/json":
        try:
            parsed = json.loads(body)
        except ValueError:
            raise _BadRequest("invalid_json") from None
        if not isinstance(parsed, dict):
            raise _BadRequest("invalid_json")
        args.update(parsed)
    elif body:
        try:
            args.update(parse_qsl(body.decode(), keep_blank_values=True))
        except UnicodeDecodeError:
            raise _BadRequest("invalid_form_data") from None
    for key, error in _JSON_FIELDS.items():
        if isinstance(args.get(key), str) and args[key]:
            try:
                args[key] = json.loads(args[key])
            except ValueError:
                raise _BadRequest(error) from None
    return args


def _bearer(header: str | None) -> str | None:
    if header and header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1")


def _error(code: str) -> dict[str, Any]:
    return {"ok": False, "error": code}


def _refused(error: str, problems: list[str]) -> dict[str, Any]:
    return {"ok": False, "error": error, "response_metadata": {"messages": problems}}


def _invalid_arguments(problems: list[str]) -> dict[str, Any]:
    return _refused("invalid_arguments", problems)


def _check_message(args: Mapping[str, Any]) -> dict[str, Any] | None:
    """Slack's checks on a message's content: an error reply, or None when it is fine."""
    if not (args.get("text") or args.get("blocks") or args.get("attachments")):
        return _error("no_text")
    # Slack truncates longer text; the stand-in refuses it, so a test notices.
    if len(str(args.get("text") or "")) > blockkit.MESSAGE_TEXT_MAX:
        return _error("msg_too_long")
    if args.get("metadata") and not _valid_metadata(args["metadata"]):
        return _error("invalid_metadata_schema")
    blocks = args.get("blocks")
    if not blocks:
        return None
    if problems := blockkit.check_message_blocks(blocks):
        return _refused("invalid_blocks", problems)
    if (length := blockkit.blocks_text_length(blocks)) > blockkit.BLOCKS_TEXT_MAX:
        # Slack gives no details here; the stand-in says why, for whoever reads the refusal.
        return _refused(
            "msg_blocks_too_long",
            [
                f"[ERROR] blocks hold {length:,} characters of text, Slack refuses more than "
                f"about {blockkit.BLOCKS_TEXT_MAX:,} [json-pointer:/blocks]"
            ],
        )
    return None


def _valid_metadata(metadata: Any) -> bool:
    """Message metadata: {"event_type": "word_chars", "event_payload": {...}}."""
    if not isinstance(metadata, Mapping):
        return False
    event_type = metadata.get("event_type")
    return (
        isinstance(event_type, str)
        and bool(event_type)
        and all(ch.isascii() and (ch.isalnum() or ch == "_") for ch in event_type)
        and isinstance(metadata.get("event_payload"), Mapping)
    )


def _refusal(call: Call) -> Refusal:
    messages = call.response.get("response_metadata", {}).get("messages", [])
    return Refusal(method=call.method, error=call.error or "", messages=tuple(messages))


def _apply_view_spec(view: dict[str, Any], spec: Mapping[str, Any], *, view_hash: str) -> None:
    view.update(
        {
            "type": spec["type"],
            "title": spec.get("title"),
            "blocks": spec.get("blocks", []),
            "close": spec.get("close"),
            "submit": spec.get("submit"),
            "private_metadata": spec.get("private_metadata") or "",
            "callback_id": spec.get("callback_id") or "",
            "clear_on_close": bool(spec.get("clear_on_close", False)),
            "notify_on_close": bool(spec.get("notify_on_close", False)),
            "state": {"values": {}},
            "hash": view_hash,
        }
    )
    if spec.get("external_id"):
        view["external_id"] = spec["external_id"]


def _is_channel_id(channel: str) -> bool:
    return len(channel) > 1 and channel[0] in "CG" and channel.isalnum() and channel.isupper()


def _channel_spec(spec: ChannelSpec) -> dict[str, Any]:
    info: Mapping[str, Any] = {"name": spec} if isinstance(spec, str) else spec
    return {
        "name": str(info.get("name") or "channel"),
        "private": bool(info.get("private", False)),
        "member": bool(info.get("member", True)),
        "archived": bool(info.get("archived", False)),
    }


def _channel_table(channels: Mapping[str, ChannelSpec] | None) -> dict[str, dict[str, Any]] | None:
    return None if channels is None else {k: _channel_spec(v) for k, v in channels.items()}


def _channel_object(channel_id: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """conversations.info's channel, shaped as Slack's reference shows a channel."""
    blank = {"value": "", "creator": "", "last_set": 0}
    return {
        "id": channel_id,
        "name": spec["name"],
        "is_channel": True,
        "is_group": False,
        "is_im": False,
        "is_mpim": False,
        "is_private": spec["private"],
        "created": 1_700_000_000,
        "is_archived": spec["archived"],
        "is_general": False,
        "unlinked": 0,
        "name_normalized": _normalized(spec["name"]),
        "is_shared": False,
        "is_frozen": False,
        "is_org_shared": False,
        "is_pending_ext_shared": False,
        "pending_shared": [],
        "context_team_id": TEAM_ID,
        "parent_conversation": None,
        "creator": "U0ZNSADMIN",
        "is_ext_shared": False,
        "shared_team_ids": [TEAM_ID],
        "is_member": spec["member"],
        "topic": dict(blank),
        "purpose": dict(blank),
        "previous_names": [],
    }


def _im_object(channel_id: str, user: str) -> dict[str, Any]:
    return {
        "id": channel_id,
        "created": 1_700_000_000,
        "is_im": True,
        "is_org_shared": False,
        "context_team_id": TEAM_ID,
        "user": user,
        "is_user_deleted": False,
        "priority": 0,
    }


def _normalized(name: str) -> str:
    """Slack's *_normalized names: accents stripped (Vietnamese names are full of them)."""
    decomposed = unicodedata.normalize("NFKD", name.replace("đ", "d").replace("Đ", "D"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _user_object(user_id: str, spec: UserSpec, is_bot: bool) -> dict[str, Any]:
    info: Mapping[str, Any] = {"real_name": spec} if isinstance(spec, str) else spec
    real_name = str(info.get("real_name") or user_id)
    display_name = str(info.get("display_name") or "")
    name = info.get("name") or _normalized(display_name or real_name).lower().replace(" ", ".")
    profile: dict[str, Any] = {
        "real_name": real_name,
        "display_name": display_name,
        "real_name_normalized": _normalized(real_name),
        "display_name_normalized": _normalized(display_name),
        "team": TEAM_ID,
    }
    if info.get("email"):
        profile["email"] = info["email"]
    return {
        "id": user_id,
        "team_id": TEAM_ID,
        "name": name,
        "deleted": bool(info.get("deleted", False)),
        "real_name": real_name,
        "tz": info.get("tz", "Asia/Ho_Chi_Minh"),
        "tz_label": info.get("tz_label", "Indochina Time"),
        "tz_offset": info.get("tz_offset", 25200),
        "profile": profile,
        "is_admin": bool(info.get("is_admin", False)),
        "is_owner": False,
        "is_bot": bool(info.get("is_bot", is_bot)),
        "is_app_user": False,
        "updated": 1_700_000_000,
    }


# --- command line --------------------------------------------------------------------------


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise SystemExit(f"{flag} expects ID=VALUE, got {value!r}")
        pairs[key] = rest
    return pairs


DEFAULT_PORT = 3101  # beside the bot's 3000, so a newcomer's .env lines stay valid


def env_lines(standin: SlackStandIn) -> list[str]:
    """The settings that point zns-bot at `standin` (HTTP mode), as NAME=value lines."""
    return [f"SLACK_API_URL={standin.api_url}", f"SLACK_BOT_TOKEN={standin.bot_token}"]


def main(argv: list[str] | None = None) -> None:
    people = ", ".join(f"{k}={v}" for k, v in DEMO_USERS.items())
    parser = argparse.ArgumentParser(
        prog="python -m standins.slack",
        description=(
            "Run the local Slack Web API stand-in on loopback until Ctrl-C, for trying "
            "zns-bot without a Slack workspace. It prints the settings to give the bot."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 = any free port")
    parser.add_argument(
        "--bot-token", default=DEFAULT_BOT_TOKEN, help="the only bot token it accepts"
    )
    parser.add_argument("--app-token", default=DEFAULT_APP_TOKEN, help="for Socket Mode")
    parser.add_argument(
        "--user",
        action="append",
        default=argparse.SUPPRESS,  # the help names the default people itself
        metavar="ID=REAL NAME",
        help=f"a workspace member, repeat for each (default: {people})",
    )
    parser.add_argument(
        "--usergroup",
        action="append",
        default=argparse.SUPPRESS,
        metavar="ID=U1,U2",
        help="a user group and its members, repeat for each (default: none)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    groups = {
        k: [u for u in v.split(",") if u]
        for k, v in _pairs(getattr(args, "usergroup", []), "--usergroup").items()
    }
    given = getattr(args, "user", None)
    users: Mapping[str, UserSpec] = _pairs(given, "--user") if given else DEMO_USERS
    standin = SlackStandIn(
        bot_token=args.bot_token,
        users=users,
        usergroups=groups,
        host=args.host,
        port=args.port,
        app_token=args.app_token,
    )

    def banner() -> str:
        env = "\n".join(f"  {line}" for line in env_lines(standin))
        return (
            f"Slack stand-in listening on {standin.url}\n"
            f"Give zns-bot these settings (in .env or the environment):\n{env}\n"
            f"  # only for Socket Mode: SLACK_APP_TOKEN={args.app_token}\n"
            f"Members: {', '.join(f'{k} ({v})' for k, v in standin.user_names().items())}\n"
            "Ctrl-C stops it."
        )

    run_until_stopped(standin, banner, f"{args.host}:{args.port}")


if __name__ == "__main__":
    main()
