"""`/zns audit`'s filters as typed in Slack, and the summary that carries the CSV."""

from __future__ import annotations

from datetime import date

import pytest

from bot.auditing import ExportFilter, Written
from handlers.listeners.audit import FilterError, parse_filters, summary


def test_every_filter_at_once() -> None:
    wanted = parse_filters(
        "phone=+84901888484 user=<@U0AGENT01|mai trần> template=231001 state=FAILED "
        "since=2026-12-01 until=2026-12-07"
    )
    assert wanted == ExportFilter(
        since=date(2026, 12, 1),
        until=date(2026, 12, 7),
        phone="0901888484",
        actor="slack:U0AGENT01",
        template_id="231001",
        state="failed",
    )


@pytest.mark.parametrize("typed", ["<@U0AGENT01>", "<@U0AGENT01|mai>", "@U0AGENT01", "U0AGENT01"])
def test_a_person_is_a_mention_or_a_member_id(typed: str) -> None:
    assert parse_filters(f"user={typed}").actor == "slack:U0AGENT01"


@pytest.mark.parametrize(
    "typed", ["0901 888 484", "+84 901 888 484", "090.188.8484", "(090) 1888-484"]
)
def test_a_phone_is_taken_as_people_paste_it(typed: str) -> None:
    wanted = parse_filters(f"state=failed phone={typed} until=2026-12-07")
    assert (wanted.phone, wanted.state, wanted.until) == ("0901888484", "failed", date(2026, 12, 7))


def test_no_filters_is_everything_and_any_subset_works() -> None:
    assert parse_filters("") == parse_filters("   ") == ExportFilter()
    assert parse_filters("since=2026-12-01") == ExportFilter(since=date(2026, 12, 1))
    assert parse_filters("STATE=delivered").state == "delivered"


@pytest.mark.parametrize(
    ("typed", "key", "says"),
    [
        ("colour=red", "unknown", "'colour' is not a filter; the filters are phone=, user="),
        ("state=failed state=delivered", "state", "state= is given twice"),
        ("phone=", "phone", "phone= needs a value"),
        ("phone=0901888484 failed", "text", "'failed' is not a filter: write key=value"),
        ("failed", "text", "'failed' is not a filter"),
        ("phone=12345", "phone", "phone=: '12345' is not a valid Vietnamese mobile number"),
        ("since=1/12/2026", "since", "since= expects a UTC date like 2026-12-01, got '1/12/2026'"),
        ("since=2026-12-07 until=2026-12-01", "since", "since= is after until="),
        ("template=a;b", "template", "template= takes a template id"),
        ("state=gone", "state", "state= takes one of pending_approval, approved, rejected"),
        ("user=@mai.tran", "user", "user= takes a mention such as <@U0123ABCD> or a member id"),
    ],
)
def test_a_bad_filter_says_what_to_type(typed: str, key: str, says: str) -> None:
    with pytest.raises(FilterError) as refused:
        parse_filters(typed)
    assert refused.value.key == key
    assert str(refused.value).startswith(says), str(refused.value)


def test_the_summary_says_rows_filters_masking_and_a_cut() -> None:
    wanted = ExportFilter(phone="0901888484", state="failed")
    masked = summary(Written(rows=12, matched=12), wanted, unmask=False)
    assert masked == (
        ":page_facing_up: ZNS audit export: 12 rows (phone 090****484, to state failed).\n"
        "Phones are masked."
    )
    one = summary(Written(rows=1, matched=1), ExportFilter(), unmask=False)
    assert one.startswith(":page_facing_up: ZNS audit export: 1 row (no filters).\n")
    cut = summary(Written(rows=50_000, matched=73_210), wanted, unmask=True)
    assert ":warning: Cut at 50,000 rows: 73,210 matched." in cut
    assert "Phones unmasked (you are an auditor)" in cut and "0901888484" not in cut
