"""Async client for the eSMS.vn gateway: ZNS sends, status, templates, balance and quota."""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import math
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import httpx
from pydantic import SecretStr

from bot.config import Settings
from bot.errors import (
    ConfigError,
    EsmsConfigError,
    EsmsDuplicateError,
    EsmsError,
    EsmsTransientError,
    esms_error,
)
from bot.esms.types import (
    Balance,
    DeliveryReport,
    OfficialAccount,
    ParamType,
    PriceEstimate,
    Quota,
    SubmitOutcome,
    SubmitResult,
    Template,
    TemplateInfo,
    TemplateParam,
    TemplateStatus,
    ZnsMessage,
)
from bot.esms.zalo import parse_error_info
from bot.ops.logs import redact_loggers

log = logging.getLogger(__name__)

SEND = "SendZaloMessage_V4_post_json/"
SUMMARY = "SummaryZaloMessage_V4_post_json/"
QUERY_ZNS_STATUS = "QueryZnsStatus/"
GET_SEND_STATUS = "GetSendStatus"
GET_CALLBACK = "GetCallback"
GET_TEMPLATE = "GetTemplate/"
TEMPLATE_INFO = "GetZnsTemplateInfo"
BALANCE = "GetBalance_json"
QUOTA = "ZNS/GetQuota/"
LIST_OA = "ZNS/GetListZOA/"

CALLBACK_BATCH = 200  # GetCallback drops refs beyond 200 (esms-api.md §5)
_OK = 100
_THROTTLED = 160
_DUPLICATE = 124
_UNREADABLE = "eSMS sent a reply we could not read"
_CODE_KEYS = ("coderesult", "coderesponse", "code", "error")
_INT_TEXT = re.compile(r"-?\d+(\.0*)?")


def join_url(base: str, path: str) -> str:
    """Join a base URL and a path with exactly one slash between them."""
    return base.rstrip("/") + "/" + path.lstrip("/")


class _Failure(enum.Enum):
    """Why one attempt failed, and what that says about whether eSMS saw the request."""

    NOT_SENT = "not_sent"  # the connection never opened: eSMS certainly did not see it
    MAYBE = "maybe"  # timeout, broken connection or 5xx: eSMS may have acted on it
    THROTTLED = "throttled"  # 160: eSMS saw it and refused it


@dataclass(frozen=True, slots=True)
class _Attempt:
    """One HTTP round trip: a retryable failure (or None), the error, the reply, its code."""

    failure: _Failure | None
    error: EsmsError | None
    data: dict[str, Any] | None = None
    code: int | None = None
    unreadable: bool = False  # eSMS answered, but not with anything we could read


@dataclass(slots=True)
class _Exchange:
    """The result of one call with its retries."""

    data: dict[str, Any] | None = None  # the last parsed reply, also for an error code
    error: EsmsError | None = None
    may_have_reached: bool = False  # an attempt failed in a way eSMS may have acted on


