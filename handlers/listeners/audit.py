"""`/zns audit …`: the audit log's events as a CSV, built off the loop and sent by DM."""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from slack_bolt.async_app import AsyncAck
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import auditing, policy
from bot.errors import InputError
from bot.phones import normalize_phone
from handlers.deps import SlackDeps
from handlers.failures import failure_text, slack_cause, tell
from storage.history import History
from storage.sends import SendState

log = logging.getLogger(__name__)

# Rows in one upload: enough for a month of a busy floor, small enough for Slack and for
# the bot (slack_sdk reads the whole file into memory to upload it: ~15 MB at this cap).
ROW_LIMIT = 50_000
USAGE = (
    "Use `/zns audit phone=0901888484 user=@someone template=231001 state=failed "
    "since=2026-12-01 until=2026-12-07`, any of them or none."
)
KEYS = ("phone", "user", "template", "state", "since", "until")
# key=value, where a value is Slack's escaped mention `<@U123|name>` (spaces inside
# allowed) or anything up to the next space
_PAIR = re.compile(r"([^\s=]+)=(<[^>]*>|\S*)")
_USER = re.compile(r"^(?:<@([UW][A-Z0-9]{2,})(?:\|[^>]*)?>|@?([UW][A-Z0-9]{2,}))$")
_DIGIT_GROUPS = re.compile(r"(?:\s+[\d.()-]+(?=\s|$))+")
_TEMPLATE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
STATES = tuple(s.value for s in SendState)


class FilterError(InputError):
    """A `/zns audit` filter that cannot be used; `key` names it without its value (the
    value may be a phone number, and the refusal is audited)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def parse_filters(text: str) -> auditing.ExportFilter:
    """`phone=… user=… template=… state=… since=… until=…` (any subset, each once) as the
    export's filter; FilterError says what is wrong and what to type instead."""
    values: dict[str, str] = {}
    end = 0
    text = text.strip()
    for found in _PAIR.finditer(text):
        if found.start() < end:
            continue  # inside a phone number's digit groups, taken below
        _no_stray(text[end : found.start()])
        end = found.end()
        key, value = found.group(1).lower(), found.group(2)
        if key == "phone" and (more := _DIGIT_GROUPS.match(text, end)):
            # numbers are pasted as "0901 888 484": the groups that follow belong to it
            value, end = value + more.group(0), more.end()
        if key not in KEYS:
            # "unknown", not the key: whatever was typed there (a phone?) stays out of the log
            raise FilterError("unknown", f"'{key[:20]}' is not a filter; the filters are {_keys()}")
        if key in values:
            raise FilterError(key, f"{key}= is given twice; give each filter once")
        if not value:
            raise FilterError(key, f"{key}= needs a value, with no space after the =")
        values[key] = value
    _no_stray(text[end:])
    return _filter(values)


def _no_stray(between: str) -> None:
    stray = between.split()
    if stray:
        word = stray[0][:20]
        raise FilterError(
            "text",
            f"'{word}' is not a filter: write key=value with no spaces, e.g. phone=0901888484",
        )


def _keys() -> str:
    return ", ".join(f"{k}=" for k in KEYS)


def _filter(values: dict[str, str]) -> auditing.ExportFilter:
    wanted = auditing.ExportFilter(
        since=_day(values.get("since"), "since"),
        until=_day(values.get("until"), "until"),
        template_id=_template(values.get("template")),
        state=_state(values.get("state")),
        actor=_actor(values.get("user")),
    )
    if wanted.since and wanted.until and wanted.since > wanted.until:
        raise FilterError("since", "since= is after until=; swap them")
    if "phone" in values:
        try:
            wanted = replace(wanted, phone=normalize_phone(values["phone"]))
        except InputError as exc:
            raise FilterError("phone", f"phone=: {exc}") from None
    return wanted


def _day(text: str | None, key: str) -> Any:
    try:
        return auditing.parse_day(text, f"{key}=")
    except InputError as exc:
        raise FilterError(key, str(exc)) from None


def _template(text: str | None) -> str | None:
    if text is not None and not _TEMPLATE.match(text):
        raise FilterError("template", "template= takes a template id such as 231001")
    return text


def _state(text: str | None) -> str | None:
    if text is None:
        return None
    if text.lower() not in STATES:
        raise FilterError("state", f"state= takes one of {', '.join(STATES)}")
    return text.lower()


