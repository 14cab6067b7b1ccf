"""Type-ahead search: by id or any part of a name, whatever the case and the accents."""

from dataclasses import dataclass

import pytest

from bot.search import MAX_RESULTS, fold, search


@dataclass(frozen=True)
class Item:
    id: str
    name: str


def find(items, query, **kw):
    return search(items, query, ident=lambda i: i.id, name=lambda i: i.name, **kw)


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Đơn hàng", "don hang"),
        ("ĐƠN HÀNG ĐÃ GIAO", "don hang da giao"),
        ("Nguyễn Thị Ánh", "nguyen thi anh"),
        ("Cửa hàng  Quận\t1", "cua hang quan 1"),  # runs of spaces count as one
        ("Straße", "strasse"),
        ("OTP", "otp"),
    ],
)
def test_fold_drops_case_and_vietnamese_diacritics_including_d_with_stroke(text, folded):
    assert fold(text) == folded


def test_fold_handles_text_written_with_combining_accents():
    decomposed = "Đo\u031b\u0300n ha\u0300ng"  # "Đờn hàng" typed as letter + combining marks
    assert fold(decomposed) == "don hang"


ITEMS = [
    Item("231001", "Thông báo xác nhận đơn hàng"),
    Item("205644", "OTP"),
    Item("300100", "Đơn hàng đã giao"),
    Item("231002", "Cập nhật ĐƠN HÀNG"),
    Item("777", "Khuyến mãi"),
]


def test_a_name_is_found_by_any_part_typed_without_accents_or_case():
    found = find(ITEMS, "don hang")
    # names starting with the query first, then the rest in catalogue order
    assert [i.id for i in found.items] == ["300100", "231001", "231002"]
    assert found.total == 3 and not found.truncated
    assert [i.id for i in find(ITEMS, "ĐƠN hàng").items] == ["300100", "231001", "231002"]
    assert [i.id for i in find(ITEMS, "khuyen").items] == ["777"]


def test_an_id_is_found_whole_first_then_by_its_start_then_by_any_part():
    assert [i.id for i in find(ITEMS, "231001").items] == ["231001"]
    assert [i.id for i in find(ITEMS, "2310").items] == ["231001", "231002"]
    assert [i.id for i in find(ITEMS, "777").items] == ["777"]
    # the exact id outranks a name that merely starts with the same text
    items = [Item("1", "777 ngày vàng"), Item("777", "Khuyến mãi")]
    assert [i.id for i in find(items, " 777 ").items] == ["777", "1"]


def test_nothing_matches_an_unrelated_query():
    found = find(ITEMS, "zzz")
    assert found.items == () and found.total == 0


def test_an_empty_query_lists_everything_in_catalogue_order():
    assert [i.id for i in find(ITEMS, "").items] == [i.id for i in ITEMS]


def test_at_most_the_limit_is_returned_and_the_total_says_how_many_matched():
    many = [Item(str(n), f"Đơn hàng số {n}") for n in range(155)]
    found = find(many, "don hang")
    assert len(found.items) == MAX_RESULTS and found.total == 155 and found.truncated
    assert [i.id for i in found.items] == [str(n) for n in range(MAX_RESULTS)]  # stable
    assert find(many, "so 154").items == (many[154],)  # typing more reaches the rest
