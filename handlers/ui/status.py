"""Pure Block Kit builders for `/zns status`: a lookup rendered from `bot.status`'s fields."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slack_sdk.models.blocks import Block, MarkdownTextObject, SectionBlock

from bot.lookup import Lookup, SendView
from bot.status import key_text, not_found_line, status_fields, summary_line
from handlers.ui.blocks import mrkdwn_escape, user_ref
from handlers.ui.kit import as_dicts, context, section
from handlers.ui.text import shorten

# A field's value on the answer. The fields of three sends in full stay far inside the
# ~13,000 characters Slack takes of a message's blocks (slack-limits.md).
VALUE_MAX = 300
FIELDS_PER_SECTION = 10  # Slack's limit for a section's fields
FULL_SENDS_MAX = 3  # sends shown in full (one SMSID given to two sends is the only case)
LINE_MAX = 500  # one send of a phone's list
_PEOPLE = frozenset({"requester", "approver"})


def status_blocks(
    lookup: Lookup, links: Mapping[str, str | None]
) -> tuple[str, list[dict[str, Any]]]:
    """(the notification text, the blocks) answering a lookup. `links` maps a send id to
    its card thread's permalink (None: Slack gave none; absent: the send has no card)."""
    if lookup.key is None:
        line = not_found_line(lookup)
        return line, as_dicts([section(f":mag: {mrkdwn_escape(line)}")])
    if lookup.key.kind == "phone":
        return _phone_blocks(lookup, links)
    blocks: list[Block] = []
    for view in lookup.views[:FULL_SENDS_MAX]:
        blocks += _send_blocks(view, links)
    if len(lookup.views) > FULL_SENDS_MAX:
        more = len(lookup.views) - FULL_SENDS_MAX
        blocks.append(context(f"… and {more} more with this key: look each up by its send id"))
    first = lookup.views[0]
    return f"ZNS send {first.send_id}: {first.state}", as_dicts(blocks)


def _send_blocks(view: SendView, links: Mapping[str, str | None]) -> list[Block]:
    """One send in full: its id, every field of `status_fields`, its thread."""
    tag = " [SANDBOX]" if view.sandbox else ""
    blocks: list[Block] = [section(f"*ZNS send* `{view.send_id}`{tag}")]
    fields = [
        MarkdownTextObject(text=f"*{label}*\n{_value(label, value)}")
        for label, value in status_fields(view)
    ]
    for start in range(0, len(fields), FIELDS_PER_SECTION):
        blocks.append(SectionBlock(fields=fields[start : start + FIELDS_PER_SECTION]))
    blocks.append(context(_thread(view, links)))
    return blocks


def _value(label: str, value: str) -> str:
    """A field's value for mrkdwn: people as mentions, everything else escaped."""
    if label in _PEOPLE and value.startswith("slack:"):
        return user_ref(value)
    return mrkdwn_escape(shorten(value, VALUE_MAX))


def _thread(view: SendView, links: Mapping[str, str | None]) -> str:
    if view.card is None:
        return "No card in Slack (requested from the command line, or not posted yet)"
    link = links.get(view.send_id)
    if link:
        return f"<{link}|Request thread>"
    # no permalink (Slack did not answer in time): the channel still says where to look
    return f"Request card in <#{view.card[0]}>"


def _phone_blocks(
    lookup: Lookup, links: Mapping[str, str | None]
) -> tuple[str, list[dict[str, Any]]]:
    """A phone's sends, newest first, one line each (`summary_line`) with its thread."""
    assert lookup.key is not None
    shown = key_text(lookup.key)  # masked
    newest = f", the newest {len(lookup.views)} shown" if lookup.more else ""
    heading = f"{lookup.total} send(s) to {shown}, newest first{newest}"
    blocks: list[Block] = [section(f"*{mrkdwn_escape(heading)}*")]
    for view in lookup.views:
        line = mrkdwn_escape(shorten(summary_line(view), LINE_MAX))
        blocks.append(section(f"{line}\n{_thread(view, links)}"))
    blocks.append(context("Details of one: `/zns status <send id>`"))
    return heading, as_dicts(blocks)
