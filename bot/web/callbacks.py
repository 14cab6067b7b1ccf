"""`GET /esms/callback/{token}`: eSMS delivery callbacks, checked, stored raw, applied once."""

from __future__ import annotations

import asyncio
import enum
import logging
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote_plus

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from bot.delivery import DeliveryTracker
from bot.errors import InputError, StoreError
from bot.esms.zalo import CallbackOutOfRange
from bot.service import token_matches
from storage.archiver import keep_late_callback
from storage.callbacks import excerpt

log = logging.getLogger(__name__)
SOURCE = "esms-callback"

Count = Callable[[str], None]


class Refused(enum.StrEnum):
    """Why a callback was not applied; besides these, a callback counts as what it did
    (`Applied`) or as a duplicate. The values are metric labels: kept as is."""

    BAD_TOKEN = "bad_token"  # noqa: S105 - a metric label, not a secret
    MALFORMED = "malformed"
    MISMATCH = "mismatch"
    OUT_OF_RANGE = "out_of_range"  # a number eSMS cannot send (past 32 bits, absurd price)
    STORE_ERROR = "store_error"


DUPLICATE = "duplicate"  # eSMS sent this one before: answered, not applied again
LATE = "late"  # for a send that already left the live store: kept with the archive


def _no_count(outcome: str) -> None:
    return None


def query_fields(raw: bytes) -> dict[str, str]:
    """The query string as {name: value}, decoded as `urllib.parse.parse_qsl` with blank
    values kept would (a repeated name keeps its last value).

    On the callback's hot path only the names and values that are escaped go through
    urllib's decoding: most of a callback's fields are plain, which makes this several
    times faster than parse_qsl (tests/bot/web/test_callbacks.py pins the results
    to parse_qsl's). Bytes are read as latin-1 first, as Starlette's `query_params` does.
    """
    fields: dict[str, str] = {}
    for pair in raw.decode("latin-1").split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        if "%" in name or "+" in name:
            name = unquote_plus(name)
        if "%" in value or "+" in value:
            value = unquote_plus(value)
        fields[name] = value
    return fields


def _caller(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class CallbackEndpoint:
    """Answers eSMS fast and makes no Slack call inline: changes go out through the outbox."""

    def __init__(
        self, tracker: DeliveryTracker, *, count: Count = _no_count, refused: Count = _no_count
    ) -> None:
        self.tracker = tracker
        self.store = tracker.store
        self.count = count
        self.refused = refused  # besides `count`: every callback refused as bad input, by why

    def _refuse(self, reason: Refused) -> None:
        self.count(reason)
        self.refused(reason)

    async def handle(self, request: Request) -> Response:
        token = request.path_params.get("token") or ""
        record = self.store.sends.by_callback_token(token) if token else None
        if record is None and token:
            archived = await self._archived(token)
            if archived is not None:
                return await self._late(archived, request)
        if record is None or not token_matches(record, token):
            # The token is the only credential a callback has; never echo it back.
            log.warning("refused eSMS callback with an unknown token from %s", _caller(request))
            self._refuse(Refused.BAD_TOKEN)
            return PlainTextResponse("not found", status_code=404)
        query = query_fields(request.scope.get("query_string", b""))
        try:
            report = self.tracker.parse(query)
        except CallbackOutOfRange as exc:
            # Not eSMS (it never sends such numbers): answered, counted, nothing changed.
            log.warning(
                "refused eSMS callback for send=%s from %s: a number out of range",
                record["id"],
                _caller(request),
            )
            self._refuse(Refused.OUT_OF_RANGE)
            return PlainTextResponse(f"bad callback: {exc}", status_code=400)
        except InputError as exc:
            self.store.callbacks.record(
                query.get("SMSID"), query.get("SendStatus"), query, valid=False, reason=str(exc)
            )
            self._refuse(Refused.MALFORMED)
            return PlainTextResponse(f"bad callback: {exc}", status_code=400)
        if record.get("sms_id") and report.sms_id != record["sms_id"]:
            # The SMSID is the caller's text: stored, audited and logged as an excerpt only.
            reason = (
                f"callback SMSID {excerpt(report.sms_id, 80)} is not this send's "
                f"({record['sms_id']})"
            )
            self.store.callbacks.record(
                report.sms_id, report.send_status, query, valid=False, reason=reason
            )
            self.tracker.service.note(
                SOURCE, "callback_refused", send_id=record["id"], reason=reason
            )
            log.warning(
                "refused eSMS callback for send=%s from %s: SMSID does not match (%d chars)",
                record["id"],
                _caller(request),
                len(report.sms_id),
            )
            self._refuse(Refused.MISMATCH)
            return PlainTextResponse("SMSID does not match this callback URL", status_code=400)
        try:
            # The raw callback and its effects: one line, written without waiting for the
            # disk; the fsync is shared with every callback that arrives meanwhile.
            with self.store.db.transaction(sync=False):
                if not self.store.callbacks.record(report.sms_id, report.send_status, query):
                    outcome: str = DUPLICATE
                else:
                    outcome = self.tracker.apply(record, report, source=SOURCE)
            # eSMS may drop a callback once answered: answer only when it is on disk (a
            # duplicate too, as the first copy may still be on its way there).
            await self.store.synced()
        except StoreError as exc:
            log.error("could not store an eSMS callback for send=%s: %s", record["id"], exc)
            self.count(Refused.STORE_ERROR)
            return PlainTextResponse("cannot store the callback now", status_code=503)
        self.count(outcome)
        return PlainTextResponse("ok (duplicate)" if outcome == DUPLICATE else "ok")

    async def _archived(self, token: str) -> Mapping[str, Any] | None:
        """The archive entry of the send this token belongs to, if it left the live store."""
        archive = self.store.archive
        waiting = archive.archived_live(token)  # left the live store, not yet copied
        if waiting is not None:
            return waiting
        segments = archive.segment_list()  # read on the loop, the store's one thread
        try:
            return await asyncio.to_thread(archive.find_by_token, token, segments)
        except (StoreError, OSError, sqlite3.Error) as exc:
            log.error("could not look up an archived send for a callback: %s", exc)
            return None

    async def _late(self, archived: Mapping[str, Any], request: Request) -> Response:
        """eSMS reports on a send already archived: answered, kept, nothing changes."""
        query = query_fields(request.scope.get("query_string", b""))
        try:
            self.tracker.parse(query)  # the same checks as a live send's callback
        except InputError as exc:  # out of range or malformed: not eSMS; nothing kept
            log.warning(
                "refused a late eSMS callback for archived send=%s from %s: %s",
                archived.get("send_id"),
                _caller(request),
                type(exc).__name__,
            )
            out_of_range = isinstance(exc, CallbackOutOfRange)
            self._refuse(Refused.OUT_OF_RANGE if out_of_range else Refused.MALFORMED)
            return PlainTextResponse(f"bad callback: {exc}", status_code=400)
        try:
            with self.store.db.transaction(sync=False):
                keep_late_callback(self.store, archived, query)
            await self.store.synced()
        except StoreError as exc:
            log.error("could not keep a late eSMS callback: %s", exc)
            self.count(Refused.STORE_ERROR)
            return PlainTextResponse("cannot store the callback now", status_code=503)
        log.info("kept a late eSMS callback for archived send=%s", archived.get("send_id"))
        self.count(LATE)
        return PlainTextResponse("ok (archived)")
