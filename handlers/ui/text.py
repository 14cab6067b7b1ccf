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
_SKIN_TONES = ("\U0001f3fb", "\U0001f3ff")
_TAGS = ("\U000e0020", "\U000e007f")
_FLAG_LETTERS = ("\U0001f1e6", "\U0001f1ff")


def shorten(text: str, limit: int, *, ellipsis: str = ELLIPSIS) -> str:
    """`text` if it fits in `limit` units (`slack_len`); else a prefix ending with `ellipsis`.

    The cut falls at a word boundary when one is near the end, never inside an escape or
    a `<…>` token, and never inside a grapheme: a letter and its combining accents, an
    emoji with its skin tone, a flag's two letters, a ZWJ sequence.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if slack_len(text) <= limit:
        return text
    room = limit - slack_len(ellipsis)
    if room < 1:
        return ellipsis[:limit]
    cut = _safe_cut(text, _index_at_units(text, room))
    space = text.rfind(" ", 0, cut + 1)
    if space >= cut * _WORD_BACKOFF:
        cut = _safe_cut(text, space)
    return text[:cut].rstrip() + ellipsis


def slack_len(text: str) -> int:
    """Length as Slack may count it: UTF-16 units, so an emoji counts two (the safe reading:
    slack-limits.md, Slack does not say whether it counts code points or UTF-16 units)."""
    return len(text.encode("utf-16-le")) // 2


def _index_at_units(text: str, units: int) -> int:
    """The largest index whose prefix has at most `units` UTF-16 units."""
    used = 0
    for index, char in enumerate(text):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > units:
            return index
    return len(text)


def _safe_cut(text: str, cut: int) -> int:
    """The largest position <= `cut` that is outside every atom and grapheme."""
    for atom in _ATOMS.finditer(text):
        if atom.start() < cut < atom.end():
            cut = atom.start()
            break
        if atom.start() >= cut:
            break
    return _grapheme_start(text, cut, 0)


def _grapheme_start(text: str, cut: int, floor: int) -> int:
    """Back off from `cut` (not below `floor`) to the start of the grapheme it falls in."""
    while floor < cut < len(text) and (
        _belongs_to_previous(text, cut) or text[cut - 1] in _JOINERS
    ):
        cut -= 1
    return cut


def _belongs_to_previous(text: str, at: int) -> bool:
    char = text[at]
    if char in _JOINERS or unicodedata.category(char) in ("Mn", "Mc", "Me"):
        return True
    if _SKIN_TONES[0] <= char <= _SKIN_TONES[1] or _TAGS[0] <= char <= _TAGS[1]:
        return True  # an emoji's skin tone, a subdivision flag's tag letters
    if _FLAG_LETTERS[0] <= char <= _FLAG_LETTERS[1]:
        run = 0  # regional indicators pair up from the left: 🇻🇳 is two of them
        while at - run - 1 >= 0 and _FLAG_LETTERS[0] <= text[at - run - 1] <= _FLAG_LETTERS[1]:
            run += 1
        return run % 2 == 1
    return False


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
            safe = _grapheme_start(text, cut, start)
            cut = safe if safe > start else cut  # a grapheme longer than a piece
        pieces.append(text[start:cut])
        start, room = cut, rest
    return pieces
