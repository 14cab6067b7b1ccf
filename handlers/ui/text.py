"""Text shortened to fit Slack's limits without breaking what Slack or the reader parses."""

from __future__ import annotations

import re
import unicodedata

ELLIPSIS = "…"
# Slack's escapes (&amp; &lt; &gt;) and tokens (<@U123>, <#C1|name>, <https://…|label>):
# a cut inside one shows raw markup, or breaks a link.
_ATOMS = re.compile(r"&[a-zA-Z]{2,4};|<[^<>\s][^<>]*>")
_JOINERS = {"\u200d", "\ufe0e", "\ufe0f"}  # zero-width joiner, variation selectors
_WORD_BACKOFF = 0.6  # cut at a space when one is in the last 40% of the room


def shorten(text: str, limit: int, *, ellipsis: str = ELLIPSIS) -> str:
    """`text` if it fits in `limit` characters; else a prefix ending with `ellipsis`.

    The cut falls at a word boundary when one is near the end, never inside an escape or
    a `<…>` token, and never between a character and the marks or joiners that belong to
    it (a Vietnamese letter written with combining accents, an emoji sequence).
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if len(text) <= limit:
        return text
    room = limit - len(ellipsis)
    if room < 1:
        return ellipsis[:limit]
    cut = _safe_cut(text, room)
    space = text.rfind(" ", 0, cut + 1)
    if space >= room * _WORD_BACKOFF:
        cut = _safe_cut(text, space)
    return text[:cut].rstrip() + ellipsis


def _safe_cut(text: str, cut: int) -> int:
    """The largest position <= `cut` that is outside every atom and grapheme."""
    for atom in _ATOMS.finditer(text):
        if atom.start() < cut < atom.end():
            cut = atom.start()
            break
        if atom.start() >= cut:
            break
    # back off over marks that belong to the character before them, and over a joiner,
    # which waits for what it joins
    while 0 < cut < len(text) and (_belongs_to_previous(text, cut) or text[cut - 1] in _JOINERS):
        cut -= 1
    return cut


def _belongs_to_previous(text: str, at: int) -> bool:
    char = text[at]
    return char in _JOINERS or unicodedata.category(char) in ("Mn", "Mc", "Me")


def slack_len(text: str) -> int:
    """Length as Slack may count it: UTF-16 units, so an emoji counts two (the safe reading)."""
    return len(text.encode("utf-16-le")) // 2


def shorten_units(text: str, limit: int) -> str:
    """`shorten`, measured in `slack_len` units: text full of emoji still fits `limit`."""
    room = limit
    shown = shorten(text, room)
    while slack_len(shown) > limit:
        room -= max(1, (slack_len(shown) - limit) // 2)
        shown = shorten(text, room)
    return shown


def split_text(text: str, first: int, rest: int | None = None) -> list[str]:
    """`text` cut into pieces that join back to exactly `text`, nothing dropped or added.

    The first piece has at most `first` units (`slack_len`), every later one at most
    `rest` (default `first`); a cut never separates a character from its marks or joiners.
    """
    rest = first if rest is None else rest
    if first < 2 or rest < 2:
        raise ValueError("pieces must have room for at least 2 units")
    pieces: list[str] = []
    start, room = 0, first
    while start < len(text) or not pieces:
        cut, used = start, 0
        while cut < len(text) and used + slack_len(text[cut]) <= room:
            used += slack_len(text[cut])
            cut += 1
        if cut < len(text):
            safe = cut
            while safe > start and (_belongs_to_previous(text, safe) or text[safe - 1] in _JOINERS):
                safe -= 1
            cut = safe if safe > start else cut  # a run of marks longer than a piece
        pieces.append(text[start:cut])
        start, room = cut, rest
    return pieces
