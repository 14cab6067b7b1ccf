"""Options load answers: Slack's option limits, and a label when matches were left out."""

from dataclasses import dataclass

from bot.search import search
from handlers.ui.suggestions import options_reply


@dataclass(frozen=True)
class Named:
    id: str
    name: str


def reply(items, query):
    found = search(items, query, ident=lambda i: i.id, name=lambda i: i.name)
    return options_reply(found, ident=lambda i: i.id, name=lambda i: i.name)


# 80-120 characters, differing only at the very end
LONG = "Thông báo xác nhận đơn hàng trực tuyến kèm mã vận đơn và thời gian giao dự kiến tại"
ITEMS = [Named(str(500_001 + n), f"{LONG} cửa hàng Quận {n}") for n in range(155)]


def test_few_matches_are_plain_options_within_slacks_limits():
    answer = reply(ITEMS, "quan 154")
    assert set(answer) == {"options"}
    (option,) = answer["options"]
    assert option["value"] == "500155"
    text = option["text"]["text"]
    assert len(text) <= 75 and text.endswith(" (500155)") and "…" in text


def test_names_that_differ_only_at_the_end_stay_apart_by_their_id():
    texts = [o["text"]["text"] for o in reply(ITEMS, "quan 1")["options"]]
    assert len(texts) == len(set(texts)) > 1
    assert all(len(t) <= 75 for t in texts)


def test_more_than_a_hundred_matches_say_so_in_a_group_label():
    answer = reply(ITEMS, "don hang")
    assert set(answer) == {"option_groups"}
    (group,) = answer["option_groups"]
    assert group["label"]["text"] == "First 100 of 155 — type more to narrow"
    assert len(group["label"]["text"]) <= 75
    assert [o["value"] for o in group["options"]] == [i.id for i in ITEMS[:100]]


def test_no_match_is_an_empty_list():
    assert reply(ITEMS, "khong co") == {"options": []}
