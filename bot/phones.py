"""Vietnamese mobile numbers: normalise what people type to eSMS's `0xxxxxxxxx`, and mask it."""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from bot.errors import PhoneError

VN_REGION = "VN"
VN_COUNTRY_CODE = 84
# People paste numbers with separators; anything else (letters, extensions) is a typo we
# must not silently drop, which phonenumbers' lenient parser would do.
_ALLOWED = re.compile(r"^\+?[\d\s.\-()]+$")
# What every refusal ends with: what to type instead.
_TYPE = "type a Vietnamese mobile number, 10 digits such as 0901 888 484"
_MOBILE_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}


def normalize_phone(raw: str) -> str:
    """Return `0` + 9 digits, or raise PhoneError with a reason a person can act on."""
    text = (raw or "").strip()
    if not text:
        raise PhoneError(f"enter the customer's mobile number: {_TYPE}")
    if not _ALLOWED.match(text):
        raise PhoneError(
            f"'{text}' has characters a phone number cannot have: {_TYPE} "
            "(spaces, dots, dashes and +84 are fine)"
        )
    try:
        number = phonenumbers.parse(text, VN_REGION)
    except phonenumbers.NumberParseException:
        raise PhoneError(f"'{text}' is not a phone number: {_TYPE}") from None
    if number.country_code != VN_COUNTRY_CODE:
        raise PhoneError(
            f"+{number.country_code} is not a Vietnamese number and ZNS reaches only +84: {_TYPE}"
        )
    if not phonenumbers.is_valid_number(number):
        raise PhoneError(
            f"'{text}' is not a valid Vietnamese mobile number: type 10 digits starting "
            "03, 05, 07, 08 or 09, such as 0901 888 484 (or +84 and 9 digits)"
        )
    if phonenumbers.number_type(number) not in _MOBILE_TYPES:
        raise PhoneError(f"'{text}' is a landline or service number: {_TYPE}")
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    return re.sub(r"\D", "", national)


def mask_phone(phone: str) -> str:
    """Hide the middle of a number for channels and logs: `0901888484` → `090****484`."""
    digits = re.sub(r"\D", "", phone or "")
    if len(digits) <= 6:
        return "*" * len(digits)
    return f"{digits[:3]}{'*' * (len(digits) - 6)}{digits[-3:]}"
