"""Slack ack latency of the real bot under load: signed requests at fixed concurrency, eSMS slow."""

# How it runs
# -----------
# * The eSMS and Slack stand-ins run in threads of this process (standins.servers.ServerThread).
# * The bot is `zns-bot serve` in a SUBPROCESS: build_runtime() + uvicorn with lifespan on
#   (scheduler, relay, drain on shutdown), exactly as in production. ServerThread cannot be
#   used for the bot: it always builds `quiet_config(app)`, whose lifespan is "off", and
#   without the lifespan the scheduler (and so the relay that posts cards) never starts.
#   A subprocess also gives the bot its own GIL and event loop: the load generator and the
#   stand-ins cannot slow its acks down except through the CPU they use.
# * The bot's store is flock()ed by the bot, so while it runs this bench reads the store file
#   read-only with the store's own log parser; after shutdown it opens the Store properly.
# * Setup (outside the timed window) goes through the real flow: /zns -> modal -> choose a
#   template -> submit -> card in #approvals, and Review -> approval modal for the sends the
#   timed window approves. Each approval submitted in the window starts a real background send
#   that the eSMS stand-in holds for --esms-delay seconds.

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import platform
import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from standins.demo import ORDER
from standins.driver import (
    AGENT,
    APPROVAL_CHANNEL,
    APPROVER,
    REQUEST_CHANNEL,
    initial_state,
)
from standins.esms import ORDER_TEMPLATE, SEND_ENDPOINT, EsmsStandIn
from standins.payloads import (
    block_action_body,
    checkboxes_state,
    new_trigger_id,
    option_state,
    signed_headers,
    slash_command_body,
    view_submission_body,
)
from standins.process import BOT_TOKEN, SIGNING_SECRET, BotProcess, standin_env
from standins.slack import Call, SlackStandIn
from storage import logfile
from storage.errors import StoreError
from storage.sends import SendState
from storage.store import FILE_NAME, Store

TARGET_MS = 300.0
KINDS: dict[str, str] = {
    "slash": "slash /zns",
    "review": "Review click",
    "approve": "approve submit",
    "request": "request submit",
}
SETTLED = frozenset({SendState.ACCEPTED, SendState.DELIVERED, SendState.FAILED, SendState.UNKNOWN})
IN_FLIGHT = frozenset({SendState.APPROVED, SendState.SUBMITTING})
WAIT_S = 20.0  # for any one stand-in call during setup
SETUP_CONCURRENCY = 10


@dataclass(frozen=True)
class Options:
    total: int
    concurrency: int
    esms_delay: float
    esms_timeout: float
    drain_timeout: float
    seed: int


@dataclass
class Sample:
    kind: str
    ms: float
    ok: bool
    detail: str = ""


@dataclass
class Report:
    samples: list[Sample] = field(default_factory=list)
    window_s: float = 0.0
    setup_s: float = 0.0
    startup_s: float = 0.0
    at_window_end: Counter[str] = field(default_factory=Counter)
    after_drain: Counter[str] = field(default_factory=Counter)
    drain_s: float = 0.0
    drained: bool = False
    esms_sends_at_end: int = 0
    esms_sends_after: int = 0
    cards_expected: int = 0
    cards_posted: int = 0
    slack_calls: Counter[str] = field(default_factory=Counter)
    slack_not_ok: Counter[str] = field(default_factory=Counter)
    final_states: Counter[str] = field(default_factory=Counter)
    audit_ok: bool | None = None
    exit_code: int | None = None
    stop_s: float = 0.0
    log_levels: Counter[str] = field(default_factory=Counter)
    log_problems: list[str] = field(default_factory=list)
    shutdown_complete: bool = False


# --- the bot, as a `zns-bot serve` subprocess ---------------------------------------------


