"""The composition root: the one place that wires settings, store, eSMS, Slack and the server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.logger import get_bolt_logger
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse

from bot.checks import required_for_serve
from bot.config import Settings
from bot.delivery import DeliveryTracker
from bot.errors import StoreError
from bot.esms.client import EsmsClient
from bot.jobs.polling import DeliveryPoller
from bot.jobs.relay import Relay
from bot.jobs.scheduler import RELAY_JOB, build_scheduler, kick_relay, run_soon
from bot.ops.heap import settle_long_lived
from bot.ops.logs import log_event, protect_records, secrets_from_settings
from bot.ops.loop_lag import share_the_gil_quickly, watch_loop_lag
from bot.ops.metrics import Metrics
from bot.service import SendService
from bot.slack_web import slack_client
from bot.stores import open_store
from bot.templates import TemplateCatalogue
from bot.web.callbacks import CallbackEndpoint
from bot.web.limits import Limits
from bot.web.refusals import RefusalLog
from bot.web.routes import build_metrics_web, build_web
from bot.web.server import ByPort, header_timeout_protocol, listen_socket, quiet_config
from bot.web.slack_gate import check_shape, check_signature
from handlers import register_all
from handlers.access import AccessList
from handlers.deps import SlackDeps
from handlers.poster import SlackHomes, SlackPoster
from storage.store import Store

log = logging.getLogger(__name__)


def check_settings(settings: Settings) -> None:
    """Refuse to start without what the server needs, naming every missing setting."""
    settings.require(*required_for_serve(settings))


class _DropMessage(logging.Filter):
    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != self.message


@contextlib.contextmanager
def _same_token_notice_dropped(client: AsyncWebClient) -> Iterator[None]:
    """Bolt reads SLACK_BOT_TOKEN itself and, given a client too, warns at every start that
    "`token` will be unused". When that token is the one the client was built with, the
    warning says nothing true; a different one still warns, as a real misconfiguration."""
    if os.environ.get("SLACK_BOT_TOKEN") != client.token:
        yield
        return
    bolt_log = get_bolt_logger(AsyncApp)
    quiet = _DropMessage(warning_client_prioritized_and_token_skipped())
    bolt_log.addFilter(quiet)
    try:
        yield
    finally:
        bolt_log.removeFilter(quiet)


@dataclass
class Runtime:
    """Everything one zns-bot process runs, built but not yet started."""

    settings: Settings
    store: Store
    metrics: Metrics
    esms: EsmsClient
    service: SendService
    tracker: DeliveryTracker
    relay: Relay
    scheduler: AsyncIOScheduler
    bolt: AsyncApp
    deps: SlackDeps
    socket: AsyncSocketModeHandler | None
    asgi: Starlette  # the public listener: Slack, eSMS callbacks, health
    metrics_asgi: Starlette  # the loopback listener: /metrics
    refusals: RefusalLog = field(default_factory=RefusalLog)  # refused Slack requests

    async def health(self) -> dict[str, Any]:
        report: dict[str, Any] = {"ok": True, "store": "ok", "scheduler": self.scheduler.running}
        try:
            await self.store.check_writable_off_loop()
        except StoreError as exc:
            report.update(ok=False, store=str(exc))
        if self.socket is not None:
            connected = await self.socket.client.is_connected()
            report["socket_mode"] = "connected" if connected else "down"
            report["ok"] = report["ok"] and connected
        else:
            report["socket_mode"] = "off"
        return report

    async def _warm(self) -> None:
        """Fill the caches a first click would otherwise wait for (best effort)."""
        client = self.bolt.client
        try:
            await self.deps.approvers.warm(client)
            await self.deps.requesters.warm(client)
            await self.deps.auditors.warm(client)
            for oa in await self.service.catalogue.oas():
                await self.service.catalogue.templates(oa.oaid)
        except Exception as exc:  # the caches fill on first use instead
            log.warning("could not warm caches: %s", type(exc).__name__)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Start the scheduler (and Socket Mode) on this loop; stop them cleanly."""
        self.scheduler.start()
        run_soon(self.scheduler, RELAY_JOB)  # a backlog left by a previous run goes out now
        warming = asyncio.get_running_loop().create_task(self._warm())
        lag = asyncio.get_running_loop().create_task(watch_loop_lag(self.metrics.loop_lag))
        connecting = None
        if self.socket is not None:
            # slack_sdk retries a failed connect forever; in the background, so HTTP (eSMS
            # callbacks, health) serves meanwhile and /healthz reports the socket as down.
            connecting = asyncio.get_running_loop().create_task(self.socket.connect_async())  # type: ignore[no-untyped-call]
        try:
            yield
        finally:
            if self.socket is not None and connecting is not None:
                connecting.cancel()
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await connecting
                with contextlib.suppress(Exception):
                    await self.socket.close_async()  # type: ignore[no-untyped-call]
            warming.cancel()
            lag.cancel()
            await self.deps.drain_tasks()
            await self.service.catalogue.settled()
            self.scheduler.shutdown(wait=False)
            await self.relay.aclose()  # a drain in flight must not touch a closed store
            await self.store.archive.aclose()  # nor a segment write in a worker thread
            await self.esms.aclose()
            self.store.close()


