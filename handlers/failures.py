"""The one error handler of every listener: the person is told, the log names the cause."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import EsmsError, StoreError, ZnsBotError
from handlers.ui.forms import field_error

log = logging.getLogger(__name__)
NOTHING_DONE = "Nothing was sent."
Listener = Callable[..., Awaitable[None]]
_NEEDED = ("ack", "body", "client")  # what `told` needs besides the listener's own arguments


def listener_of(body: Mapping[str, Any]) -> str:
    """Which listener a request went to, as Slack names what it delivered."""
    kind = body.get("type")
    if body.get("command"):
        return f"command {body['command']}"
    if kind == "block_actions":
        actions = body.get("actions") or [{}]
        return f"action {actions[0].get('action_id')}"
    if kind in ("view_submission", "view_closed"):
        return f"view {(body.get('view') or {}).get('callback_id')}"
    if kind == "block_suggestion":
        return f"options {body.get('action_id')}"
    if kind == "event_callback":
        return f"event {(body.get('event') or {}).get('type')}"
    return f"request {kind or 'of an unknown kind'}"


def person_of(body: Mapping[str, Any]) -> str | None:
    user = body.get("user_id") or (body.get("user") or {}).get("id")
    return user if isinstance(user, str) else None


def channel_of(body: Mapping[str, Any]) -> str | None:
    """Where the person can be answered in place: the command's or the clicked card's."""
    channel = (
        body.get("channel_id")
        or (body.get("channel") or {}).get("id")
        or (body.get("container") or {}).get("channel_id")
    )
    return channel if isinstance(channel, str) else None


def slack_cause(error: SlackApiError) -> str:
    """`views.update: invalid_arguments ([ERROR] …)`: the method, Slack's code, its reasons."""
    response = error.response
    method = str(getattr(response, "api_url", "") or "").rstrip("/").rsplit("/", 1)[-1]
    code = response.get("error") or f"HTTP {response.status_code}"
    reasons = (response.get("response_metadata") or {}).get("messages") or []
    detail = f" ({'; '.join(map(str, reasons))[:500]})" if reasons else ""
    return f"{method or 'a Slack call'}: {code}{detail}"


def failure_text(error: Exception) -> str:
    """What the person reads: what failed, in plain words, and what to do now."""
    if isinstance(error, SlackApiError):
        code = error.response.get("error") or "an error"
        return (
            f":warning: Slack refused to show the bot's answer ({code}). {NOTHING_DONE} "
            "Try again; if it happens again, tell an admin (the bot's log names the cause)."
        )
    if isinstance(error, SlackClientError):
        return f":warning: The bot could not reach Slack. {NOTHING_DONE} Try again in a minute."
    if isinstance(error, EsmsError):
        return f":warning: eSMS could not be reached or refused: {error}. {NOTHING_DONE}"
    if isinstance(error, StoreError):
        return f":warning: The bot could not save this: {error}. {NOTHING_DONE}"
    if isinstance(error, ZnsBotError):  # str() is written for a person
        text = str(error)
        return f":no_entry: {text[:1].upper()}{text[1:]}."
    return (
        f":warning: Something went wrong inside zns-bot. {NOTHING_DONE} Try again; "
        "if it happens again, tell an admin (the bot's log has the details)."
    )


def _level(error: Exception) -> int:
    """A refusal the person is told about is routine; an outage is worth a look; anything
    else is a bug, logged with its traceback."""
    if isinstance(error, SlackClientError | StoreError | EsmsError):
        return logging.WARNING
    return logging.INFO if isinstance(error, ZnsBotError) else logging.ERROR


def _log_failure(where: str, user: str | None, error: Exception) -> None:
    level = _level(error)
    log.log(
        level,
        "listener %s failed for %s: %s",
        where,
        user or "an unknown user",
        _cause(error),
        exc_info=error if level == logging.ERROR else None,
    )


def _cause(error: Exception) -> str:
    if isinstance(error, SlackApiError):
        return slack_cause(error)
    return f"{type(error).__name__}: {error}"[:500]


async def on_listener_error(error: Exception, body: dict[str, Any], client: AsyncWebClient) -> None:
    """Bolt calls this when a listener raises: log the cause, then tell the person.

    Slack shows nothing when a modal fails to open or update: without this the person
    waits on "Loading…" and only the log knows. Telling them may fail too (Slack down):
    that is logged, never raised.
    """
    where, user = listener_of(body), person_of(body)
    _log_failure(where, user, error)
    if user is None:
        return
    await tell(client, user, failure_text(error), channel_of(body), about=where)


async def tell(
    client: AsyncWebClient,
    user: str,
    text: str,
    channel: str | None,
    *,
    about: str,
    blocks: Sequence[dict[str, Any]] | None = None,
) -> None:
    """An ephemeral in `channel`, else (no channel, or one the bot is not in) a DM. If
    Slack cannot take either, the log says so: this never raises."""
    extra: dict[str, Any] = {"blocks": blocks} if blocks else {}  # a line stays a plain call
    try:
        if channel is not None:
            try:
                await client.chat_postEphemeral(channel=channel, user=user, text=text, **extra)
                return
            except SlackApiError:  # a channel the bot is not in: a DM reaches them anyway
                pass
        opened = await client.conversations_open(users=user)
        await client.chat_postMessage(channel=opened["channel"]["id"], text=text, **extra)
    except SlackClientError as exc:
        told = slack_cause(exc) if isinstance(exc, SlackApiError) else type(exc).__name__
        log.warning("could not tell %s about %s: %s", user, about, told)


def told(listener: Listener) -> Listener:
    """`listener`, whose failures reach `on_listener_error` with Slack answered first.

    Bolt's own error path has a race: a listener that fails within ~10 ms of its ack()
    has that ack overwritten, and Slack gets a 404 (slack_bolt asyncio_runner, 1.2x). So
    every listener is registered through this wrapper; `register` keeps Bolt's error
    handler for anything else. Bolt injects arguments by name, so the wrapper declares
    the listener's own plus what it needs itself.
    """
    own = list(inspect.signature(listener).parameters)
    names = own + [n for n in _NEEDED if n not in own]

    async def guarded(**kwargs: Any) -> None:
        try:
            await listener(**{name: kwargs[name] for name in own})
        except Exception as exc:
            inline = await _answer_slack(kwargs["ack"], kwargs["body"], exc)
            if inline:  # the open modal shows the reason: log it, no DM besides
                _log_failure(listener_of(kwargs["body"]), person_of(kwargs["body"]), exc)
                return
            await on_listener_error(exc, kwargs["body"], kwargs["client"])

    guarded.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names]
    )
    guarded.__name__ = guarded.__qualname__ = listener.__name__
    guarded.__doc__ = listener.__doc__
    return guarded


async def _answer_slack(ack: AsyncAck, body: Mapping[str, Any], error: Exception) -> bool:
    """Ack a request the listener failed before acking: a modal submission stays open
    with the reason under its first input, so nothing the person typed is lost. True
    when that inline reason is how the person learns of it."""
    if ack.response is not None:
        return False
    view = body.get("view") or {}
    first = next(
        (b.get("block_id") for b in view.get("blocks", []) if b.get("type") == "input"), None
    )
    if body.get("type") == "view_submission" and first:
        reason = failure_text(error).removeprefix(":warning: ").removeprefix(":no_entry: ")
        await ack(response_action="errors", errors={first: field_error(reason)})
        return True
    await ack()
    return False


def register(app: AsyncApp) -> None:
    app.error(on_listener_error)