def bot_env(
    slack: SlackStandIn, esms: EsmsStandIn, data_dir: Path, opts: Options
) -> dict[str, str]:
    env = standin_env(
        slack,
        esms,
        data_dir,
        esms_timeout=opts.esms_timeout,  # > the held send: sends are accepted, not unknown
        public_base_url="https://zns-bot.example",
        # The set-up posts 100 cards to one channel: at Slack's 1/s pace that alone would
        # take 100 s, and posting speed is not what this bench measures.
        zns_slack_pace=0,
    )
    env.update(PYTHONUNBUFFERED="1")  # BotProcess adds HOST and PORT
    return env


def read_states(data_dir: Path) -> dict[str, str] | None:
    """Send id -> state, read from the live store file without its lock (None: unreadable now).

    The file is an append-only log replaced atomically on compaction, and the parser ignores
    a torn last line, so a read-only peek while the bot writes is consistent.
    """
    path = data_dir / FILE_NAME
    try:
        parsed = logfile.parse(path.read_bytes(), path)
    except (OSError, StoreError):
        return None
    return {doc["id"]: doc["state"] for doc in parsed.data.get("sends", {}).values()}


# --- Slack's side: signed requests, matched to the stand-in's calls -----------------------


class SlackSide:
    """Acts as Slack toward the bot; matches views by trigger_id so flows can run in parallel."""

    def __init__(self, http: httpx.AsyncClient, slack: SlackStandIn) -> None:
        self.http = http
        self.slack = slack

    async def post(self, body: bytes) -> httpx.Response:
        headers = signed_headers(body, SIGNING_SECRET)
        return await self.http.post("/slack/events", content=body, headers=headers)

    async def expect_ack(self, body: bytes, what: str) -> None:
        response = await self.post(body)
        if response.status_code != 200 or response.text:
            raise RuntimeError(f"{what}: HTTP {response.status_code} {response.text[:300]}")

    async def opened_by(self, trigger: str) -> str:
        call = await self.slack.await_for(
            lambda c: c.args.get("trigger_id") == trigger, WAIT_S, method="views.open"
        )
        if not call.ok:
            raise RuntimeError(f"views.open failed: {call.error}")
        return str(call.response["view"]["id"])

    async def updated(self, view_id: str, count: int) -> dict[str, Any]:
        call = await self.slack.await_for(
            lambda c: c.args.get("view_id") == view_id, WAIT_S, method="views.update", count=count
        )
        if not call.ok:
            raise RuntimeError(f"views.update failed: {call.error}")
        return self.slack.view(view_id)

    async def request_modal(self, phone: str) -> dict[str, Any]:
        """/zns <phone> -> the request modal with the order template chosen."""
        trigger = new_trigger_id()
        body = slash_command_body(
            text=phone, user_id=AGENT, channel_id=REQUEST_CHANNEL, trigger_id=trigger
        )
        await self.expect_ack(body, "/zns")
        view_id = await self.opened_by(trigger)
        view = await self.updated(view_id, 1)  # templates loaded
        block = next(
            b["block_id"]
            for b in view["blocks"]
            if (b.get("element") or {}).get("action_id") == "template_select"
        )
        choose = block_action_body(
            "template_select",
            ORDER_TEMPLATE,
            AGENT,
            block_id=block,
            action_type="external_select",
            view=view,
            state_values=initial_state(view),
        )
        await self.expect_ack(choose, "choose template")
        return await self.updated(view_id, 2)  # one input per template parameter

    @staticmethod
    def submit_body(view: Mapping[str, Any], phone: str, note: str) -> bytes:
        values: dict[str, dict[str, Any]] = {
            "phone": {"value": phone},
            "template": {
                "template_select": option_state(ORDER_TEMPLATE, element="external_select")
            },
            "journey": {"value": checkboxes_state([])},
            "order_id": {"value": None},
            "campaign": {"value": "ack bench"},
            "note": {"value": note},
        }
        if any(b.get("block_id") == "sandbox" for b in view["blocks"]):
            values["sandbox"] = {"value": checkboxes_state([])}
        for name, value in ORDER.items():
            values[f"param:{name}"] = {"value": value}
        return view_submission_body("zns_request", values, AGENT, view=view)

    @staticmethod
    def review_body(card: Mapping[str, Any], trigger: str | None = None) -> bytes:
        return block_action_body(
            "zns_review",
            send_id_of(card),
            APPROVER,
            block_id="decision",
            message=card,
            channel_id=APPROVAL_CHANNEL,
            trigger_id=trigger,
        )

    async def approval_modal(self, card: Mapping[str, Any]) -> dict[str, Any]:
        trigger = new_trigger_id()
        await self.expect_ack(self.review_body(card, trigger), "Review")
        view_id = await self.opened_by(trigger)
        return await self.updated(view_id, 1)  # quota filled in

    @staticmethod
    def approve_body(view: Mapping[str, Any]) -> bytes:
        values = {"decision": {"value": option_state("approve")}, "reason": {"value": None}}
        return view_submission_body("zns_approval", values, APPROVER, view=view)

    def cards(self) -> list[dict[str, Any]]:
        return [m for m in self.slack.messages(APPROVAL_CHANNEL) if send_id_of(m)]

    async def await_cards(self, count: int, timeout: float) -> int:  # noqa: ASYNC109
        def is_card(c: Call) -> bool:
            return c.ok and c.args.get("channel") == APPROVAL_CHANNEL and "thread_ts" not in c.args

        with contextlib.suppress(TimeoutError):
            await self.slack.await_for(is_card, timeout, method="chat.postMessage", count=count)
        # Top-level messages: a decided card has lost its buttons but is still the card.
        return len(self.slack.messages(APPROVAL_CHANNEL))


