"""Field errors: short, quoting little of what was typed, attached to the right input."""

from __future__ import annotations

from typing import Any

import pytest

from bot.errors import PhoneError
from bot.esms.types import ParamType, TemplateParam
from bot.phones import normalize_phone
from bot.service import check_extras
from bot.templates import check_value
from handlers.ui.forms import ECHO_MAX, FIELD_ERROR_MAX, errors_for_view, field_error

JUNK = "0901 888 484 " + "xyz<&>ạ " * 250  # 2,000+ characters pasted into the phone field


def quotes_more_than(message: str, entered: str, n: int) -> bool:
    """Whether `message` quotes a run of more than `n` characters of `entered`."""
    return any(entered[i : i + n + 1] in message for i in range(len(entered) - n))


def view_with(values: dict[str, str]) -> dict[str, Any]:
    blocks = [{"type": "input", "block_id": key} for key in ("template", *values)]
    state = {k: {"value": {"type": "plain_text_input", "value": v}} for k, v in values.items()}
    return {"blocks": blocks, "state": {"values": state}}


@pytest.mark.parametrize(
    "typed", [JUNK, "9" * 2000, "+1 " + "5" * 1000, "\n  " + "x" * 500 + "  \n"]
)
def test_a_phone_error_is_short_quotes_little_and_says_what_to_type(typed):
    with pytest.raises(PhoneError) as info:
        normalize_phone(typed)
    errors = errors_for_view(info.value.problems, view_with({"phone": typed}))
    message = errors["phone"]
    assert len(message) < 200
    assert not quotes_more_than(message, typed, ECHO_MAX)
    assert quotes_more_than(message, typed.strip(), 8)  # but it does quote some
    assert "type a Vietnamese mobile number" in message or "type 10 digits" in message


def test_a_short_input_is_quoted_whole():
    with pytest.raises(PhoneError) as info:
        normalize_phone("abc")
    errors = errors_for_view(info.value.problems, view_with({"phone": "abc"}))
    assert errors["phone"].startswith("'abc' has characters a phone number cannot have")


def test_every_message_is_capped_even_joined_on_one_input():
    problems = {"oaid": "a" * 150, "unknown": "b" * 150, "phone": "c" * 3000}
    errors = errors_for_view(problems, view_with({"phone": "x"}))
    assert all(len(m) <= FIELD_ERROR_MAX for m in errors.values())
    assert set(errors) == {"template", "phone"}  # no block: on the first input


def test_a_quote_in_a_parameter_error_is_shortened_too():
    typed = "31/02/2026 and then a great deal more"
    message = field_error(f"{typed} is not a real calendar date: type one", typed)
    assert typed not in message and message.endswith("type one")


def every_request_modal_problem() -> list[tuple[str, str]]:
    """(what was typed, the problem) for each check the request modal's submit runs."""
    long_text = "x" * 3000
    found: list[tuple[str, str]] = []
    for journey, order in ((True, None), (True, long_text), (False, "DH-1")):
        problems: dict[str, str] = {}
        check_extras(journey, order, None, None, problems)
        found.append((order or "", problems["order_id"]))
    problems = {}
    check_extras(False, None, long_text, long_text, problems)
    found += [(long_text, problems["campaign"]), (long_text, problems["note"])]
    checks = {
        ParamType.TEXT: ["", long_text],
        ParamType.NUMBER: ["12.000" * 500, "1" * 13],
        ParamType.DATE: ["27-11-2026" * 100, "31/02/2026"],
        ParamType.URL: ["shop.example/" + long_text[:2000]],
    }
    for ptype, typed in checks.items():
        param = TemplateParam("p", 1, 2990, ptype)
        for text in typed:
            problem = check_value(param, text)
            assert problem is not None
            found.append((text, problem))
    for typed in ("", "abc" * 700, "9" * 2000, "+1 650 253 0000", "0123456789", "02439123456"):
        with pytest.raises(PhoneError) as info:
            normalize_phone(typed)
        found.append((typed, str(info.value)))
    return found


@pytest.mark.parametrize(("typed", "problem"), every_request_modal_problem())
def test_every_request_field_error_is_short_quotes_little_and_says_what_to_do(typed, problem):
    message = field_error(problem, typed)
    assert len(message) < 200
    assert not quotes_more_than(message, typed, ECHO_MAX)
    assert any(hint in message for hint in HINTS), message


HINTS = ("type", "shorten", "tick", "choose", "digits 0-9", "dd/MM/yyyy", "starting with https")
