"""standins.servers: an ASGI app served over real HTTP, in the test's loop or in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
from collections.abc import AsyncIterator, Callable, Sized
from contextlib import AbstractAsyncContextManager

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from standins.servers import LoopServer, ServerThread, loopback_socket, serve_in_loop


async def _hello(request: Request) -> Response:
    return PlainTextResponse(f"hello {request.query_params.get('name', 'world')}")


def _app(
    lifespan: Callable[[Starlette], AbstractAsyncContextManager[None]] | None = None,
) -> Starlette:
    return Starlette(routes=[Route("/hello", _hello)], lifespan=lifespan)


async def _no_longer_served(url: str, calls: Sized) -> bool:
    """Nothing of this test answers at `url` any more. The port itself may already serve
    another test (pytest-xdist's other worker takes free ports too), so the question is
    whether a request still reaches this test's app, which records every call."""
    before = len(calls)
    try:
        async with httpx.AsyncClient(trust_env=False, timeout=2) as client:
            await client.get(f"{url}/where")
    except httpx.TransportError:
        return True
    return len(calls) == before


def test_loopback_socket_binds_a_free_tcp_port() -> None:
    with loopback_socket() as sock:
        host, port = sock.getsockname()
        assert host == "127.0.0.1"
        assert port > 0
        assert sock.proto == socket.IPPROTO_TCP


async def test_serve_in_loop_answers_over_real_http_in_the_same_loop() -> None:
    seen_loops: list[asyncio.AbstractEventLoop] = []

    async def where(request: Request) -> Response:
        seen_loops.append(asyncio.get_running_loop())
        return PlainTextResponse("here")

    app = Starlette(routes=[Route("/hello", _hello), Route("/where", where)])
    async with serve_in_loop(app) as url:
        assert url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(base_url=url, trust_env=False) as client:
            reply = await client.get("/hello", params={"name": "zns"})
            assert reply.status_code == 200
            assert reply.text == "hello zns"
            assert (await client.get("/where")).text == "here"
    assert seen_loops == [asyncio.get_running_loop()]
    assert await _no_longer_served(url, seen_loops)


async def test_serve_in_loop_runs_the_lifespan() -> None:
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    async with serve_in_loop(_app(lifespan=lifespan)) as url:
        assert events == ["startup"]
        async with httpx.AsyncClient(base_url=url, trust_env=False) as client:
            assert (await client.get("/hello")).text == "hello world"
    assert events == ["startup", "shutdown"]


async def test_serve_in_loop_surfaces_a_failed_startup() -> None:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        raise ValueError("no database")
        yield  # pragma: no cover

    with pytest.raises(RuntimeError, match="did not start") as failed:
        async with serve_in_loop(_app(lifespan=lifespan)):
            pytest.fail("the block must not run when startup failed")
    assert isinstance(failed.value.__cause__, SystemExit)  # uvicorn's exit on failed startup


async def test_serve_in_loop_gives_up_on_a_startup_that_hangs() -> None:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await asyncio.Event().wait()
        yield  # pragma: no cover

    with pytest.raises(TimeoutError):
        async with serve_in_loop(_app(lifespan=lifespan), timeout=0.2):
            pytest.fail("the block must not run when startup hung")


async def test_serve_in_loop_leaves_the_signal_handlers_alone() -> None:
    before = signal.getsignal(signal.SIGINT)
    async with serve_in_loop(_app()):
        assert signal.getsignal(signal.SIGINT) is before


async def test_loop_server_exposes_its_port_and_refuses_a_second_start() -> None:
    calls: list[object] = []

    async def where(request: Request) -> Response:
        calls.append(request)
        return PlainTextResponse("here")

    server = LoopServer(Starlette(routes=[Route("/where", where)]), lifespan="off")
    async with server:
        assert server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}"
        with pytest.raises(RuntimeError, match="already started"):
            await server.start()
        assert not await _no_longer_served(server.url, calls)  # the probe does see it live
    assert await _no_longer_served(server.url, calls)


def test_server_thread_serves_from_its_own_thread() -> None:
    threads: list[threading.Thread] = []

    async def where(request: Request) -> Response:
        threads.append(threading.current_thread())
        return PlainTextResponse("here")

    app = Starlette(routes=[Route("/hello", _hello), Route("/where", where)])
    with ServerThread(app) as server:
        assert server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert server.loop.is_running()
        with httpx.Client(base_url=server.url, trust_env=False) as client:
            assert client.get("/hello", params={"name": "thread"}).text == "hello thread"
            assert client.get("/where").text == "here"
        with pytest.raises(RuntimeError, match="the server was already started"):
            server.start()
    assert threads and threads[0] is not threading.current_thread()
    assert threads[0].name == f"asgi-{server.port}"
    with pytest.raises(RuntimeError, match="the server is not running"):
        server.loop  # noqa: B018
    assert asyncio.run(_no_longer_served(server.url, threads))


async def test_server_thread_works_from_async_code() -> None:
    with ServerThread(_app(), name="test server") as server:
        async with httpx.AsyncClient(base_url=server.url, trust_env=False) as client:
            assert (await client.get("/hello")).text == "hello world"
        ran = threading.Event()
        server.call_soon(ran.set)
        assert ran.wait(5)
