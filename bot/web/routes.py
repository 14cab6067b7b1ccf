"""The HTTP surfaces as Starlette apps: the public one (Slack, eSMS, health) and metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.web.limits import Limits, LimitsMiddleware

Endpoint = Callable[[Request], Awaitable[Response]]
HealthCheck = Callable[[], Awaitable[dict[str, Any]]]
MetricsRender = Callable[[], tuple[bytes, str]]


def build_web(
    *,
    slack_events: Endpoint,
    esms_callback: Endpoint,
    health: HealthCheck,
    limits: Limits,
    lifespan: Callable[[Starlette], AbstractAsyncContextManager[None]] | None = None,
) -> Starlette:
    async def healthz(request: Request) -> JSONResponse:
        report = await health()
        return JSONResponse(report, status_code=200 if report.get("ok") else 503)

    return Starlette(
        routes=[
            Route("/slack/events", slack_events, methods=["POST"]),
            Route("/esms/callback/{token}", esms_callback, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        # Outermost of the app's own layers: sizes are refused before routing or signatures.
        middleware=[Middleware(LimitsMiddleware, limits=limits)],
        lifespan=lifespan,
    )


def build_metrics_web(metrics: MetricsRender, limits: Limits) -> Starlette:
    """/metrics alone, for the loopback listener: the public app does not serve it."""

    async def metrics_endpoint(request: Request) -> Response:
        # async on purpose: the store may be read only from the event loop's thread
        body, content_type = metrics()
        return Response(body, media_type=content_type)

    return Starlette(
        routes=[Route("/metrics", metrics_endpoint, methods=["GET"])],
        middleware=[Middleware(LimitsMiddleware, limits=limits)],
    )
