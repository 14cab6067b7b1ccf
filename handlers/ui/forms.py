"""Reading submitted Slack view state into plain values (pure functions)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from handlers.ui.blocks import PARAM_BLOCK
from handlers.ui.text import shorten

FIELD_ERROR_MAX = 199  # characters of one field's error: under 200, the hint stays in sight
ECHO_MAX = 20  # characters of the person's own input quoted back in an error


def state_values(view: Mapping[str, Any]) -> dict[str, Any]:
    """block_id → the value of its one element: str, selected value, or list of values."""
    out: dict[str, Any] = {}
    for block_id, actions in ((view.get("state") or {}).get("values") or {}).items():
        for element in actions.values():
            kind = element.get("type")
            if kind in ("static_select", "external_select"):
                option = element.get("selected_option") or {}
                out[block_id] = option.get("value")
            elif kind == "checkboxes":
                out[block_id] = [o.get("value") for o in element.get("selected_options") or []]
            else:
                out[block_id] = element.get("value")
    return out


def text_values(values: Mapping[str, Any]) -> dict[str, str]:
    """Only the free-text fields, to carry typed input across a modal re-render."""
    return {k: v for k, v in values.items() if isinstance(v, str)}


def template_params(values: Mapping[str, Any]) -> dict[str, str]:
    return {
        block_id.removeprefix(PARAM_BLOCK): value or ""
        for block_id, value in values.items()
        if block_id.startswith(PARAM_BLOCK)
    }


def input_block_ids(view: Mapping[str, Any]) -> list[str]:
    return [b["block_id"] for b in view.get("blocks") or [] if b.get("type") == "input"]


def field_error(message: str, entered: object = None) -> str:
    """A field error a person can read at a glance: under FIELD_ERROR_MAX characters, and
    quoting at most ECHO_MAX characters of what they typed (bot/ quotes it in full for the
    command line; 2,000 pasted characters would bury the hint of what to type)."""
    if isinstance(entered, str):
        for quoted in sorted({entered, entered.strip()}, key=len, reverse=True):
            if len(quoted) > ECHO_MAX and quoted in message:
                message = message.replace(quoted, shorten(quoted, ECHO_MAX))
    return shorten(message, FIELD_ERROR_MAX)


def errors_for_view(problems: Mapping[str, str], view: Mapping[str, Any]) -> dict[str, str]:
    """Attach each problem to its input block; ones without a block go on the first input."""
    blocks = input_block_ids(view)
    entered = state_values(view)
    errors: dict[str, str] = {}
    for key, problem in problems.items():
        message = field_error(problem, entered.get(key))
        target = key if key in blocks else (blocks[0] if blocks else key)
        errors[target] = f"{errors[target]}; {message}" if target in errors else message
    return {k: shorten(v, FIELD_ERROR_MAX) for k, v in errors.items()}
