"""The send workflow: validate a request, record it, decide it, and submit it to eSMS once."""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot import policy
from bot.config import Settings
from bot.errors import (
    EsmsError,
    InputError,
    NotFoundError,
    PhoneError,
    TemplateError,
    ZnsBotError,
)
from bot.esms.client import EsmsClient
from bot.esms.types import Quota, SubmitOutcome, Template, ZnsMessage
from bot.home import HomeBook
from bot.ops.logs import log_event
from bot.phones import normalize_phone
from bot.posts import Kind
from bot.templates import TemplateCatalogue, validate_params
from storage.clock import iso
from storage.content import content_digest
from storage.sends import SendRecord, SendState
from storage.store import Store
from storage.views import REQUEST, REVIEW

log = logging.getLogger(__name__)

# States whose arrival is worth a reply in the request's thread.
THREAD_STATES = frozenset(
    {
        SendState.APPROVED,
        SendState.REJECTED,
        SendState.CANCELLED,
        SendState.EXPIRED,
        SendState.ACCEPTED,
        SendState.FAILED,
        SendState.UNKNOWN,
        SendState.DELIVERED,
        SendState.SANDBOXED,
    }
)
# How a sandbox send ends (its thread reply, its audit reason): eSMS checks and accepts a
# sandbox send but never delivers it, so `sandboxed` is final and nothing polls it.
SANDBOX_REASON = "sandbox: accepted by eSMS, nothing delivered"
ORDER_ID_MAX = 50
ESTIMATE_WAIT_S = 5.0
# A request still unpriced this long after it was stored lost its estimate to a restart.
REPRICE_AFTER = timedelta(seconds=60)
CAMPAIGN_MAX = 254
NOTE_MAX = 500
REASON_MAX = 500  # an approver's reason, as the approval modal takes it
FIRST_POLL_AFTER = timedelta(seconds=30)  # when eSMS is first asked about an accepted send
# eSMS answers that mean it has the send: accepted now, or (code 124) accepted before.
TAKEN_OUTCOMES = frozenset({SubmitOutcome.ACCEPTED, SubmitOutcome.ALREADY_SUBMITTED})


def sandbox_reason(sms_id: str | None) -> str:
    """The audit reason of a sandbox send's end, with its SMSID when eSMS gave one."""
    return f"{SANDBOX_REASON} (SMSID {sms_id})" if sms_id else SANDBOX_REASON


def accepted_fields(sms_id: str | None, now: datetime) -> dict[str, Any]:
    """What a send keeps of eSMS's acceptance: its SMSID (when given) and when."""
    fields: dict[str, Any] = {"accepted_at": iso(now)}
    if sms_id:
        fields["sms_id"] = sms_id
    return fields


@dataclass(frozen=True, slots=True)
class ContentCheck:
    """What the approver is shown of a send's content digest (storage/content.py)."""

    chained: str | None  # as its "created" audit event chained it; None before binding
    intact: bool  # the stored send still hashes to it


class DecisionError(ZnsBotError):
    """A person may not make this decision (not an approver, or their own request)."""


@dataclass(frozen=True, slots=True)
class SendRequest:
    """A request that passed every check and may be stored."""

    phone: str
    oaid: str
    template_id: str
    template_name: str
    params: dict[str, str]
    ordered_params: tuple[str, ...]
    is_journey: bool = False
    order_id: str | None = None
    campaign: str | None = None
    note: str | None = None
    sandbox: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def callback_path(token: str) -> str:
    return f"/esms/callback/{token}"


def _log_level(state: str) -> int:
    """How loudly a change of state is logged. A delivery is a send's routine end and, at
    volume, most of the log; the audit log and /metrics (and a Slack send's thread) keep
    every one, so it logs at DEBUG. Any other change, a failure included, may need a
    person: INFO."""
    return logging.DEBUG if state == SendState.DELIVERED else logging.INFO


def token_matches(record: SendRecord, token: str) -> bool:
    """Constant-time check of a callback URL's token against the send's own."""
    expected = record.get("callback_token") or ""
    return bool(expected) and hmac.compare_digest(expected.encode(), token.encode())