def send_id_of(card: Mapping[str, Any]) -> str | None:
    for block in card.get("blocks") or []:
        for element in block.get("elements") or []:
            if element.get("action_id") == "zns_review":
                return str(element["value"])
    return None


def phone_for(n: int) -> str:
    return f"0901{n:06d}"


async def bounded(jobs: list[Callable[[], Awaitable[Any]]], limit: int) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            return await job()

    return await asyncio.gather(*(one(job) for job in jobs))


# --- the bench ----------------------------------------------------------------------------


def mix(total: int) -> dict[str, int]:
    base, extra = divmod(total, len(KINDS))
    return {kind: base + (1 if i < extra else 0) for i, kind in enumerate(KINDS)}


async def prepare(side: SlackSide, counts: Mapping[str, int]) -> dict[str, list[Any]]:
    """Everything the timed window needs, made through the real flow: pending cards to review,
    approval modals (one per distinct pending send) and filled-in request modals."""
    to_submit = counts["approve"] + counts["review"]
    opened = to_submit + counts["request"]
    modals = await bounded(
        [functools.partial(side.request_modal, phone_for(n)) for n in range(1, opened + 1)],
        SETUP_CONCURRENCY,
    )
    submitted, held = modals[:to_submit], modals[to_submit:]
    notes = [f"ack-bench setup #{i:05d}" for i in range(to_submit)]  # fixed width: unique
    await bounded(
        [
            lambda v=view, n=note: side.expect_ack(
                side.submit_body(v, phone_of(v), n), "request submit"
            )
            for view, note in zip(submitted, notes, strict=True)
        ],
        SETUP_CONCURRENCY,
    )
    posted = await side.await_cards(to_submit, timeout=60)
    if posted < to_submit:
        raise RuntimeError(f"only {posted} of {to_submit} request cards were posted")
    by_note: dict[str, dict[str, Any]] = {}
    for card in side.cards():
        shown = json.dumps(card, ensure_ascii=False)
        for note in notes:
            if note in shown:
                by_note[note] = card
    cards = [by_note[note] for note in notes]
    approve_cards, review_cards = cards[: counts["approve"]], cards[counts["approve"] :]
    approval_views = await bounded(
        [lambda c=card: side.approval_modal(c) for card in approve_cards], SETUP_CONCURRENCY
    )
    return {
        "review": review_cards,
        "approve": approval_views,
        "request": held,
        "approve_ids": [send_id_of(c) for c in approve_cards],
    }


def phone_of(view: Mapping[str, Any]) -> str:
    block = next(b for b in view["blocks"] if b.get("block_id") == "phone")
    return str(block["element"].get("initial_value") or "")


