"""Who may request, review, approve, reject, cancel and look up a send: every rule here.

The rules take facts (is this person on a list, whose request is it, what do the settings
allow) and answer with the refusal, if any. Finding the facts, such as resolving Slack user
groups, is the caller's job; telling the person is the caller's too.

The roles, each a list of users or user groups:
- requester (ZNS_REQUESTERS; everyone when it is empty): requests sends, looks them up;
- approver (ZNS_APPROVERS): reviews, approves and rejects others' requests, looks them up;
- auditor (ZNS_AUDITORS): looks up any send and may unmask the phones of audit exports.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from storage.sends import SendRecord
from storage.views import REQUEST, REVIEW

# How long a submission of a modal the bot opened is accepted; the record of the view is
# swept after it, so the live store holds only views opened within this window.
VIEW_TTL = timedelta(hours=4)
DECISIONS = frozenset({"approve", "reject"})


class Refusal(enum.StrEnum):
    """Why a person may not act. The value is what the audit log records as the reason."""

    NOT_A_REQUESTER = "not in ZNS_REQUESTERS"
    NOT_AN_APPROVER = "not an approver"
    OWN_REQUEST = "own request"
    NOT_THE_REQUESTER = "not the requester"
    UNKNOWN_VIEW = "a modal the bot did not open, or one opened too long ago"
    NOT_YOUR_VIEW = "a modal the bot opened for someone else"
    OTHER_SEND = "a review opened for another send"
    DIGEST_MISMATCH = "the content differs from what the review showed"
    BAD_DECISION = "a decision other than approve or reject"
    SANDBOX_NOT_ALLOWED = "sandbox while ZNS_ALLOW_SANDBOX=false"
    NO_ROLE = "not a requester, approver or auditor"
    NOT_AN_AUDITOR = "not in ZNS_AUDITORS"


@dataclass(frozen=True)
class Roles:
    """What one person is: the caller resolves the lists (ZNS_REQUESTERS empty: everyone)."""

    requester: bool
    approver: bool
    auditor: bool

    @property
    def any(self) -> bool:
        """Whether this person has a role at all: the bar for looking things up."""
        return self.requester or self.approver or self.auditor


# What each refusal tells the person, in one line; the audit log records the enum's value.
REFUSAL_LINES: dict[Refusal, str] = {
    Refusal.NOT_A_REQUESTER: "You are not allowed to request ZNS sends. "
    "Ask an admin to add you to ZNS_REQUESTERS.",
    Refusal.NOT_AN_APPROVER: "Only approvers (ZNS_APPROVERS) can do this.",
    Refusal.NO_ROLE: "You have no ZNS role (requester, approver or auditor). "
    "Ask an admin to add you to ZNS_REQUESTERS, ZNS_APPROVERS or ZNS_AUDITORS.",
    Refusal.NOT_AN_AUDITOR: "Only auditors (ZNS_AUDITORS) can see customers' phones unmasked.",
}


def refusal_line(refusal: Refusal) -> str:
    """The one line a person reads when refused (the reason itself when none is written)."""
    return f":no_entry: {REFUSAL_LINES.get(refusal, f'Refused: {refusal.value}.')}"


def may_request(*, on_requesters_list: bool) -> Refusal | None:
    """Anyone may request when ZNS_REQUESTERS is empty; the caller folds that in."""
    return None if on_requesters_list else Refusal.NOT_A_REQUESTER


def may_look_up(roles: Roles) -> Refusal | None:
    """`/zns status`: any send, for anyone with a role. The support floor asks about a
    customer's message whoever requested it, and the phone is shown masked to all."""
    return None if roles.any else Refusal.NO_ROLE


def may_see_account(roles: Roles) -> Refusal | None:
    """`/zns templates` and `/zns balance`: the OA's templates and the account's money are
    for the people who work with it, whatever their role."""
    return None if roles.any else Refusal.NO_ROLE