def build_runtime(settings: Settings) -> Runtime:
    """Everything `serve` runs, wired from the settings; nothing runs until its lifespan."""
    check_settings(settings)
    # Every record scrubbed as it is made, whoever logs it (Bolt, slack_sdk, httpx...).
    protect_records(secrets_from_settings(settings))
    store = open_store(settings, background_compaction=True)
    metrics = Metrics(store)
    esms = EsmsClient.from_settings(settings, on_call=metrics.esms_latency)
    catalogue = TemplateCatalogue(esms, ttl=settings.zns_template_ttl)
    service = SendService(settings=settings, store=store, client=esms, catalogue=catalogue)
    client = slack_client(settings)
    approvers = AccessList(settings.zns_approvers)  # the listeners' and the homes' both
    relay, tracker, scheduler = _jobs(settings, service, client, metrics, approvers)
    bolt, deps, socket = _slack(settings, service, client, approvers)
    runtime = Runtime(
        settings=settings,
        store=store,
        metrics=metrics,
        esms=esms,
        service=service,
        tracker=tracker,
        relay=relay,
        scheduler=scheduler,
        bolt=bolt,
        deps=deps,
        socket=socket,
        asgi=Starlette(),
        metrics_asgi=build_metrics_web(metrics.render, _limits(settings)),
    )
    runtime.asgi = _web(runtime)
    return runtime


def _jobs(
    settings: Settings,
    service: SendService,
    client: AsyncWebClient,
    metrics: Metrics,
    approvers: AccessList,
) -> tuple[Relay, DeliveryTracker, AsyncIOScheduler]:
    """The background side: the Slack relay, delivery tracking and polling, on one scheduler."""
    relay = Relay(
        service.store,
        SlackPoster(client, settings),
        pace=settings.zns_slack_pace,
        burst=settings.zns_slack_burst,
        homes=SlackHomes(client, service.homes, approvers),
        book=service.homes,
    )
    relay.on_error = metrics.slack_error
    tracker = DeliveryTracker(service)
    poller = DeliveryPoller(service, tracker)
    poller.count = metrics.poll_call
    scheduler = build_scheduler(
        service,
        relay,
        template_ttl=settings.zns_template_ttl,
        poller=poller,
        archive_every=settings.zns_archive_every,
    )
    service.on_outbox = lambda: kick_relay(scheduler, relay)
    return relay, tracker, scheduler


def _slack(
    settings: Settings, service: SendService, client: AsyncWebClient, approvers: AccessList
) -> tuple[AsyncApp, SlackDeps, AsyncSocketModeHandler | None]:
    """Bolt with every listener registered, and its socket when Socket Mode is on."""
    signing = settings.slack_signing_secret
    with _same_token_notice_dropped(client):
        bolt = AsyncApp(
            client=client,
            signing_secret=signing.get_secret_value() if signing else None,
            request_verification_enabled=not settings.slack_app_token,
        )
    deps = SlackDeps(
        settings=settings,
        service=service,
        approvers=approvers,
        requesters=AccessList(settings.zns_requesters),
        auditors=AccessList(settings.zns_auditors),
    )
    register_all(bolt, deps)
    socket = None
    if settings.slack_app_token:
        socket = AsyncSocketModeHandler(bolt, settings.slack_app_token.get_secret_value())
    return bolt, deps, socket


