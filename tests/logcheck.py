"""What no log line may hold: a full Vietnamese mobile number in any spelling, or a secret.

Deliberately not the product's matcher (bot.ops.logs.mask_phones): separators between digits
are dropped and every 10-digit 0[35789]… or 11-digit 84[35789]… run is a phone, so a
spelling the product misses is still found here.
"""

from __future__ import annotations

import re

_JOINERS = re.compile(r"(?<=\d)(?:[ .\-+()]|%20)+(?=[\d(])")
# not after a digit, unless it is a percent escape's (`%22` before a quoted phone)
_PHONE_DIGITS = re.compile(r"(?:(?<!\d)|(?<=%[0-9A-Fa-f]{2}))(?:0|84)[35789]\d{8}(?!\d)")


def leaks(text: str, secrets: tuple[str, ...]) -> list[str]:
    """The full phones (as 0…) and the `secrets` found in `text`; empty when it is clean."""
    found = [s for s in secrets if s in text]
    joined = _JOINERS.sub("", text.replace("%2B", "+").replace("%2b", "+"))
    for digits in _PHONE_DIGITS.findall(joined):
        found.append("0" + digits[2:] if digits.startswith("84") else digits)
    return found
