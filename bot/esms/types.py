"""Typed values exchanged with the eSMS gateway: requests, replies and template rules."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace


class ParamType(enum.StrEnum):
    """A template parameter's value type, from GetTemplate's `RequireType`."""

    TEXT = "text"
    NUMBER = "number"
    DATE = "date"  # dd/MM/yyyy
    URL = "url"

    @classmethod
    def from_esms(cls, raw: str | None) -> ParamType:
        """Map `type_text`, `type_number`, `type_date`, `type_cta_url` (or unknown → text)."""
        value = (raw or "").lower()
        if "number" in value:
            return cls.NUMBER
        if "date" in value:
            return cls.DATE
        if "url" in value:
            return cls.URL
        return cls.TEXT


class TemplateStatus(enum.StrEnum):
    """A ZNS template's review status at Zalo, from GetZnsTemplateInfo's `Status`."""

    ENABLE = "ENABLE"
    PENDING_REVIEW = "PENDING_REVIEW"
    REJECT = "REJECT"
    DISABLE = "DISABLE"
    DELETE = "DELETE"
    UNKNOWN = "UNKNOWN"

    @classmethod
    def parse(cls, raw: str | None) -> TemplateStatus:
        try:
            return cls((raw or "").strip().upper())
        except ValueError:
            return cls.UNKNOWN


@dataclass(frozen=True, slots=True)
class TemplateParam:
    """One template parameter: its name, position (`ParamLevel`), limit and type.

    `max_length` is None when eSMS gives no limit (a missing or 0 `Limit`): unknown, not 0.
    """

    name: str
    level: int
    max_length: int | None
    type: ParamType = ParamType.TEXT
    required: bool = True


@dataclass(frozen=True, slots=True)
class Template:
    """A registered ZNS template and the rules its parameters must meet."""

    id: str
    name: str
    oaid: str
    params: tuple[TemplateParam, ...]
    content: str = ""
    status: TemplateStatus = TemplateStatus.UNKNOWN
    tag: str | None = None
    timeout_ms: int | None = None
    preview_url: str | None = None

    @property
    def ordered_params(self) -> tuple[TemplateParam, ...]:
        return tuple(sorted(self.params, key=lambda p: p.level))

    @property
    def distinct_params(self) -> tuple[TemplateParam, ...]:
        """One parameter per name, where it first appears in `ParamLevel` order.

        eSMS takes a repeated parameter's value once ("if params repeat, pass one value
        only"), so one value must meet every occurrence: the tightest known limit, and
        required if any occurrence is.
        """
        merged: dict[str, TemplateParam] = {}
        for param in self.ordered_params:
            first = merged.get(param.name)
            if first is None:
                merged[param.name] = param
                continue
            limits = [n for n in (first.max_length, param.max_length) if n is not None]
            merged[param.name] = replace(
                first,
                max_length=min(limits) if limits else None,
                required=first.required or param.required,
            )
        return tuple(merged.values())


@dataclass(frozen=True, slots=True)
class TemplateInfo:
    """GetZnsTemplateInfo's detail for one template (status, timeout, limits)."""

    id: str
    name: str
    status: TemplateStatus
    reason: str | None = None
    tag: str | None = None
    timeout_ms: int | None = None
    preview_url: str | None = None
    param_limits: dict[str, tuple[int | None, int | None, bool]] = field(default_factory=dict)
    """name → (min_length, max_length, required)."""


@dataclass(frozen=True, slots=True)
class ZnsMessage:
    """One V4 ZNS send (plain or journey). `params` are already in ParamLevel order."""

    phone: str
    template_id: str
    params: tuple[str, ...]
    oaid: str
    request_id: str
    is_journey: bool = False
    order_id: str | None = None
    campaign: str | None = None
    callback_url: str | None = None
    sandbox: bool = False
    send_date: str | None = None  # "yyyy-mm-dd hh:MM:ss", Vietnam time; None = now


class SubmitOutcome(enum.StrEnum):
    """What is known after a send request: never "sent" before the delivery report."""

    ACCEPTED = "accepted"
    ALREADY_SUBMITTED = "already_submitted"  # code 124: this RequestId reached eSMS before
    UNKNOWN = "unknown"  # the reply never came; the request may or may not have reached eSMS


@dataclass(frozen=True, slots=True)
class SubmitResult:
    outcome: SubmitOutcome
    request_id: str
    sms_id: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class PriceEstimate:
    total_price: float
    total_receiver: int


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """A send's delivery state, from QueryZnsStatus, GetSendStatus, GetCallback or a callback."""

    sms_id: str
    send_status: int | None
    send_success: int = 0
    send_failed: int = 0
    total_price: float | None = None
    error_code: int | None = None  # Zalo error (or eSMS 1001); None when not reported
    error_message: str | None = None
    final: bool | None = None  # QueryZnsStatus FinalStatus, when given
    zalo_msg_id: str | None = None
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class Balance:
    balance: float
    user_id: str | None = None


@dataclass(frozen=True, slots=True)
class Quota:
    daily_quota: int | None
    remaining_quota: int | None
    daily_quota_promotion: int | None = None
    remaining_quota_promotion: int | None = None


@dataclass(frozen=True, slots=True)
class OfficialAccount:
    oaid: str
    name: str
