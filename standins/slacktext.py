"""Slack message text as a person sees it: names for ids, emoji as symbols, links as text."""

from __future__ import annotations

import re
from collections.abc import Mapping

# The shortcodes the bot writes (grep handlers/ and bot/ for them), as Slack shows them.
# A small table rather than the `emoji` package: a dozen codes do not earn a dependency, and
# Slack's names differ from Unicode's (white_check_mark, grey_question) in places anyway.
# A code missing here stays as typed, so the demo's test notices a new one.
EMOJI = {
    "hourglass_flowing_sand": "⏳",
    "hourglass": "⌛",
    "white_check_mark": "✅",
    "x": "❌",
    "warning": "⚠️",
    "no_entry": "⛔",
    "no_entry_sign": "🚫",
    "heavy_multiplication_x": "✖️",
    "grey_question": "❔",
    "incoming_envelope": "📨",
    "outbox_tray": "📤",
    "test_tube": "🧪",
    "scissors": "✂️",
    "page_facing_up": "📄",
    "lock": "🔒",
    "mag": "🔍",
}

# <@U123>, <@U123|name>, <#C123|name>, <!here>, <!subteam^S1|@team>, <https://x|text>
_ANGLE = re.compile(r"<([^<>]*)>")
_EMOJI = re.compile(r":([a-z0-9_+-]+):")


def render(
    text: str,
    users: Mapping[str, str] | None = None,
    channels: Mapping[str, str] | None = None,
    *,
    show_urls: bool = False,
) -> str:
    """`text` (Slack mrkdwn) as the Slack client would show it, in plain characters.

    `users` and `channels` map ids to names; an id without a name shows as the id, as Slack
    shows a user it cannot look up. *bold*, _italics_ and `code` keep their marks: they read
    well as they are. With `show_urls`, a link shows its address after its text.
    """
    users = users or {}
    channels = channels or {}

    def entity(match: re.Match[str]) -> str:
        inner = match.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            return "@" + (users.get(target[1:]) or label or target[1:])
        if target.startswith("#"):
            return "#" + (channels.get(target[1:]) or label or target[1:])
        if target.startswith("!"):
            special = target[1:]
            if special.startswith("subteam^"):
                return label or "@" + special.removeprefix("subteam^")
            return label or "@" + special
        # a link: the text Slack underlines (the address itself when there is none)
        url = _unescape(target)
        if not label:
            return url
        shown = _unescape(label)
        return f"{shown} ({url})" if show_urls else shown

    # Entities first: their < > are literal, while &lt; &gt; in the text are escaped ones.
    pieces = []
    last = 0
    for match in _ANGLE.finditer(text):
        pieces.append(_plain(text[last : match.start()]))
        pieces.append(entity(match))
        last = match.end()
    pieces.append(_plain(text[last:]))
    return "".join(pieces)


def render_plain(text: str, *, emoji: bool = True) -> str:
    """A plain_text object's text: Slack only turns emoji codes into symbols, and only when
    the object says emoji (its default); ids and links stay as typed."""
    return _EMOJI.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), text) if emoji else text


def _plain(text: str) -> str:
    """Mrkdwn outside any <…>: emoji codes become symbols, then Slack's three escapes go."""
    return _unescape(render_plain(text))


def _unescape(text: str) -> str:
    # Slack escapes only these three (html.unescape would also turn a typed "&copy;" into ©);
    # &amp; last, so "&amp;lt;" stays "&lt;" as typed.
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