def build_jobs(
    side: SlackSide, prepared: Mapping[str, list[Any]], counts: Mapping[str, int], seed: int
) -> list[tuple[str, bytes]]:
    jobs: list[tuple[str, bytes]] = []
    for i in range(counts["slash"]):
        body = slash_command_body(text=phone_for(500_000 + i), channel_id=REQUEST_CHANNEL)
        jobs.append(("slash", body))
    jobs += [("review", side.review_body(card)) for card in prepared["review"]]
    jobs += [("approve", side.approve_body(view)) for view in prepared["approve"]]
    jobs += [
        ("request", side.submit_body(view, phone_of(view), f"ack-bench window #{i}"))
        for i, view in enumerate(prepared["request"])
    ]
    random.Random(seed).shuffle(jobs)
    return jobs


async def fire(
    http: httpx.AsyncClient, jobs: list[tuple[str, bytes]], concurrency: int
) -> list[Sample]:
    """Keep exactly `concurrency` requests in flight until every job has been answered."""
    queue: Iterator[tuple[str, bytes]] = iter(jobs)
    samples: list[Sample] = []

    async def worker() -> None:
        for kind, body in queue:
            headers = signed_headers(body, SIGNING_SECRET)  # signed now, outside the timing
            start = time.perf_counter()
            try:
                response = await http.post("/slack/events", content=body, headers=headers)
            except httpx.HTTPError as exc:
                ms = (time.perf_counter() - start) * 1000
                samples.append(Sample(kind, ms, False, type(exc).__name__))
                continue
            ms = (time.perf_counter() - start) * 1000
            ok = response.status_code == 200 and response.text == ""
            detail = "" if ok else f"HTTP {response.status_code} {response.text[:120]}"
            samples.append(Sample(kind, ms, ok, detail))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples


async def drain(
    data_dir: Path,
    send_ids: list[str],
    timeout: float,  # noqa: ASYNC109
) -> tuple[Counter[str], bool]:
    """Wait until the store shows every approved send settled (accepted, or failed/unknown)."""
    deadline = time.monotonic() + timeout
    wanted = set(send_ids)
    counts: Counter[str] = Counter()
    while True:
        states = read_states(data_dir)
        if states is not None:
            counts = Counter(states.get(s, "missing") for s in wanted)
            if all(SendState(v) in SETTLED for v in counts if v != "missing") and (
                "missing" not in counts
            ):
                return counts, True
        if time.monotonic() >= deadline:
            return counts, False
        await asyncio.sleep(0.05)


async def settle(slack: SlackStandIn, quiet: float = 0.5, timeout: float = 15.0) -> None:  # noqa: ASYNC109
    """Let the bot's background Slack work (views, cards, thread replies) finish."""
    deadline = time.monotonic() + timeout
    seen = -1
    while time.monotonic() < deadline:
        now = len(slack.calls())
        if now == seen:
            return
        seen = now
        await asyncio.sleep(quiet)


def scan_log(path: Path, report: Report) -> None:
    for line in path.read_text(errors="replace").splitlines():
        level = line.split(" ", 1)[0]
        if level in ("WARNING", "ERROR", "CRITICAL"):
            report.log_levels[level] += 1
            if len(report.log_problems) < 5:
                report.log_problems.append(line[:200])
        elif line.startswith("Traceback"):
            report.log_levels["Traceback"] += 1
        if "Application shutdown complete" in line:  # uvicorn, after the lifespan's exit
            report.shutdown_complete = True


