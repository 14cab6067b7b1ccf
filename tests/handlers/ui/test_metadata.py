"""Modal metadata: what the bot writes, it reads back; junk reads back as nothing."""

from __future__ import annotations

import pytest

from handlers.ui.metadata import ApprovalMeta, RequestMeta, approval_meta, encode, request_meta


def view(private_metadata: str) -> dict[str, str]:
    return {"private_metadata": private_metadata}


def test_request_metadata_round_trips() -> None:
    meta = RequestMeta(channel="C0SUPPORT", oaid="4097", template="231001")
    assert request_meta(view(encode(meta))) == meta


def test_approval_metadata_round_trips() -> None:
    assert approval_meta(view(encode(ApprovalMeta(send_id="zns-1")))) == {"send_id": "zns-1"}


@pytest.mark.parametrize("junk", ["", "not json", "[1, 2]", '"text"', "null", '{"send_id": 7}'])
def test_junk_reads_as_nothing(junk: str) -> None:
    assert approval_meta(view(junk)) == {"send_id": ""}
    assert request_meta(view(junk)) == {"channel": None, "oaid": None, "template": None}


def test_values_of_the_wrong_type_are_dropped_not_passed_on() -> None:
    forged = '{"channel": {"id": "C1"}, "oaid": ["4097"], "template": "231001"}'
    assert request_meta(view(forged)) == {"channel": None, "oaid": None, "template": "231001"}
