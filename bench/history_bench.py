"""A history of D days at 5,000 sends a day, then `zns-bot serve` measured on it."""

# How it runs
# -----------
# Build (skipped with --skip-build, which reuses DIR/history as it was built):
# * Virtual time. The history ends 90 min before the next UTC month boundary after today
#   (V_end), so that the running bot seals a whole month during the measured day. Every
#   process that runs the bot gets libfaketime (apt package `faketime`) with an offset that
#   puts its clock on that virtual timeline; without libfaketime the history ends now and
#   no seal is measured. The build's own writes use an injected, ticking clock.
# * Shapes. Every kind of send (CLI or Slack; order, journey or OTP template; delivered,
#   failed with each Zalo code and each error_info encoding, rejected, expired; with or
#   without progress callbacks and a note) is first run once through the real code paths
#   (SendService.prepare/create/approve/reject/submit against a canned eSMS reply, the
#   Relay with a stand-in poster, the CallbackEndpoint handling a real callback query,
#   expire_stale, and the Archiver's own pass) in a scratch store. Its audit events, as the
#   product wrote them, become a template: ids, phone, SMSID, salt, token digest, card ts,
#   names, order code, OTP, note and every time are slots.
# * The old part (before V_end - 73 h): sends arrive as a Poisson process; each is cloned
#   from its shape with its own values and times (approval, callbacks, the archive pass
#   that moves it out 48 h after its final state), merged with the others in time order,
#   chained (seq, prev, the personal digest with the send's salt, storage.audit's
#   event_hash) and appended with the product's own segment writer (storage.archive
#   Segments.append). At each month boundary the archive pass's steps are mirrored: the
#   month's segment is sealed (Segments.seal, gzip), a "sealed" event enters the chain
#   after the new month's first events, finish_seal, and the meta state as Archiver._seal
#   records it. The head, archived_upto and archive state are then written to live.db.
# * The live part (the last 73 h: ZNS_LIVE_HOURS plus the approval TTL plus one hour, so
#   every send still live at V_end was made here): the same Poisson sends through the real
#   write paths with the ticking clock (as above, no shapes), with the expire job every
#   minute and the product's archive pass (Archiver.run_sync) every 300 s; old sends' last
#   events (their archive entries, mostly) are appended with AuditLog.append at their time.
#   What is still pending at V_end (approvals, sends awaiting their callback) stays so.
# * `zns-bot audit verify` must say OK on the result (checked and printed).
# Measure (on a copy of DIR/history, DIR/run), each bot a `zns-bot serve` subprocess
# (standins.process.BotProcess) against the eSMS and Slack stand-ins on 127.0.0.1:
# * idle: defaults; start-up = exec to the first /healthz 200 (50 ms polling); RSS 15 s
#   after exec (/proc/<pid>/status); the lag probe's idle baseline.
# * day: 5,000 new sends created beforehand through the real paths (Slack ones carded in the
#   Slack stand-in by the real SlackPoster), accepted about an hour before the bot starts
#   and polled meanwhile by the product's DeliveryPoller (eSMS: "not yet"), so that the day
#   sees the polls a day would, not all 5,000 sends overdue at once; the bot
#   starts 40 s (virtual) before midnight with ZNS_LIVE_HOURS=0, ZNS_ARCHIVE_EVERY=5 and
#   ZNS_SLACK_PACE=0; their callbacks (finals, 15% failed, progress pairs, duplicates, which
#   mostly arrive after their send left: late callbacks) are fired at a steady rate over
#   --day-seconds. Its first pass archives the 48 h of final sends at once, later passes
#   what the callbacks finish, the first pass after midnight seals the month.
# * The lag probe (its own process): GET /__lag_probe (a 404, no disk work) every 10 ms on
#   one keep-alive connection, and GET /healthz every 100 ms on another: the bot has no lag
#   endpoint, so the longest reply is the longest the event loop could not answer. The same
#   process watches the data directory every 5 ms (live.db.*.tmp and inode: compaction;
#   audit/*.tmp: compression of a seal) and the bot's log (its "archive" line, as a pass that
#   moved something ends, says what it moved and how long the pass took), and
#   reads the loop thread's /proc syscall and schedstat every 2 ms (fsync? waiting for the
#   GIL in futex? running? waiting for a CPU?). After the day, a fresh bot on the store the
#   day left gives the RSS that store needs. One bench at a time in DIR (DIR/bench.lock).
# * intake: new accepted sends, then callback_bench's own load (callback_bench.fire, same
#   mix) against the bot and then a bare Starlette app (both under the same libfaketime);
#   then `zns-bot audit verify` beside the running bot: wall time and peak RSS (its VmHWM).
# * Finally `audit verify` again with the bot stopped: the chain the bot extended holds.

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import fcntl
import heapq
import itertools
import json
import math
import multiprocessing
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import callback_bench as cb
import httpx
import orjson
from starlette.requests import Request

from bot.app import slack_client
from bot.config import Settings
from bot.delivery import DeliveryTracker
from bot.esms.client import EsmsClient
from bot.jobs.polling import QUERY_RATE, DeliveryPoller, RateLimiter
from bot.jobs.relay import Relay
from bot.posts import Kind, Poster
from bot.service import SendService
from bot.templates import TemplateCatalogue
from bot.web.callbacks import CallbackEndpoint
from handlers.poster import SlackPoster
from standins.driver import AGENT, APPROVAL_CHANNEL, APPROVER, NOTIFY_CHANNEL, REQUEST_CHANNEL
from standins.esms import JOURNEY_TEMPLATE, ORDER_TEMPLATE, OTP_TEMPLATE, TEMPLATES, EsmsStandIn
from standins.process import BOT_TOKEN, BotProcess, standin_env, standin_settings
from standins.slack import SlackStandIn
from storage.archive import Seal, Segments
from storage.audit import GENESIS, HEAD_DOC_ID, canonical, event_hash, personal_digest
from storage.content import content_digest
from storage.history import History
from storage.segments import DIR_NAME, SegmentName, stream_events, token_digest
from storage.store import FILE_NAME, Store

US = 1_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HOUR_US = 3600 * US
LIVE_HOURS = 48
ARCHIVE_EVERY_US = 300 * US  # ZNS_ARCHIVE_EVERY's default: the build's passes, on this grid
EXPIRE_EVERY_US = 60 * US  # the expire job's interval
REAL_SPAN_US = 73 * HOUR_US  # live hours + approval TTL + 1 h: the live part's length
END_LEAD_US = 90 * 60 * US  # V_end: this long before the next month boundary
DAY_LEAD_S = 40  # the day's bot starts this long (virtual) before midnight
DAY_ACCEPTED_S = 65 * 60  # the day's sends are accepted from this long before it starts,
DAY_SPREAD_S = 5 * 60  # over this long, and polled by the real DeliveryPoller meanwhile
POLL_EVERY_US = 10 * US  # the poll job's interval
DAY_ARCHIVE_EVERY = 5
INTAKE_SLACK = 0.05  # callback_bench's share of Slack sends
# The intake's callbacks are split into rounds, bot and bare app in turn; the ratio is the
# median round's, as in callback_bench (single rounds moved 0.25-0.43 on this machine).
INTAKE_ROUNDS = 3
TICK_US = 300  # the build clock moves on this much at every read
SUBMIT_US = 250_000  # eSMS's answer to a submit takes this long (build clock)
COMPRESSION = "gzip"
SEGMENT_BATCH = 20_000  # events per Segments.append in the old part
PROBE_PATH = "/__lag_probe"
PROBE_EVERY = 0.010
HEALTH_EVERY = 0.100
WATCH_EVERY = 0.005
SYSCALL_EVERY = 0.002  # how often the loop thread's current system call is read
# /proc/<pid>/task/<pid>/syscall numbers worth a name, by machine
SYSCALLS = {
    "x86_64": {
        "74": "fsync",
        "75": "fdatasync",
        "202": "futex",
        "232": "epoll_wait",
        "281": "epoll_pwait",
        "1": "write",
        "0": "read",
        "3": "close",
        "2": "open",
        "257": "openat",
        "87": "unlink",
        "263": "unlinkat",
        "82": "rename",
        "316": "renameat2",
    },
    "aarch64": {
        "82": "fsync",
        "83": "fdatasync",
        "98": "futex",
        "22": "epoll_pwait",
        "64": "write",
        "63": "read",
        "57": "close",
        "56": "openat",
        "35": "unlinkat",
        "276": "renameat2",
    },
}
HOST = "127.0.0.1"
PUBLIC_BASE_URL = cb.PUBLIC_BASE_URL
CLI_ACTOR = "cli:ops"
REQUESTER = f"slack:{AGENT}"
DECIDER = f"slack:{APPROVER}"
REJECT_REASON = "wrong template for this order"
# The single-threaded build: a fixed offset needs no lock. libfaketimeMT takes one mutex
# (with signals masked) on every clock read, so the loop and a worker thread reading the
# clock at once queue for it: 2.4-3.7 us a read with two threads against 0.25 us here and
# 0.07 us without libfaketime. In `perf record` of the day bot's loop thread, during its
# iterations over 30 ms, the mutex's sigprocmask, getenv and sscanf were a third of the
# samples and futex waits most of the rest.
# Monotonic time stays real (FAKETIME_DONT_FAKE_MONOTONIC): faked, every timed wait hangs.
# And with it real, libfaketime's "monotonic fix" must be off (FAKETIME_FORCE_MONOTONIC_FIX=0;
# it turns itself on with this glibc): it makes a timed wait on a CLOCK_MONOTONIC condition
# variable return at once, and CPython's GIL is one, so every thread waiting for the GIL
# spins on a CPU instead of sleeping. A thread running 20 ms of Python at a time beside one
# that wants the GIL back after each fsync: with a bench busy on the other CPU, the 20 ms
# took 45-52 ms with the fix on and 21.6 ms with it off; on an idle machine 23.4 against
# 20.7 ms, the waiting thread using 45-48% of a CPU against 9-12% (8% without libfaketime;
# GIL_CHECK, run before every measurement). In the day run, `perf sched` showed the loop's
# slow iterations waiting for a CPU behind a spinning worker thread, the other CPU idle.
FAKETIME_LIBS = tuple(
    f"{root}/faketime/libfaketime.so.1"
    for root in (
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib",
        "/usr/local/lib",
    )
)
# Targets (issue 13), for --days 90.
TARGET_IDLE_MIB = 300.0
TARGET_STARTUP_S = 5.0
TARGET_VS_7 = 1.25
TARGET_DAY_VS_IDLE = 1.25
TARGET_PAUSE_MS = 50.0
TARGET_VERIFY_MIB = 300.0
TARGET_INTAKE = 0.3

PREFIXES = (
    *("090", "091", "093", "094", "096", "097", "098", "032", "033", "034", "035"),
    *("036", "037", "038", "039", "070", "076", "077", "078", "079", "081", "083", "086"),
)
NAMES = (
    "Nguyễn Văn An",
    "Trần Thị Bình",
    "Lê Hoàng Cường",
    "Phạm Thu Dung",
    "Hoàng Minh Đức",
    "Vũ Ngọc Hà",
    "Đặng Quốc Huy",
    "Bùi Thanh Lan",
    "Đỗ Thị Mai",
    "Ngô Gia Phúc",
)
NOTES = (
    "Khách hẹn giao buổi chiều, gọi trước 30 phút",
    "Đổi địa chỉ nhận: 12 Lê Lợi, Q1",
    "Khách VIP, ưu tiên xử lý",
    "Giao lại lần 2, khách vắng nhà",
    "Khách yêu cầu xuất hóa đơn công ty",
)
TEMPLATE_IDS = {"order": ORDER_TEMPLATE, "journey": JOURNEY_TEMPLATE, "otp": OTP_TEMPLATE}
PRICES = {t.id: t.price for t in TEMPLATES}
# Shapes are built with these in place of the values each clone gets (valid for prepare()).
SENTINEL = {
    "PHONE": "0988888888",
    "NAME": "ZZNAMEZZ",
    "CODE": "ZZCODEZZ",
    "OTP": "ZZOTPZZ",
    "NOTE": "ZZNOTEZZ",
}
SCRATCH_START = datetime(2026, 6, 1, tzinfo=UTC)
# Every scratch send does each step at the same instant: a time in its events is the
# latest of these at or before it, plus a small offset.
SCRATCH_MARKS = {
    "created": 0,
    "decided": 1,
    "p2": 2,
    "p7": 3,
    "final": 4,
    "dup": 5,
    "expired": 26,
    "archived": 30,
}
ISO_RE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00"
FINALS_BY_CALLBACK = ("delivered", "failed")