def _actor(text: str | None) -> str | None:
    """The actor the audit log names: `slack:U…`, from a mention or a member id."""
    if text is None:
        return None
    found = _USER.match(text)
    if found is None:
        # with the command's should_escape off, Slack sends a picked mention as a bare
        # @name, which names nobody for sure: the member id does
        raise FilterError(
            "user",
            "user= takes a mention such as <@U0123ABCD> or a member id such as U0123ABCD "
            "(in Slack: the person's profile, ⋮, Copy member ID)",
        )
    return f"slack:{found.group(1) or found.group(2)}"


async def handle_audit(
    ack: AsyncAck,
    command: dict[str, Any],
    client: AsyncWebClient,
    deps: SlackDeps,
    args: str,
) -> None:
    """Answer at once; every query, refused or not, is audited with its phones masked."""
    user = command["user_id"]
    actor = f"slack:{user}"
    wanted, bad = auditing.ExportFilter(), None
    try:
        wanted = parse_filters(args)
    except FilterError as exc:
        bad = exc
    roles = await deps.roles(user, client)
    refusal = policy.may_audit(roles)
    if bad is not None:  # the filter's value stays out of the log: it may be a phone
        asked = f" (bad filter {bad.key})"
    else:
        asked = wanted.describe(unmask=False) or " (no filters)"
    if refusal:  # the role first: someone without one learns nothing about filters
        await ack(
            text=":no_entry: Only requesters, approvers and auditors can export the audit log."
        )
        deps.service.note(actor, "audit_export_refused", reason=f"{refusal}; asked for{asked}")
        return
    if bad is not None:
        await ack(text=f":no_entry: {bad}. {USAGE}")
        deps.service.note(actor, "audit_export_refused", reason=f"bad filter {bad.key}")
        return
    unmask = policy.may_unmask(roles) is None
    masking = "phones unmasked" if unmask else "phones masked"
    # audited before any row is read: a query that fails later was still asked
    deps.service.note(actor, "audit_export", reason=f"filters{asked}; {masking}")
    await ack(text=f":hourglass_flowing_sand: Building your audit export{asked}; it comes by DM.")
    deps.spawn(_deliver(deps, client, user, wanted, unmask, command.get("channel_id")))


async def _deliver(
    deps: SlackDeps,
    client: AsyncWebClient,
    user: str,
    wanted: auditing.ExportFilter,
    unmask: bool,
    channel: str | None,
) -> None:
    path: Path | None = None
    try:
        # the running store's own history (its memory, as `/zns status` reads it: the file
        # may lag what the store holds); reading segments and writing the CSV block, so
        # they run in a worker thread, not on the loop
        history = History.of_store(deps.service.store)
        path, written = await asyncio.to_thread(
            auditing.export_file,
            history,
            wanted,
            unmask=unmask,
            limit=ROW_LIMIT,
        )
        dm = (await client.conversations_open(users=user))["channel"]["id"]
        stamp = deps.service.store.clock().strftime("%Y%m%d-%H%M%S")
        await client.files_upload_v2(
            file=str(path),
            filename=f"zns-audit-{stamp}.csv",
            title=f"ZNS audit export {stamp} UTC",
            channel=dm,
            initial_comment=summary(written, wanted, unmask),
        )
    except Exception as exc:
        cause = slack_cause(exc) if isinstance(exc, SlackApiError) else repr(exc)[:300]
        log.warning("audit export for %s failed: %s", user, cause)
        if isinstance(exc, SlackApiError):
            text = (
                f":warning: Slack refused the audit export's file "
                f"({exc.response.get('error') or 'an error'}). No export was made: try "
                "again, and if it happens again tell an admin (the bot's log names the cause)."
            )
        else:
            text = failure_text(exc).replace("Nothing was sent.", "No export was made.")
        await tell(client, user, text, channel, about="/zns audit")
    finally:
        if path is not None:
            path.unlink(missing_ok=True)  # personal data: no copy stays on the bot's disk


def summary(written: auditing.Written, wanted: auditing.ExportFilter, unmask: bool) -> str:
    """The message that carries the file: rows, filters, masking, and any cut."""
    asked = wanted.describe(unmask=False) or " (no filters)"
    rows = f"{written.rows:,} row{'' if written.rows == 1 else 's'}"
    lines = [f":page_facing_up: ZNS audit export: {rows}{asked}."]
    if written.cut:
        lines.append(
            f":warning: Cut at {written.rows:,} rows: {written.matched:,} matched. "
            "Narrow it with since= and until= for the rest."
        )
    if unmask:
        lines.append(
            ":lock: Phones unmasked (you are an auditor). Slack keeps this file even if a "
            "customer's data is later erased from zns-bot: delete it when you are done."
        )
    else:
        lines.append("Phones are masked.")
    return "\n".join(lines)
