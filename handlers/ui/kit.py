"""Small Block Kit pieces that several builders share."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ButtonElement,
    ContextBlock,
    MarkdownTextObject,
    SectionBlock,
)


def section(text: str, accessory: ButtonElement | None = None) -> SectionBlock:
    """A mrkdwn section (the caller keeps `text` within Slack's 3,000 characters)."""
    return SectionBlock(text=MarkdownTextObject(text=text), accessory=accessory)


def context(text: str) -> ContextBlock:
    """One line of small mrkdwn text."""
    return ContextBlock(elements=[MarkdownTextObject(text=text)])


def as_dicts(blocks: list[Block]) -> list[dict[str, Any]]:
    """The blocks as the Web API takes them."""
    return [block.to_dict() for block in blocks]