ShapeKey = tuple[bool, str, str, int | None, str, bool, bool]
Event = dict[str, Any]


def us_of(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def dt_of(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def iso_us(us: int) -> str:
    return dt_of(us).isoformat(timespec="microseconds")


def ceil_to(us: int, step: int) -> int:
    return -(-us // step) * step


def next_month(us: int) -> int:
    """The start of the UTC month after the one `us` is in."""
    moment = dt_of(us)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return us_of(datetime(year, month, 1, tzinfo=UTC))


def mib(n_bytes: float) -> float:
    return n_bytes / (1 << 20)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class FakeClock:
    """The build's clock: set to each action's time, and a little later at every read."""

    def __init__(self, us: int) -> None:
        self.us = us

    def __call__(self) -> datetime:
        now = dt_of(self.us)
        self.us += TICK_US
        return now

    def set(self, us: int) -> None:
        self.us = max(self.us, us)

    def peek(self) -> datetime:
        return dt_of(self.us)


# --- what each send does -----------------------------------------------------------------


@dataclass(frozen=True)
class Mix:
    """Shares of the traffic (the rest: CLI, order confirmations, delivered...)."""

    slack: float = 0.20
    failed: float = 0.15
    journey: float = 0.30
    otp: float = 0.10
    note: float = 0.20
    progress: float = 0.15  # SendStatus 2 then 7 before the final callback
    duplicate: float = 0.10  # eSMS repeats the final callback, 15-240 s later
    rejected: float = 0.03  # of Slack requests
    expired: float = 0.02  # of Slack requests: nobody decides within ZNS_APPROVAL_TTL


@dataclass
class Plan:
    """One send: its kind, its values and when each of its steps happens (µs, epoch)."""

    slack: bool
    template: str
    outcome: str  # delivered | failed | rejected | expired
    code: int | None
    encoding: str
    progress: bool
    duplicate: bool
    note: str | None
    phone: str
    name: str
    order: str
    otp: str
    marks: dict[str, int]
    send_id: str = ""
    token: str = ""
    sms_id: str = ""

    @property
    def key(self) -> ShapeKey:
        return (
            self.slack,
            self.template,
            self.outcome,
            self.code,
            self.encoding,
            self.progress,
            self.note is not None,
        )

    @property
    def final_us(self) -> int:
        """When it reached its final state."""
        name = {"rejected": "decided", "expired": "expired"}.get(self.outcome, "final")
        return self.marks[name]

    def params(self) -> tuple[str, dict[str, str]]:
        if self.template == "journey":
            params = {"status": "Đang giao", "order_code": self.order, "eta": "30/12/2026"}
            return JOURNEY_TEMPLATE, params
        if self.template == "otp":
            return OTP_TEMPLATE, {"otp": self.otp}
        return ORDER_TEMPLATE, {
            "customer_name": self.name,
            "order_code": self.order,
            "order_date": "27/11/2026",
            "amount": "459000",
            "tracking_url": f"https://shop.example/track/{self.order}",
        }

    def steps(self) -> Iterator[tuple[int, str, int]]:
        """(time, action, callback status) of what follows its creation."""
        if self.slack and self.outcome != "expired":
            yield self.marks["decided"], "decide", 0
        if self.outcome not in FINALS_BY_CALLBACK:
            return
        if self.progress:
            yield self.marks["p2"], "callback", 2
            yield self.marks["p7"], "callback", 7
        yield self.marks["final"], "callback", 5
        if self.duplicate:
            yield self.marks["dup"], "callback", 5


def lognormal_s(rng: random.Random, median: float, low: float, high: float) -> int:
    return int(min(high, max(low, math.exp(rng.gauss(math.log(median), 1.0)))) * US)


def draw_outcome(rng: random.Random, mix: Mix, slack: bool) -> tuple[str, int | None, str]:
    if slack:
        x = rng.random()
        if x < mix.rejected + mix.expired:
            return ("rejected" if x < mix.rejected else "expired"), None, ""
    if rng.random() < mix.failed:
        return "failed", rng.choice(cb.FAIL_CODES), rng.choice(cb.FAILED_ENCODINGS)
    return "delivered", 0, rng.choice(cb.SUCCESS_ENCODINGS)


def draw_plan(rng: random.Random, mix: Mix, created: int, n: int, ttl_us: int) -> Plan:
    slack = rng.random() < mix.slack
    r = rng.random()
    template = "journey" if r < mix.journey else "otp" if r < mix.journey + mix.otp else "order"
    outcome, code, encoding = draw_outcome(rng, mix, slack)
    by_callback = outcome in FINALS_BY_CALLBACK
    decided = created + (lognormal_s(rng, 120, 10, 3600) if slack else 0)
    accepted = decided + SUBMIT_US
    p2 = accepted + rng.randrange(1 * US, 3 * US)
    p7 = p2 + rng.randrange(2 * US, 20 * US)
    progress = by_callback and rng.random() < mix.progress
    final = accepted + lognormal_s(rng, 20, 2, 3600)
    if progress:
        final = max(final, p7 + US)
    marks = {"created": created, "decided": decided, "p2": p2, "p7": p7, "final": final}
    marks["dup"] = final + rng.randrange(15 * US, 240 * US)
    marks["expired"] = ceil_to(created + ttl_us + 1, EXPIRE_EVERY_US)
    return Plan(
        slack=slack,
        template=template,
        outcome=outcome,
        code=code,
        encoding=encoding,
        progress=progress,
        duplicate=by_callback and rng.random() < mix.duplicate,
        note=rng.choice(NOTES) if rng.random() < mix.note else None,
        phone=f"{rng.choice(PREFIXES)}{rng.randrange(10**7):07d}",
        name=rng.choice(NAMES),
        order=f"DH-{n:07d}",
        otp=f"{rng.randrange(10**6):06d}",
        marks=marks,
    )


def archive_pass_us(plan: Plan) -> int:
    """The build's archive pass that moves the send out: 48 h after its final state."""
    return ceil_to(plan.final_us + LIVE_HOURS * HOUR_US + 10_000, ARCHIVE_EVERY_US)


# --- the real write paths ------------------------------------------------------------------


class FakePoster:
    """Answers the relay as SlackPoster would, at no cost: for the build, unpaced."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    def pace_key(self, kind: Kind, record: Any, payload: Mapping[str, Any]) -> str | None:
        return None

    async def post(
        self,
        kind: Kind,
        record: Any,
        payload: Mapping[str, Any],
        *,
        key: str,
        tried_since: datetime | None = None,
    ) -> dict[str, Any]:
        ts = f"{self.clock().timestamp():.6f}"
        if kind == Kind.CARD:
            return {
                "channel": record.get("card_channel") or APPROVAL_CHANNEL,
                "ts": record.get("card_ts") or ts,
            }
        if kind == Kind.THREAD:
            return {"channel": record["card_channel"], "ts": ts}
        if kind == Kind.NOTIFY:
            return {"channel": NOTIFY_CHANNEL, "ts": ts}
        if kind == Kind.DM:
            return {"channel": "D0AGENTDM1", "ts": ts}
        return {"channel": payload.get("channel") or REQUEST_CHANNEL}


def callback_request(path: str, token: str) -> Request:
    """The Starlette request uvicorn would hand the callback endpoint for `path`."""
    route, _, query = path.partition("?")
    return Request(
        {
            "type": "http",
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": route,
            "raw_path": route.encode(),
            "root_path": "",
            "query_string": query.encode(),
            "headers": [(b"host", b"127.0.0.1")],
            "client": (HOST, 50000),
            "server": (HOST, 3000),
            "path_params": {"token": token},
        }
    )


class Flow:
    """A send's steps through the product's own code, on the clock of the caller's choice.

    SendService (prepare, create, approve, reject, submit), eSMS answering through a canned
    httpx transport (EsmsClient builds and parses the real requests), the CallbackEndpoint
    handling each callback, and the Relay posting the outbox (FakePoster, or SlackPoster to
    the Slack stand-in).
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        clock: FakeClock,
        catalogue: TemplateCatalogue,
        poster: Poster,
    ) -> None:
        self.store = store
        self.clock = clock
        self.client = EsmsClient(
            api_key=settings.esms_api_key or "",
            secret_key=settings.esms_secret_key or "",
            base_url=settings.esms_base_url,
            callback_api_url=settings.esms_callback_api_url,
            transport=httpx.MockTransport(self._esms_reply),
        )
        self.service = SendService(
            settings=settings, store=store, client=self.client, catalogue=catalogue
        )
        self.tracker = DeliveryTracker(self.service)
        self.endpoint = CallbackEndpoint(self.tracker)
        self.relay = Relay(store, poster, clock=clock, pace=0.0)
        self.replies: Counter[str] = Counter()
        self._sms = itertools.count(250)

    def _esms_reply(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.lower().rstrip("/")
        body = json.loads(request.content or b"{}")
        price = PRICES.get(str(body.get("TempID")), 330.0)
        if path.endswith("sendzalomessage_v4_post_json"):
            self.clock.set(self.clock.us + SUBMIT_US)  # eSMS takes a moment to answer
            sms_id = uuid.uuid4().hex + str(next(self._sms))
            return httpx.Response(
                200, json={"CodeResult": "100", "CountRegenerate": 0, "SMSID": sms_id}
            )
        if path.endswith("queryznsstatus"):  # what eSMS says of a message not reported yet
            return httpx.Response(200, json={"CodeResult": "105", "ErrorMessage": "not found"})
        if path.endswith("summaryzalomessage_v4_post_json"):
            return httpx.Response(
                200,
                json={
                    "CodeResult": "100",
                    "ErrorMessage": "success",
                    "TotalPrice": price,
                    "TotalReceiver": 1,
                },
            )
        return httpx.Response(404, text="Endpoint not found.")

    async def aclose(self) -> None:
        await self.relay.aclose()
        await self.client.aclose()

    async def drain(self) -> None:
        while await self.relay.drain():
            pass

    async def create(self, plan: Plan) -> None:
        template_id, params = plan.params()
        journey = plan.template == "journey"
        request = await self.service.prepare(
            phone=plan.phone,
            template_id=template_id,
            params=params,
            is_journey=journey,
            order_id=plan.order if journey else None,
            note=plan.note,
        )
        if plan.slack:
            estimate = await self.service.estimate(request)
            record = self.service.create(
                request,
                actor=REQUESTER,
                origin="slack",
                reply_channel=REQUEST_CHANNEL,
                estimate=estimate,
            )
            await self.drain()
        else:  # as `zns-bot send` does
            record = self.service.create(request, actor=CLI_ACTOR)
            self.service.approve(
                record["id"], actor=CLI_ACTOR, reason="sent from the command line", check_self=False
            )
            record = await self.service.submit(record["id"], actor=CLI_ACTOR)
        plan.send_id, plan.token = record["id"], record["callback_token"]
        plan.sms_id = record.get("sms_id") or ""

    async def decide(self, plan: Plan) -> None:
        """As the approval modal does: reject, or approve and submit."""
        if plan.outcome == "rejected":
            self.service.reject(plan.send_id, actor=DECIDER, reason=REJECT_REASON)
        else:
            self.service.approve(plan.send_id, actor=DECIDER, reason="")
            record = await self.service.submit(plan.send_id, actor=DECIDER)
            plan.sms_id = record.get("sms_id") or ""
        await self.drain()

    async def callback(self, plan: Plan, status: int) -> None:
        send = {"sms_id": plan.sms_id, "phone": plan.phone, "token": plan.token}
        code = plan.code if status == 5 else None
        path = cb.callback_path(send, status, code, plan.encoding)
        response = await self.endpoint.handle(callback_request(path, plan.token))
        self.replies[f"{response.status_code} {bytes(response.body).decode()}"] += 1
        if plan.slack:
            await self.drain()

    async def expire(self) -> None:
        self.service.expire_stale(self.clock.peek())
        await self.drain()


# --- shapes: each kind of send as the product wrote it, with slots --------------------------


def iso_to_us(text: str) -> int:
    return us_of(datetime.fromisoformat(text))


class Shape:
    """One send's audit events as a format string: values and times are slots."""

    def __init__(
        self, events: Sequence[Event], literals: Mapping[str, str], marks: Mapping[str, int]
    ) -> None:
        text = orjson.dumps(list(events)).decode().replace("{", "{{").replace("}", "}}")
        ordered = sorted(marks.items(), key=lambda kv: kv[1])
        alternatives = [re.escape(v) for v in sorted(literals, key=len, reverse=True)]
        pattern = re.compile("|".join([*alternatives, ISO_RE]))
        slots: dict[tuple[str, int | None], int] = {}

        def slot(found: re.Match[str]) -> str:
            value = found.group(0)
            key: tuple[str, int | None]
            if value in literals:
                key = (literals[value], None)
            else:
                at = iso_to_us(value)
                name, base = max((kv for kv in ordered if kv[1] <= at), key=lambda kv: kv[1])
                key = (name, at - base)
            return "{" + str(slots.setdefault(key, len(slots))) + "}"

        self.fmt = pattern.sub(slot, text)
        self.slots = list(slots)

    def render(self, values: Mapping[str, str], marks: Mapping[str, int]) -> list[Event]:
        args = [
            values[name] if delta is None else iso_us(marks[name] + delta)
            for name, delta in self.slots
        ]
        events: list[Event] = orjson.loads(self.fmt.format(*args))
        content = None
        for event in events:
            kept = event.get("personal")
            if kept:  # the digest of the clone's own personal fields, salted with its salt
                event["pd"] = personal_digest(kept["salt"], kept["fields"])
            data = event.get("data") or {}
            if data.get("content"):  # the clone's own content, as the "created" event binds it
                if event["action"] == "created" and kept:
                    content = content_digest(kept["salt"], {**data, **kept["fields"]})
                data["content"] = content
        return events


def all_shape_keys() -> Iterator[ShapeKey]:
    codes = sorted(set(cb.FAIL_CODES))
    for slack, template, note in itertools.product((False, True), TEMPLATE_IDS, (False, True)):
        if slack:
            yield slack, template, "rejected", None, "", False, note
            yield slack, template, "expired", None, "", False, note
        for progress in (False, True):
            for encoding in sorted(set(cb.SUCCESS_ENCODINGS)):
                yield slack, template, "delivered", 0, encoding, progress, note
            for code, encoding in itertools.product(codes, sorted(set(cb.FAILED_ENCODINGS))):
                yield slack, template, "failed", code, encoding, progress, note


def sentinel_plan(key: ShapeKey, marks: dict[str, int]) -> Plan:
    slack, template, outcome, code, encoding, progress, note = key
    return Plan(
        slack=slack,
        template=template,
        outcome=outcome,
        code=code,
        encoding=encoding,
        progress=progress,
        duplicate=False,  # a duplicate callback leaves no trace but its 200
        note=SENTINEL["NOTE"] if note else None,
        phone=SENTINEL["PHONE"],
        name=SENTINEL["NAME"],
        order=SENTINEL["CODE"],
        otp=SENTINEL["OTP"],
        marks=marks,
    )


async def run_scratch(flow: Flow, plans: Sequence[Plan], marks: Mapping[str, int]) -> None:
    """Every plan's steps, step by step, each step at its mark."""
    flow.clock.set(marks["created"])
    for plan in plans:
        await flow.create(plan)
    flow.clock.set(marks["decided"])
    for plan in plans:
        if plan.slack and plan.outcome != "expired":
            await flow.decide(plan)
    for mark, status, wanted in (("p2", 2, True), ("p7", 7, True), ("final", 5, False)):
        flow.clock.set(marks[mark])
        for plan in plans:
            if plan.outcome in FINALS_BY_CALLBACK and (plan.progress or not wanted):
                await flow.callback(plan, status)
    flow.clock.set(marks["expired"])
    await flow.expire()
    flow.clock.set(marks["archived"])
    flow.store.archive.run_sync(flow.clock.peek())


def literals_of(record: Mapping[str, Any]) -> dict[str, str]:
    """Values of one scratch send that each clone replaces with its own."""
    found = {
        record["id"]: "SID",
        record["content_salt"]: "SALT",
        token_digest(record["callback_token"]): "TOKD",
        record["phone"]: "PHONE",
        **{value: name for name, value in SENTINEL.items() if name != "PHONE"},
    }
    if record.get("sms_id"):
        found[record["sms_id"]] = "SMS"
        found[record["sms_id"][:20]] = "SMS20"
    if record.get("card_ts"):
        found[record["card_ts"]] = "CARD"
    return found


async def build_shapes(env: BuildEnv, work: Path) -> dict[ShapeKey, Shape]:
    """Run one send of every kind through the real paths; its events become its shape."""
    start = us_of(SCRATCH_START)
    marks = {name: start + hours * HOUR_US for name, hours in SCRATCH_MARKS.items()}
    clock = FakeClock(start)
    plans = [sentinel_plan(key, marks) for key in all_shape_keys()]
    with Store.open(work, fsync=False, clock=clock, live_hours=0) as store:
        flow = Flow(store, env.settings, clock, env.catalogue, FakePoster(clock))
        try:
            await run_scratch(flow, plans, marks)
        finally:
            await flow.aclose()
    by_send: dict[str, list[Event]] = {}
    for path in sorted((work / DIR_NAME).glob("*.jsonl")):
        for event in stream_events(path):
            if event.get("send_id"):
                by_send.setdefault(event["send_id"], []).append(event)
    shapes: dict[ShapeKey, Shape] = {}
    records: dict[str, Mapping[str, Any]] = {}
    for plan in plans:
        events = by_send[plan.send_id]
        archived = next(e for e in events if e["action"] == "archived")
        if archived["data"]["send"]["state"] != plan.outcome:
            raise RuntimeError(
                f"a {plan.key} send ended {archived['data']['send']['state']}, "
                f"not {plan.outcome}: {archived['data']['send'].get('error')}"
            )
        records[plan.send_id] = {
            **archived["data"]["send"],
            **archived["personal"]["fields"],
            "content_salt": archived["personal"]["salt"],
            "callback_token": plan.token,
        }
        shape = Shape(events, literals_of(records[plan.send_id]), marks)
        check_shape(shape, events, records[plan.send_id], marks)
        shapes[plan.key] = shape
    return shapes


def check_shape(
    shape: Shape, events: Sequence[Event], record: Mapping[str, Any], marks: Mapping[str, int]
) -> None:
    """A shape rendered with its own values must give back the events, hashes and all."""
    values = {name: value for value, name in literals_of(record).items()}
    again = shape.render(values, marks)
    if again != list(events) or any(event_hash(e) != e["hash"] for e in again):
        raise RuntimeError(f"the shape of {record['id']} does not render back to its events")


# --- the old part: clones chained into segments by the product's segment writer -------------


class OldWriter:
    """Everything before the live part: cloned sends merged in time order, chained, appended
    with Segments.append; a month ends as the archive pass ends it."""

    def __init__(
        self, data_dir: Path, secret: bytes, shapes: Mapping[ShapeKey, Shape], rng: random.Random
    ) -> None:
        self.segments = Segments(data_dir, secret)
        self.segments.recover(None, [])
        self.shapes = shapes
        self.rng = rng
        self.heap: list[tuple[str, int, Event | None]] = []
        self._order = itertools.count()
        self.seq, self.prev = 0, GENESIS
        self.batch: list[Event] = []
        self.current: SegmentName | None = None
        self.sealed: list[dict[str, Any]] = []
        self.last_seal_at: str | None = None
        self.sealing: Seal | None = None
        self.held: list[Event] = []  # the new month's first events, before its seal event
        self.sends = 0
        self.events = 0
        self.seal_s: list[float] = []

    def add(self, plan: Plan, n: int) -> None:
        rng = self.rng
        sms_id = f"{rng.getrandbits(128):032x}{250 + n}"
        token = base64.urlsafe_b64encode(rng.randbytes(24)).decode()
        values = {
            "SID": f"zns-{uuid.UUID(int=rng.getrandbits(128), version=4).hex}",
            "SMS": sms_id,
            "SMS20": sms_id[:20],
            "SALT": f"{rng.getrandbits(128):032x}",
            "TOKD": token_digest(token),
            "CARD": f"{plan.marks['created'] / US + 1.5:.6f}",
            "PHONE": plan.phone,
            "NAME": plan.name,
            "CODE": plan.order,
            "OTP": plan.otp,
            "NOTE": plan.note or "",
        }
        marks = {**plan.marks, "archived": archive_pass_us(plan)}
        for event in self.shapes[plan.key].render(values, marks):
            heapq.heappush(self.heap, (event["ts"], next(self._order), event))
        self.sends += 1

    def advance(self, until: str) -> None:
        """Chain and write every event before `until`."""
        heap = self.heap
        while heap and heap[0][0] < until:
            ts, _, event = heapq.heappop(heap)
            if event is None:
                self._commit_seal(ts)
            else:
                self._emit(event)

    def finish(self, until: str) -> list[Event]:
        """Write everything before `until`; the events after it (in order) for the caller."""
        self.advance(until)
        self._flush()
        if self.sealing is not None:
            raise RuntimeError("the old part ended in the middle of a seal")
        left = [e for _, _, e in sorted(self.heap, key=lambda item: (item[0], item[1])) if e]
        self.heap = []
        self.segments.close()
        return left

    def _chain(self, event: Event) -> None:
        self.seq += 1
        event["seq"], event["prev"] = self.seq, self.prev
        event["hash"] = self.prev = event_hash(event)
        self.events += 1

    def _emit(self, event: Event) -> None:
        self._chain(event)
        month = event["ts"][:7]
        if self.current is None:
            self._open(SegmentName(month, 0))
        assert self.current is not None
        if self.sealing is not None:
            self.held.append(event)
        elif month > self.current.month:
            self._start_seal(month)
            self.held.append(event)
        else:
            self.batch.append(event)
            if len(self.batch) >= SEGMENT_BATCH:
                self._flush()

    def _open(self, name: SegmentName) -> None:
        self.segments.open(name)
        self.current = name

    def _flush(self) -> None:
        if self.batch:
            self.segments.append(self.batch)
            self.batch = []

    def _start_seal(self, month: str) -> None:
        """The first pass of the new month: the old segment is digested and compressed (in
        the bot, in a worker thread while events keep coming); its seal event follows."""
        self._flush()
        began = time.perf_counter()
        self.sealing = self.segments.seal(COMPRESSION)
        took = time.perf_counter() - began
        self.seal_s.append(took)
        boundary = us_of(datetime.fromisoformat(f"{month}-01T00:00:00+00:00"))
        at = ceil_to(boundary, ARCHIVE_EVERY_US) + int(max(took, 1.0) * US)
        heapq.heappush(self.heap, (iso_us(at), next(self._order), None))

    def _commit_seal(self, ts: str) -> None:
        """As Archiver._seal: the seal event, then finish_seal, then the meta state."""
        seal = self.sealing
        assert seal is not None
        body = {
            "seq": 0,
            "ts": ts,
            "actor": "system",
            "action": "sealed",
            "send_id": None,
            "from_state": None,
            "to_state": None,
            "reason": f"segment {seal.segment} sealed",
            "data": seal.as_data(),
            "prev": "",
        }
        event: Event = orjson.loads(canonical(body))
        self._chain(event)
        self.segments.finish_seal(seal)
        self.sealed.append(seal.as_data())
        self.last_seal_at = ts
        self.sealing = None
        self._open(SegmentName(ts[:7], 0))
        self.batch, self.held = [*self.held, event], []


# --- the build ---------------------------------------------------------------------------


@dataclass
class BuildEnv:
    settings: Settings
    catalogue: TemplateCatalogue
    esms_http: EsmsClient


@dataclass
class BuildReport:
    days: int = 0
    per_day: int = 0
    v_end: str = ""
    old_sends: int = 0
    old_events: int = 0
    live_sends: int = 0
    injected: int = 0
    seals: int = 0
    seal_s: list[float] = field(default_factory=list)
    shapes: int = 0
    shapes_s: float = 0.0
    old_s: float = 0.0
    live_s: float = 0.0
    build_s: float = 0.0
    live_states: dict[str, int] = field(default_factory=dict)
    live_callbacks: int = 0
    live_outbox: int = 0
    live_events: int = 0
    head_seq: int = 0
    replies: dict[str, int] = field(default_factory=dict)
    faketime: bool = False


async def live_part(
    data_dir: Path,
    env: BuildEnv,
    start: tuple[int, int],
    end_us: int,
    left: Sequence[Event],
    rng: random.Random,
    mix: Mix,
    rate: float,
) -> tuple[int, Counter[str]]:
    """The last 73 h through the real write paths; returns the sends made, and the replies
    the callback endpoint gave."""
    first, n = start
    clock = FakeClock(first)
    ttl_us = env.settings.zns_approval_ttl * US
    with Store.open(
        data_dir, fsync=False, clock=clock, live_hours=LIVE_HOURS, compression=COMPRESSION
    ) as store:
        flow = Flow(store, env.settings, clock, env.catalogue, FakePoster(clock))
        order = itertools.count()
        heap: list[tuple[int, int, int, str, Any]] = []
        for event in left:  # the old part's sends: their last events, at their time
            heap.append((iso_to_us(event["ts"]), 0, next(order), "inject", event))
        heapq.heapify(heap)
        grid = ceil_to(first, ARCHIVE_EVERY_US)
        heapq.heappush(heap, (grid, 1, next(order), "archive", None))
        heapq.heappush(heap, (ceil_to(first, EXPIRE_EVERY_US), 2, next(order), "expire", None))
        heapq.heappush(heap, (first, 3, next(order), "arrive", None))
        made = 0
        shown = first
        try:
            while heap and heap[0][0] < end_us:
                at, prio, _, action, payload = heapq.heappop(heap)
                clock.set(at)
                if at - shown >= 12 * HOUR_US:
                    say(f"  live part: {iso_us(at)[:16]}, {made:,} sends")
                    shown = at
                if action == "arrive":
                    plan = draw_plan(rng, mix, at, n, ttl_us)
                    n += 1
                    made += 1
                    await flow.create(plan)
                    for when, step, status in plan.steps():
                        heapq.heappush(heap, (when, 3, next(order), step, (plan, status)))
                    nxt = at + max(1, int(rng.expovariate(rate) * US))
                    heapq.heappush(heap, (nxt, 3, next(order), "arrive", None))
                else:
                    await run_step(flow, store, action, payload)
                if action in ("archive", "expire"):
                    step_us = ARCHIVE_EVERY_US if action == "archive" else EXPIRE_EVERY_US
                    heapq.heappush(heap, (at + step_us, prio, next(order), action, None))
        finally:
            await flow.aclose()
    return made, flow.replies


async def run_step(flow: Flow, store: Store, action: str, payload: Any) -> None:
    if action == "inject":
        event: Event = payload
        kept = event.get("personal") or {}
        store.audit.append(
            event["actor"],
            event["action"],
            send_id=event.get("send_id"),
            from_state=event.get("from_state"),
            to_state=event.get("to_state"),
            reason=event.get("reason") or "",
            data=event.get("data"),
            personal=kept.get("fields"),
            salt=kept.get("salt"),
        )
    elif action == "archive":
        store.archive.run_sync(flow.clock.peek())
    elif action == "expire":
        await flow.expire()
    elif action == "decide":
        await flow.decide(payload[0])
    elif action == "callback":
        await flow.callback(*payload)


def old_part(
    data_dir: Path,
    secret: bytes,
    shapes: Mapping[ShapeKey, Shape],
    span: tuple[int, int],
    rng: random.Random,
    mix: Mix,
    rate: float,
    ttl_us: int,
) -> tuple[OldWriter, list[Event], tuple[int, int]]:
    """Sends from `span[0]` to `span[1]`; returns the writer, the events it left for the
    live part, and where the arrivals stand (next arrival, next send number)."""
    start, end = span
    history = OldWriter(data_dir, secret, shapes, rng)
    at, n = start, 0
    shown = start
    while True:
        at += max(1, int(rng.expovariate(rate) * US))
        if at >= end:
            break
        if at - shown >= 24 * HOUR_US:
            say(f"  old part: {iso_us(at)[:10]}, {n:,} sends, {history.events:,} events")
            shown = at
        history.advance(iso_us(at))
        history.add(draw_plan(rng, mix, at, n, ttl_us), n)
        n += 1
    left = history.finish(iso_us(end))
    return history, left, (at, n)


def record_history(
    data_dir: Path, history: OldWriter, clock: FakeClock, compression: str | None
) -> None:
    """The head, archived_upto and archive state of the old part, in live.db."""
    with (
        Store.open(data_dir, fsync=False, clock=clock, compression=compression) as store,
        store.db.transaction(),
    ):
        store.db.table("meta").put(
            HEAD_DOC_ID,
            {"key": "audit_head", "seq": history.seq, "hash": history.prev},
            plain=True,
        )
        store.audit.archived_upto(history.seq, history.prev)
        store.archive._set_state(
            current=str(history.current) if history.current else None,
            sealed=history.sealed,
            last_seal_at=history.last_seal_at,
        )


def live_summary(data_dir: Path, report: BuildReport) -> None:
    with Store.open(data_dir, fsync=False, compression=COMPRESSION) as store:
        report.live_states = {k: v for k, v in store.sends.count_by_state().items() if v}
        report.live_callbacks = store.callbacks.count()
        report.live_outbox = store.outbox.depth()
        report.live_events = store.audit.count()
        report.head_seq = store.audit.head()[0]


async def build(
    data_dir: Path, env: BuildEnv, opts: Options, v_end: int, report: BuildReport
) -> None:
    began = time.perf_counter()
    rng = random.Random(opts.seed)
    rate = opts.per_day / 86_400
    ttl_us = env.settings.zns_approval_ttl * US
    start = v_end - opts.days * 24 * HOUR_US
    t1 = max(start, ceil_to(v_end - REAL_SPAN_US, ARCHIVE_EVERY_US))
    with tempfile.TemporaryDirectory(prefix="zns-history-shapes-") as scratch:
        shapes = await build_shapes(env, Path(scratch))
    report.shapes, report.shapes_s = len(shapes), time.perf_counter() - began
    say(f"  {len(shapes)} shapes in {report.shapes_s:.1f} s")
    clock = FakeClock(start)
    with Store.open(data_dir, fsync=False, clock=clock, compression=COMPRESSION) as store:
        state = store.archive.state
        assert state is not None
        secret = bytes.fromhex(state["secret"])
    began_old = time.perf_counter()
    history, left, arrivals = old_part(
        data_dir, secret, shapes, (start, t1), rng, opts.mix, rate, ttl_us
    )
    record_history(data_dir, history, FakeClock(t1), COMPRESSION)
    report.old_s = time.perf_counter() - began_old
    report.old_sends, report.old_events = history.sends, history.events
    report.seals, report.seal_s, report.injected = len(history.sealed), history.seal_s, len(left)
    del history
    began_live = time.perf_counter()
    made, replies = await live_part(
        data_dir, env, (max(arrivals[0], t1), arrivals[1]), v_end, left, rng, opts.mix, rate
    )
    report.live_sends, report.replies = made, dict(replies)
    report.live_s = time.perf_counter() - began_live
    live_summary(data_dir, report)
    await asyncio.to_thread(os.sync)
    report.build_s = time.perf_counter() - began


# --- measuring: processes beside the bot ----------------------------------------------------


def probe_main(
    port: int, data_dir: str, log_path: str, pid: int, go: Any, stop: Any, out: Any
) -> None:
    """The lag probe and the directory watcher (a process of its own)."""
    try:
        out.put(asyncio.run(_probe(port, Path(data_dir), Path(log_path), pid, go, stop)))
    except BaseException as exc:
        out.put({"crash": repr(exc)})
        raise


async def _ask(
    port: int, path: str, every: float, stop: Any, samples: list[tuple[float, float, int]]
) -> None:
    """GET `path` every `every` s on one keep-alive connection: (sent at, ms, status)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    request = f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    due = time.monotonic()
    while not stop.is_set():
        sent = time.monotonic()
        try:
            writer.write(request)
            status, _ = await cb._read_reply(reader)
        except (OSError, ValueError, asyncio.IncompleteReadError):
            status = 0
            writer.close()
            reader, writer = await asyncio.open_connection(HOST, port)
        samples.append((sent, (time.monotonic() - sent) * 1000, status))
        due += every
        pause = due - time.monotonic()
        if pause > 0:
            await asyncio.sleep(pause)
        else:
            due = time.monotonic()
    writer.close()


class Watcher:
    """What the bot's files say it is doing, seen every few ms: (time, what, detail)."""

    def __init__(self, data_dir: Path, log_path: Path) -> None:
        self.data_dir, self.audit = data_dir, data_dir / DIR_NAME
        self.log_path = log_path
        self.marks: list[tuple[float, str, str]] = []
        self._inode = os.stat(data_dir / FILE_NAME).st_ino
        self._tmp = self._seal_tmp = False
        self._files = {n for n in os.listdir(self.audit) if not n.endswith("-journal")}
        self._log_at = log_path.stat().st_size if log_path.exists() else 0
        self._tail = b""

    def look(self) -> None:
        now = time.monotonic()
        with contextlib.suppress(FileNotFoundError):
            inode = os.stat(self.data_dir / FILE_NAME).st_ino
            if inode != self._inode:
                self._inode = inode
                self.marks.append((now, "compaction_done", ""))
        tmp = any(
            n.startswith(f"{FILE_NAME}.") and n.endswith(".tmp") for n in os.listdir(self.data_dir)
        )
        if tmp != self._tmp:
            self._tmp = tmp
            self.marks.append((now, "compaction_tmp" if tmp else "compaction_tmp_gone", ""))
        files = {n for n in os.listdir(self.audit) if not n.endswith("-journal")}
        seal_tmp = any(n.endswith(".tmp") for n in files)
        if seal_tmp != self._seal_tmp:
            self._seal_tmp = seal_tmp
            self.marks.append((now, "seal_tmp" if seal_tmp else "seal_tmp_gone", ""))
        if files != self._files:
            changed = sorted(files ^ self._files)
            self._files = files
            self.marks.append((now, "audit_files", " ".join(changed)))
        self._read_log(now)

    def _read_log(self, now: float) -> None:
        chunk = b""  # a log not there (yet, or any more) reads as nothing new
        with contextlib.suppress(OSError), self.log_path.open("rb") as f:
            f.seek(self._log_at)
            chunk = f.read()
        if not chunk:
            return
        self._log_at += len(chunk)
        lines = (self._tail + chunk).split(b"\n")
        self._tail = lines.pop()
        for line in lines:
            text = line.decode(errors="replace")
            if '"msg":"archive"' in text:  # the bot's line for a pass that moved something
                with contextlib.suppress(ValueError, TypeError):
                    event = json.loads(text)
                    sealed = ", ".join(event.get("sealed") or ()) or "nothing"
                    detail = (
                        f"{float(event['seconds'])} archive: {int(event['sends'])} send(s) left "
                        f"the live store, {event.get('events')} event(s) copied, sealed {sealed}"
                    )
                    self.marks.append((now, "archive_pass", detail))
            elif '"level":"WARNING"' in text or '"level":"ERROR"' in text:
                with contextlib.suppress(ValueError):
                    event = json.loads(text)
                    detail = f"{event.get('level')} {event.get('logger')}: {event.get('msg')}"
                    self.marks.append((now, "warning", detail[:200]))


def sample_syscalls(
    pid: int, stop: Any, out: list[tuple[float, str]], sched: list[tuple[float, int, int]]
) -> None:
    """Which system call the bot's loop thread is in (or "running"), and its time on a CPU
    and waiting for one (schedstat, ns), every 2 ms."""
    names = SYSCALLS.get(platform.machine(), {})
    task = f"/proc/{pid}/task/{pid}"
    while not stop.is_set():
        try:
            with open(f"{task}/syscall") as f:
                word = f.read().split(maxsplit=1)[0]
            with open(f"{task}/schedstat") as f:
                on_cpu, waiting = (int(v) for v in f.read().split()[:2])
        except (OSError, IndexError, ValueError):
            return
        now = time.monotonic()
        out.append((now, names.get(word, word if word == "running" else f"#{word}")))
        sched.append((now, on_cpu, waiting))
        time.sleep(SYSCALL_EVERY)


async def _probe(port: int, data_dir: Path, log_path: Path, pid: int, go: Any, stop: Any) -> Any:
    await asyncio.to_thread(go.wait, 600)
    calls: list[tuple[float, str]] = []
    sched: list[tuple[float, int, int]] = []
    sampler = threading.Thread(target=sample_syscalls, args=(pid, stop, calls, sched), daemon=True)
    sampler.start()
    lag: list[tuple[float, float, int]] = []
    health: list[tuple[float, float, int]] = []
    watcher = Watcher(data_dir, log_path)
    tasks = [
        asyncio.create_task(_ask(port, PROBE_PATH, PROBE_EVERY, stop, lag)),
        asyncio.create_task(_ask(port, "/healthz", HEALTH_EVERY, stop, health)),
    ]
    while not stop.is_set():
        watcher.look()
        await asyncio.sleep(WATCH_EVERY)
    await asyncio.wait(tasks, timeout=30)
    watcher.look()
    sampler.join(5)
    return {
        "lag": lag,
        "health": health,
        "marks": watcher.marks,
        "calls": calls,
        "sched": sched,
    }


def paced_main(port: int, paths: list[str], rate: float, go: Any, out: Any) -> None:
    """Fires `paths` at `rate` per second (open loop, 16 connections); a process of its own."""
    try:
        out.put(asyncio.run(_paced(port, paths, rate, go)))
    except BaseException as exc:
        out.put({"crash": repr(exc)})
        raise


async def _paced(port: int, paths: list[str], rate: float, go: Any) -> Any:
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(16):
        pool.put_nowait(await asyncio.open_connection(HOST, port))
    samples: list[tuple[int, float, float, int, str]] = []

    async def one(i: int, request: bytes) -> None:
        reader, writer = await pool.get()
        sent = time.monotonic()
        try:
            writer.write(request)
            status, body = await cb._read_reply(reader)
        except (OSError, ValueError, asyncio.IncompleteReadError):
            status, body = 0, b""
            writer.close()
            reader, writer = await asyncio.open_connection(HOST, port)
        samples.append((i, sent, (time.monotonic() - sent) * 1000, status, body[:16].decode()))
        pool.put_nowait((reader, writer))

    requests = [f"GET {p} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode() for p in paths]
    await asyncio.to_thread(go.wait, 600)
    started = time.monotonic()
    tasks = []
    for i, request in enumerate(requests):
        pause = started + i / rate - time.monotonic()
        if pause > 0:
            await asyncio.sleep(pause)
        tasks.append(asyncio.create_task(one(i, request)))
    await asyncio.gather(*tasks)
    times = os.times()
    return {
        "samples": samples,
        "started": started,
        "ended": time.monotonic(),
        "cpu": times.user + times.system,  # this process's own, all of it
    }


# --- measuring: the bot ---------------------------------------------------------------------


def watch_peak(pid: int, peak: list[float]) -> None:
    """The process's own peak RSS (VmHWM, MiB), read every 10 ms until it is gone."""
    while True:
        try:
            _, hwm = cb.memory_mb(pid)
        except (OSError, ValueError):
            return
        if hwm == 0.0:  # a zombie: its memory is gone, the last reading stands
            return
        peak[0] = max(peak[0], hwm)
        time.sleep(0.01)


def find_faketime() -> str | None:
    return next((lib for lib in FAKETIME_LIBS if Path(lib).exists()), None)


# 0.8 s of Python on the main thread while a second thread wants the GIL back after every
# fsync: prints the second thread's CPU time as a share of that time. It should sleep while
# it waits; under a libfaketime that makes GIL waiters spin it uses 5-6 times as much CPU
# as without libfaketime (and makes the main thread 15% slower on an idle machine, twice as
# slow when the CPUs are busy). See FAKETIME_LIBS.
GIL_CHECK = """
import os, sys, threading, time
sys.setswitchinterval(0.001)
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
stop, used = False, []
def waiter():
    start = time.thread_time()
    while not stop:
        os.write(fd, b"x")
        os.fsync(fd)
    used.append(time.thread_time() - start)
thread = threading.Thread(target=waiter)
thread.start()
cpu = time.thread_time()
while time.thread_time() - cpu < 0.8:
    pass
stop = True
thread.join()
print(used[0] / 0.8)
"""


def gil_check(env: Mapping[str, str], scratch: Path) -> float:
    """GIL_CHECK's share of a CPU used by the waiting thread, in a process with `env` added."""
    found = subprocess.run(
        [sys.executable, "-c", GIL_CHECK, str(scratch)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    scratch.unlink(missing_ok=True)
    return float(found.stdout)


async def clock_check(bench: Bench) -> None:
    """GIL_CHECK under the bots' libfaketime and without it; a note when threads spin."""
    res, scratch = bench.results, bench.opts.dir / "gil-check.tmp"
    faked = await asyncio.to_thread(gil_check, bench.timeline.env(), scratch)
    real = await asyncio.to_thread(gil_check, {}, scratch)
    res.gil_check = (
        f"a thread waiting for the GIL used {100 * faked:.0f}% of a CPU under the bots' "
        f"libfaketime, {100 * real:.0f}% without"
    )
    say(f"  {res.gil_check}")
    if faked > 2 * real:
        res.notes.append(f"threads spin under this libfaketime: {res.gil_check}")


class Timeline:
    """Virtual time: each bot starts with an offset (libfaketime) that keeps it at or after
    every virtual time used so far."""

    def __init__(self, lib: str | None, floor_us: int) -> None:
        self.lib = lib
        self.floor = floor_us
        self.offset = 0  # seconds: virtual = real + offset

    def now_us(self) -> int:
        return us_of(datetime.now(UTC)) + self.offset * US

    def jump(self, target_us: int) -> None:
        """From now on, virtual time is `target_us` now (never before the floor)."""
        if self.lib is None:
            return
        target = max(target_us, self.floor + US)
        self.offset = math.ceil((target - us_of(datetime.now(UTC))) / US)

    def used(self, us: int) -> None:
        self.floor = max(self.floor, us)

    def env(self) -> dict[str, str]:
        if self.lib is None:
            return {}
        return {
            "LD_PRELOAD": self.lib,
            "FAKETIME": f"{self.offset:+d}",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "FAKETIME_FORCE_MONOTONIC_FIX": "0",
            "FAKETIME_DONT_RESET": "1",
        }


@dataclass
class Probe:
    lag: list[tuple[float, float, int]] = field(default_factory=list)
    health: list[tuple[float, float, int]] = field(default_factory=list)
    marks: list[tuple[float, str, str]] = field(default_factory=list)
    calls: list[tuple[float, str]] = field(default_factory=list)
    sched: list[tuple[float, int, int]] = field(default_factory=list)

    def loop_states(self, start: float, end: float) -> str:
        """What the loop thread was doing between `start` and `end`: by share of samples,
        and its time on a CPU and in the run queue (waiting for a CPU)."""
        seen = Counter(what for t, what in self.calls if start <= t <= end)
        total = sum(seen.values())
        if not total:
            return "no samples"
        shares = ", ".join(f"{what} {100 * n / total:.0f}%" for what, n in seen.most_common(4))
        inside = [s for s in self.sched if start <= s[0] <= end]
        if len(inside) >= 2:
            on_cpu = (inside[-1][1] - inside[0][1]) / 1e6
            queued = (inside[-1][2] - inside[0][2]) / 1e6
            shares += f" (on a CPU {on_cpu:.0f} ms, waiting for a CPU {queued:.0f} ms)"
        return shares

    def longest(self, names: Sequence[str]) -> tuple[float, float]:
        """The longest run of consecutive samples in one of `names`: (seconds, start)."""
        best, began, start = 0.0, None, 0.0
        for t, what in self.calls:
            if what in names:
                began = t if began is None else began
                if t - began > best:
                    best, start = t - began, began
            else:
                began = None
        return best, start


@dataclass
class Verify:
    ok: bool = False
    line: str = ""
    seconds: float = 0.0
    peak_mib: float = 0.0
    problems: list[str] = field(default_factory=list)


@dataclass
class Window:
    kind: str  # archive | big_archive | seal | compaction | compression
    start: float
    end: float
    detail: str = ""


@dataclass
class Results:
    days: int = 0
    startup_s: float = 0.0
    idle_rss_mib: float = 0.0
    idle_lag: dict[str, float] = field(default_factory=dict)
    day_startup_s: float = 0.0
    day_rss_start_mib: float = 0.0
    day_rss_after_mib: float = 0.0
    day_rss_peak_mib: float = 0.0
    day_sends: int = 0
    day_callbacks: int = 0
    day_replies: dict[str, int] = field(default_factory=dict)
    day_latency: dict[str, float] = field(default_factory=dict)
    day_lag: dict[str, float] = field(default_factory=dict)
    pauses: dict[str, float] = field(default_factory=dict)
    pause_counts: dict[str, int] = field(default_factory=dict)
    slowest: list[str] = field(default_factory=list)
    slowest_callbacks: list[str] = field(default_factory=list)
    gil_check: str = ""
    windows: list[str] = field(default_factory=list)
    day_left: dict[str, float] = field(default_factory=dict)
    day_log: list[str] = field(default_factory=list)
    day_cpu: str = ""
    after_day_fresh_rss_mib: float = 0.0
    refused: list[str] = field(default_factory=list)
    loop_longest: dict[str, str] = field(default_factory=dict)
    loop_by_window: dict[str, str] = field(default_factory=dict)
    day_calls: str = ""
    intake_rate: float = 0.0
    bare_rate: float = 0.0
    intake_p99_ms: float = 0.0
    intake_bad: int = 0
    intake_rss_mib: float = 0.0
    intake_rounds: list[str] = field(default_factory=list)  # bot/bare of each round, in turn
    verify_beside: dict[str, Any] = field(default_factory=dict)
    verify_build: dict[str, Any] = field(default_factory=dict)
    verify_end: dict[str, Any] = field(default_factory=dict)
    store: dict[str, Any] = field(default_factory=dict)
    build: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    code: str = ""


@dataclass(frozen=True)
class Options:
    days: int
    per_day: int
    dir: Path
    skip_build: bool
    build_only: bool
    seed: int
    day_seconds: float
    intake_callbacks: int
    baseline: Path | None
    mix: Mix


class Bench:
    """The stand-ins, the virtual timeline and the bot runs."""

    def __init__(self, opts: Options, slack: SlackStandIn, esms: EsmsStandIn) -> None:
        self.opts = opts
        self.slack, self.esms = slack, esms
        self.history = opts.dir / "history"
        self.data = opts.dir / "run"
        self.logs = opts.dir / "logs"
        self.results = Results(days=opts.days)
        self.timeline = Timeline(find_faketime(), 0)
        self.refused: list[tuple[int, int, str, str]] = []  # (virtual µs, status, body, path)

    def settings(self, data_dir: Path) -> Settings:
        return standin_settings(self.slack, self.esms, data_dir, public_base_url=PUBLIC_BASE_URL)

    def bot_env(self, **overrides: Any) -> dict[str, str]:
        env = standin_env(
            self.slack,
            self.esms,
            self.data,
            public_base_url=PUBLIC_BASE_URL,
            zns_audit_compression=COMPRESSION,
            **overrides,
        )
        env.update(PYTHONUNBUFFERED="1", **self.timeline.env())
        return env

    async def start_bot(self, label: str, **overrides: Any) -> tuple[BotProcess, float, float]:
        """The bot started; (process, exec time (monotonic), seconds to the first 200)."""
        log_path = self.logs / f"bot-{label}.log"
        log_path.unlink(missing_ok=True)  # BotProcess appends: one run per file
        bot = BotProcess(self.bot_env(**overrides), cwd=self.opts.dir, log_path=log_path)
        began = time.monotonic()
        await bot.start(wait=180.0)
        return bot, began, time.monotonic() - began

    async def stop_bot(self, bot: BotProcess) -> None:
        await asyncio.to_thread(bot.stop, 60.0, force=True)
        self.timeline.used(self.timeline.now_us())

    async def verify(self, label: str) -> Verify:
        """`zns-bot audit verify` as a subprocess: its answer, wall time and peak RSS."""
        env = self.bot_env()
        out_path = self.logs / f"verify-{label}.txt"
        script = Path(sys.executable).with_name("zns-bot")
        began = time.perf_counter()
        with out_path.open("wb") as out:
            proc = subprocess.Popen(  # noqa: ASYNC220 - reaped below, in a thread
                [str(script), "audit", "verify"],
                env=env,
                cwd=self.opts.dir,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        # Not wait4's ru_maxrss: it counts the forking parent's (this bench's) pages too.
        peak = [0.0]
        watching = threading.Thread(target=watch_peak, args=(proc.pid, peak), daemon=True)
        watching.start()
        _, status, _ = await asyncio.to_thread(os.wait4, proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - began
        watching.join(1)
        lines = out_path.read_text(errors="replace").splitlines()
        return Verify(
            ok=proc.returncode == 0 and bool(lines) and "OK" in lines[0],
            line=lines[0] if lines else f"(no output, exit {proc.returncode})",
            seconds=seconds,
            peak_mib=peak[0],
            problems=lines[1:6],
        )


async def no_wait(seconds: float) -> None:
    return None


async def poll_history(flow: Flow, start_us: int, until_us: int) -> int:
    """The product's DeliveryPoller, every 10 s from `start_us` to `until_us` (eSMS: "not
    yet"), and its archive pass every 300 s (which copies their events to the segment), as
    a bot running meanwhile would have; its rate limit on the build clock."""
    clock = flow.clock
    limiter = RateLimiter(QUERY_RATE, clock=lambda: clock.us / US, sleep=no_wait)
    poller = DeliveryPoller(flow.service, flow.tracker, clock=clock, query_limiter=limiter)
    polls = 0
    for at in range(ceil_to(start_us, POLL_EVERY_US), until_us, POLL_EVERY_US):
        clock.set(at)
        polls += sum(n for step, n in (await poller.poll()).items() if step != "deferred")
        if at % ARCHIVE_EVERY_US == 0:
            flow.store.archive.run_sync(clock.peek())
    return polls


async def make_sends(
    bench: Bench,
    count: int,
    span: tuple[int, int],
    seed: int,
    label: str,
    poll_until: int | None = None,
    slack: float | None = None,
) -> list[dict[str, Any]]:
    """`count` sends accepted by eSMS over `span` (Slack ones carded in the Slack stand-in);
    with `poll_until`, polled as the bot would have polled them until then."""
    settings = bench.settings(bench.data)
    at_us, span_us = span
    clock = FakeClock(at_us)
    rng = random.Random(seed)
    mix = bench.opts.mix
    share = mix.slack if slack is None else slack
    no_end = Mix(**{**asdict(mix), "rejected": 0.0, "expired": 0.0, "slack": share})
    http = EsmsClient.from_settings(settings)
    catalogue = TemplateCatalogue(http, ttl=settings.zns_template_ttl)
    poster = SlackPoster(slack_client(settings), settings)
    sends: list[dict[str, Any]] = []
    began = time.perf_counter()
    with Store.open(bench.data, fsync=False, clock=clock, compression=COMPRESSION) as store:
        flow = Flow(store, settings, clock, catalogue, poster)
        try:
            for n in range(count):
                clock.set(at_us + n * span_us // count)
                plan = draw_plan(rng, no_end, clock.us, 10_000_000 + n, 0)
                await flow.create(plan)
                if plan.slack:
                    await flow.decide(plan)
                sends.append(
                    {
                        "sms_id": plan.sms_id,
                        "phone": plan.phone,
                        "token": plan.token,
                        "plan": plan,
                    }
                )
            polls = 0 if poll_until is None else await poll_history(flow, at_us, poll_until)
        finally:
            await flow.aclose()
            await http.aclose()
        states = Counter(store.sends.count_by_state())
    bench.timeline.used(clock.us)
    if states.get("accepted", 0) < count:
        raise RuntimeError(f"{label}: only {states.get('accepted', 0)} of {count} accepted")
    say(
        f"  {label}: {count:,} sends accepted, {polls:,} polls, in "
        f"{time.perf_counter() - began:.1f} s ({states.get('accepted', 0):,} accepted now)"
    )
    await asyncio.to_thread(os.sync)
    return sends


def day_paths(sends: Sequence[Mapping[str, Any]], seconds: float, seed: int) -> list[str]:
    """Each send's callbacks (progress pair, final, maybe a duplicate 15-45 s later), at
    random times over the day, in time order."""
    rng = random.Random(seed)
    timed: list[tuple[float, str]] = []
    for send in sends:
        plan: Plan = send["plan"]
        final = rng.uniform(0.0, seconds * 0.8)
        code = plan.code if plan.outcome == "failed" else 0
        if plan.progress:
            timed.append((final * 0.5, cb.callback_path(send, 2, None, "")))
            timed.append((final * 0.8, cb.callback_path(send, 7, None, "")))
        path = cb.callback_path(send, 5, code, plan.encoding)
        timed.append((final, path))
        if plan.duplicate:
            timed.append((final + rng.uniform(15.0, 45.0), path))
    return [path for _, path in sorted(timed)]


def spawn(target: Any, *args: Any) -> tuple[Any, Any, Any, Any]:
    """A spawned process running target(*args, go, [stop,] out): (process, go, stop, out)."""
    ctx = multiprocessing.get_context("spawn")
    go, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
    extra = (go, stop, out) if target is probe_main else (go, out)
    proc = ctx.Process(target=target, args=(*args, *extra), daemon=True)
    proc.start()
    return proc, go, stop, out


async def collect(proc: Any, out: Any, limit: float) -> Any:
    found = await asyncio.to_thread(out.get, True, limit)
    await asyncio.to_thread(proc.join, 10)
    if isinstance(found, dict) and "crash" in found:
        raise RuntimeError(f"a helper process crashed: {found['crash']}")
    return found


async def idle_run(bench: Bench) -> None:
    """Default settings: start-up, RSS 15 s after exec, and the probe's idle baseline."""
    res = bench.results
    bench.timeline.jump(bench.timeline.floor + 60 * US)
    bot, began, res.startup_s = await bench.start_bot("idle")
    try:
        probe, go, stop, out = spawn(
            probe_main, bot.port, str(bench.data), str(bench.logs / "bot-idle.log"), bot.pid
        )
        await asyncio.sleep(max(0.0, began + 9.0 - time.monotonic()))
        go.set()
        await asyncio.sleep(max(0.0, began + 15.0 - time.monotonic()))
        res.idle_rss_mib = cb.memory_mb(bot.pid)[0]
        stop.set()
        found = await collect(probe, out, 60)
        res.idle_lag = lag_stats([s[1] for s in found["lag"]])
    finally:
        await bench.stop_bot(bot)


def lag_stats(ms: Sequence[float]) -> dict[str, float]:
    if not ms:
        return {}
    return {
        "n": float(len(ms)),
        "p50": pct(ms, 50),
        "p99": pct(ms, 99),
        "max": max(ms),
        "over50": float(sum(1 for v in ms if v > TARGET_PAUSE_MS)),
    }


def pct(values: Sequence[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


async def scrape(port: int) -> dict[str, float]:
    found: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", timeout=10) as http:
        text = (await http.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith("zns_") and " " in line:
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                found[name] = float(value)
    return found


async def settle_day(port: int, every: float, limit: float) -> dict[str, float]:
    """Until no send waits for its callback and the outbox is empty, then two more passes."""
    deadline = time.monotonic() + limit
    found: dict[str, float] = {}
    while time.monotonic() < deadline:
        found = await scrape(port)
        busy = found.get('zns_sends{state="accepted"}', 0) + found.get("zns_outbox_depth", 0)
        if not busy:
            await asyncio.sleep(2 * every + 1)
            return await scrape(port)
        await asyncio.sleep(1.0)
    return found


async def day_run(bench: Bench) -> None:
    res, opts = bench.results, bench.opts
    midnight = next_month(bench.timeline.floor)
    start = midnight - DAY_LEAD_S * US
    if bench.timeline.lib is None:
        start = bench.timeline.now_us() + (DAY_ACCEPTED_S + 60) * US
        res.notes.append("no libfaketime: the day ran at real time, no seal was measured")
    first = max(start - DAY_ACCEPTED_S * US, bench.timeline.floor + US)
    sends = await make_sends(
        bench,
        opts.per_day,
        (first, DAY_SPREAD_S * US),
        opts.seed + 7,
        "day",
        poll_until=start - 60 * US,
    )
    paths = day_paths(sends, opts.day_seconds, opts.seed + 8)
    res.day_sends, res.day_callbacks = len(sends), len(paths)
    bench.timeline.jump(start)
    calls_before, esms_before = len(bench.slack.calls()), len(bench.esms.requests)
    bot, _, res.day_startup_s = await bench.start_bot(
        "day",
        zns_live_hours=0,
        zns_archive_every=DAY_ARCHIVE_EVERY,
        zns_slack_pace=0,
    )
    ready = time.monotonic()
    ready_us = bench.timeline.now_us()
    try:
        probe, pgo, pstop, pout = spawn(
            probe_main, bot.port, str(bench.data), str(bench.logs / "bot-day.log"), bot.pid
        )
        fire, fgo, _, fout = spawn(paced_main, bot.port, paths, len(paths) / opts.day_seconds)
        await asyncio.sleep(1.0)  # both processes import, then wait for their go
        pgo.set()
        res.day_rss_start_mib = cb.memory_mb(bot.pid)[0]
        helpers = (probe.pid, fire.pid, os.getpid())
        cpu_before, wall_before = cb.cpu_seconds(bot.pid), time.monotonic()
        harness_before = [sum(cb.cpu_seconds(pid)) for pid in helpers]
        fgo.set()
        fired = await collect(fire, fout, opts.day_seconds * 3 + 120)
        cpu_after, wall_after = cb.cpu_seconds(bot.pid), time.monotonic()
        harness = [sum(cb.cpu_seconds(pid)) for pid in (probe.pid, os.getpid())]
        harness.insert(1, fired["cpu"])
        res.day_left = await settle_day(bot.metrics_port, DAY_ARCHIVE_EVERY, 120.0)
        res.day_rss_after_mib, res.day_rss_peak_mib = cb.memory_mb(bot.pid)
        pstop.set()
        found = await collect(probe, pout, 120)
    finally:
        await bench.stop_bot(bot)
    res.day_replies = dict(Counter(f"{s[3]} {s[4]}" for s in fired["samples"]))
    res.day_latency = lag_stats([s[2] for s in fired["samples"]])
    probe_found = Probe(
        found["lag"], found["health"], found["marks"], found["calls"], found["sched"]
    )
    analyse_day(res, probe_found, ready, [(s[1], s[2]) for s in fired["samples"]])
    res.day_log = [f"{t - ready:7.2f} s  {what} {detail}" for t, what, detail in probe_found.marks]
    used, wall = sum(cpu_after) - sum(cpu_before), wall_after - wall_before
    spent = [after - before for after, before in zip(harness, harness_before, strict=True)]
    res.day_cpu = (
        f"{used:.1f} s CPU in {wall:.1f} s of callbacks ({100 * used / wall:.0f}% of one core); "
        f"this bench beside it on the same 2 cores: lag probe + watcher {spent[0]:.0f} s, "
        f"callback sender {spent[1]:.0f} s, stand-ins and the rest {spent[2]:.0f} s "
        f"({100 * sum(spent) / wall:.0f}% of one core)"
    )
    slack_calls = Counter(c.method for c in bench.slack.calls()[calls_before:])
    esms_calls = Counter(r.endpoint or r.path for r in bench.esms.requests[esms_before:])
    res.day_calls = f"Slack stand-in {dict(slack_calls)}; eSMS stand-in {dict(esms_calls)}"
    bench.refused = [
        (ready_us + int((sent - ready) * US), status, body, paths[i])
        for i, sent, _, status, body in fired["samples"]
        if status != 200
    ]
    # A fresh bot on what the day left: what the store needs, against what the day kept.
    bot, began, _ = await bench.start_bot("after-day")
    try:
        await asyncio.sleep(max(0.0, began + 15.0 - time.monotonic()))
        res.after_day_fresh_rss_mib = cb.memory_mb(bot.pid)[0]
    finally:
        await bench.stop_bot(bot)


def explain_refused(data_dir: Path, refused: Sequence[tuple[int, int, str, str]]) -> list[str]:
    """For each callback the day's bot did not answer 200: was its send archived by then?"""
    history = History.open(data_dir)  # read-only, as `audit export` reads it
    lines = []
    for at, status, body, path in refused[:12]:
        token = path.split("/esms/callback/", 1)[1].split("?", 1)[0]
        found = [e for e in history.find("token", token_digest(token)) if e["action"] == "archived"]
        where = (
            f"its send was archived at {found[0]['ts'][11:23]} (seq {found[0]['seq']})"
            if found
            else "no archive entry for its token"
        )
        lines.append(f"{iso_us(at)[11:23]} {status} {body!r}: {where}")
    return lines


def windows_of(marks: Sequence[tuple[float, str, str]]) -> list[Window]:
    """Archive passes (the bot's "archive" line as a pass ends: what it moved and how long
    it took), the pass that sealed, compressions and compactions
    (while their temp file existed, or the instant the store file was replaced)."""
    found: list[Window] = []
    opened: dict[str, float] = {}
    for t, what, detail in marks:
        if what == "archive_pass":
            # the bot logs a pass as it ends, with its span; the watcher reads the line
            # within WATCH_EVERY of it, so the window starts that much earlier to be sure
            seconds, _, text = detail.partition(" ")
            window = Window("archive", t - float(seconds) - WATCH_EVERY, t, text)
            if "sealed nothing" not in text:
                window.kind = "seal"
            elif int(text.split()[1]) >= 1000:
                window.kind = "big_archive"
            found.append(window)
        elif what in ("compaction_tmp", "seal_tmp"):
            opened[what] = t
        elif what in ("compaction_tmp_gone", "seal_tmp_gone"):
            began = opened.pop(what.removesuffix("_gone"), None)
            if began is not None:
                kind = "compaction" if what.startswith("compaction") else "compression"
                found.append(Window(kind, began, t))
        elif what == "compaction_done" and "compaction_tmp" not in opened:
            found.append(Window("compaction", t - 0.05, t, "seen by its rename only"))
    return found


def analyse_day(
    res: Results, probe: Probe, ready: float, callbacks: Sequence[tuple[float, float]]
) -> None:
    """The day's figures from the probe's samples and `callbacks` (sent, reply ms)."""
    windows = windows_of(probe.marks)

    def during(sent: float, ms: float) -> str:
        kinds = {w.kind for w in windows if sent <= w.end and sent + ms / 1000 >= w.start}
        return ", ".join(sorted(kinds)) or "no pass, seal or compaction"

    res.windows = [
        f"{w.kind:<12} {w.start - ready:7.2f} -> {w.end - ready:7.2f} s  {w.detail}"
        for w in windows
    ]
    res.day_lag = lag_stats([s[1] for s in probe.lag])
    health = lag_stats([s[1] for s in probe.health])
    res.day_lag.update({f"health_{k}": v for k, v in health.items()})
    kinds = ("archive", "big_archive", "seal", "compression", "compaction")
    for kind in kinds:
        inside = [
            ms
            for sent, ms, _ in probe.lag
            for w in windows
            if w.kind == kind and sent <= w.end and sent + ms / 1000 >= w.start
        ]
        res.pause_counts[kind] = sum(1 for w in windows if w.kind == kind)
        if inside:
            res.pauses[kind] = max(inside)
    if probe.lag:
        res.pauses["whole day"] = max(s[1] for s in probe.lag)
    for sent, ms, _ in sorted(probe.lag, key=lambda s: -s[1])[:10]:
        states = probe.loop_states(sent, sent + ms / 1000)
        res.slowest.append(
            f"{ms:7.1f} ms at {sent - ready:7.2f} s, during {during(sent, ms)}; loop: {states}"
        )
    res.slowest_callbacks = [
        f"{ms:7.1f} ms at {sent - ready:7.2f} s, during {during(sent, ms)}"
        for sent, ms in sorted(callbacks, key=lambda s: -s[1])[:10]
    ]
    for names, label in ((("fsync", "fdatasync"), "fsync"), (("futex",), "futex")):
        seconds, at = probe.longest(names)
        res.loop_longest[label] = f"{seconds * 1000:.0f} ms at {at - ready:.2f} s"
    for kind in ("big_archive", "archive", "seal", "compaction"):
        spans = [w for w in windows if w.kind == kind and w.end > w.start]
        if spans:
            seen: Counter[str] = Counter(
                what for t, what in probe.calls if any(w.start <= t <= w.end for w in spans)
            )
            total = sum(seen.values()) or 1
            res.loop_by_window[kind] = ", ".join(
                f"{what} {100 * n / total:.0f}%" for what, n in seen.most_common(5)
            )


async def intake_run(bench: Bench) -> None:
    """callback_bench's load on the bot and a bare Starlette app; verify beside the bot."""
    res, opts = bench.results, bench.opts
    copts = cb.Options(
        sends=0,
        callbacks=opts.intake_callbacks // INTAKE_ROUNDS,
        concurrency=50,
        generators=1,
        client="raw",
        slack_share=INTAKE_SLACK,
        progress_share=0.15,
        duplicate_share=0.10,
        failed_share=opts.mix.failed,
        drain_timeout=15.0,
        rounds=1,
        compare_no_fsync=False,
        slack_pace=None,
        seed=opts.seed,
        keep=False,
    )
    duplicates = int(copts.callbacks * copts.duplicate_share)
    needed = copts.callbacks - duplicates - int(copts.callbacks * copts.progress_share) // 2
    at = max(bench.timeline.floor, bench.timeline.now_us()) + US
    total = needed * INTAKE_ROUNDS
    sends = await make_sends(
        bench, total, (at, total * 10_000), opts.seed + 9, "intake", slack=INTAKE_SLACK
    )
    rounds_paths = [
        [job.path for job in cb.build_jobs(sends[i * needed : (i + 1) * needed], copts)]
        for i in range(INTAKE_ROUNDS)
    ]
    bench.timeline.jump(bench.timeline.floor + 5 * US)
    bot, _, _ = await bench.start_bot("intake")
    rounds: list[tuple[cb.Load, cb.Load]] = []
    try:
        await asyncio.sleep(3.0)
        preload = bench.timeline.env()
        saved = {k: os.environ.get(k) for k in preload}
        os.environ.update(preload)  # the bare app runs under the same libfaketime
        try:
            async with cb.side_server(cb.serve_bare) as (port, pid):
                restore_env(saved)
                # in turn, so that the machine's drift over the run weighs on both alike
                for paths in rounds_paths:
                    load = await cb.fire("zns-bot", bot.port, paths, copts, bot.pid)
                    bare = await cb.fire('bare Starlette "ok"', port, paths, copts, pid)
                    rounds.append((load, bare))
        finally:
            restore_env(saved)
        res.intake_rss_mib = cb.memory_mb(bot.pid)[0]
        verify = await bench.verify("beside")
        res.verify_beside = asdict(verify)
        res.verify_beside["bot_rss_mib"] = cb.memory_mb(bot.pid)[0]
    finally:
        await bench.stop_bot(bot)
    load, bare = cb.median_by(rounds, lambda pair: cb.rate_ratio(*pair))
    res.intake_rate, res.bare_rate = load.rate, bare.rate
    res.intake_rounds = [f"{cb.rate_ratio(*pair):.2f}" for pair in rounds]
    res.intake_p99_ms = pct([ms for mine, _ in rounds for ms in mine.ms()], 99)
    res.intake_bad = sum(1 for mine, _ in rounds for s in mine.samples if s[1] != 200)


def restore_env(saved: Mapping[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def store_figures(data_dir: Path) -> dict[str, Any]:
    audit = data_dir / DIR_NAME
    files = sorted(audit.iterdir()) if audit.is_dir() else []
    return {
        "live_db_mib": mib((data_dir / FILE_NAME).stat().st_size),
        "audit_mib": mib(sum(p.stat().st_size for p in files)),
        "segments": [f"{p.name} {mib(p.stat().st_size):.1f} MiB" for p in files],
    }


# --- the whole bench ------------------------------------------------------------------------


async def build_into(bench: Bench) -> None:
    opts = bench.opts
    lib = bench.timeline.lib
    now = us_of(datetime.now(UTC))
    v_end = next_month(now) - END_LEAD_US if lib else now
    if lib is None:
        say("no libfaketime (apt-get install faketime): the history ends now, no seal measured")
    if bench.history.exists():
        shutil.rmtree(bench.history)
    bench.history.mkdir(parents=True)
    report = BuildReport(days=opts.days, per_day=opts.per_day, v_end=iso_us(v_end))
    report.faketime = lib is not None
    settings = bench.settings(bench.history)
    http = EsmsClient.from_settings(settings)
    env = BuildEnv(settings, TemplateCatalogue(http, ttl=settings.zns_template_ttl), http)
    say(
        f"building {opts.days} days x {opts.per_day:,} sends, ending {iso_us(v_end)[:19]} (virtual)"
    )
    try:
        await build(bench.history, env, opts, v_end, report)
    finally:
        await http.aclose()
    manifest = {"report": asdict(report), "v_end_us": v_end, "options": options_json(opts)}
    (opts.dir / "manifest.json").write_text(json.dumps(manifest, indent=2))


def options_json(opts: Options) -> dict[str, Any]:
    found = asdict(opts)
    found["dir"], found["baseline"] = str(opts.dir), str(opts.baseline) if opts.baseline else None
    return found


@contextlib.contextmanager
def dir_lock(directory: Path) -> Iterator[None]:
    """One bench at a time in DIR: a second one would copy over the first one's store."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "bench.lock").open("w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(f"another history_bench is running in {directory}") from None
        yield


async def run(opts: Options) -> Results:
    with (
        dir_lock(opts.dir),
        EsmsStandIn(balance=1e12) as esms,
        SlackStandIn(bot_token=BOT_TOKEN) as slack,
    ):
        bench = Bench(opts, slack, esms)
        bench.logs.mkdir(exist_ok=True)
        if not opts.skip_build:
            await build_into(bench)
        manifest = json.loads((opts.dir / "manifest.json").read_text())
        res = bench.results
        res.code = cb.git_state()
        res.build = manifest["report"]
        if opts.build_only:
            return res
        if manifest["report"]["days"] != opts.days:
            res.notes.append(f"DIR holds a {manifest['report']['days']}-day history")
        bench.timeline.floor = int(manifest["v_end_us"])
        if bench.data.exists():
            shutil.rmtree(bench.data)
        say("copying the history for the runs")
        await asyncio.to_thread(shutil.copytree, bench.history, bench.data)
        await asyncio.to_thread(os.sync)
        say("audit verify on the built history")
        res.verify_build = asdict(await bench.verify("build"))
        say(f"  {res.verify_build['line']}")
        if not res.verify_build["ok"]:
            raise SystemExit("the built history does not verify: " + repr(res.verify_build))
        res.store = store_figures(bench.data)
        if bench.timeline.lib is not None:
            await clock_check(bench)
        say("idle run")
        await idle_run(bench)
        say("day run")
        await day_run(bench)
        say("intake run")
        await intake_run(bench)
        say("audit verify after the runs")
        res.verify_end = asdict(await bench.verify("end"))
        res.refused = explain_refused(bench.data, bench.refused)
    return res


# --- output -------------------------------------------------------------------------------


def met(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def ratio_text(value: float, base: float | None, limit: float) -> str:
    if not base:
        return "(no --baseline)"
    ratio = value / base
    return f"{ratio:.2f}x of --days 7 ({met(ratio <= limit)} <= {limit})"


def print_report(
    res: Results, opts: Options, base: Mapping[str, Any] | None, total_s: float
) -> None:
    b = res.build
    sends = b["old_sends"] + b["live_sends"]
    print(
        f"zns-bot history bench: --days {opts.days} at {opts.per_day:,} sends/day "
        f"({sends:,} sends built), DIR {opts.dir}; measured on {res.code}"
    )
    print(
        f"build: {b['build_s']:.0f} s = shapes {b['shapes_s']:.1f} s ({b['shapes']} kinds of send) "
        f"+ old part {b['old_s']:.0f} s ({b['old_sends']:,} sends, {b['old_events']:,} events, "
        f"{b['seals']} month(s) sealed in {sum(b['seal_s']):.0f} s) + live part "
        f"{b['live_s']:.0f} s ({b['live_sends']:,} sends through the real paths, "
        f"{b['injected']:,} old sends' later events appended); virtual end {b['v_end'][:19]}; "
        f"{'libfaketime' if b.get('faketime') else 'NO libfaketime'}"
    )
    print(
        f"built live store: {states_text(b['live_states'])}; {b['live_callbacks']:,} callbacks, "
        f"{b['live_outbox']} outbox items pending, {b['live_events']:,} events not yet archived; "
        f"chain head seq {b['head_seq']:,}"
    )
    st = res.store
    print(f"files: live.db {st['live_db_mib']:.1f} MiB, audit/ {st['audit_mib']:.0f} MiB:")
    print("  " + "; ".join(st["segments"]))
    for label, found in (
        ("on the built history, no bot", res.verify_build),
        ("beside the intake bot", res.verify_beside),
        ("after the runs, no bot", res.verify_end),
    ):
        print(
            f"audit verify {label}: {found.get('seconds', 0):.1f} s, peak RSS "
            f"{found.get('peak_mib', 0):.0f} MiB: {found.get('line', '')}"
        )
        for problem in found.get("problems") or []:
            print(f"  {problem}")
    if res.gil_check:
        print(f"clock check: {res.gil_check}")
    print()
    rows = figure_rows(res, base)
    width = max(len(r[0]) for r in rows) + 2
    print(f"{'figure':<{width}}{'value':>14}   target")
    print("-" * (width + 60))
    for label, value, target in rows:
        print(f"{label:<{width}}{value:>14}   {target}")
    print()
    print_day(res)
    for note in res.notes:
        print(f"note: {note}")
    print(f"total run: {total_s:.0f} s")


def states_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n:,} {state}" for state, n in sorted(counts.items())) or "no sends"


def figure_rows(res: Results, base: Mapping[str, Any] | None) -> list[tuple[str, str, str]]:
    b7 = base or {}
    vb = res.verify_beside
    ratio = res.intake_rate / res.bare_rate if res.bare_rate else 0.0
    rows = [
        (
            "serve start-up, exec -> first /healthz 200",
            f"{res.startup_s:.2f} s",
            f"<= {TARGET_STARTUP_S:g} s: {met(res.startup_s <= TARGET_STARTUP_S)}; "
            + ratio_text(res.startup_s, b7.get("startup_s"), TARGET_VS_7),
        ),
        (
            "serve idle RSS, 15 s after exec",
            f"{res.idle_rss_mib:.0f} MiB",
            f"<= {TARGET_IDLE_MIB:g} MiB: {met(res.idle_rss_mib <= TARGET_IDLE_MIB)}; "
            + ratio_text(res.idle_rss_mib, b7.get("idle_rss_mib"), TARGET_VS_7),
        ),
        (
            "RSS after the simulated day (day bot)",
            f"{res.day_rss_after_mib:.0f} MiB",
            f"<= {TARGET_DAY_VS_IDLE}x idle ({TARGET_DAY_VS_IDLE * res.idle_rss_mib:.0f} MiB): "
            f"{met(res.day_rss_after_mib <= TARGET_DAY_VS_IDLE * res.idle_rss_mib)}; "
            f"that bot: {res.day_rss_start_mib:.0f} MiB at start, peak {res.day_rss_peak_mib:.0f}; "
            f"a fresh bot on the store it left: {res.after_day_fresh_rss_mib:.0f} MiB",
        ),
    ]
    for kind, label in (
        ("big_archive", "longest loop pause: passes of >= 1,000 sends"),
        ("archive", "longest loop pause: archive passes"),
        ("seal", "longest loop pause: the pass that sealed"),
        ("compression", "longest loop pause: seal's compression"),
        ("compaction", "longest loop pause: compactions"),
        ("whole day", "longest loop pause: anywhere in the day"),
    ):
        value = res.pauses.get(kind)
        count = res.pause_counts.get(kind)
        seen = "" if count is None else f" ({count} seen)"
        text = "n/a" if value is None else f"{value:.1f} ms"
        target = "no such window" if value is None else f"<= {TARGET_PAUSE_MS:g} ms: "
        if value is not None:
            target += met(value <= TARGET_PAUSE_MS)
        rows.append((label + seen, text, target))
    rows += [
        (
            "audit verify beside serve: time",
            f"{vb.get('seconds', 0):.1f} s",
            f"{vb.get('line', '')[:70]}",
        ),
        (
            "audit verify beside serve: peak RSS",
            f"{vb.get('peak_mib', 0):.0f} MiB",
            f"<= {TARGET_VERIFY_MIB:g} MiB: {met(vb.get('peak_mib', 1e9) <= TARGET_VERIFY_MIB)}",
        ),
        (
            "callback intake, bot / bare Starlette",
            f"{res.intake_rate:,.0f} / {res.bare_rate:,.0f}/s",
            f">= {TARGET_INTAKE}: {ratio:.2f} {met(ratio >= TARGET_INTAKE)} (median of rounds "
            f"{', '.join(res.intake_rounds)}); bot p99 {res.intake_p99_ms:.1f} ms, "
            f"{res.intake_bad} not 200",
        ),
        (
            "audit verify after the runs (bot stopped)",
            f"{res.verify_end.get('seconds', 0):.1f} s",
            res.verify_end.get("line", "")[:90],
        ),
    ]
    return rows


def own_lag(metrics: Mapping[str, float]) -> str:
    """The bot's own loop-lag metric (a 10 ms timer inside serve), if this version has it."""
    worst = metrics.get("zns_event_loop_lag_max_seconds")
    count = metrics.get("zns_event_loop_lag_seconds_count")
    if worst is None or not count:
        return "the bot reports no zns_event_loop_lag_seconds (older version)"
    within = metrics.get('zns_event_loop_lag_seconds_bucket{le="0.05"}', count)
    lag = (
        f"the bot's own loop-lag metric (a 10 ms timer inside serve, since it started): "
        f"max {worst * 1000:.0f} ms; {int(count - within):,} of {int(count):,} wake-ups "
        f"later than 50 ms"
    )
    gc_max = metrics.get("zns_gc_pause_max_seconds")
    if gc_max is None:
        return lag
    passes = {g: metrics.get(f'zns_gc_pause_seconds_count{{generation="{g}"}}', 0) for g in "012"}
    over = sum(
        metrics.get(f'zns_gc_pause_seconds_count{{generation="{g}"}}', 0)
        - metrics.get(f'zns_gc_pause_seconds_bucket{{generation="{g}",le="0.05"}}', 0)
        for g in "012"
    )
    counts = ", ".join(f"gen {g}: {int(n):,}" for g, n in passes.items())
    return (
        f"{lag}; garbage collector: longest pass {gc_max * 1000:.0f} ms, {int(over)} over "
        f"50 ms ({counts})"
    )


def print_day(res: Results) -> None:
    lag, lat = res.day_lag, res.day_latency
    print(
        f"idle lag probe (GET {PROBE_PATH} every 10 ms, 6 s): p50 {res.idle_lag.get('p50', 0):.1f}"
        f" ms, p99 {res.idle_lag.get('p99', 0):.1f} ms, max {res.idle_lag.get('max', 0):.1f} ms"
    )
    print(
        f"day: {res.day_sends:,} sends, {res.day_callbacks:,} callbacks over the day; bot start-up "
        f"{res.day_startup_s:.2f} s; callback latency p50 {lat.get('p50', 0):.1f} ms, p99 "
        f"{lat.get('p99', 0):.1f} ms, max {lat.get('max', 0):.1f} ms"
    )
    print(
        "day: replies: " + ", ".join(f"{n:,} x {k!r}" for k, n in sorted(res.day_replies.items()))
    )
    print(
        f"day: lag probe {int(lag.get('n', 0)):,} samples: p50 {lag.get('p50', 0):.1f} ms, p99 "
        f"{lag.get('p99', 0):.1f} ms, max {lag.get('max', 0):.1f} ms, "
        f"{int(lag.get('over50', 0))} over 50 ms; /healthz every 100 ms: p99 "
        f"{lag.get('health_p99', 0):.1f} ms, max {lag.get('health_max', 0):.1f} ms"
    )
    left = {k: v for k, v in res.day_left.items() if k.startswith(("zns_sends", "zns_outbox_d"))}
    print(f"day: after it settled: {left}")
    print(f"day: {own_lag(res.day_left)}")
    print(f"day: the bot used {res.day_cpu}; {res.day_calls}")
    print(
        "day: the loop thread's longest uninterrupted system call (sampled every 2 ms): "
        + "; ".join(f"{k} {v}" for k, v in res.loop_longest.items())
    )
    for kind, states in res.loop_by_window.items():
        print(f"day: the loop thread during {kind} windows: {states}")
    print("day: slowest probe replies, what was running, and where the loop thread was:")
    for line in res.slowest:
        print(f"  {line}")
    print("day: slowest callback replies (sent to answered), and what was running:")
    for line in res.slowest_callbacks:
        print(f"  {line}")
    print("day: windows (seconds after the bot answered):")
    for line in res.windows:
        print(f"  {line}")
    if res.refused:
        print("day: callbacks not answered 200 (virtual time), and their sends' archive entries:")
        for line in res.refused:
            print(f"  {line}")
    problems = [line for line in res.day_log if " warning " in line]
    if problems:
        print("day: bot log warnings/errors:")
        for line in problems[:8]:
            print(f"  {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, required=True, help="days of history to build")
    parser.add_argument("--keep", type=Path, required=True, metavar="DIR", help="work directory")
    parser.add_argument("--per-day", type=int, default=5_000, help="sends a day")
    parser.add_argument("--skip-build", action="store_true", help="reuse DIR/history")
    parser.add_argument("--build-only", action="store_true", help="build DIR/history, then stop")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--day-seconds", type=float, default=300.0, help="the simulated day's length (s)"
    )
    parser.add_argument("--intake-callbacks", type=int, default=10_000)
    parser.add_argument("--slack-share", type=float, default=Mix.slack)
    parser.add_argument("--failed-share", type=float, default=Mix.failed)
    parser.add_argument(
        "--baseline", type=Path, help="results.json of a --days 7 run, for the ratio targets"
    )
    args = parser.parse_args()
    if args.days < 1 or args.per_day < 100:
        parser.error("need --days >= 1 and --per-day >= 100")
    if args.skip_build and args.build_only:
        parser.error("--skip-build and --build-only together do nothing")
    opts = Options(
        days=args.days,
        per_day=args.per_day,
        dir=args.keep.resolve(),
        skip_build=args.skip_build,
        build_only=args.build_only,
        seed=args.seed,
        day_seconds=args.day_seconds,
        intake_callbacks=args.intake_callbacks,
        baseline=args.baseline,
        mix=Mix(slack=args.slack_share, failed=args.failed_share),
    )
    base = json.loads(args.baseline.read_text()) if args.baseline else None
    began = time.perf_counter()
    res = asyncio.run(run(opts))
    if opts.build_only:
        print(f"built {opts.dir / 'history'}: " + json.dumps(res.build))
        return
    (opts.dir / "results.json").write_text(json.dumps(asdict(res), indent=2))
    print_report(res, opts, base, time.perf_counter() - began)


if __name__ == "__main__":
    main()