def _web(runtime: Runtime) -> Starlette:
    """The HTTP surface: Slack events (unless Socket Mode), eSMS callbacks, health, metrics."""
    handler = AsyncSlackRequestHandler(runtime.bolt)
    signing = runtime.settings.slack_signing_secret
    refusals = runtime.refusals

    async def slack_events(request: Request) -> Any:
        if runtime.socket is not None:
            # Socket Mode verifies nothing on HTTP: serving this route would accept forgeries.
            return PlainTextResponse("Socket Mode: events arrive over the socket", 404)
        # Bolt parses the body before it checks the signature, and raises on what it cannot
        # parse: a 500 and a traceback, signed or not. Check both first, signature first.
        body = await request.body()  # cached by Starlette: Bolt reads the same bytes
        refusal = (
            check_signature(body, request.headers, signing.get_secret_value()) if signing else None
        )
        refusal = refusal or check_shape(body, request.headers.get("content-type"))
        if refusal is not None:
            # one short line, a flood summed up; a 401's reason is read from its headers
            refusals.note(request, None if refusal.status == 401 else refusal.reason)
            return PlainTextResponse(refusal.reason, status_code=refusal.status)
        response = await handler.handle(request)
        if response.status_code == 401:  # Bolt's signature check refused it (body unlogged)
            refusals.note(request)
        return response

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            async with runtime.running():
                yield
        finally:
            refusals.close()

    return build_web(
        slack_events=slack_events,
        esms_callback=CallbackEndpoint(
            runtime.tracker,
            count=runtime.metrics.callback_received,
            refused=runtime.metrics.callback_refused,
        ).handle,
        health=runtime.health,
        limits=_limits(runtime.settings),
        lifespan=lifespan,
    )


def _limits(settings: Settings) -> Limits:
    return Limits(
        max_body=settings.max_body_bytes,
        max_query=settings.max_query_bytes,
        max_headers=settings.max_header_bytes,
        body_timeout=settings.body_timeout,
    )


async def serve(settings: Settings) -> None:
    """Run the server until it is told to stop (SIGINT / SIGTERM)."""
    check_settings(settings)
    # Listen first: a taken port or a bad host is one line naming the setting, before the
    # store is opened or anything says "listening".
    public = listen_socket(settings.host, settings.port, host_name="HOST", port_name="PORT")
    metrics = None
    try:
        metrics = listen_socket(
            settings.metrics_host,
            settings.metrics_port,
            host_name="METRICS_HOST",
            port_name="METRICS_PORT",
        )
        runtime = build_runtime(settings)
    except BaseException:
        for sock in (public, metrics):
            if sock is not None:
                sock.close()
        raise
    # the loaded store must not slow the collector's full passes; each pass is measured
    settle_long_lived(runtime.metrics.gc_pass)
    share_the_gil_quickly()  # file work in worker threads must not hold up the loop
    metrics_port = metrics.getsockname()[1]
    # One server, two listeners: one set of signal handlers, limits and connection cap.
    config = quiet_config(
        ByPort(runtime.asgi, {metrics_port: runtime.metrics_asgi}),
        # Quiet (no access log: eSMS callbacks carry phones in their query strings).
        http=header_timeout_protocol(settings.header_timeout),
        lifespan="on",
        timeout_keep_alive=settings.keepalive_timeout,
        limit_concurrency=settings.max_connections,
        # h11 answers 400 to a request head still incomplete past this many bytes; room
        # enough that the limits' own 414 and 431 answer the heads they are meant for.
        h11_max_incomplete_event_size=settings.max_query_bytes + settings.max_header_bytes + 8192,
    )
    log_event(log, "listening", url=f"http://{settings.host}:{public.getsockname()[1]}")
    log_event(log, "metrics", url=f"http://{settings.metrics_host}:{metrics_port}/metrics")
    await uvicorn.Server(config).serve(sockets=[public, metrics])
