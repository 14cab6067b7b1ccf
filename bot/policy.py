"""Who may request, review, approve, reject and cancel a send: every rule in one place.

The rules take facts (is this person on a list, whose request is it, what do the settings
allow) and answer with the refusal, if any. Finding the facts, such as resolving Slack user
groups, is the caller's job; telling the person is the caller's too.
"""

from __future__ import annotations

import enum

from storage.sends import SendRecord


class Refusal(enum.StrEnum):
    """Why a person may not act. The value is what the audit log records as the reason."""

    NOT_A_REQUESTER = "not in ZNS_REQUESTERS"
    NOT_AN_APPROVER = "not an approver"
    OWN_REQUEST = "own request"
    NOT_THE_REQUESTER = "not the requester"


def may_request(*, on_requesters_list: bool) -> Refusal | None:
    """Anyone may request when ZNS_REQUESTERS is empty; the caller folds that in."""
    return None if on_requesters_list else Refusal.NOT_A_REQUESTER


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
