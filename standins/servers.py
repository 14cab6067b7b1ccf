"""Test servers: ASGI apps under uvicorn on loopback, on known ports, with no polling."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from types import TracebackType
from typing import Any, Literal, Self

import uvicorn
from starlette.types import ASGIApp

from bot.web.server import quiet_config

Lifespan = Literal["auto", "on", "off"]


def loopback_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A TCP socket bound to (host, port), not yet listening; port 0 picks a free port.

    Binding before uvicorn runs makes the port known without any polling.
    """
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only when the
    # listening socket says TCP, and without it every reply stalls ~40 ms (Nagle + delayed ACK).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


class NotifyingServer(uvicorn.Server):
    """A uvicorn server that calls `on_ready()` once startup is over, whether it worked or not
    (check `.started`). `on_ready` runs on the server's loop: `threading.Event().set` suits a
    server in another thread, `asyncio.Event().set` one in the caller's own loop."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], object]) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self._on_ready()


class ServerThread:
    """Serve an ASGI app with uvicorn on an ephemeral 127.0.0.1 port, in its own thread and loop.

    Usable from sync and async code alike: the app never shares the caller's event loop.
    `name` words the errors ("the server was already started"); `thread_name` prefixes the
    thread's name, followed by the port.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "server",
        thread_name: str = "asgi",
        ws: str = "none",
    ) -> None:
        self._app = app
        self._ws = ws  # a uvicorn `ws` option: "websockets-sansio" for the Socket Mode link
        self._host = host
        self._requested_port = port
        self._name = name
        self._thread_name = thread_name
        self._ready = threading.Event()
        self._server: NotifyingServer | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._crash: BaseException | None = None
        self.port = 0  # known once start() has bound the socket

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError(f"the {self._name} is not running")
        return self._loop

    def start(self, timeout: float = 10.0) -> Self:
        if self._thread is not None:
            raise RuntimeError(f"the {self._name} was already started")
        self._sock = loopback_socket(self._host, self._requested_port)
        self.port = self._sock.getsockname()[1]
        self._server = NotifyingServer(quiet_config(self._app, ws=self._ws), self._ready.set)
        self._thread = threading.Thread(
            target=self._run, name=f"{self._thread_name}-{self.port}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout) or not self._server.started:
            self.stop()
            raise RuntimeError(f"the {self._name} on {self.url} did not start: {self._crash!r}")
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # uvicorn calls sys.exit() on a failed startup
            self._crash = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        assert self._server is not None and self._sock is not None
        self._loop = asyncio.get_running_loop()
        await self._server.serve(sockets=[self._sock])

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Run `callback` on the server's loop (from any thread)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(callback)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()
        self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _GuestServer(NotifyingServer):
    """A server living in someone else's loop leaves the process's signal handlers alone:
    Ctrl-C stays the host's (asyncio.run cancels its main task), rather than quietly
    stopping just this server and being re-raised only once it has shut down."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], object]) -> None:
        super().__init__(config, on_ready)
        self._exit_requested = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def exit_now(self) -> None:
        """Ask the server to stop, and wake its main loop at once."""
        self.should_exit = True
        self._exit_requested.set()

    async def main_loop(self) -> None:
        # uvicorn looks at should_exit every 0.1 s; the suite stops an in-loop server a few
        # hundred times a run, so this one also wakes as soon as exit_now() is called.
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit_requested.wait(), 0.1)
            should_exit = await self.on_tick(counter)


class LoopServer:
    """Serve an ASGI app with uvicorn in the CURRENT event loop, on an ephemeral loopback port.

    For async tests of an app that must share the test's loop (its lifespan runs by default).
    `async with LoopServer(app) as server:` ... `server.url`; or use `serve_in_loop`.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        lifespan: Lifespan = "on",
    ) -> None:
        self._app = app
        self._host = host
        self._requested_port = port
        self._lifespan: Lifespan = lifespan
        self._server: _GuestServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None
        self._crash: BaseException | None = None
        self.port = 0  # known once start() has bound the socket

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    async def start(self, timeout: float = 10.0) -> Self:  # noqa: ASYNC109 - like ServerThread
        if self._task is not None:
            raise RuntimeError("the server was already started")
        self._sock = loopback_socket(self._host, self._requested_port)
        self.port = self._sock.getsockname()[1]
        ready = asyncio.Event()
        config = quiet_config(self._app, lifespan=self._lifespan)
        self._server = _GuestServer(config, ready.set)
        self._task = asyncio.create_task(self._run(ready), name=f"asgi-{self.port}")
        try:
            async with asyncio.timeout(timeout):
                await ready.wait()
        except BaseException:  # a timeout, or the caller was cancelled
            await self._shutdown(cancel=True)  # should_exit alone cannot end a stuck startup
            raise
        if not self._server.started:
            await self._shutdown()
            raise RuntimeError(
                f"the server on {self.url} did not start: {self._crash!r}"
            ) from self._crash
        return self

    async def _run(self, ready: asyncio.Event) -> None:
        assert self._server is not None and self._sock is not None
        try:
            await self._server.serve(sockets=[self._sock])
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except BaseException as exc:  # uvicorn calls sys.exit() on a failed startup
            self._crash = exc
        finally:
            ready.set()  # also when serve() failed before even reaching startup

    async def _shutdown(self, *, cancel: bool = False) -> None:
        if self._server is not None:
            self._server.exit_now()
        if self._task is not None and not self._task.done():
            if cancel:
                self._task.cancel()
            await asyncio.wait({self._task})  # never raises the task's outcome
        if self._sock is not None:
            self._sock.close()

    async def stop(self) -> None:
        """Shut the server down; raise if it crashed after starting."""
        started = self._server is not None and self._server.started
        await self._shutdown()
        if started and self._crash is not None:
            raise RuntimeError(
                f"the server on {self.url} crashed: {self._crash!r}"
            ) from self._crash

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


@contextlib.asynccontextmanager
async def serve_in_loop(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    lifespan: Lifespan = "on",
    timeout: float = 10.0,  # noqa: ASYNC109 - a startup timeout, like ServerThread.start
) -> AsyncIterator[str]:
    """Serve `app` in the running loop for the block's duration; yields "http://HOST:PORT".

    Raises RuntimeError (chained to uvicorn's exit) when startup fails, e.g. in the lifespan.
    """
    server = await LoopServer(app, host=host, lifespan=lifespan).start(timeout)
    try:
        yield server.url
    finally:
        await server.stop()


def run_until_stopped(
    server: contextlib.AbstractContextManager[Any], banner: Callable[[], str], where: str
) -> None:
    """A stand-in's command line: start `server`, print `banner()`, serve until Ctrl-C.

    SIGTERM (`kill`, a service manager) stops it as cleanly as Ctrl-C. A port that cannot be
    bound is one line on stderr and exit status 2, not a traceback.
    """
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(server)
            except OSError as exc:
                why = exc.strerror or exc
                hint = "--port 0 picks a free port"
                print(f"error: cannot listen on {where}: {why} ({hint})", file=sys.stderr)
                raise SystemExit(2) from None
            # flush: whoever reads the banner through a pipe must see it now, not at exit
            print(banner(), flush=True)
            threading.Event().wait()
    except KeyboardInterrupt:
        print("stopped", flush=True)