async def run(opts: Options) -> Report:
    report = Report()
    counts = mix(opts.total)
    with (
        tempfile.TemporaryDirectory(prefix="zns-ack-bench-") as tmp,
        EsmsStandIn() as esms,
        SlackStandIn(bot_token=BOT_TOKEN) as slack,
    ):
        data_dir = Path(tmp) / "data"
        env = bot_env(slack, esms, data_dir, opts)
        log_path = Path(tmp) / "bot.log"
        bot = BotProcess(env, cwd=Path(tmp), log_path=log_path)
        began = time.perf_counter()
        try:
            await bot.start(wait=30.0)
            report.startup_s = time.perf_counter() - began
            limits = httpx.Limits(max_connections=max(opts.concurrency, SETUP_CONCURRENCY))
            async with httpx.AsyncClient(base_url=bot.url, timeout=30, limits=limits) as http:
                side = SlackSide(http, slack)
                began = time.perf_counter()
                prepared = await prepare(side, counts)
                jobs = build_jobs(side, prepared, counts, opts.seed)
                await settle(slack)  # setup's own cards and ephemerals are out: a quiet start
                report.setup_s = time.perf_counter() - began

                # Every send from now on is held by "eSMS" before it answers.
                esms.inject(SEND_ENDPOINT, delay=opts.esms_delay, times=10_000)
                approve_ids: list[str] = prepared["approve_ids"]
                began = time.perf_counter()
                report.samples = await fire(http, jobs, opts.concurrency)
                report.window_s = time.perf_counter() - began
                report.at_window_end = Counter(
                    (read_states(data_dir) or {}).get(s, "unreadable") for s in approve_ids
                )
                report.esms_sends_at_end = len(esms.requests_to(SEND_ENDPOINT))

                began = time.perf_counter()
                report.after_drain, report.drained = await drain(
                    data_dir, approve_ids, opts.drain_timeout
                )
                report.drain_s = time.perf_counter() - began
                report.esms_sends_after = len(esms.requests_to(SEND_ENDPOINT))
                report.cards_expected = sum(counts[k] for k in ("approve", "review", "request"))
                report.cards_posted = await side.await_cards(report.cards_expected, timeout=15)
                await settle(slack)
        finally:
            began = time.perf_counter()
            # in a thread: a graceful shutdown takes a while, and SIGKILL comes only after 20 s
            report.exit_code = await asyncio.to_thread(bot.stop, 20.0, force=True)
            report.stop_s = time.perf_counter() - began
            scan_log(log_path, report)
        for call in slack.calls():
            report.slack_calls[call.method] += 1
            if not call.ok:
                report.slack_not_ok[f"{call.method}:{call.error}"] += 1
        with Store.open(data_dir) as store:  # the bot has exited: its lock is free
            report.final_states = Counter(
                {k: v for k, v in store.sends.count_by_state().items() if v}
            )
            report.audit_ok = store.audit.verify().ok
    return report


# --- output -------------------------------------------------------------------------------


