"""Who may request, review, decide and cancel: every rule of bot/policy.py, branch by branch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.policy import (
    VIEW_TTL,
    Refusal,
    Roles,
    check_decision,
    may_approve_own,
    may_audit,
    may_cancel,
    may_decide,
    may_look_up,
    may_request,
    may_review,
    may_sandbox,
    may_submit_request,
    may_submit_review,
    may_unmask,
    notice_channel,
    refusal_line,
)

ALICE = "slack:U0ALICE"
BOB = "slack:U0BOB"
ALICES_REQUEST: dict[str, Any] = {"id": "zns-1", "requester": ALICE}
NOBODYS_REQUEST: dict[str, Any] = {"id": "zns-2"}  # a record without a requester field


# --- the audit reasons: stored on disk, so their spelling is part of the format -----------


@pytest.mark.parametrize(
    ("refusal", "on_disk"),
    [
        (Refusal.NOT_A_REQUESTER, "not in ZNS_REQUESTERS"),
        (Refusal.NOT_AN_APPROVER, "not an approver"),
        (Refusal.OWN_REQUEST, "own request"),
        (Refusal.NOT_THE_REQUESTER, "not the requester"),
        (Refusal.UNKNOWN_VIEW, "a modal the bot did not open, or one opened too long ago"),
        (Refusal.NOT_YOUR_VIEW, "a modal the bot opened for someone else"),
        (Refusal.OTHER_SEND, "a review opened for another send"),
        (Refusal.DIGEST_MISMATCH, "the content differs from what the review showed"),
        (Refusal.BAD_DECISION, "a decision other than approve or reject"),
        (Refusal.SANDBOX_NOT_ALLOWED, "sandbox while ZNS_ALLOW_SANDBOX=false"),
        (Refusal.NO_ROLE, "not a requester, approver or auditor"),
        (Refusal.NOT_AN_AUDITOR, "not in ZNS_AUDITORS"),
    ],
)
def test_each_refusal_is_recorded_in_the_audit_log_with_its_fixed_spelling(
    refusal: Refusal, on_disk: str
) -> None:
    assert refusal.value == on_disk
    assert str(refusal) == on_disk  # what f-strings and str() hand to the audit log
    assert refusal == on_disk


def test_there_are_exactly_twelve_refusals() -> None:
    assert {r.value for r in Refusal} == {
        "not in ZNS_REQUESTERS",
        "not an approver",
        "own request",
        "not the requester",
        "a modal the bot did not open, or one opened too long ago",
        "a modal the bot opened for someone else",
        "a review opened for another send",
        "the content differs from what the review showed",
        "a decision other than approve or reject",
        "sandbox while ZNS_ALLOW_SANDBOX=false",
        "not a requester, approver or auditor",
        "not in ZNS_AUDITORS",
    }


def test_audit_exports_are_for_every_role_and_unmasked_for_auditors_only() -> None:
    for roles in [Roles(True, False, False), Roles(False, True, False), Roles(False, False, True)]:
        assert may_audit(roles) is None
    assert may_audit(Roles(False, False, False)) is Refusal.NO_ROLE
    assert may_unmask(Roles(False, False, True)) is None
    assert may_unmask(Roles(True, True, False)) is Refusal.NOT_AN_AUDITOR


# --- may_request ---------------------------------------------------------------------------


def test_someone_on_the_requesters_list_may_request() -> None:
    assert may_request(on_requesters_list=True) is None


def test_someone_off_the_requesters_list_may_not_request() -> None:
    assert may_request(on_requesters_list=False) is Refusal.NOT_A_REQUESTER


# --- may_decide ----------------------------------------------------------------------------


def test_an_approver_may_decide() -> None:
    assert may_decide(approver=True) is None


def test_a_non_approver_may_not_decide() -> None:
    assert may_decide(approver=False) is Refusal.NOT_AN_APPROVER


# --- may_approve_own -----------------------------------------------------------------------


def test_an_approver_may_approve_someone_elses_request() -> None:
    assert may_approve_own(BOB, ALICES_REQUEST, allow_self=False) is None


def test_a_requester_may_not_approve_their_own_request() -> None:
    assert may_approve_own(ALICE, ALICES_REQUEST, allow_self=False) is Refusal.OWN_REQUEST


def test_a_requester_may_approve_their_own_request_when_self_approval_is_allowed() -> None:
    assert may_approve_own(ALICE, ALICES_REQUEST, allow_self=True) is None


def test_allowing_self_approval_changes_nothing_for_someone_elses_request() -> None:
    assert may_approve_own(BOB, ALICES_REQUEST, allow_self=True) is None


def test_a_request_without_a_requester_is_nobodys_own() -> None:
    assert may_approve_own(ALICE, NOBODYS_REQUEST, allow_self=False) is None


def test_own_request_compares_whole_actor_ids_not_prefixes() -> None:
    assert may_approve_own("slack:U0ALIC", ALICES_REQUEST, allow_self=False) is None
    assert may_approve_own("cli:U0ALICE", ALICES_REQUEST, allow_self=False) is None


# --- may_review ----------------------------------------------------------------------------


def test_an_approver_may_review_someone_elses_request() -> None:
    assert may_review(BOB, ALICES_REQUEST, approver=True, allow_self=False) is None


@pytest.mark.parametrize("allow_self", [False, True])
def test_a_non_approver_may_not_review_whatever_the_self_approval_setting(
    allow_self: bool,
) -> None:
    assert may_review(BOB, ALICES_REQUEST, approver=False, allow_self=allow_self) is (
        Refusal.NOT_AN_APPROVER
    )


def test_a_non_approver_is_refused_as_such_even_on_their_own_request() -> None:
    # the approver check comes first: the reason is "not an approver", not "own request"
    assert may_review(ALICE, ALICES_REQUEST, approver=False, allow_self=False) is (
        Refusal.NOT_AN_APPROVER
    )


def test_an_approver_may_not_review_their_own_request() -> None:
    assert may_review(ALICE, ALICES_REQUEST, approver=True, allow_self=False) is (
        Refusal.OWN_REQUEST
    )


def test_an_approver_may_review_their_own_request_when_self_approval_is_allowed() -> None:
    assert may_review(ALICE, ALICES_REQUEST, approver=True, allow_self=True) is None


# --- may_cancel ----------------------------------------------------------------------------


def test_the_requester_may_cancel_their_request() -> None:
    assert may_cancel(ALICE, ALICES_REQUEST) is None


def test_someone_else_may_not_cancel_a_request() -> None:
    assert may_cancel(BOB, ALICES_REQUEST) is Refusal.NOT_THE_REQUESTER


def test_nobody_may_cancel_a_request_without_a_requester() -> None:
    assert may_cancel(ALICE, NOBODYS_REQUEST) is Refusal.NOT_THE_REQUESTER


# --- the modal a submission comes from ------------------------------------------------------

OPENED = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
REQUEST_VIEW: dict[str, Any] = {
    "kind": "request",
    "user": "U0ALICE",
    "channel": "C0SUPPORT",
    "opened_at": OPENED.isoformat(),
}
REVIEW_VIEW: dict[str, Any] = {
    "kind": "review",
    "user": "U0BOB",
    "send_id": "zns-1",
    "digest": "d1",
    "opened_at": OPENED.isoformat(),
}
SOON = OPENED + timedelta(minutes=5)


def test_a_request_from_the_modal_opened_for_this_person_lately_passes() -> None:
    assert may_submit_request(REQUEST_VIEW, actor_user="U0ALICE", now=SOON) is None


@pytest.mark.parametrize(
    ("view", "user", "now", "refusal"),
    [
        (None, "U0ALICE", SOON, Refusal.UNKNOWN_VIEW),  # never opened, or swept
        (REVIEW_VIEW, "U0ALICE", SOON, Refusal.UNKNOWN_VIEW),  # a review is not a request
        (REQUEST_VIEW, "U0ALICE", OPENED + VIEW_TTL, Refusal.UNKNOWN_VIEW),  # expired
        (REQUEST_VIEW, "U0BOB", SOON, Refusal.NOT_YOUR_VIEW),
    ],
)
def test_a_request_from_any_other_modal_is_refused(
    view: dict[str, Any] | None, user: str, now: datetime, refusal: Refusal
) -> None:
    assert may_submit_request(view, actor_user=user, now=now) is refusal


def test_the_notice_goes_to_the_channel_recorded_when_the_modal_opened() -> None:
    assert notice_channel(REQUEST_VIEW) == "C0SUPPORT"
    assert notice_channel({**REQUEST_VIEW, "channel": None}) is None


def review(**changes: Any) -> Refusal | None:
    claim: dict[str, Any] = {
        "view": REVIEW_VIEW,
        "actor_user": "U0BOB",
        "send_id": "zns-1",
        "digest_shown": "d1",
        "digest_now": "d1",
        "now": SOON,
    }
    claim.update(changes)
    return may_submit_review(**claim)


def test_a_decision_from_the_review_opened_for_this_send_and_approver_passes() -> None:
    assert review() is None
    unbound = {**REVIEW_VIEW, "digest": None}  # a send created before content binding
    assert review(view=unbound, digest_shown=None, digest_now=None) is None


@pytest.mark.parametrize(
    ("changes", "refusal"),
    [
        ({"view": None}, Refusal.UNKNOWN_VIEW),
        ({"view": REQUEST_VIEW}, Refusal.UNKNOWN_VIEW),
        ({"now": OPENED + VIEW_TTL}, Refusal.UNKNOWN_VIEW),
        ({"actor_user": "U0ALICE"}, Refusal.NOT_YOUR_VIEW),
        ({"send_id": "zns-2"}, Refusal.OTHER_SEND),
        ({"digest_shown": "d2"}, Refusal.DIGEST_MISMATCH),
        ({"digest_shown": None}, Refusal.DIGEST_MISMATCH),
        ({"digest_now": "d2"}, Refusal.DIGEST_MISMATCH),  # the send changed since
    ],
)
def test_a_decision_from_any_other_modal_is_refused(
    changes: dict[str, Any], refusal: Refusal
) -> None:
    assert review(**changes) is refusal


@pytest.mark.parametrize("value", ["approve", "reject"])
def test_approve_and_reject_are_decisions(value: str) -> None:
    assert check_decision(value) is None


@pytest.mark.parametrize("value", ["maybe", "", None, "Approve", ["approve"], " reject"])
def test_nothing_else_is_a_decision(value: object) -> None:
    assert check_decision(value) is Refusal.BAD_DECISION


@pytest.mark.parametrize(
    ("requested", "allowed", "forced", "refusal"),
    [
        (False, False, False, None),
        (True, True, False, None),
        (True, False, True, None),  # ESMS_SANDBOX makes every send one: nothing was chosen
        (True, False, False, Refusal.SANDBOX_NOT_ALLOWED),
    ],
)
def test_sandbox_only_where_allowed(
    requested: bool, allowed: bool, forced: bool, refusal: Refusal | None
) -> None:
    assert may_sandbox(requested, allowed=allowed, forced=forced) is refusal


# --- roles: requester, approver, auditor ---------------------------------------------------

NOBODY = Roles(requester=False, approver=False, auditor=False)


@pytest.mark.parametrize(
    "roles",
    [
        Roles(requester=True, approver=False, auditor=False),
        Roles(requester=False, approver=True, auditor=False),
        Roles(requester=False, approver=False, auditor=True),
        Roles(requester=True, approver=True, auditor=True),
    ],
)
def test_any_one_role_may_look_up_a_send(roles: Roles) -> None:
    assert may_look_up(roles) is None


def test_someone_with_no_role_may_not_look_up() -> None:
    assert may_look_up(NOBODY) is Refusal.NO_ROLE


def test_only_an_auditor_may_unmask() -> None:
    assert may_unmask(Roles(requester=False, approver=False, auditor=True)) is None
    assert may_unmask(Roles(requester=True, approver=True, auditor=False)) is Refusal.NOT_AN_AUDITOR


@pytest.mark.parametrize("refusal", list(Refusal))
def test_every_refusal_is_told_in_one_line(refusal: Refusal) -> None:
    line = refusal_line(refusal)
    assert line.startswith(":no_entry: ") and "\n" not in line and len(line) < 200
