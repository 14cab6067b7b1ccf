"""The one exception hierarchy of zns-bot, with every eSMS code mapped to a category."""

from __future__ import annotations

import enum
from collections.abc import Mapping

# storage/ sits below bot/ and must not import it, so its errors are defined there; they are
# part of this hierarchy by re-export, and callers catch `ZNS_ERRORS` to get them all.
from storage.errors import NotFoundError as NotFoundError
from storage.errors import StoreError as StoreError
from storage.errors import StoreLockedError as StoreLockedError


class ZnsBotError(Exception):
    """Base of every error zns-bot raises on purpose. `str()` is fit to show a person."""


ZNS_ERRORS = (ZnsBotError, StoreError)
"""Every error zns-bot raises on purpose, for `except` at the edges (CLI, listeners)."""


class ConfigError(ZnsBotError):
    """A setting is missing or wrong."""


class InputError(ZnsBotError):
    """Input from a person is invalid. `problems` maps a field name to what is wrong with it."""

    def __init__(self, message: str, problems: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.problems: dict[str, str] = dict(problems or {})


class PhoneError(InputError):
    """A phone number cannot be used for ZNS."""

    def __init__(self, message: str) -> None:
        super().__init__(message, {"phone": message})


class ParamsError(InputError):
    """Template parameters do not meet the template's rules (every problem at once)."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        listing = "; ".join(f"{name}: {msg}" for name, msg in problems.items())
        super().__init__(f"template parameters are invalid: {listing}", problems)


class TemplateError(ZnsBotError):
    """A template is unknown or cannot be sent now (for example not ENABLE)."""


class ErrorCategory(enum.StrEnum):
    """How to treat an eSMS error: who must act, and whether a retry can help."""

    CONFIG = "config"  # wrong keys, OA or template set-up: an admin must fix it; never retry
    BALANCE = "balance"  # out of credit: top up; never retry
    BAD_INPUT = "bad_input"  # this request is wrong: fix the input
    RECIPIENT = "recipient"  # this phone cannot receive
    DUPLICATE = "duplicate"  # 124: this RequestId was already submitted
    THROTTLED = "throttled"  # 160: too fast, back off and retry
    NOT_YET = "not_yet"  # 105: too early to ask, ask again later
    TRANSIENT = "transient"  # network, timeouts, 5xx, garbled replies: retry may help
    UNKNOWN = "unknown"  # a code not in eSMS's table


# code → (category, what a support agent should read). From esms-api.md §3 (table of 2026-02).
ESMS_CODES: dict[int, tuple[ErrorCategory, str]] = {
    99: (ErrorCategory.RECIPIENT, "this phone number is blocked by eSMS"),
    101: (ErrorCategory.CONFIG, "eSMS rejected the API key or secret key (check ESMS_API_KEY)"),
    102: (ErrorCategory.CONFIG, "the eSMS account has no price list; ask eSMS sales"),
    103: (ErrorCategory.BALANCE, "the eSMS account balance is too low; top it up"),
    104: (ErrorCategory.CONFIG, "the brandname does not exist on the eSMS account"),
    105: (ErrorCategory.NOT_YET, "eSMS does not know this message yet; try again shortly"),
    106: (ErrorCategory.BAD_INPUT, "the voice recording file is missing"),
    107: (ErrorCategory.BAD_INPUT, "advertising SMS needs at least 30 unique numbers"),
    108: (ErrorCategory.BAD_INPUT, "eSMS says the phone number has the wrong format"),
    110: (ErrorCategory.BAD_INPUT, "eSMS says the request data is invalid"),
    115: (ErrorCategory.BAD_INPUT, "the hashed phone number is invalid"),
    118: (ErrorCategory.BAD_INPUT, "eSMS does not support this message type"),
    120: (ErrorCategory.BAD_INPUT, "too many phone numbers in one request"),
    124: (ErrorCategory.DUPLICATE, "this request was already submitted to eSMS"),
    140: (ErrorCategory.CONFIG, "eSMS refused this server's IP address (not whitelisted)"),
    143: (ErrorCategory.CONFIG, "the eSMS account is not activated or is locked"),
    146: (ErrorCategory.CONFIG, "the customer-care SMS template is wrong"),
    160: (ErrorCategory.THROTTLED, "eSMS is rate-limiting us; slowing down"),
    163: (ErrorCategory.BAD_INPUT, "only one phone number is allowed per request"),
    171: (ErrorCategory.BAD_INPUT, "the code was used, expired or is not for this phone"),
    177: (ErrorCategory.CONFIG, "the carrier is not registered for this brandname"),
    199: (ErrorCategory.DUPLICATE, "the same request is already being processed by eSMS"),
    201: (ErrorCategory.BAD_INPUT, "the content contains a blocked keyword"),
    204: (ErrorCategory.CONFIG, "the Zalo OA id does not exist at eSMS (check ESMS_OAID)"),
    210: (ErrorCategory.BAD_INPUT, "the message payload is not in the expected format"),
    300: (ErrorCategory.BAD_INPUT, "the message type is missing"),
    301: (ErrorCategory.BAD_INPUT, "unsupported service type code"),
    687: (ErrorCategory.BAD_INPUT, "more than 500 numbers in one bulk request"),
    789: (ErrorCategory.CONFIG, "the template is not configured for this OA at eSMS"),
    790: (ErrorCategory.CONFIG, "wrong ZNS template (check the template id and its parameters)"),
    791: (ErrorCategory.CONFIG, "the OA id or template id is missing"),
    799: (ErrorCategory.CONFIG, "the Zalo OA is inactive, wrong, or not added to the eSMS account"),
    801: (ErrorCategory.BAD_INPUT, "over-quota sending (SendingMode 3) cannot be scheduled"),
    802: (ErrorCategory.CONFIG, "this OA may not use over-quota sending (SendingMode 3)"),
    851: (ErrorCategory.BAD_INPUT, "the message id (SMSID) is missing"),
    852: (ErrorCategory.BAD_INPUT, "the Zalo user id is longer than 20 characters"),
    853: (ErrorCategory.BAD_INPUT, "the Zalo user id is missing"),
    854: (ErrorCategory.NOT_YET, "eSMS has no status data for this message yet"),
}


class EsmsError(ZnsBotError):
    """eSMS answered with an error code, or could not be reached.

    `str()` is the agent-facing message; `code` is eSMS's code (None for transport errors).
    Never carries credentials: messages are built from code tables and redacted text only.
    """

    category: ErrorCategory = ErrorCategory.UNKNOWN

    def __init__(
        self, message: str, *, code: int | None = None, endpoint: str = "", raw_message: str = ""
    ) -> None:
        super().__init__(message)
        self.code = code
        self.endpoint = endpoint
        self.raw_message = raw_message

    @property
    def retryable(self) -> bool:
        return self.category in (
            ErrorCategory.TRANSIENT,
            ErrorCategory.THROTTLED,
            ErrorCategory.NOT_YET,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, endpoint={self.endpoint!r}, {str(self)!r})"
        )


class EsmsConfigError(EsmsError):
    category = ErrorCategory.CONFIG


class EsmsBalanceError(EsmsError):
    category = ErrorCategory.BALANCE


class EsmsBadInputError(EsmsError):
    category = ErrorCategory.BAD_INPUT


class EsmsRecipientError(EsmsError):
    category = ErrorCategory.RECIPIENT


class EsmsDuplicateError(EsmsError):
    category = ErrorCategory.DUPLICATE


class EsmsThrottledError(EsmsError):
    category = ErrorCategory.THROTTLED


class EsmsNotYetError(EsmsError):
    category = ErrorCategory.NOT_YET


class EsmsTransientError(EsmsError):
    """Network failure, timeout, HTTP 5xx, or a reply that is not the JSON eSMS documents."""

    category = ErrorCategory.TRANSIENT


class EsmsUnknownCodeError(EsmsError):
    category = ErrorCategory.UNKNOWN


_BY_CATEGORY: dict[ErrorCategory, type[EsmsError]] = {
    cls.category: cls
    for cls in (
        EsmsConfigError,
        EsmsBalanceError,
        EsmsBadInputError,
        EsmsRecipientError,
        EsmsDuplicateError,
        EsmsThrottledError,
        EsmsNotYetError,
        EsmsTransientError,
        EsmsUnknownCodeError,
    )
}


def esms_error(code: int, *, endpoint: str = "", raw_message: str = "") -> EsmsError:
    """Build the right EsmsError for an eSMS code; an unknown code is still a clear error."""
    category, text = ESMS_CODES.get(
        code, (ErrorCategory.UNKNOWN, "eSMS returned an unexpected error")
    )
    message = f"{text} (eSMS code {code})"
    return _BY_CATEGORY[category](message, code=code, endpoint=endpoint, raw_message=raw_message)
