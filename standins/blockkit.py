"""Slack's own checks on views and message blocks, as the real API words them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, TypeGuard

MESSAGE_MAX_BLOCKS = 50
VIEW_MAX_BLOCKS = 100
MESSAGE_TEXT_MAX = 40_000
# Undocumented: Slack answers msg_blocks_too_long near this much text across all blocks
# (bolt-js issues #2509, #2867).
BLOCKS_TEXT_MAX = 13_000

_TEXT_TYPES = ("plain_text", "mrkdwn")
_SELECTS_WITH_OPTIONS = ("static_select", "multi_static_select")
_EXTERNAL_SELECTS = ("external_select", "multi_external_select")
_CHOICES = ("checkboxes", "radio_buttons")


def check_view(spec: Any, *, kinds: tuple[str, ...] = ("modal",)) -> list[str]:
    """The problems Slack finds in a view (`views.*` answer invalid_arguments with them).

    `kinds`: the view types the method takes ("modal" for open/push, "home" for publish).
    """
    if not isinstance(spec, Mapping):
        return ["[ERROR] missing required field: view"]
    problems: list[str] = []
    kind = spec.get("type")
    if kind not in kinds:
        allowed = " or ".join(f"'{k}'" for k in kinds)
        problems.append(f"[ERROR] must be {allowed} [json-pointer:/view/type]")
    if kind == "modal":
        for key in ("title", "submit", "close"):
            _plain_text(problems, spec.get(key), 24, f"/view/{key}", required=key == "title")
            problems += _text_minimums(spec.get(key), f"/view/{key}")
    _too_long(problems, spec.get("private_metadata"), 3000, "/view/private_metadata")
    _too_long(problems, spec.get("callback_id"), 255, "/view/callback_id")
    _too_long(problems, spec.get("external_id"), 255, "/view/external_id")
    blocks = spec.get("blocks", [])
    problems += check_blocks(blocks, max_blocks=VIEW_MAX_BLOCKS, pointer="/view/blocks")
    has_input = isinstance(blocks, list) and any(
        isinstance(b, Mapping) and b.get("type") == "input" for b in blocks
    )
    if kind == "modal" and has_input and not spec.get("submit"):
        problems.append(
            "[ERROR] must provide a submit property when using input blocks [json-pointer:/view]"
        )
    return problems


def check_message_blocks(blocks: Any) -> list[str]:
    """The problems Slack finds in a message's blocks (chat.* answer invalid_blocks)."""
    return check_blocks(blocks, max_blocks=MESSAGE_MAX_BLOCKS, pointer="/blocks")


def blocks_text_length(blocks: Any) -> int:
    """All the text the blocks' text objects hold, the measure of msg_blocks_too_long."""
    texts = (obj.get("text") for _, obj in _text_objects(blocks, ""))
    return sum(_units(text) for text in texts if _is_str(text))


def check_blocks(blocks: Any, *, max_blocks: int, pointer: str) -> list[str]:
    """Block and element limits, unique block_ids and text minimums under `pointer`."""
    if not isinstance(blocks, list):
        return [f"[ERROR] must be an array [json-pointer:{pointer}]"]
    problems: list[str] = []
    if len(blocks) > max_blocks:
        problems.append(f"[ERROR] no more than {max_blocks} items allowed [json-pointer:{pointer}]")
    seen: set[str] = set()
    for i, block in enumerate(blocks):
        here = f"{pointer}/{i}"
        if not isinstance(block, Mapping) or not block.get("type"):
            problems.append(f"[ERROR] missing required field: type [json-pointer:{here}]")
            continue
        block_id = block.get("block_id")
        _too_long(problems, block_id, 255, f"{here}/block_id")
        if _is_str(block_id):
            if block_id in seen:
                problems.append(f"[ERROR] duplicate block_id [json-pointer:{here}/block_id]")
            seen.add(block_id)
        _check_block(problems, block, here)
        for where, element in _elements(block, here):
            _check_element(problems, element, where)
    return problems + _text_minimums(blocks, pointer)


# --- blocks ----------------------------------------------------------------------------------


def _check_block(problems: list[str], block: Mapping[str, Any], here: str) -> None:
    """The rules of the block's own type (its elements are checked by the caller)."""
    kind = block["type"]
    if kind == "section":
        _check_section(problems, block, here)
    elif kind == "header":
        _plain_text(problems, block.get("text"), 150, f"{here}/text", required=True)
    elif kind == "input":
        element = block.get("element")
        if element is None:
            _missing(problems, f"{here}/element")
        elif not isinstance(element, Mapping):
            problems.append(f"[ERROR] must be an object [json-pointer:{here}/element]")
        _plain_text(problems, block.get("label"), 2000, f"{here}/label", required=True)
        _plain_text(problems, block.get("hint"), 2000, f"{here}/hint")
    elif kind in ("actions", "context"):
        cap = 25 if kind == "actions" else 10
        _listed(block.get("elements"), 1, cap, f"{here}/elements", problems)


