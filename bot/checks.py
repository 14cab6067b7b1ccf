"""`zns-bot check`: everything `serve` needs, each checked and reported in one line."""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.errors import ZNS_ERRORS, ConfigError
from bot.esms.client import EsmsClient
from bot.ops.logs import RedactionFilter, secrets_from_settings
from bot.slack_web import slack_client
from bot.stores import check_data_dir
from storage.errors import StoreError
from storage.history import LEGACY_FILE, History
from storage.store import FILE_NAME

Status = Literal["ok", "note", "FAIL"]

# Always needed by `serve`; the rest depend on the mode (see required_for_serve).
REQUIRED = ("esms_api_key", "esms_secret_key", "slack_bot_token", "zns_approval_channel")

_NO_ANSWER = "no answer from Slack"

# What a Slack call can raise: a refusal (SlackApiError, a SlackClientError), no answer,
# or an answer that is not Slack's.
_SLACK_FAILURES: tuple[type[Exception], ...] = (
    SlackClientError,
    aiohttp.ClientError,
    OSError,
    TimeoutError,
)


@dataclass(frozen=True, slots=True)
class Result:
    """One checked item: ok, a note (nothing wrong, worth knowing) or FAIL."""

    status: Status
    subject: str
    detail: str

    @property
    def failed(self) -> bool:
        return self.status == "FAIL"

    def line(self) -> str:
        return f"{self.status:<4} {self.subject}: {self.detail}"


def ok(subject: str, detail: str) -> Result:
    return Result("ok", subject, detail)


def note(subject: str, detail: str) -> Result:
    return Result("note", subject, detail)


def fail(subject: str, detail: str) -> Result:
    return Result("FAIL", subject, detail)


def required_for_serve(settings: Settings) -> list[str]:
    """The settings `serve` refuses to start without, by field name."""
    required = list(REQUIRED)
    if not settings.slack_app_token:
        required.append("slack_signing_secret")  # HTTP mode verifies every request
    required.append("zns_approvers")
    return required


def missing_settings(settings: Settings) -> list[Result]:
    missing = [n.upper() for n in required_for_serve(settings) if not getattr(settings, n)]
    if not missing:
        return [ok("settings", "every setting serve needs is set")]
    return [fail("settings", f"{name} is not set (serve needs it)") for name in missing]


def mode(settings: Settings) -> Result:
    if settings.esms_sandbox:
        return ok(
            "mode",
            "SANDBOX (ESMS_SANDBOX=1): every send is checked by eSMS, not charged, not delivered",
        )
    return ok(
        "mode", "LIVE: approved sends are delivered to customers and charged (ESMS_SANDBOX=0)"
    )


async def esms(settings: Settings) -> list[Result]:
    """The credentials (through the balance) and the default OA."""
    if not (settings.esms_api_key and settings.esms_secret_key):
        return [fail("eSMS", "not checked: ESMS_API_KEY and ESMS_SECRET_KEY are needed")]
    async with EsmsClient.from_settings(settings) as client:
        try:
            balance = await client.balance()
        except ZNS_ERRORS as exc:
            return [fail("eSMS", str(exc))]
        results = [ok("eSMS", f"credentials accepted, balance {balance.balance:,.0f} VND")]
        if not settings.esms_oaid:
            results.append(note("Zalo OA", "ESMS_OAID is not set; every send must name its OA"))
            return results
        try:
            oas = {oa.oaid: oa.name for oa in await client.list_oas()}
        except ZNS_ERRORS as exc:
            return [*results, fail("Zalo OA", f"cannot list the account's OAs: {exc}")]
    if settings.esms_oaid not in oas:
        known = ", ".join(f"{k} ({v})" for k, v in oas.items()) or "none"
        detail = f"ESMS_OAID {settings.esms_oaid} is not an OA of this eSMS account; known: {known}"
        return [*results, fail("Zalo OA", detail)]
    return [*results, ok("Zalo OA", f"{settings.esms_oaid} ({oas[settings.esms_oaid]})")]


def _slack_error(exc: Exception) -> str:
    """Slack's error code (and the scope it wanted), or what kept Slack from answering."""
    if isinstance(exc, SlackApiError):
        response: Any = exc.response
        error = str(response.get("error") or f"HTTP {response.status_code}")
        needed = response.get("needed")
        if error == "missing_scope":  # an app installed from an older manifest
            scope = f" ({needed})" if needed else ""
            return f"missing_scope{scope}: update the app from manifest.yml and reinstall it"
        return error
    return f"{_NO_ANSWER} ({type(exc).__name__})"


async def _call(call: Callable[[], Awaitable[Any]]) -> tuple[Any, str | None]:
    try:
        return await call(), None
    except _SLACK_FAILURES as exc:
        return None, _slack_error(exc)


