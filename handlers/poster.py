"""The Slack side of the outbox: render a send's current state and post it with the Web API."""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.errors import ConfigError
from bot.home import HomeBook
from bot.posts import Kind, PostError
from handlers.access import AccessList
from handlers.ui.blocks import failure_dm, notify_text, posted_text, request_card, thread_text
from handlers.ui.home import home_view
from storage.sends import SendRecord

log = logging.getLogger(__name__)

# Every message the relay posts carries its outbox key in Slack message metadata, so that a
# retry can tell whether an earlier attempt reached Slack (see Poster.post).
OUTBOX_EVENT = "zns_outbox"
LOOKBACK_MARGIN_S = 300.0  # look this far before the first attempt (clock skew with Slack)
LOOKUP_PAGE = 200
LOOKUP_MAX_PAGES = 10
PERMALINKS_KEPT = 5000  # cards' permalinks remembered (they never change)
# Slack errors that mean "you may not look here": the look-up is skipped (with a warning) and
# the item is posted, at least once, rather than kept back forever.
CANNOT_LOOK = frozenset(
    {"missing_scope", "not_in_channel", "not_allowed_token_type", "channel_not_found"}
)


def slack_user(actor: str | None) -> str | None:
    return actor.removeprefix("slack:") if actor and actor.startswith("slack:") else None


def outbox_metadata(key: str) -> dict[str, Any]:
    return {"event_type": OUTBOX_EVENT, "event_payload": {"key": key}}


def carries_key(message: Mapping[str, Any], key: str) -> bool:
    metadata = message.get("metadata") or {}
    payload = metadata.get("event_payload") or {}
    return metadata.get("event_type") == OUTBOX_EVENT and payload.get("key") == key


def relay_client(client: AsyncWebClient) -> AsyncWebClient:
    """The client for outbox posts: the same connection, fewer inline retries.

    A 429 is still retried inline (Slack took nothing). A 5xx or a dropped connection is
    not: Slack may have posted the message all the same, and a blind re-post would show it
    twice. The relay retries those itself, looking for the message first.
    """
    derived = copy.copy(client)
    derived.retry_handlers = [
        h for h in client.retry_handlers if isinstance(h, AsyncRateLimitErrorRetryHandler)
    ]
    return derived


def post_error(kind: Kind, exc: Exception) -> Exception:
    """A Slack failure as the relay's PostError; anything else as it is."""
    if isinstance(exc, SlackApiError):
        retry_after = exc.response.headers.get("Retry-After") if exc.response else None
        error = exc.response.get("error") if exc.response else str(exc)
        return PostError(
            f"Slack refused {kind}: {error}",
            retry_after=float(retry_after) if retry_after else None,
            error=str(error),
        )
    if isinstance(exc, aiohttp.ClientError | TimeoutError | OSError):
        return PostError(f"Slack unreachable for {kind}: {type(exc).__name__}", error="unreachable")
    return exc


class SlackHomes:
    """Implements bot.posts.HomePoster: a person's App Home rendered and published."""

    def __init__(self, client: AsyncWebClient, book: HomeBook, approvers: AccessList) -> None:
        self.client = relay_client(client)
        self.book = book
        self.approvers = approvers
        self._links: dict[tuple[str, str], str] = {}

    async def render_home(self, user: str) -> dict[str, Any]:
        approver = await self.approvers.contains(user, self.client)
        data = await self.book.gather(user, approver=approver)
        links: dict[str, str] = {}
        for item in data.mine:
            if item.card_channel and item.card_ts:
                link = await self._permalink(item.card_channel, item.card_ts)
                if link:
                    links[item.send_id] = link
        return home_view(data, links)

    async def publish_home(self, user: str, view: Mapping[str, Any]) -> None:
        try:
            await self.client.views_publish(user_id=user, view=dict(view))
        except Exception as exc:
            raise post_error(Kind.HOME, exc) from None

    async def _permalink(self, channel: str, ts: str) -> str | None:
        """The card's permalink, asked once: a home shows up to 20 and is rendered often."""
        key = (channel, ts)
        if key not in self._links:
            try:
                response = await self.client.chat_getPermalink(channel=channel, message_ts=ts)
            except SlackApiError as exc:  # the home still shows the request, without a link
                log.info("no permalink for %s/%s: %s", channel, ts, exc.response.get("error"))
                return None
            if len(self._links) >= PERMALINKS_KEPT:
                self._links.pop(next(iter(self._links)))
            self._links[key] = str(response.get("permalink") or "")
        return self._links[key] or None


