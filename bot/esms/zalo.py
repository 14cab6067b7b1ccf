"""Zalo ZNS error codes in plain words, and lenient parsing of eSMS delivery callbacks."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from urllib.parse import unquote

import orjson

from bot.errors import InputError
from bot.esms.types import DeliveryReport

# eSMS's own "delivery timed out" code that shows up where Zalo codes do (esms-api.md §5).
ESMS_DELIVERY_TIMEOUT = 1001

# Zalo ZNS codes (esms-api.md §8), written for a support agent rather than a developer.
ZALO_ERRORS: dict[int, str] = {
    0: "the message was delivered",
    -100: "Zalo had an unknown internal error",
    -101: "eSMS's Zalo app is invalid (an eSMS-side problem; contact eSMS)",
    -102: "eSMS's Zalo app does not exist (an eSMS-side problem; contact eSMS)",
    -103: "eSMS's Zalo app is not activated (an eSMS-side problem; contact eSMS)",
    -104: "eSMS's Zalo app secret is wrong (an eSMS-side problem; contact eSMS)",
    -105: "the Zalo app is not linked to this OA (an eSMS-side set-up problem)",
    -106: "Zalo does not support this request method (an eSMS-side problem)",
    -107: "the Zalo message id is invalid",
    -108: "Zalo says the phone number is invalid",
    -109: "Zalo says the template id is invalid",
    -1091: "Zalo does not allow this template to be edited",
    -110: "the customer's Zalo app version is too old to show this message",
    -111: "the template data is empty",
    -112: "a template data field has no defined type",
    -1121: "a parameter is longer than the template allows",
    -1122: "a required template parameter is missing",
    -1123: "Zalo could not create the QR code for this message",
    -1124: "a parameter has the wrong format (for example a date not in dd/mm/yyyy)",
    -113: "a button in the template is invalid",
    -1131: "a button's content has the wrong format",
    -114: (
        "the customer's Zalo is inactive, refused the message, or uses an outdated "
        "Zalo version (or Zalo had an internal error)"
    ),
    -115: "the OA's ZNS balance at Zalo is used up",
    -116: "the message text is invalid",
    -117: "the OA or app may not use this template",
    -118: "this number has no Zalo account (or the account was deactivated)",
    -119: "this Zalo account cannot receive ZNS messages",
    -120: "the OA does not have permission for this feature",
    -1201: "the OA does not have permission to use this template",
    -1202: "the OA does not have permission to use this resource",
    -121: "the message body was empty",
    -122: "the message body had an invalid format",
    -124: "eSMS's Zalo access token is invalid (an eSMS-side problem; contact eSMS)",
    -125: "Zalo says the OA id is invalid",
    -126: "the OA's development-mode quota is used up",
    -127: "this test template can only be sent to the OA's admins",
    -130: "the message is longer than Zalo's character limit",
    -131: "the template is not approved by Zalo",
    -132: "a template parameter is invalid",
    -133: "this template may not be sent at night (22:00–06:00); send again in the morning",
    -134: "the customer has not answered the OA's request to receive ZNS messages",
    -135: "the OA may not send ZNS (it is not verified, or is on Zalo's free package)",
    -1351: "the OA is blocked by Zalo for a policy violation",
    -137: "Zalo could not charge the OA for this message",
    -138: "the Zalo app lacks permission for this feature",
    -139: "the customer refused to receive this type of ZNS",
    -140: "the OA is not allowed to send promotion ZNS to this customer",
    -141: "the customer refused to receive ZNS messages",
    -144: "the OA's daily ZNS quota is used up",
    -1441: "the OA's monthly promotion quota is used up",
    -145: "the OA has no permission for this type of ZNS",
    -146: "Zalo disabled this template because of low quality",
    -147: "this template's daily sending limit is used up",
    -1471: "the OA has used up this customer's monthly limit of promotion ZNS",
    -148: "the journey token is missing",
    -149: "the journey token is invalid",
    -1491: "the journey token is of the wrong type",
    -150: "the journey token has expired",
    -151: "this template is not an end-to-end encrypted template",
    -152: "Zalo could not use the end-to-end encryption key",
    -153: "the encrypted message data is invalid",
    -161: "eSMS sent Zalo an invalid sending mode",
    -162: (
        "promotion sending (SendingMode 3) is not allowed for a transaction or "
        "customer-care template"
    ),
    ESMS_DELIVERY_TIMEOUT: "the customer was not online to receive it in time",
}

# Buckets decide the advice (esms-api.md §8 "suggested buckets"). Refusals and promotion
# limits are never "send an SMS instead": the customer said no, or Zalo's rule says not now.
_RECIPIENT_SIDE = frozenset({-108, -110, -114, -118, -119, -134, 1001})
_REFUSED = frozenset({-139, -141})
# Promotion limits (-140, -1441, -1471) each have their own advice in _SUGGESTIONS.
_LATER = frozenset({-100, -115, -144, -147})
_ESMS_SIDE = frozenset({-101, -102, -103, -104, -105, -106, -124, -125, -137, -138, -152})
_JOURNEY = frozenset({-148, -149, -1491, -150})
_MESSAGE_DATA = frozenset({-111, -112, -1121, -1122, -1123, -1124, -116, -121, -122, -130, -132})

_SUGGESTIONS: dict[int, str] = {
    0: "nothing to do",
    -108: "check the phone number with the customer",
    -110: "ask the customer to update Zalo, or send an SMS instead",
    -118: "ask the customer which number their Zalo uses, or send an SMS instead",
    -133: "send it again after 06:00",
    -140: (
        "do not send it again, by ZNS or SMS: this OA may not send this customer promotion messages"
    ),
    -144: "send it again tomorrow, or ask eSMS about a higher quota",
    -1441: "wait until next month, or ask eSMS about the OA's promotion quota",
    -1471: "wait until next month: this customer has had this month's promotion messages",
    1001: "send it again later, or send an SMS instead",
}


def zalo_reason(code: int | None) -> str:
    """Plain-language reason for a Zalo ZNS code (or eSMS 1001), with a fallback for others."""
    if code is None:
        return "Zalo gave no reason"
    try:
        return ZALO_ERRORS[code]
    except KeyError:
        return f"Zalo refused the message with a code we do not know ({code})"


def suggestion(code: int | None) -> str:
    """What a support agent should do next about a Zalo ZNS code."""
    if code is not None and code in _SUGGESTIONS:
        return _SUGGESTIONS[code]
    if code in _RECIPIENT_SIDE:
        return "ask the customer to use Zalo, or send an SMS instead"
    if code in _REFUSED:
        return (
            "do not send it again, by ZNS or SMS: the customer chose not to receive these messages"
        )
    if code in _LATER:
        return "send it again later"
    if code in _ESMS_SIDE:
        return "contact eSMS support; nothing is wrong on the customer's side"
    if code in _JOURNEY:
        return "check the journey's OrderId, or ask eSMS to renew the journey token"
    if code in _MESSAGE_DATA:
        return "check the parameter values against the template's rules and send again"
    if code is not None and code in ZALO_ERRORS:
        return "ask an admin to check the OA and template set-up with eSMS"
    return "ask an admin to look the code up with eSMS support"


_ERROR_RE = re.compile(r'"error"\s*:\s*"?(-?\d+)')
_MESSAGE_RE = re.compile(r'"message"\s*:\s*"((?:[^"\\]|\\.)*)"')
_INT_RE = re.compile(r"-?\d+")
_LONG_DIGITS = re.compile(r"\d{19}")  # past what a signed 64-bit integer always holds
_JSON = json.JSONDecoder()
_MAX_DECODE_ROUNDS = 5  # real payloads are encoded at most twice; this bounds hostile ones


def parse_error_info(raw: str | None) -> tuple[int | None, str | None]:
    """Read `(code, message)` out of an `error_info`/`ErrorInfo` value in any known encoding.

    Handles plain codes ("0", "1001"), JSON, JSON inside a JSON string, repeated URL-encoding,
    a `____<timestamp>` suffix and trailing non-JSON junk. Never raises.
    """
    if raw is None:
        return None, None
    text = str(raw)
    for _ in range(_MAX_DECODE_ROUNDS):
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    text = text.split("____", 1)[0].strip()
    if not text or text.lower() == "null":
        return None, None
    if _INT_RE.fullmatch(text):
        return _whole(text), None

    value: object = text
    for _ in range(3):  # a JSON string may wrap JSON; unwrap a few times at most
        if not isinstance(value, str):
            break
        value = _loads_lenient(value)
    if isinstance(value, dict):
        code = _as_code(value.get("error"))
        message = value.get("message")
        if code is not None or isinstance(message, str):
            return code, message if isinstance(message, str) else None
    if isinstance(value, int) and not isinstance(value, bool):
        return value, None
    if isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
        return _whole(value.strip()), None

    # Last resort: the text is not JSON at all, but may still say what the error was.
    flat = text.replace('\\"', '"')
    found = _ERROR_RE.search(flat)
    message_match = _MESSAGE_RE.search(flat)
    return (
        _whole(found.group(1)) if found else None,
        message_match.group(1) if message_match else None,
    )


def _loads_lenient(text: str) -> object:
    """json.loads, ignoring junk after the first JSON value; None if unreadable."""
    stripped = text.strip()
    # Every final callback carries error_info: orjson reads it several times faster, to the
    # value json would give. Not so for an integer past 64 bits (orjson makes it a float),
    # so a long run of digits goes to json, as does whatever orjson refuses.
    if not _LONG_DIGITS.search(stripped):
        try:
            return orjson.loads(stripped)
        except orjson.JSONDecodeError:
            pass
    try:
        value, _end = _JSON.raw_decode(stripped)  # what json.loads gives, junk after it or not
    except (ValueError, RecursionError):  # RecursionError: nested past json's depth limit
        return None
    return value


def _as_code(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
        return _whole(value.strip())
    return None


_TOO_LONG = 2**64  # stands for any run of digits too long to be worth converting


def _whole(digits: str) -> int:
    """int() of an optionally signed run of digits; past 20 digits, a stand-in of 2**64
    (out of every range) rather than int()'s ValueError at Python's 4,300-digit limit."""
    if len(digits.lstrip("-")) > 20:
        return -_TOO_LONG if digits.startswith("-") else _TOO_LONG
    return int(digits)


_COUNT_FIELDS = ("sendstatus", "sendsuccess", "sendfailed", "totalsent", "totalreceiver")

# What eSMS can send (esms-api.md §4, §8): counts and statuses are small non-negative
# numbers and Zalo's error codes are 32-bit ints (-1471 ... 1001). Anything past 32 bits is
# not eSMS, and past 64 bits the store cannot even write it: refuse it at the door.
INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
# TotalPrice is in VND: the documented samples charge 220 and 2,104 per ZNS, and an SMS CSKH
# callback covers a handful of receivers. 100 million VND (~4,000 USD) for one SMSID is
# thousands of times any real price, yet far below where a float stops being exact.
MAX_PRICE = 100_000_000


class CallbackOutOfRange(InputError):
    """A callback number is one eSMS cannot send (too large, or a negative count)."""


def parse_callback(query: Mapping[str, str]) -> DeliveryReport:
    """Turn an eSMS callback's query parameters into a DeliveryReport (keys in any case).

    Raises InputError naming every problem: SMSID or SendStatus missing, or a count that is
    not a number; CallbackOutOfRange (an InputError) when any number is beyond what eSMS
    sends: a count or status outside 0 ... 2**31-1, an error code outside 32 bits, a price
    that is not within 0 ... MAX_PRICE.
    """
    fields = {str(key).lower(): value for key, value in query.items()}
    problems: dict[str, str] = {}
    out_of_range = False

    sms_id = (fields.get("smsid") or "").strip()
    if not sms_id:
        problems["SMSID"] = "is missing"

    numbers: dict[str, int | None] = {}
    for name in _COUNT_FIELDS:
        raw = (fields.get(name) or "").strip()
        if not raw:
            numbers[name] = None
            continue
        parsed = _parse_count(raw)
        if parsed is None:
            problems[_display_name(name)] = f"is not a whole number ({raw[:20]!r})"
        elif not 0 <= parsed <= INT32_MAX:
            problems[_display_name(name)] = "is out of range"
            out_of_range = True
        numbers[name] = parsed
    if numbers.get("sendstatus") is None and "SendStatus" not in problems:
        problems["SendStatus"] = "is missing"
    code, message = parse_error_info(fields.get("error_info"))
    if code is not None and not INT32_MIN <= code <= INT32_MAX:
        problems["error_info"] = "has an error code out of range"
        out_of_range = True
    price = _parse_price(fields.get("totalprice"))
    if price is not None and not 0 <= price <= MAX_PRICE:
        problems["TotalPrice"] = "is out of range"
        out_of_range = True
    if problems:
        listing = "; ".join(f"{name} {msg}" for name, msg in problems.items())
        error = CallbackOutOfRange if out_of_range else InputError
        raise error(f"the eSMS callback is not usable: {listing}", problems)

    return DeliveryReport(
        sms_id=sms_id,
        send_status=numbers["sendstatus"],
        send_success=numbers["sendsuccess"] or 0,
        send_failed=numbers["sendfailed"] or 0,
        total_price=price,
        error_code=code,
        error_message=message,
        zalo_msg_id=(fields.get("partnerids") or "").strip() or None,
        request_id=(fields.get("requestid") or "").strip() or None,
    )


def _display_name(lower: str) -> str:
    return {
        "sendstatus": "SendStatus",
        "sendsuccess": "SendSuccess",
        "sendfailed": "SendFailed",
        "totalsent": "TotalSent",
        "totalreceiver": "TotalReceiver",
    }[lower]


def _parse_count(raw: str) -> int | None:
    if _INT_RE.fullmatch(raw):
        return _whole(raw)
    try:
        number = float(raw)
    except ValueError:
        return None
    if math.isinf(number):
        return _TOO_LONG  # "1e999": a number, just far out of range
    return int(number) if math.isfinite(number) and number.is_integer() else None


def _parse_price(raw: str | None) -> float | None:
    """The price, None when absent or unreadable; infinity (out of range) when too large."""
    try:
        price = float(raw) if raw not in (None, "") else None
    except ValueError:
        return None
    if price is None or math.isnan(price):
        return None
    return price