def pct(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def states_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "none"


def print_report(opts: Options, report: Report, total_s: float) -> None:
    cpus = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpus
    print(
        f"zns-bot Slack ack bench: {opts.total} signed requests to /slack/events, "
        f"{opts.concurrency} concurrent, every eSMS send held {opts.esms_delay:g} s"
    )
    print(
        f"bot: `zns-bot serve` in a subprocess (uvicorn, lifespan on, store fsync on), "
        f"ESMS_TIMEOUT={opts.esms_timeout:g} s; stand-ins and load generator in this process"
    )
    print(
        f"machine: {cpus} CPUs ({usable} usable), {platform.machine()}, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )
    print()
    header = f"{'kind':<16}{'count':>6}{'errors':>8}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}"
    print(header)
    print("-" * len(header))
    rows: list[tuple[str, list[Sample]]] = [
        (label, [s for s in report.samples if s.kind == kind]) for kind, label in KINDS.items()
    ]
    rows.append(("all", report.samples))
    worst: tuple[float, str] = (0.0, "")
    for label, samples in rows:
        ms = [s.ms for s in samples]
        bad = sum(not s.ok for s in samples)
        if not ms:
            print(f"{label:<16}{0:>6}{bad:>8}{'-':>10}{'-':>10}{'-':>10}")
            continue
        p99 = pct(ms, 99)
        if label != "all" and p99 >= worst[0]:
            worst = (p99, label)
        print(f"{label:<16}{len(ms):>6}{bad:>8}{pct(ms, 50):>10.1f}{p99:>10.1f}{max(ms):>10.1f}")
    print()
    kinds_p99 = {label: pct([s.ms for s in samples], 99) for label, samples in rows[:-1] if samples}
    met = len(kinds_p99) == len(KINDS) and all(v < TARGET_MS for v in kinds_p99.values())
    errors = sum(not s.ok for s in report.samples)
    print(
        f"target: p99 < {TARGET_MS:.0f} ms for every kind -> {'MET' if met else 'NOT MET'} "
        f"(worst p99: {worst[1]} {worst[0]:.1f} ms)"
    )
    if errors:
        details = Counter(f"{s.kind}: {s.detail}" for s in report.samples if not s.ok)
        print(f"errors: {errors} request(s) not acked with an empty 200:")
        for detail, n in details.most_common(5):
            print(f"  {n} x {detail}")
    rate = len(report.samples) / report.window_s if report.window_s else 0.0
    print(f"window: {len(report.samples)} requests in {report.window_s:.2f} s ({rate:.0f} req/s)")
    approvals = sum(report.after_drain.values())
    in_flight = sum(n for s, n in report.at_window_end.items() if s in IN_FLIGHT)
    accepted_end = report.at_window_end.get(SendState.ACCEPTED, 0)
    accepted = report.after_drain.get(SendState.ACCEPTED, 0)
    print(
        f"eSMS sends at window end: {in_flight} in flight, {accepted_end} accepted "
        f"({states_text(report.at_window_end)}); eSMS stand-in had received "
        f"{report.esms_sends_at_end}"
    )
    print(
        f"eSMS sends after drain: {accepted}/{approvals} accepted "
        f"({states_text(report.after_drain)}) "
        f"{'in' if report.drained else 'NOT drained within'} {report.drain_s:.2f} s; "
        f"eSMS stand-in received {report.esms_sends_after}"
    )
    not_ok = sum(report.slack_not_ok.values())
    print(
        f"background: request cards posted {report.cards_posted}/{report.cards_expected}; "
        f"Slack API calls {sum(report.slack_calls.values())}, {not_ok} not ok"
        + (f" ({dict(report.slack_not_ok)})" if not_ok else "")
    )
    print(
        f"store after shutdown: {states_text(report.final_states)}; "
        f"audit chain {'intact' if report.audit_ok else 'BROKEN'}"
    )
    levels = ", ".join(f"{n} {k}" for k, n in report.log_levels.items()) or "no warnings/errors"
    # uvicorn re-raises the SIGTERM it caught once its graceful shutdown is done: exit -15.
    shutdown = "lifespan shutdown complete" if report.shutdown_complete else "NO clean shutdown"
    print(
        f"bot: startup {report.startup_s:.2f} s; SIGTERM -> {shutdown}, exit code "
        f"{report.exit_code} in {report.stop_s:.2f} s; log: {levels}"
    )
    for line in report.log_problems:
        print(f"  {line}")
    print(f"setup (real flow, untimed): {report.setup_s:.2f} s; total run: {total_s:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--total", type=int, default=200, help="requests in the timed window")
    parser.add_argument("--concurrency", type=int, default=20, help="requests in flight")
    parser.add_argument("--esms-delay", type=float, default=2.0, help="seconds eSMS holds a send")
    parser.add_argument("--esms-timeout", type=float, default=10.0, help="the bot's ESMS_TIMEOUT")
    parser.add_argument("--drain-timeout", type=float, default=30.0, help="max wait for sends")
    parser.add_argument("--seed", type=int, default=1, help="shuffles the mix of kinds")
    args = parser.parse_args()
    if args.total < len(KINDS) or args.concurrency < 1:
        parser.error(f"--total must be at least {len(KINDS)} and --concurrency at least 1")
    opts = Options(
        total=args.total,
        concurrency=args.concurrency,
        esms_delay=args.esms_delay,
        esms_timeout=args.esms_timeout,
        drain_timeout=args.drain_timeout,
        seed=args.seed,
    )
    began = time.perf_counter()
    report = asyncio.run(run(opts))
    print_report(opts, report, time.perf_counter() - began)


if __name__ == "__main__":
    main()