async def slack(settings: Settings, client: AsyncWebClient | None = None) -> list[Result]:
    """The bot token, the channels and the user groups, as the running bot would use them."""
    if not settings.slack_bot_token:
        return [fail("Slack", "not checked: SLACK_BOT_TOKEN is needed")]
    client = client or slack_client(settings)
    auth, error = await _call(client.auth_test)
    if error is not None:
        if error.startswith(_NO_ANSWER):
            why = f"{error} at {settings.slack_api_url} (SLACK_API_URL); SLACK_BOT_TOKEN,"
        else:
            why = f"SLACK_BOT_TOKEN refused by auth.test: {error};"
        return [fail("Slack", f"{why} channels and user groups not checked")]
    if not auth.get("bot_id"):  # a user token authenticates too, as a person
        return [fail("Slack", "SLACK_BOT_TOKEN is not a bot token (xoxb-…); use the bot's")]
    bot_name = f"@{auth.get('user')}"
    workspace = f"{auth.get('team')} ({auth.get('team_id')})"
    results = [ok("Slack", f"auth.test as {bot_name} in workspace {workspace}")]
    channels = (
        ("ZNS_APPROVAL_CHANNEL", settings.zns_approval_channel),
        ("ZNS_NOTIFY_CHANNEL", settings.zns_notify_channel),
    )
    for name, channel in channels:
        if channel:
            results.append(await _channel(client, name, channel, bot_name))
        elif name == "ZNS_NOTIFY_CHANNEL":
            results.append(note(name, "not set: no channel hears about deliveries"))
    for name, entries in (
        ("ZNS_APPROVERS", settings.zns_approvers),
        ("ZNS_REQUESTERS", settings.zns_requesters),
        ("ZNS_AUDITORS", settings.zns_auditors),
    ):
        results += await _groups(client, name, entries)
    return results


async def _channel(client: AsyncWebClient, name: str, channel: str, bot_name: str) -> Result:
    found, error = await _call(lambda: client.conversations_info(channel=channel))
    if error is not None:
        if error == "channel_not_found":
            return fail(
                name,
                f"channel {channel} not found (channel_not_found): use the channel's id "
                f"(C…, from its details); a private channel must /invite {bot_name} first",
            )
        return fail(name, f"conversations.info for {channel}: {error}")
    info = found["channel"]
    where = f"#{info.get('name')} ({channel})"
    if info.get("is_archived"):
        return fail(name, f"{where} is archived: nothing can be posted there")
    if not info.get("is_member"):
        return fail(name, f"the bot is not in {where}: /invite {bot_name} in that channel")
    return ok(name, f"{where}, the bot is in it")


async def _groups(client: AsyncWebClient, name: str, entries: list[str]) -> list[Result]:
    if not entries:
        return [note(name, "not set: everyone may request")] if name == "ZNS_REQUESTERS" else []
    groups = [entry for entry in entries if entry.startswith("S")]  # as AccessList reads them
    users = len(entries) - len(groups)
    if not groups:
        return [ok(name, f"{users} user id(s), no user group to resolve")]
    results = []
    for group in groups:
        found, error = await _call(functools.partial(client.usergroups_users_list, usergroup=group))
        if error is not None:
            results.append(fail(name, f"user group {group} does not resolve: {error}"))
        else:
            members = len(found.get("users") or [])
            results.append(ok(name, f"user group {group} resolves ({members} member(s))"))
    return results


async def socket_mode(settings: Settings) -> list[Result]:
    """The app-level token, when set. apps.connections.open only hands out a one-use URL;
    no link is opened, so a running bot's socket is untouched."""
    if not settings.slack_app_token:
        return []
    token = settings.slack_app_token.get_secret_value()
    if not token.startswith("xapp-"):
        return [fail("SLACK_APP_TOKEN", "not an app-level token (xapp-…)")]
    client = AsyncWebClient(base_url=settings.slack_api_url)
    _, error = await _call(lambda: client.apps_connections_open(app_token=token))
    if error is not None:
        return [fail("SLACK_APP_TOKEN", f"refused by apps.connections.open: {error}")]
    return [ok("SLACK_APP_TOKEN", "Socket Mode: apps.connections.open accepts it (no link opened)")]


def public_url(settings: Settings) -> Result:
    url = settings.public_base_url
    if not url:
        return note("PUBLIC_BASE_URL", "not set: delivery results by polling only (no callbacks)")
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.netloc:
        return fail("PUBLIC_BASE_URL", f"{url} must be an https URL (eSMS calls back over https)")
    return ok("PUBLIC_BASE_URL", f"eSMS calls back at {url.rstrip('/')}/esms/callback/…")


def store(settings: Settings) -> Result:
    """The store read as `audit verify` reads it: no lock, no write, no file created."""
    data_dir = Path(settings.zns_data_dir)
    try:
        if not check_data_dir(data_dir, write=True):
            return ok("store", f"{data_dir} does not exist yet: serve creates it (first run)")
    except ConfigError as exc:
        return fail("store", str(exc))
    path = data_dir / FILE_NAME
    if not path.exists():
        if (data_dir / LEGACY_FILE).exists():
            return ok("store", f"a zns-bot 0.1 store in {data_dir}: serve migrates it")
        return ok("store", f"no store in {data_dir} yet: serve creates it (first run)")
    try:
        history = History.open(data_dir)
    except StoreError as exc:
        return fail("store", str(exc))
    if not os.access(path, os.W_OK):
        return fail("store", f"{path} is not writable")
    sends = len(history.live_sends())
    return ok("store", f"{path} reads (read-only, {sends} live send(s)), and is writable")


async def run_all(settings: Settings) -> list[Result]:
    """Every check, in the order an operator fixes things; one failure stops none."""
    results = [*missing_settings(settings), mode(settings)]
    results += await esms(settings)
    results += await slack(settings)
    results += await socket_mode(settings)
    results.append(public_url(settings))
    results.append(await asyncio.to_thread(store, settings))
    redaction = RedactionFilter(secrets_from_settings(settings))
    return [_redacted(result, redaction) for result in results]


def _redacted(result: Result, redaction: RedactionFilter) -> Result:
    """No secret or phone in any line, whatever an error message quoted (as in the logs)."""
    return Result(result.status, result.subject, redaction.redact(result.detail))
