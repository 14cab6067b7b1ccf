"""shorten() and split_text(): fit the limit, never inside an escape, token or grapheme."""

import itertools
import unicodedata

import pytest

from handlers.ui.text import ELLIPSIS, shorten, slack_len, split_text


def test_text_that_fits_is_unchanged():
    assert shorten("Đơn hàng", 8) == "Đơn hàng"
    assert shorten("", 5) == ""


def test_a_long_text_ends_with_an_ellipsis_within_the_limit():
    out = shorten("Xác nhận đơn hàng của quý khách đã được giao thành công", 24)
    assert len(out) <= 24 and out.endswith(ELLIPSIS)
    assert out == "Xác nhận đơn hàng của…"  # at the last word that fits


def test_a_word_longer_than_the_room_is_cut_inside_it():
    out = shorten("a" * 100, 10)
    assert out == "a" * 9 + ELLIPSIS


@pytest.mark.parametrize("escape", ["&amp;", "&lt;", "&gt;"])
def test_never_splits_an_escape(escape):
    text = "x" * 8 + escape + "y" * 20
    for limit in range(9, 15):
        out = shorten(text, limit)
        assert len(out) <= limit
        body = out.removesuffix(ELLIPSIS)
        assert "&" not in body or body.endswith(escape) or escape in body


@pytest.mark.parametrize(
    "token", ["<@U0AGENT01>", "<#C0APPROVE|approvals>", "<https://e.vn/x|xem>"]
)
def test_never_splits_a_token(token):
    text = "ab " + token + " " + "z" * 40
    for limit in range(4, len(token) + 6):
        body = shorten(text, limit).removesuffix(ELLIPSIS)
        assert "<" not in body or token in body


def test_never_splits_a_letter_from_its_combining_accents():
    decomposed = unicodedata.normalize("NFD", "Nguyễn Thị Hường")  # letters + marks
    for limit in range(2, len(decomposed)):
        out = shorten(decomposed, limit)
        assert len(out) <= limit
        body = out.removesuffix(ELLIPSIS)
        nfc = unicodedata.normalize("NFC", body)
        assert unicodedata.normalize("NFD", nfc) == body  # no dangling or missing mark
        assert "Nguyễn Thị Hường".startswith(nfc)


def test_never_splits_an_emoji_sequence():
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # man ZWJ woman ZWJ girl
    text = "ok " + family + " done and more words"
    for limit in range(4, 10):
        body = shorten(text, limit).removesuffix(ELLIPSIS)
        assert not body.endswith("\u200d")
        assert family in body or "\U0001f468" not in body


def test_a_limit_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        shorten("abc", 0)
    assert shorten("abcdef", 1) == ELLIPSIS


@pytest.mark.parametrize(
    "text",
    [
        "",
        "short",
        "Nguyễn & <b> " * 700,
        "e\u0301" * 2000,  # every letter with a combining accent
        "🇻🇳 👩\u200d💻 " * 600,  # emoji: two UTF-16 units each, sequences with joiners
    ],
)
def test_split_text_joins_back_exactly_and_every_piece_fits(text):
    pieces = split_text(text, 2990, 2980)
    assert "".join(pieces) == text
    assert slack_len(pieces[0]) <= 2990 and all(slack_len(p) <= 2980 for p in pieces[1:])
    assert all(pieces) or pieces == [""]
    for left, right in itertools.pairwise(pieces):
        assert unicodedata.category(right[0]) not in ("Mn", "Mc", "Me") and right[0] != "\u200d"
        assert left[-1] != "\u200d"


def test_shorten_counts_emoji_as_two_units_so_text_full_of_them_still_fits():
    text = "😀" * 3000
    shown = shorten(text, 100)
    assert slack_len(shown) <= 100 and shown.endswith("…") and len(shown) > 40
    assert shorten("😀", 1) == ELLIPSIS  # no room for a two-unit emoji: the ellipsis alone


FLAG = "\U0001f1fb\U0001f1f3"  # 🇻🇳: two regional indicator letters
THUMB = "\U0001f44d\U0001f3fd"  # 👍🏽: an emoji and its skin tone


@pytest.mark.parametrize("grapheme", [FLAG, THUMB])
def test_never_splits_a_flag_or_a_skin_tone(grapheme):
    text = "ab" + grapheme * 4 + " end"
    for limit in range(3, 16):
        body = shorten(text, limit).removesuffix(ELLIPSIS)
        assert text.startswith(body) and body.startswith("ab")
        assert body[2:].replace(grapheme, "") == ""  # whole graphemes only
    pieces = split_text("a" + FLAG + "b" + THUMB + "c", 5)
    assert "".join(pieces) == "a" + FLAG + "b" + THUMB + "c"
    assert all(p.replace(FLAG, "").replace(THUMB, "").isascii() for p in pieces)