def _as_code(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
        return int(float(value.strip()))
    return None


def _read_envelope(endpoint: str, content: bytes) -> tuple[int, dict[str, Any]]:
    """Read any eSMS reply: return (100, body) on success, else raise the matching EsmsError.

    eSMS uses `CodeResult`, `CodeResponse`, `Code` or `Error` (0 = ok), as strings or ints.
    A body that is not JSON, or has no code, raises EsmsTransientError.
    """
    try:
        data = json.loads(content)
    except ValueError:
        data = None
    # Raised outside the except block so no decoder error (or reply text) rides along.
    if not isinstance(data, dict):
        raise EsmsTransientError(f"{_UNREADABLE} ({_name(endpoint)})", endpoint=endpoint)
    lowered = {str(key).lower(): value for key, value in data.items()}
    kind = next((key for key in _CODE_KEYS if key in lowered), None)
    code = _as_code(lowered[kind]) if kind else None
    if code is None:
        raise EsmsTransientError(f"{_UNREADABLE} ({_name(endpoint)})", endpoint=endpoint)
    if kind == "error":  # GetZnsTemplateInfo: 0 means success
        code = _OK if code == 0 else code
    if code == _OK:
        return _OK, data
    raw = lowered.get("errormessage") or lowered.get("message") or ""
    raise esms_error(code, endpoint=endpoint, raw_message=str(raw)[:300])


def _name(endpoint: str) -> str:
    return endpoint.rstrip("/")


class EsmsClient:
    """Talks to eSMS over one pooled httpx.AsyncClient; never logs or shows credentials."""

    def __init__(
        self,
        *,
        api_key: str | SecretStr,
        secret_key: str | SecretStr,
        base_url: str,
        callback_api_url: str,
        timeout: float = 15.0,
        max_attempts: int = 3,
        retry_backoff: float = 0.5,
        sms_type: str = "25",
        transport: httpx.AsyncBaseTransport | None = None,
        on_call: Callable[[str, float, str], None] | None = None,
    ) -> None:
        self._on_call = on_call  # (endpoint, seconds, code) after each call, e.g. for metrics
        self._api_key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        self._secret_key = (
            secret_key if isinstance(secret_key, SecretStr) else SecretStr(secret_key)
        )
        if not self._api_key.get_secret_value() or not self._secret_key.get_secret_value():
            raise ConfigError("missing setting: ESMS_API_KEY and ESMS_SECRET_KEY must both be set")
        for name, url in (("ESMS_BASE_URL", base_url), ("ESMS_CALLBACK_API_URL", callback_api_url)):
            if not url.lower().startswith(("http://", "https://")):
                raise ConfigError(f"{name} must start with http:// or https:// (got {url!r})")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._base_url = base_url
        self._callback_api_url = callback_api_url
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._retry_backoff = retry_backoff
        self._sms_type = sms_type
        # GET endpoints carry the credentials in the query string, and httpx logs the full
        # URL at INFO: its records are redacted on the logger, before any handler sees them,
        # with these very keys blanked too (not only `ApiKey=...` as the patterns know it).
        redact_loggers("httpx", __name__, secrets=(self._api_key, self._secret_key))
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            transport=transport,
            headers={"Accept": "application/json"},
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, *, on_call: Callable[[str, float, str], None] | None = None
    ) -> EsmsClient:
        missing = [
            name
            for name, value in (
                ("ESMS_API_KEY", settings.esms_api_key),
                ("ESMS_SECRET_KEY", settings.esms_secret_key),
            )
            if value is None or not value.get_secret_value()
        ]
        if missing:
            raise ConfigError(
                f"missing setting{'s' if len(missing) > 1 else ''}: {', '.join(missing)} "
                "(set in the environment or in .env; see .env.example)"
            )
        assert settings.esms_api_key is not None and settings.esms_secret_key is not None
        return cls(
            api_key=settings.esms_api_key,
            secret_key=settings.esms_secret_key,
            base_url=settings.esms_base_url,
            callback_api_url=settings.esms_callback_api_url,
            timeout=settings.esms_timeout,
            max_attempts=settings.esms_max_attempts,
            retry_backoff=settings.esms_retry_backoff,
            sms_type=settings.esms_sms_type,
            on_call=on_call,
        )

    def __repr__(self) -> str:
        return (
            f"EsmsClient(base_url={self._base_url!r}, callback_api_url={self._callback_api_url!r}, "
            f"timeout={self._timeout!r}, max_attempts={self._max_attempts!r})"
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- sending -------------------------------------------------------------------------

    async def send_zns(self, msg: ZnsMessage) -> SubmitResult:
        """Submit one ZNS (V4, positional Params); retries re-send the identical body.

        ACCEPTED (code 100, with the SMSID); ALREADY_SUBMITTED (code 124: this RequestId
        reached eSMS before); UNKNOWN when an attempt may have reached eSMS but no usable
        answer came back (timeouts, 5xx, garbled replies). Raises EsmsTransientError when eSMS
        could not be reached at all (nothing was sent), and the code's EsmsError otherwise.
        """
        body = self._credentials()
        body.update(self._message_fields(msg))
        body["RequestId"] = msg.request_id
        body["Sandbox"] = "1" if msg.sandbox else "0"
        if msg.campaign is not None:
            body["campaignid"] = msg.campaign
        if msg.callback_url is not None:
            body["CallbackUrl"] = msg.callback_url
        if msg.send_date is not None:
            body["SendDate"] = msg.send_date

        exchange = await self._exchange(SEND, "POST", join_url(self._base_url, SEND), body=body)
        error = exchange.error
        if error is None:
            sms_id = _text(exchange.data, "SMSID")
            detail = "" if sms_id else "eSMS accepted the message but sent no SMSID"
            return SubmitResult(SubmitOutcome.ACCEPTED, msg.request_id, sms_id, detail)
        if isinstance(error, EsmsDuplicateError) and error.code == _DUPLICATE:
            return SubmitResult(
                SubmitOutcome.ALREADY_SUBMITTED,
                msg.request_id,
                _text(exchange.data, "SMSID"),
                f"eSMS already has a message with RequestId {msg.request_id}; "
                "it was submitted before (eSMS code 124)",
            )
        if exchange.may_have_reached:
            # An earlier attempt may have been accepted; a later refusal does not undo it.
            return SubmitResult(
                SubmitOutcome.UNKNOWN,
                msg.request_id,
                None,
                f"{error}; the message may or may not have been sent, so its status must be "
                f"checked before sending again (RequestId {msg.request_id})",
            )
        raise error

    async def estimate_price(self, msg: ZnsMessage) -> PriceEstimate:
        """Ask eSMS what the message would cost, without sending it."""
        body = self._credentials()
        body.update(self._message_fields(msg))
        data = await self._request(SUMMARY, "POST", join_url(self._base_url, SUMMARY), body=body)
        return PriceEstimate(
            total_price=_float(data, "TotalPrice") or 0.0,
            total_receiver=_int(data, "TotalReceiver") or 0,
        )

    # --- delivery status -----------------------------------------------------------------

    async def query_zns_status(self, sms_id: str) -> DeliveryReport:
        """QueryZnsStatus: the best single poll for one ZNS (100 req/s)."""
        body = self._credentials() | {"SmsId": sms_id, "SmsType": self._sms_type}
        url = join_url(self._base_url, QUERY_ZNS_STATUS)
        data = await self._request(QUERY_ZNS_STATUS, "POST", url, body=body)
        inner = data.get("Data") if isinstance(data.get("Data"), dict) else data
        code, message = parse_error_info(_text(inner, "ErrorInfo"))
        final = _text(inner, "FinalStatus")
        return DeliveryReport(
            sms_id=_text(inner, "SMSID") or sms_id,
            send_status=_int(inner, "SendStatus"),
            send_success=_int(inner, "SendSuccess") or 0,
            send_failed=_int(inner, "SendFailed") or 0,
            total_price=_float(inner, "TotalPrice"),
            error_code=code,
            error_message=message,
            final=None if final is None else final.strip() == "1",
            zalo_msg_id=_text(inner, "ZaloMsgId"),
        )

    async def get_send_status(self, sms_id: str) -> DeliveryReport:
        """GetSendStatus: counts and SendStatus of any message from the last 7 days."""
        url = join_url(self._base_url, GET_SEND_STATUS)
        data = await self._request(
            GET_SEND_STATUS, "GET", url, params={"RefId": sms_id, **self._credentials()}
        )
        return DeliveryReport(
            sms_id=_text(data, "SMSID") or sms_id,
            send_status=_int(data, "SendStatus"),
            send_success=_int(data, "SendSuccess") or 0,
            send_failed=_int(data, "SendFailed") or 0,
            total_price=_float(data, "TotalPrice"),
        )

    async def get_callbacks(self, sms_ids: Sequence[str], oaid: str) -> list[DeliveryReport]:
        """GetCallback: replay the callbacks of sends made with a CallbackUrl (≤200 per call)."""
        reports: list[DeliveryReport] = []
        url = join_url(self._callback_api_url, GET_CALLBACK)
        ids = list(sms_ids)
        for start in range(0, len(ids), CALLBACK_BATCH):
            body = self._credentials() | {
                "ListRefid": ids[start : start + CALLBACK_BATCH],
                "OAId": oaid,
            }
            data = await self._request(GET_CALLBACK, "POST", url, body=body)
            items = data.get("Data_callback") or []
            reports.extend(_callback_report(item) for item in items if isinstance(item, dict))
        return reports

    # --- templates, account --------------------------------------------------------------

    async def list_templates(self, oaid: str) -> list[Template]:
        body = self._credentials() | {"OAId": oaid, "SmsType": self._sms_type}
        data = await self._request(
            GET_TEMPLATE, "POST", join_url(self._base_url, GET_TEMPLATE), body=body
        )
        templates = []
        for item in data.get("ZNSTemplates") or []:
            if not isinstance(item, dict):
                continue
            details = [d for d in item.get("ZNSTempDetail") or [] if isinstance(d, dict)]
            params = tuple(
                TemplateParam(
                    name=_text(detail, "Param") or f"param{position}",
                    level=_int(detail, "ParamLevel") or position,
                    max_length=_limit(detail, "Limit"),
                    type=ParamType.from_esms(_text(detail, "RequireType")),
                )
                for position, detail in enumerate(details, start=1)
            )
            templates.append(
                Template(
                    id=_text(item, "TempId") or "",
                    name=_text(item, "TempName") or "",
                    oaid=oaid,
                    params=params,
                    content=_text(item, "TempContent") or "",
                )
            )
        return templates

    async def template_info(self, template_id: str, oaid: str) -> TemplateInfo:
        url = join_url(self._base_url, TEMPLATE_INFO)
        params = {"TemplateId": template_id, **self._credentials(), "OAId": oaid}
        data = await self._request(TEMPLATE_INFO, "GET", url, params=params)
        inner = data.get("Data")
        if not isinstance(inner, dict):
            raise EsmsTransientError(
                f"{_UNREADABLE} ({_name(TEMPLATE_INFO)})", endpoint=TEMPLATE_INFO
            )
        limits: dict[str, tuple[int | None, int | None, bool]] = {}
        for item in inner.get("ListParams") or []:
            if isinstance(item, dict) and _text(item, "Name"):
                required = item.get("Require")
                limits[_text(item, "Name") or ""] = (
                    _int(item, "MinLength"),
                    _limit(item, "MaxLength"),
                    required if isinstance(required, bool) else str(required).lower() == "true",
                )
        return TemplateInfo(
            id=_text(inner, "TemplateId") or template_id,
            name=_text(inner, "TemplateName") or "",
            status=TemplateStatus.parse(_text(inner, "Status")),
            reason=_text(inner, "Reason"),
            tag=_text(inner, "TemplateTag"),
            timeout_ms=_int(inner, "Timeout"),
            preview_url=_text(inner, "PreviewUrl"),
            param_limits=limits,
        )

    async def balance(self) -> Balance:
        data = await self._request(
            BALANCE, "POST", join_url(self._base_url, BALANCE), body=self._credentials()
        )
        return Balance(balance=_float(data, "Balance") or 0.0, user_id=_text(data, "UserID"))

    async def quota(self, oaid: str) -> Quota:
        body = self._credentials() | {"OAID": oaid}
        data = await self._request(QUOTA, "POST", join_url(self._base_url, QUOTA), body=body)
        inner = data.get("Data") if isinstance(data.get("Data"), dict) else data
        return Quota(
            daily_quota=_int(inner, "DailyQuota"),
            remaining_quota=_int(inner, "RemainingQuota"),
            daily_quota_promotion=_int(inner, "DailyQuotaPromotion"),
            remaining_quota_promotion=_int(inner, "RemainingQuotaPromotion"),
        )

    async def list_oas(self) -> list[OfficialAccount]:
        data = await self._request(
            LIST_OA, "POST", join_url(self._base_url, LIST_OA), body=self._credentials()
        )
        return [
            OfficialAccount(oaid=_text(item, "OAID") or "", name=_text(item, "OAName") or "")
            for item in data.get("ZOAList") or []
            if isinstance(item, dict)
        ]

    # --- plumbing ------------------------------------------------------------------------

    def _credentials(self) -> dict[str, Any]:
        return {
            "ApiKey": self._api_key.get_secret_value(),
            "SecretKey": self._secret_key.get_secret_value(),
        }

    @staticmethod
    def _message_fields(msg: ZnsMessage) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "Phone": msg.phone,
            "Params": list(msg.params),
            "TempID": msg.template_id,
            "OAID": msg.oaid,
        }
        if msg.is_journey:
            fields["IsJourney"] = True  # the doc's example sends a JSON boolean
            if msg.order_id is not None:
                fields["OrderId"] = msg.order_id
        return fields

    async def _request(
        self,
        endpoint: str,
        method: str,
        url: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        exchange = await self._exchange(endpoint, method, url, body=body, params=params)
        if exchange.error is not None:
            raise exchange.error
        assert exchange.data is not None
        return exchange.data

    async def _exchange(
        self,
        endpoint: str,
        method: str,
        url: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> _Exchange:
        """Send, retrying only transport failures, 5xx and 160; never raises."""
        started = time.perf_counter()
        result = _Exchange()
        attempts = 0
        while True:
            attempts += 1
            attempt = await self._attempt(endpoint, method, url, body, params)
            result.data, result.error = attempt.data, attempt.error
            if attempt.failure is _Failure.MAYBE or attempt.unreadable:
                result.may_have_reached = True
            if attempt.failure is None:
                break
            if attempts >= self._max_attempts:
                if attempts > 1 and attempt.error is not None and attempt.error.code is None:
                    result.error = EsmsTransientError(
                        f"{attempt.error} (gave up after {attempts} attempts)", endpoint=endpoint
                    )
                break
            await asyncio.sleep(self._backoff(attempts))
        elapsed = time.perf_counter() - started
        log.debug(
            "esms call endpoint=%s code=%s attempts=%d elapsed_ms=%d result=%s",
            _name(endpoint),
            attempt.code,
            attempts,
            elapsed * 1000,
            "ok" if result.error is None else type(result.error).__name__,
        )
        if self._on_call is not None:
            code = attempt.code if attempt.code is not None else type(result.error).__name__
            self._on_call(_name(endpoint), elapsed, str(code))
        return result

    async def _attempt(
        self,
        endpoint: str,
        method: str,
        url: str,
        body: Mapping[str, Any] | None,
        params: Mapping[str, str] | None,
    ) -> _Attempt:
        """One HTTP round trip, classified."""
        failure: _Failure | None = None
        message = ""
        try:
            response = await self._http.request(method, url, json=body, params=params)
        except httpx.UnsupportedProtocol:
            failure = None
            message = "the eSMS URL is not an http(s) URL"
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout):
            failure, message = (
                _Failure.NOT_SENT,
                "could not connect to eSMS; the request was not sent",
            )
        except httpx.TimeoutException:
            failure, message = _Failure.MAYBE, f"eSMS did not answer within {self._timeout:g} s"
        except httpx.RequestError:
            failure, message = _Failure.MAYBE, "the connection to eSMS broke before its reply"
        # Errors are raised later, outside these except blocks, so no httpx exception (whose
        # request carries the URL with its query-string credentials) is ever chained to them.
        if message:
            if failure is None:
                return _Attempt(None, EsmsConfigError(message, endpoint=endpoint))
            return _Attempt(failure, EsmsTransientError(message, endpoint=endpoint))

        status = response.status_code
        if status >= 500:
            text = f"eSMS had a server error (HTTP {status}) at {_name(endpoint)}"
            return _Attempt(_Failure.MAYBE, EsmsTransientError(text, endpoint=endpoint))
        try:
            code, data = _read_envelope(endpoint, response.content)
        except EsmsError as exc:
            error: EsmsError = exc
        else:
            return _Attempt(None, None, data, code)
        reply = _safe_json(response.content)
        if error.code == _THROTTLED:
            return _Attempt(_Failure.THROTTLED, error, reply, error.code)
        if error.code is None and status >= 400:
            # A 4xx without an eSMS code: the request was refused, typically a wrong URL.
            refused = EsmsConfigError(
                f"eSMS refused the request with HTTP {status} at {_name(endpoint)} "
                "(check ESMS_BASE_URL)",
                endpoint=endpoint,
            )
            return _Attempt(None, refused, reply)
        return _Attempt(None, error, reply, error.code, unreadable=error.code is None)

    def _backoff(self, attempt: int) -> float:
        delay = self._retry_backoff * 2.0 ** (attempt - 1)
        return delay + random.uniform(0, self._retry_backoff / 4)


def _safe_json(content: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(content)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _lookup(data: Mapping[str, Any] | None, key: str) -> Any:
    if not data:
        return None
    if key in data:
        return data[key]
    lowered = key.lower()
    for name, value in data.items():
        if str(name).lower() == lowered:
            return value
    return None


def _text(data: Mapping[str, Any] | None, key: str) -> str | None:
    value = _lookup(data, key)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _float(data: Mapping[str, Any] | None, key: str) -> float | None:
    value = _lookup(data, key)
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _int(data: Mapping[str, Any] | None, key: str) -> int | None:
    number = _float(data, key)
    return None if number is None else int(number)


def _limit(data: Mapping[str, Any] | None, key: str) -> int | None:
    """A length limit; missing, 0 or negative means eSMS did not say (unknown), never 0."""
    number = _int(data, key)
    return number if number is not None and number >= 1 else None


def _callback_report(item: Mapping[str, Any]) -> DeliveryReport:
    code, message = parse_error_info(_text(item, "ErrorInfo"))
    return DeliveryReport(
        sms_id=_text(item, "SMSID") or "",
        send_status=_int(item, "SendStatus"),
        send_success=_int(item, "SendSuccess") or 0,
        send_failed=_int(item, "SendFailed") or 0,
        total_price=_float(item, "TotalPrice"),
        error_code=code,
        error_message=message,
        zalo_msg_id=_text(item, "Partnerids"),
        request_id=_text(item, "RequestId"),
    )
