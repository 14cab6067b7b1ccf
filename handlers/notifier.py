"""The Slack side of the outbox: render a send's current state and post it with the Web API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.notify import CARD, DM, EPHEMERAL, NOTIFY, THREAD, DeliveryError
from handlers.blocks import failure_dm, posted_text, request_card, thread_text


def slack_user(actor: str | None) -> str | None:
    return actor.removeprefix("slack:") if actor and actor.startswith("slack:") else None


class SlackNotifier:
    """Implements bot.notify.Notifier with an AsyncWebClient."""

    def __init__(self, client: AsyncWebClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    async def deliver(
        self, kind: str, record: Mapping[str, Any], payload: Mapping[str, Any]
    ) -> dict[str, Any]:
        try:
            return await self._deliver(kind, record, payload)
        except SlackApiError as exc:
            retry_after = exc.response.headers.get("Retry-After") if exc.response else None
            error = exc.response.get("error") if exc.response else str(exc)
            raise DeliveryError(
                f"Slack refused {kind}: {error}",
                retry_after=float(retry_after) if retry_after else None,
            ) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise DeliveryError(f"Slack unreachable for {kind}: {type(exc).__name__}") from None

    async def _deliver(
        self, kind: str, record: Mapping[str, Any], payload: Mapping[str, Any]
    ) -> dict[str, Any]:
        if kind == CARD:
            card = request_card(record)
            if record.get("card_ts"):
                await self.client.chat_update(
                    channel=record["card_channel"], ts=record["card_ts"], **card
                )
                return {"channel": record["card_channel"], "ts": record["card_ts"]}
            response = await self.client.chat_postMessage(
                channel=self.settings.zns_approval_channel, **card
            )
            return {"channel": response["channel"], "ts": response["ts"]}
        if kind == THREAD:
            text = thread_text(record, payload.get("state") or record["state"])
            response = await self.client.chat_postMessage(
                channel=record["card_channel"], thread_ts=record["card_ts"], text=text
            )
            return {"channel": response["channel"], "ts": response["ts"]}
        if kind == EPHEMERAL:
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
                await self._dm(user, posted_text(link))
            return {"channel": channel}
        if kind == DM:
            user = slack_user(record.get("requester"))
            if not user:
                return {"skipped": "no Slack user"}
            return await self._dm(user, failure_dm(record, await self._permalink(record)))
        if kind == NOTIFY:
            if not self.settings.zns_notify_channel:
                return {"skipped": "ZNS_NOTIFY_CHANNEL is not set"}
            response = await self.client.chat_postMessage(
                channel=self.settings.zns_notify_channel, text=payload.get("text") or ""
            )
            return {"channel": response["channel"], "ts": response["ts"]}
        return {"skipped": f"unknown kind {kind}"}

    async def _permalink(self, record: Mapping[str, Any]) -> str | None:
        if not record.get("card_ts"):
            return None
        response = await self.client.chat_getPermalink(
            channel=record["card_channel"], message_ts=record["card_ts"]
        )
        return response.get("permalink")

    async def _dm(self, user: str, text: str) -> dict[str, Any]:
        opened = await self.client.conversations_open(users=user)
        channel = opened["channel"]["id"]
        response = await self.client.chat_postMessage(channel=channel, text=text)
        return {"channel": channel, "ts": response["ts"]}