class SlackPoster:
    """Implements bot.posts.Poster with an AsyncWebClient."""

    def __init__(self, client: AsyncWebClient, settings: Settings) -> None:
        if not settings.zns_approval_channel:  # `serve` refuses to start without it
            raise ConfigError("ZNS_APPROVAL_CHANNEL is not set: cards would have nowhere to go")
        self.client = relay_client(client)
        self.settings = settings
        self.approval_channel: str = settings.zns_approval_channel

    def pace_key(self, kind: Kind, record: SendRecord, payload: Mapping[str, Any]) -> str | None:
        if kind == Kind.CARD:
            return record.get("card_channel") or self.approval_channel
        if kind == Kind.THREAD:
            return record.get("card_channel")
        if kind == Kind.NOTIFY:
            return self.settings.zns_notify_channel or None
        if kind == Kind.DM:
            user = slack_user(record.get("requester"))
            return f"dm:{user}" if user else None  # one DM channel per user
        if kind == Kind.EPHEMERAL:
            user = slack_user(payload.get("user"))
            return f"ephemeral:{user}" if user else None
        return None

    async def post(
        self,
        kind: Kind,
        record: SendRecord,
        payload: Mapping[str, Any],
        *,
        key: str,
        tried_since: datetime | None = None,
    ) -> dict[str, Any]:
        try:
            return await self._post_item(kind, record, payload, key, tried_since)
        except Exception as exc:
            raise post_error(kind, exc) from None

    async def _post_item(
        self,
        kind: Kind,
        record: SendRecord,
        payload: Mapping[str, Any],
        key: str,
        tried_since: datetime | None,
    ) -> dict[str, Any]:
        if kind == Kind.CARD:
            card = request_card(record)
            if record.get("card_ts"):
                # Re-renders the current state: repeating it is harmless.
                await self.client.chat_update(
                    channel=record["card_channel"], ts=record["card_ts"], **card
                )
                return {"channel": record["card_channel"], "ts": record["card_ts"]}
            return await self._post(key, tried_since, channel=self.approval_channel, **card)
        if kind == Kind.THREAD:
            text = thread_text(record, payload.get("state") or record["state"])
            return await self._post(
                key,
                tried_since,
                channel=record["card_channel"],
                thread_ts=record["card_ts"],
                text=text,
            )
        if kind == Kind.EPHEMERAL:
            # At least once: Slack keeps no ephemeral we could look for, so a retry after a
            # lost reply may show the note twice (to one person, and it fades).
            user = slack_user(payload.get("user"))
            channel = payload.get("channel") or record["card_channel"]
            if not user:
                return {"skipped": "no Slack user"}
            link = await self._permalink(record)
            try:
                await self.client.chat_postEphemeral(
                    channel=channel, user=user, text=posted_text(link)
                )
            except SlackApiError as exc:
                if exc.response.get("error") not in ("channel_not_found", "not_in_channel"):
                    raise
                # /zns in a channel the bot is not in: tell them by DM instead.
                return await self._dm(user, key, None, posted_text(link))
            return {"channel": channel}
        if kind == Kind.DM:
            user = slack_user(record.get("requester"))
            if not user:
                return {"skipped": "no Slack user"}
            text = failure_dm(record, await self._permalink(record))
            return await self._dm(user, key, tried_since, text)
        if kind == Kind.NOTIFY:
            if not self.settings.zns_notify_channel:
                return {"skipped": "ZNS_NOTIFY_CHANNEL is not set"}
            text = payload.get("text") or notify_text(record, await self._permalink(record))
            return await self._post(
                key, tried_since, channel=self.settings.zns_notify_channel, text=text
            )
        return {"skipped": f"unknown kind {kind}"}

    async def _post(
        self, key: str, tried_since: datetime | None, *, channel: str, **message: Any
    ) -> dict[str, Any]:
        """chat.postMessage carrying `key`, unless an earlier attempt already posted it."""
        if tried_since is not None:
            found = await self._find(key, tried_since, channel, message.get("thread_ts"))
            if found is not None:
                log.info("slack: %s was already posted (ts %s); not posting again", key, found)
                return {"channel": channel, "ts": found, "recovered": True}
        response = await self.client.chat_postMessage(
            channel=channel, metadata=outbox_metadata(key), **message
        )
        return {"channel": response["channel"], "ts": response["ts"]}

    async def _find(
        self, key: str, since: datetime, channel: str, thread_ts: str | None
    ) -> str | None:
        """The ts of the message carrying `key` posted since `since`, or None.

        Looks in the thread under `thread_ts`, else in the channel's history, back to a
        little before `since` only, a bounded number of pages.
        """
        oldest = f"{since.timestamp() - LOOKBACK_MARGIN_S:.6f}"
        cursor = None
        try:
            for _ in range(LOOKUP_MAX_PAGES):
                response = await self._page(channel, thread_ts, oldest, cursor)
                for message in response.get("messages") or []:
                    if carries_key(message, key):
                        return str(message["ts"])
                cursor = (response.get("response_metadata") or {}).get("next_cursor")
                if not response.get("has_more") or not cursor:
                    return None
        except SlackApiError as exc:
            response = exc.response
            error = response.get("error") if response is not None else None
            if response is None or response.status_code != 200 or error not in CANNOT_LOOK:
                raise
            log.warning(
                "slack: cannot look for %s in %s (%s): posting it, perhaps a second time",
                key,
                channel,
                error,
            )
            return None
        log.warning(
            "slack: %s not found in %d pages of %s; posting it", key, LOOKUP_MAX_PAGES, channel
        )
        return None

    async def _page(
        self, channel: str, thread_ts: str | None, oldest: str, cursor: str | None
    ) -> Any:
        common: dict[str, Any] = {
            "channel": channel,
            "oldest": oldest,
            "include_all_metadata": True,
            "limit": LOOKUP_PAGE,
            "cursor": cursor,
        }
        if thread_ts:
            return await self.client.conversations_replies(ts=thread_ts, **common)
        return await self.client.conversations_history(**common)

    async def _permalink(self, record: SendRecord) -> str | None:
        if not record.get("card_ts"):
            return None
        response = await self.client.chat_getPermalink(
            channel=record["card_channel"], message_ts=record["card_ts"]
        )
        return response.get("permalink")

    async def _dm(
        self, user: str, key: str, tried_since: datetime | None, text: str
    ) -> dict[str, Any]:
        opened = await self.client.conversations_open(users=user)
        return await self._post(key, tried_since, channel=opened["channel"]["id"], text=text)