def check_extras(
    is_journey: bool,
    order_id: str | None,
    campaign: str | None,
    note: str | None,
    problems: dict[str, str],
) -> tuple[str | None, str | None, str | None]:
    """The OrderId, campaign and note, trimmed (blank is None); problems noted, not raised."""
    order = (order_id or "").strip() or None
    if is_journey and not order:
        problems["order_id"] = "a journey message needs an OrderId: type its order's id"
    elif order and len(order) > ORDER_ID_MAX:
        problems["order_id"] = f"OrderId is {len(order)} characters: type at most {ORDER_ID_MAX}"
    if order and not is_journey:
        problems["order_id"] = "an OrderId is only for journey messages: tick Journey or clear it"
    campaign = (campaign or "").strip() or None
    if campaign and len(campaign) > CAMPAIGN_MAX:
        problems["campaign"] = f"the campaign name is over {CAMPAIGN_MAX} characters: shorten it"
    note = (note or "").strip() or None
    if note and len(note) > NOTE_MAX:
        problems["note"] = f"the note is over {NOTE_MAX} characters: shorten it"
    return order, campaign, note


class SendService:
    """Everything that changes a send, shared by the CLI and Slack."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        client: EsmsClient,
        catalogue: TemplateCatalogue,
        on_outbox: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self.catalogue = catalogue
        self.on_outbox = on_outbox
        # What the App Home shows is kept with each change of a send (see `move`).
        self.homes = HomeBook(settings=settings, store=store, client=client, kick=self._kick)

    def default_oaid(self, oaid: str | None = None) -> str:
        chosen = (oaid or self.settings.esms_oaid or "").strip()
        if not chosen:
            raise InputError("choose a Zalo OA (or set ESMS_OAID)", {"oaid": "choose a Zalo OA"})
        return chosen

    async def prepare(
        self,
        *,
        phone: str,
        template_id: str,
        params: Mapping[str, str],
        oaid: str | None = None,
        is_journey: bool = False,
        order_id: str | None = None,
        campaign: str | None = None,
        note: str | None = None,
        sandbox: bool = False,
    ) -> SendRequest:
        """Check everything that can be checked before storing; report every problem at once.

        Problem keys: `phone`, `oaid`, `template`, `order_id`, `campaign`, `note`, and
        `param:<name>` for each template parameter.
        """
        problems: dict[str, str] = {}
        normalized = ""
        try:
            normalized = normalize_phone(phone)
        except PhoneError as exc:
            problems["phone"] = str(exc)
        try:
            chosen_oa = self.default_oaid(oaid)
        except InputError as exc:
            problems.update(exc.problems)
            chosen_oa = ""
        order, campaign, note = check_extras(is_journey, order_id, campaign, note, problems)
        sandbox = sandbox or self.settings.esms_sandbox
        template, ordered = await self._template_and_params(
            template_id, chosen_oa, params, problems
        )
        if problems:
            raise InputError("the request has problems: " + "; ".join(problems.values()), problems)
        assert template is not None
        return SendRequest(
            phone=normalized,
            oaid=chosen_oa,
            template_id=template.id,
            template_name=template.name,
            params={p.name: (params.get(p.name) or "").strip() for p in template.distinct_params},
            ordered_params=ordered,
            is_journey=is_journey,
            order_id=order,
            campaign=campaign,
            note=note,
            sandbox=sandbox,
            # shown to the approver: what the template looks like at Zalo
            extra={"preview_url": template.preview_url} if template.preview_url else {},
        )

    async def _template_and_params(
        self,
        template_id: str,
        oaid: str,
        params: Mapping[str, str],
        problems: dict[str, str],
    ) -> tuple[Template | None, tuple[str, ...]]:
        """The sendable template and its parameters in eSMS order; problems noted, not raised."""
        template: Template | None = None
        if not str(template_id or "").strip():
            problems["template"] = "choose a template"
        elif oaid:
            try:
                template = await self.catalogue.sendable(str(template_id).strip(), oaid)
            except TemplateError as exc:
                problems["template"] = str(exc)
            except EsmsError as exc:
                problems["template"] = f"eSMS did not answer ({exc}): submit again in a minute"
        if template is None:
            return None, ()
        try:
            return template, validate_params(template, params)
        except InputError as exc:
            problems.update({f"param:{k}": v for k, v in exc.problems.items()})
            return template, ()

    def create(
        self,
        request: SendRequest,
        *,
        actor: str,
        origin: str = "cli",
        reply_channel: str | None = None,
        estimate: Mapping[str, Any] | None = None,
        estimate_pending: bool = False,
        send_id: str | None = None,
    ) -> SendRecord:
        """Store a valid request as pending_approval (audited) and queue its card.

        `estimate_pending`: stored before eSMS priced it; `add_estimate` completes it.
        """
        fields = asdict(request)
        if send_id is not None:
            fields["id"] = send_id
        if estimate_pending:
            fields["estimate_pending"] = True
        fields["ordered_params"] = list(request.ordered_params)
        fields["requester"] = actor
        fields["origin"] = origin
        fields["callback_token"] = secrets.token_urlsafe(24)
        fields["estimate"] = dict(estimate) if estimate else None
        with self.store.db.transaction():
            return self._create(fields, actor=actor, origin=origin, reply_channel=reply_channel)

    def _create(
        self, fields: dict[str, Any], *, actor: str, origin: str, reply_channel: str | None
    ) -> SendRecord:
        record = self.store.sends.create(fields, actor=actor, reason="requested")
        if self.homes.moved(record, None):
            self._kick()
        if origin == "slack":
            self._queue(record, Kind.CARD, f"{record['id']}:card:created")
            self._queue(
                record,
                Kind.EPHEMERAL,
                f"{record['id']}:posted",
                {"channel": reply_channel, "user": actor},
            )
            self._kick()
        return record

    def create_once(
        self, view_id: str, request: SendRequest, *, actor: str, reply_channel: str | None
    ) -> SendRecord | None:
        """Store a Slack request once per request modal: None when this view already made
        one (a replayed submission). Stored at once, priced later (`add_estimate`), so a
        request the person was told was received survives a crash."""
        send_id = f"zns-{uuid.uuid4().hex}"
        with self.store.db.transaction():
            # no await from the check to the write: a concurrent replay sees it used
            if not self.store.views.use(view_id, send_id):
                return None
            return self.create(
                request,
                actor=actor,
                origin="slack",
                reply_channel=reply_channel,
                estimate_pending=True,
                send_id=send_id,
            )

    def add_estimate(self, send_id: str, estimate: Mapping[str, Any] | None) -> SendRecord:
        """The price estimate joins a stored request (None: eSMS could not say); the card
        is re-rendered with it."""
        with self.store.db.transaction():
            record = self.store.sends.update_fields(
                send_id, estimate=dict(estimate) if estimate else None, estimate_pending=False
            )
            if record.get("origin") == "slack":
                self._queue(record, Kind.CARD, f"{send_id}:card:{record.get('version')}")
        self._kick()
        return record

    def opened_request(self, view_id: str, *, user: str, channel: str | None) -> None:
        """Remember a request modal the bot opened: who, and where /zns was typed."""
        with self.store.db.transaction():
            self.store.views.opened(view_id, REQUEST, user=user, channel=channel)

    def opened_review(self, view_id: str, *, user: str, send_id: str, digest: str | None) -> None:
        """Remember a review modal the bot opened: for whom, which send, the digest shown."""
        with self.store.db.transaction():
            self.store.views.opened(view_id, REVIEW, user=user, send_id=send_id, digest=digest)

    def opened_view(self, view_id: str) -> Mapping[str, Any] | None:
        return self.store.views.get(view_id)

    def sweep_views(self, now: datetime | None = None) -> int:
        """Forget the views opened longer than policy.VIEW_TTL ago (their submissions are
        refused by then anyway): keeps the live store bounded."""
        cutoff = (now or self.store.clock()) - policy.VIEW_TTL
        with self.store.db.transaction():
            return self.store.views.sweep(cutoff)

    async def reprice_stale(self, now: datetime | None = None) -> int:
        """Price the pending requests stored without an estimate that never came (the bot
        stopped while eSMS priced them), so no card says "estimating…" for ever."""
        cutoff = iso((now or self.store.clock()) - REPRICE_AFTER)
        stale = [
            r
            for r in self.store.sends.in_states({SendState.PENDING_APPROVAL})
            if r.get("estimate_pending") and r["created_at"] <= cutoff
        ]
        for record in stale:
            estimate = await self.estimate(record)
            try:
                self.add_estimate(record["id"], estimate)
            except NotFoundError:  # archived while eSMS answered: nothing left to price
                continue
        return len(stale)

    async def estimate(self, request: SendRequest | SendRecord) -> dict[str, Any] | None:
        """SummaryZaloMessage's price for a request, or None when eSMS cannot say."""
        message = self._message(request, request_id="estimate")
        try:
            # A slow estimate must not hold the request back: the card says "unavailable".
            price = await asyncio.wait_for(self.client.estimate_price(message), ESTIMATE_WAIT_S)
        except (EsmsError, TimeoutError) as exc:
            log.info("price estimate unavailable: %s", exc or "timed out")
            return None
        return {"total_price": price.total_price, "total_receiver": price.total_receiver}

    def _message(
        self, source: Any, *, request_id: str, callback_url: str | None = None
    ) -> ZnsMessage:
        get: Callable[[str], Any] = (
            source.get if isinstance(source, Mapping) else lambda k: getattr(source, k)
        )
        return ZnsMessage(
            phone=get("phone"),
            template_id=get("template_id"),
            params=tuple(get("ordered_params")),
            oaid=get("oaid"),
            request_id=request_id,
            is_journey=bool(get("is_journey")),
            order_id=get("order_id"),
            campaign=get("campaign"),
            callback_url=callback_url,
            sandbox=bool(get("sandbox")),
        )

    def move(
        self,
        send_id: str,
        to: SendState,
        *,
        actor: str,
        reason: str,
        expect: set[SendState],
        **fields: Any,
    ) -> SendRecord | None:
        """One compare-and-set transition and its Slack messages, written as one.

        Returns the send as stored, read only (`SendRecords.view`), or None when it did not
        move; `store.sends.get` gives a copy to change or keep.
        """
        with self.store.db.transaction():
            before = self.store.sends.view(send_id)
            record = self.store.sends.transition(
                send_id, to, actor=actor, reason=reason, expect=expect, **fields
            )
            if record is not None:
                self._announce(record)
                if self.homes.moved(record, before["state"] if before else None):
                    self._kick()
        if record is not None:
            log_event(
                log,
                "transition",
                level=_log_level(record["state"]),
                send_id=send_id,
                phone=record.get("phone"),
                state=record["state"],
                actor=actor,
                reason=reason,
            )
        return record

    def _announce(self, record: SendRecord) -> None:
        if record.get("origin") != "slack":
            return
        send_id, state, version = record["id"], record["state"], record.get("version")
        self._queue(record, Kind.CARD, f"{send_id}:card:{version}")
        if state in THREAD_STATES:
            # keyed by version: a state re-entered later (unknown → accepted → unknown) is
            # news again, while a replayed transition can never queue a second reply
            key = f"{send_id}:thread:{state}:{version}"
            self._queue(record, Kind.THREAD, key, {"state": state})
        if state == SendState.FAILED:
            self._queue(record, Kind.DM, f"{send_id}:dm:{state}", {"state": state})
        if state in (SendState.DELIVERED, SendState.FAILED):
            self._queue(record, Kind.NOTIFY, f"{send_id}:notify:{state}", {"state": state})
        self._kick()

    def _queue(
        self,
        record: SendRecord,
        kind: Kind,
        key: str,
        payload: Mapping[str, Any] | None = None,
    ) -> None:
        self.store.outbox.add(kind, dict(payload or {}), key=key, send_id=record["id"])

    def _kick(self) -> None:
        if self.on_outbox is not None:
            self.on_outbox()

    def get(self, send_id: str) -> SendRecord:
        """The send, or NotFoundError."""
        return self.store.sends.get(send_id)

    def content_check(self, record: SendRecord) -> ContentCheck:
        """The content digest chained when the send was created, and whether the stored
        send still matches it (an edit after the request would show here, before approval)."""
        created = [e for e in self.store.audit.for_send(record["id"]) if e["action"] == "created"]
        chained = (created[0].get("data") or {}).get("content") if created else None
        salt = record.get("content_salt")
        if not chained or not salt:
            return ContentCheck(chained=None, intact=True)
        return ContentCheck(chained=chained, intact=content_digest(salt, record) == chained)

    def current_digest(self, record: SendRecord) -> str | None:
        """The content digest of the send as stored now (None without a salt: created
        before content binding, or erased): what the review shows and an approval must
        match. Computed from the record, not read from the audit log, whose "created"
        event may already have moved to a segment."""
        salt = record.get("content_salt")
        return content_digest(salt, record) if salt else None

    async def quota(self, oaid: str) -> Quota:
        """The OA's daily ZNS quota and what is left of it today, from eSMS."""
        return await self.client.quota(oaid)

    def note(
        self, actor: str, action: str, *, send_id: str | None = None, reason: str = ""
    ) -> None:
        """Audit something that changed no send (a refusal, a stray click)."""
        self.store.audit.append(actor, action, send_id=send_id, reason=reason)

    def approve(
        self, send_id: str, *, actor: str, reason: str = "", check_self: bool = True
    ) -> SendRecord | None:
        """pending_approval → approved, once. None means someone else decided first."""
        record = self.store.sends.get(send_id)
        allow_self = not check_self or self.settings.zns_allow_self_approval
        if policy.may_approve_own(actor, record, allow_self=allow_self):
            raise DecisionError("you cannot approve your own request; ask another approver")
        return self.move(
            send_id,
            SendState.APPROVED,
            actor=actor,
            reason=reason or "approved",
            expect={SendState.PENDING_APPROVAL},
            approver=actor,
            decided_at=iso(self.store.clock()),
        )

    def reject(self, send_id: str, *, actor: str, reason: str) -> SendRecord | None:
        reason = (reason or "").strip()
        if not reason:
            raise InputError("say why the request is rejected", {"reason": "a reason is required"})
        return self.move(
            send_id,
            SendState.REJECTED,
            actor=actor,
            reason=reason,
            expect={SendState.PENDING_APPROVAL},
            approver=actor,
            decided_at=iso(self.store.clock()),
            reject_reason=reason,
        )

    def cancel(self, send_id: str, *, actor: str) -> SendRecord | None:
        refusal = policy.may_cancel(actor, self.store.sends.get(send_id))
        if refusal:
            self.note(actor, "cancel_refused", send_id=send_id, reason=refusal)
            raise DecisionError("only the person who made the request can cancel it")
        return self.move(
            send_id,
            SendState.CANCELLED,
            actor=actor,
            reason="cancelled by the requester",
            expect={SendState.PENDING_APPROVAL},
        )

    def expire_stale(self, now: datetime | None = None) -> list[SendRecord]:
        """End every approval older than ZNS_APPROVAL_TTL; return the expired records."""
        now = now or datetime.now(UTC)
        cutoff = now - timedelta(seconds=self.settings.zns_approval_ttl)
        expired: list[SendRecord] = []
        for record in self.store.sends.in_states({SendState.PENDING_APPROVAL}):
            if datetime.fromisoformat(record["created_at"]) <= cutoff:
                done = self.move(
                    record["id"],
                    SendState.EXPIRED,
                    actor="system",
                    reason=f"not decided within {self.settings.zns_approval_ttl} s",
                    expect={SendState.PENDING_APPROVAL},
                )
                if done:
                    expired.append(done)
        return expired

    def callback_url(self, record: SendRecord) -> str | None:
        base = self.settings.public_base_url
        if not base:
            return None
        return base.rstrip("/") + callback_path(record["callback_token"])

    async def submit(self, send_id: str, *, actor: str = "system") -> SendRecord:
        """approved → submitting → accepted | failed | unknown (a sandbox send: sandboxed
        instead of accepted). Sends at most once per call race.

        Returns the record as it stands afterwards (possibly unchanged when another caller
        is already submitting it).
        """
        record = self.move(
            send_id,
            SendState.SUBMITTING,
            actor=actor,
            reason="submitting to eSMS",
            expect={SendState.APPROVED},
        )
        if record is None:
            return self.store.sends.get(send_id)
        message = self._message(
            record, request_id=record["id"], callback_url=self.callback_url(record)
        )
        try:
            result = await self.client.send_zns(message)
        except EsmsError as exc:
            return self._settle(
                send_id,
                SendState.FAILED,
                str(exc),
                error_code=exc.code,
                error_category=exc.category.value,
                error=str(exc),
            )
        except Exception:
            # We cannot tell whether the request left this process: never call it failed.
            log.exception("unexpected error submitting send=%s", send_id)
            return self._settle(send_id, SendState.UNKNOWN, "internal error while submitting")
        if record.get("sandbox") and result.outcome in TAKEN_OUTCOMES:
            # Checked and accepted, and never delivered: nothing is left to wait for. Code
            # 124 (this RequestId was accepted before) says the same, SMSID or not.
            return self._settle(
                send_id,
                SendState.SANDBOXED,
                sandbox_reason(result.sms_id),
                **accepted_fields(result.sms_id, self.store.clock()),
            )
        if result.outcome is SubmitOutcome.ACCEPTED or (
            result.outcome is SubmitOutcome.ALREADY_SUBMITTED and result.sms_id
        ):
            return self._settle(
                send_id,
                SendState.ACCEPTED,
                f"accepted by eSMS, SMSID {result.sms_id}",
                sms_id=result.sms_id,
                accepted_at=iso(now := self.store.clock()),
                next_poll_at=iso(now + FIRST_POLL_AFTER),
            )
        reason = (
            "eSMS says this request was already submitted (code 124); checking its outcome"
            if result.outcome is SubmitOutcome.ALREADY_SUBMITTED
            else "no reply from eSMS; the outcome is unknown, checking"
        )
        return self._settle(send_id, SendState.UNKNOWN, reason, unknown_reason=reason)

    def _settle(self, send_id: str, to: SendState, reason: str, **fields: Any) -> SendRecord:
        done = self.move(
            send_id,
            to,
            actor="esms",
            reason=reason,
            expect={SendState.SUBMITTING},
            **fields,
        )
        return done if done is not None else self.store.sends.get(send_id)