def _check_section(problems: list[str], block: Mapping[str, Any], here: str) -> None:
    text, fields = block.get("text"), block.get("fields")
    if text is None and not fields:
        problems.append(f"[ERROR] must provide text or fields [json-pointer:{here}]")
    if text is not None:
        _text_object(problems, text, 3000, f"{here}/text")
    if fields is not None and _listed(fields, 1, 10, f"{here}/fields", problems):
        for j, item in enumerate(fields):
            _text_object(problems, item, 2000, f"{here}/fields/{j}")


def _elements(block: Mapping[str, Any], here: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for key in ("accessory", "element"):
        if isinstance(block.get(key), Mapping):
            yield f"{here}/{key}", block[key]
    if block.get("type") == "context":  # text objects and images, not interactive elements
        return
    elements = block.get("elements")
    for j, element in enumerate(elements if isinstance(elements, list) else []):
        if isinstance(element, Mapping):
            yield f"{here}/elements/{j}", element


# --- elements --------------------------------------------------------------------------------


def _check_element(problems: list[str], element: Mapping[str, Any], where: str) -> None:
    kind = element.get("type")
    if not kind:
        problems.append(f"[ERROR] missing required field: type [json-pointer:{where}]")
        return
    _too_long(problems, element.get("action_id"), 255, f"{where}/action_id")
    if "placeholder" in element:
        _plain_text(problems, element["placeholder"], 150, f"{where}/placeholder")
    if kind == "button":
        _plain_text(problems, element.get("text"), 75, f"{where}/text", required=True)
        _too_long(problems, element.get("value"), 2000, f"{where}/value")
        _too_long(problems, element.get("url"), 3000, f"{where}/url")
    elif kind == "plain_text_input":
        _check_text_input(problems, element, where)
    elif kind in _SELECTS_WITH_OPTIONS:
        _check_static_select(problems, element, where)
    elif kind in _EXTERNAL_SELECTS:
        _number(problems, element.get("min_query_length"), 0, None, f"{where}/min_query_length")
        for key, option in _initial(element, where):
            _check_option(problems, option, key)
    elif kind in _CHOICES:
        options = element.get("options")
        if _listed(options, 1, 10, f"{where}/options", problems):
            _check_options(problems, options, f"{where}/options", mrkdwn=True)
            _check_initial(problems, element, options, where)
    elif kind == "overflow":
        options = element.get("options")
        if _listed(options, 2, 5, f"{where}/options", problems):
            _check_options(problems, options, f"{where}/options")


def _check_text_input(problems: list[str], element: Mapping[str, Any], where: str) -> None:
    most = element.get("max_length")
    least = element.get("min_length")
    most_ok = _number(problems, most, 1, 3000, f"{where}/max_length")
    least_ok = _number(problems, least, 0, 3000, f"{where}/min_length")
    if most_ok and least_ok and most is not None and least is not None and least > most:
        problems.append(
            f"[ERROR] must not be greater than max_length [json-pointer:{where}/min_length]"
        )


def check_options_answer(answer: Any) -> list[str]:
    """The problems Slack finds in an app's answer to an options load (block_suggestion)
    request: the rules of a static select's options. Slack then shows an empty menu."""
    if not isinstance(answer, Mapping):
        return ["[ERROR] must be an object [json-pointer:/]"]
    problems: list[str] = []
    _offered(problems, answer, "")
    return problems


def _check_static_select(problems: list[str], element: Mapping[str, Any], where: str) -> None:
    offered = _offered(problems, element, where)
    if offered is not None:
        _check_initial(problems, element, offered, where)


def _offered(problems: list[str], element: Mapping[str, Any], where: str) -> list[Any] | None:
    """The options or option groups of a select (or an options load answer), checked; every
    option offered, or None when neither or both are given."""
    options, groups = element.get("options"), element.get("option_groups")
    if (options is None) == (groups is None):
        problems.append(
            f"[ERROR] must provide either options or option_groups [json-pointer:{where or '/'}]"
        )
        return None
    offered: list[Any] = []
    if options is not None:
        if _listed(options, 0, 100, f"{where}/options", problems):
            _check_options(problems, options, f"{where}/options")
            offered = list(options)
    elif _listed(groups, 0, 100, f"{where}/option_groups", problems):
        for g, group in enumerate(groups):
            here = f"{where}/option_groups/{g}"
            if not isinstance(group, Mapping):
                problems.append(f"[ERROR] must be an object [json-pointer:{here}]")
                continue
            _plain_text(problems, group.get("label"), 75, f"{here}/label", required=True)
            members = group.get("options")
            if _listed(members, 0, 100, f"{here}/options", problems):
                _check_options(problems, members, f"{here}/options")
                offered += members
    return offered


def _check_options(
    problems: list[str], options: list[Any], where: str, *, mrkdwn: bool = False
) -> None:
    for k, option in enumerate(options):
        _check_option(problems, option, f"{where}/{k}", mrkdwn=mrkdwn)


def _check_option(problems: list[str], option: Any, where: str, *, mrkdwn: bool = False) -> None:
    """An option object; its text is plain_text except in checkboxes and radio buttons."""
    if not isinstance(option, Mapping):
        problems.append(f"[ERROR] must be an object [json-pointer:{where}]")
        return
    text = _text_object if mrkdwn else _plain_text
    text(problems, option.get("text"), 75, f"{where}/text", required=True)
    value = option.get("value")
    if value is None:
        _missing(problems, f"{where}/value")
    _too_long(problems, value, 150, f"{where}/value")
    if "description" in option:
        _text_object(problems, option["description"], 75, f"{where}/description")


def _initial(element: Mapping[str, Any], where: str) -> Iterator[tuple[str, Any]]:
    """The element's initial option(s), each with its pointer."""
    if "initial_option" in element:
        yield f"{where}/initial_option", element["initial_option"]
    chosen = element.get("initial_options")
    for k, option in enumerate(chosen if isinstance(chosen, list) else []):
        yield f"{where}/initial_options/{k}", option


def _check_initial(
    problems: list[str], element: Mapping[str, Any], offered: list[Any], where: str
) -> None:
    # Slack compares the whole option object, so a changed text or description is refused too.
    for key, option in _initial(element, where):
        if option not in offered:
            problems.append(f"[ERROR] must be one of the provided options [json-pointer:{key}]")


# --- text objects and scalars ----------------------------------------------------------------


def _text_minimums(node: Any, pointer: str) -> list[str]:
    """Every text object, wherever it sits, holds at least one character."""
    problems: list[str] = []
    for where, obj in _text_objects(node, pointer):
        text = obj.get("text")
        if not _is_str(text):
            problems.append(f"[ERROR] missing required field: text [json-pointer:{where}]")
        elif not text:
            problems.append(f"[ERROR] must be at least 1 character [json-pointer:{where}/text]")
    return problems


def _text_objects(node: Any, pointer: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every text object (plain_text or mrkdwn) inside `node`, with its pointer."""
    if isinstance(node, Mapping):
        if node.get("type") in _TEXT_TYPES:
            yield pointer, node
            return
        for key, value in node.items():
            yield from _text_objects(value, f"{pointer}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _text_objects(value, f"{pointer}/{i}")


def _text_object(
    problems: list[str], obj: Any, limit: int, pointer: str, *, required: bool = False
) -> None:
    """A plain_text or mrkdwn object of at most `limit` characters (the minimum is checked
    once for every text object by check_blocks)."""
    if obj is None:
        if required:
            _missing(problems, pointer)
        return
    if not isinstance(obj, Mapping) or obj.get("type") not in _TEXT_TYPES:
        problems.append(f"[ERROR] must be a text object [json-pointer:{pointer}]")
        return
    _too_long(problems, obj.get("text"), limit, f"{pointer}/text")


def _plain_text(
    problems: list[str], obj: Any, limit: int, pointer: str, *, required: bool = False
) -> None:
    if obj is None:
        if required:
            _missing(problems, pointer)
        return
    if not isinstance(obj, Mapping) or obj.get("type") != "plain_text":
        problems.append(f"[ERROR] must be a plain_text object [json-pointer:{pointer}]")
        return
    _too_long(problems, obj.get("text"), limit, f"{pointer}/text")


def _missing(problems: list[str], pointer: str) -> None:
    parent, _, name = pointer.rpartition("/")
    problems.append(f"[ERROR] missing required field: {name} [json-pointer:{parent or '/'}]")


def _units(text: str) -> int:
    """Characters as Slack may count them: UTF-16 units, an emoji two. Slack does not say
    (slack-limits.md); the stand-in takes the strict reading, so the bot stays inside both."""
    return len(text.encode("utf-16-le")) // 2


def _too_long(problems: list[str], value: Any, limit: int, pointer: str) -> None:
    if _is_str(value) and _units(value) > limit:
        problems.append(
            f"[ERROR] must be less than {limit + 1} characters [json-pointer:{pointer}]"
        )


def _listed(
    items: Any, least: int, most: int, pointer: str, problems: list[str]
) -> TypeGuard[list[Any]]:
    """Whether `items` is a list; a problem is noted unless it holds `least`..`most` items."""
    if not isinstance(items, list):
        problems.append(f"[ERROR] must be an array [json-pointer:{pointer}]")
        return False
    if len(items) > most:
        problems.append(f"[ERROR] no more than {most} items allowed [json-pointer:{pointer}]")
    elif len(items) < least:
        noun = "item" if least == 1 else "items"
        problems.append(f"[ERROR] must provide at least {least} {noun} [json-pointer:{pointer}]")
    return True


def _number(problems: list[str], value: Any, least: int, most: int | None, pointer: str) -> bool:
    """Whether `value` is absent or a whole number in least..most (a problem is noted when not)."""
    if value is None:
        return True
    if isinstance(value, bool) or not isinstance(value, int):
        problems.append(f"[ERROR] must be an integer [json-pointer:{pointer}]")
        return False
    if value < least:
        problems.append(f"[ERROR] must be at least {least} [json-pointer:{pointer}]")
        return False
    if most is not None and value > most:
        problems.append(f"[ERROR] must be at most {most} [json-pointer:{pointer}]")
        return False
    return True


def _is_str(value: Any) -> TypeGuard[str]:
    return isinstance(value, str)
