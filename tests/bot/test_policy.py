"""Who may request, review, decide and cancel: every rule of bot/policy.py, branch by branch."""

from __future__ import annotations

from typing import Any

import pytest

from bot.policy import (
    Refusal,
    may_approve_own,
    may_cancel,
    may_decide,
    may_request,
    may_review,
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
    ],
)
def test_each_refusal_is_recorded_in_the_audit_log_with_its_fixed_spelling(
    refusal: Refusal, on_disk: str
) -> None:
    assert refusal.value == on_disk
    assert str(refusal) == on_disk  # what f-strings and str() hand to the audit log
    assert refusal == on_disk


def test_there_are_exactly_four_refusals() -> None:
    assert {r.value for r in Refusal} == {
        "not in ZNS_REQUESTERS",
        "not an approver",
        "own request",
        "not the requester",
    }


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