def may_audit(roles: Roles) -> Refusal | None:
    """`/zns audit` is for the people who work with sends: requesters (everyone when
    ZNS_REQUESTERS is empty), approvers and auditors; phones stay masked but for auditors."""
    return None if roles.any else Refusal.NO_ROLE


def may_unmask(roles: Roles) -> Refusal | None:
    """Phones in the clear (an audit export) are for auditors only."""
    return None if roles.auditor else Refusal.NOT_AN_AUDITOR


def may_review(
    actor: str, record: SendRecord, *, approver: bool, allow_self: bool
) -> Refusal | None:
    """Opening the approval modal needs what approving needs."""
    if not approver:
        return Refusal.NOT_AN_APPROVER
    return may_approve_own(actor, record, allow_self=allow_self)


def may_decide(*, approver: bool) -> Refusal | None:
    """Approving or rejecting is for approvers; whose request it is, `may_approve_own` says."""
    return None if approver else Refusal.NOT_AN_APPROVER


def may_approve_own(actor: str, record: SendRecord, *, allow_self: bool) -> Refusal | None:
    """Four eyes: a requester approves their own request only with ZNS_ALLOW_SELF_APPROVAL.

    Rejecting one's own request stays allowed: it sends nothing.
    """
    if record.get("requester") == actor and not allow_self:
        return Refusal.OWN_REQUEST
    return None


def may_cancel(actor: str, record: SendRecord) -> Refusal | None:
    """Only the person who made a request may withdraw it."""
    return None if record.get("requester") == actor else Refusal.NOT_THE_REQUESTER


def may_sandbox(requested: bool, *, allowed: bool, forced: bool) -> Refusal | None:
    """ZNS_ALLOW_SANDBOX=false refuses a sandbox request, unless ESMS_SANDBOX makes every
    send one (then the person chose nothing)."""
    return Refusal.SANDBOX_NOT_ALLOWED if requested and not allowed and not forced else None


def check_decision(value: object) -> Refusal | None:
    """Exactly "approve" or "reject": anything else, or nothing, decides nothing."""
    return None if isinstance(value, str) and value in DECISIONS else Refusal.BAD_DECISION


def _fresh(view: Mapping[str, Any] | None, kind: str, now: datetime) -> bool:
    if view is None or view.get("kind") != kind:
        return False
    return datetime.fromisoformat(view["opened_at"]) + VIEW_TTL > now


def may_submit_request(
    view: Mapping[str, Any] | None, *, actor_user: str, now: datetime
) -> Refusal | None:
    """A request comes only from a request modal the bot opened for this person, lately."""
    if not _fresh(view, REQUEST, now):
        return Refusal.UNKNOWN_VIEW
    assert view is not None
    return None if view.get("user") == actor_user else Refusal.NOT_YOUR_VIEW


def notice_channel(view: Mapping[str, Any]) -> str | None:
    """Where the requester is told: where /zns was typed, as recorded when the modal
    opened; the modal's metadata travels through the client and is never trusted for it."""
    channel = view.get("channel")
    return channel if isinstance(channel, str) else None


def may_submit_review(
    view: Mapping[str, Any] | None,
    *,
    actor_user: str,
    send_id: str,
    digest_shown: str | None,
    digest_now: str | None,
    now: datetime,
) -> Refusal | None:
    """A decision comes only from the review modal the bot opened for this send and this
    approver, and only while the send's content is the one that modal showed."""
    if not _fresh(view, REVIEW, now):
        return Refusal.UNKNOWN_VIEW
    assert view is not None
    if view.get("user") != actor_user:
        return Refusal.NOT_YOUR_VIEW
    if view.get("send_id") != send_id:
        return Refusal.OTHER_SEND
    recorded = view.get("digest")
    if digest_shown != recorded or digest_now != recorded:
        return Refusal.DIGEST_MISMATCH
    return None
