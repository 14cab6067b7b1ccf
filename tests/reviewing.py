"""Values an approver must read in full, and reading them back from the approval modal."""

from __future__ import annotations

from typing import Any

# Everything that grows when escaped, Vietnamese written precomposed and with combining
# accents, an emoji (two UTF-16 units), and text Slack would turn into an emoji or mention.
PIECE = "Nguyễn Văn Ấn & Co <b> > 5% :smile: <@U666> Tiê\u0301ng Vie\u0323\u0302t 🇻🇳 "


def value(n: int, length: int) -> str:
    """A distinct value of exactly `length` characters, with nothing to trim at its end."""
    text = (f"[{n:02}] " + PIECE * (length // len(PIECE) + 1))[: length - 1]
    return text + "."


def shown_values(blocks: list[dict[str, Any]]) -> dict[str, str]:
    """Each parameter's value read back from the modal's plain-text sections, in order."""
    values: dict[str, str] = {}
    for block in blocks:
        text = block.get("text") or {}
        if block["type"] != "section" or text.get("type") != "plain_text":
            continue
        label, _, rest = text["text"].partition("\n")
        name = label.split(" (")[0].removesuffix(":")  # "name (3,000 characters):"
        values[name] = values.get(name, "") + rest
    return values
