"""Answers to Slack's options load requests for the type-ahead selects (pure builders)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict, TypeVar

from slack_sdk.models.blocks import Option, OptionGroup

from bot.search import Found
from handlers.ui.blocks import OPTION_TEXT_MAX, choice
from handlers.ui.text import shorten

T = TypeVar("T")
# The value of the one option shown when eSMS cannot be asked: picking it changes nothing.
UNAVAILABLE = "-"


class OptionsReply(TypedDict, total=False):
    """`ack()`'s keyword arguments for an options load answer: one of the two."""

    options: list[dict[str, Any]]
    option_groups: list[dict[str, Any]]


def options_reply(
    found: Found[T], *, ident: Callable[[T], str], name: Callable[[T], str]
) -> OptionsReply:
    """`ack()`'s keyword arguments: the matches as options, under a label when some were left out.

    Slack shows at most 100 options and says nothing about the rest; the group label tells
    the person there are more and how to reach them.
    """
    options: list[Option] = [choice(name(item), ident(item)) for item in found.items]
    if not found.truncated:
        return {"options": [o.to_dict() for o in options]}
    label = shorten(
        f"First {len(found.items):,} of {found.total:,} — type more to narrow", OPTION_TEXT_MAX
    )
    return {"option_groups": [OptionGroup(label=label, options=options).to_dict()]}


def unavailable_reply(what: str) -> OptionsReply:
    """The answer when eSMS failed or was too slow: Slack would otherwise show "No
    results", which reads as "no such template"."""
    text = shorten(f"⚠ eSMS did not answer: cannot list {what}. Type again.", OPTION_TEXT_MAX)
    return {"options": [Option(text=text, value=UNAVAILABLE).to_dict()]}
