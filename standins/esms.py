"""A local eSMS stand-in: a real HTTP server on 127.0.0.1 for tests and `make demo`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import quote

import httpx
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from standins.servers import ServerThread, run_until_stopped

DEFAULT_API_KEY = "standin-api-key"
DEFAULT_SECRET_KEY = "standin-secret-key"  # noqa: S105 - a fake key for the fake gateway
DEMO_OAID = "4097311281936189049"
SECOND_OAID = "1397492183140006179"
OTP_TEMPLATE = "205644"
ORDER_TEMPLATE = "231001"
JOURNEY_TEMPLATE = "231002"
DISABLED_TEMPLATE = "231003"
PENDING_TEMPLATE = "231004"
SECOND_OA_TEMPLATE = "300100"
TWENTY_PARAMS_TEMPLATE = "231020"  # 20 text parameters of 3,000 characters (Slack's input maximum)
TWENTY_PARAMS = 20
TWENTY_PARAMS_LIMIT = 3000

CallbackEncoding = Literal["json_in_string", "double_urlencoded", "plain", "junk"]
_VN = timezone(timedelta(hours=7))
_NET_JUNK = "Object reference not set to an instance of an object."


# --- the seeded catalogue ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StandInParam:
    name: str
    level: int
    limit: int | None  # None: eSMS gives no Limit (GetTemplate leaves it out)
    require_type: str  # type_text | type_number | type_date | type_cta_url


@dataclass(frozen=True, slots=True)
class StandInTemplate:
    id: str
    name: str
    oaid: str
    params: tuple[StandInParam, ...]  # in catalogue order, which need not be ParamLevel order
    content: str
    price: float
    status: str = "ENABLE"
    tag: str = "TRANSACTION"
    journey: bool = False
    reason: str | None = None
    timeout_ms: int = 7_200_000


OFFICIAL_ACCOUNTS: tuple[tuple[str, str], ...] = (
    (DEMO_OAID, "Demo Shop"),
    (SECOND_OAID, "Demo Logistics"),
)

TEMPLATES: tuple[StandInTemplate, ...] = (
    StandInTemplate(
        OTP_TEMPLATE,
        "OTP",
        DEMO_OAID,
        (StandInParam("otp", 1, 10, "type_text"),),
        "<p>Mã xác thực của bạn là &lt;otp&gt;. Mã có hiệu lực trong 5 phút.</p>",
        price=300.0,
    ),
    StandInTemplate(
        ORDER_TEMPLATE,
        "Order confirmation",
        DEMO_OAID,
        (
            StandInParam("order_date", 3, 10, "type_date"),
            StandInParam("customer_name", 1, 30, "type_text"),
            StandInParam("tracking_url", 5, 200, "type_cta_url"),
            StandInParam("amount", 4, 12, "type_number"),
            StandInParam("order_code", 2, 20, "type_text"),
        ),
        "<p>Xin chào &lt;customer_name&gt;, đơn hàng &lt;order_code&gt; đặt ngày "
        "&lt;order_date&gt; trị giá &lt;amount&gt;đ đã được xác nhận. "
        "Theo dõi: &lt;tracking_url&gt;</p>",
        price=330.0,
    ),
    StandInTemplate(
        JOURNEY_TEMPLATE,
        "Shipping update",
        DEMO_OAID,
        (
            StandInParam("status", 2, 50, "type_text"),
            StandInParam("order_code", 1, 20, "type_text"),
            StandInParam("eta", 3, 10, "type_date"),
        ),
        "<p>Đơn hàng &lt;order_code&gt;: &lt;status&gt;. Dự kiến giao &lt;eta&gt;.</p>",
        price=220.0,
        journey=True,
    ),
    StandInTemplate(
        DISABLED_TEMPLATE,
        "Summer promotion",
        DEMO_OAID,
        (StandInParam("customer_name", 1, 30, "type_text"),),
        "<p>&lt;customer_name&gt; ơi, giảm 50% mùa hè!</p>",
        price=330.0,
        status="DISABLE",
        tag="PROMOTION",
        reason="Template quality is low",
    ),
    StandInTemplate(
        PENDING_TEMPLATE,
        "Loyalty points",
        DEMO_OAID,
        (
            StandInParam("points", 2, 12, "type_number"),
            StandInParam("customer_name", 1, 30, "type_text"),
        ),
        "<p>&lt;customer_name&gt; có &lt;points&gt; điểm thưởng.</p>",
        price=330.0,
        status="PENDING_REVIEW",
        tag="CUSTOMER_CARE",
    ),
    StandInTemplate(
        SECOND_OA_TEMPLATE,
        "Delivery appointment",
        SECOND_OAID,
        (
            StandInParam("customer_name", 1, 30, "type_text"),
            StandInParam("appointment_date", 2, 10, "type_date"),
        ),
        "<p>&lt;customer_name&gt;, lịch giao hàng của bạn: &lt;appointment_date&gt;.</p>",
        price=330.0,
    ),
    # The most an approver may have to read: every value at its limit.
    StandInTemplate(
        TWENTY_PARAMS_TEMPLATE,
        "Contract summary",
        DEMO_OAID,
        tuple(
            StandInParam(f"clause_{n:02}", n, TWENTY_PARAMS_LIMIT, "type_text")
            for n in range(1, TWENTY_PARAMS + 1)
        ),
        "<p>" + " ".join(f"&lt;clause_{n:02}&gt;" for n in range(1, TWENTY_PARAMS + 1)) + "</p>",
        price=330.0,
    ),
)

# Zalo's own (English) messages, as eSMS relays them.
_ZALO_MESSAGES = {
    -114: (
        "User is inactive, or reject the message, or using an outdated Zalo version, "
        "or other internal errors"
    ),
    -118: "Zalo account not existed",
    -124: "Access token is invalid",
    -133: "Cannot send ZNS at night",
    -144: "OA has exceeded the daily quota",
    1001: "Timeout",
}


# --- the eSMS stand-in ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the stand-in received."""

    method: str
    path: str
    endpoint: str | None  # canonical endpoint name, None for an unknown path
    body: dict[str, Any] | None
    query: dict[str, str]


@dataclass(slots=True)
class _Fault:
    endpoint: str
    delay: float | None
    status: int | None
    body: str | bytes | None
    code: int | str | None
    remaining: int

    @property
    def replaces_reply(self) -> bool:
        return self.status is not None or self.body is not None or self.code is not None


@dataclass(frozen=True, slots=True)
class _Outcome:
    success: bool
    zalo_error: int | None = None
    zalo_msg_id: str = field(default_factory=lambda: uuid.uuid4().hex[:20])
    at: datetime = field(default_factory=lambda: datetime.now(_VN))


@dataclass(slots=True)
class _StoredSend:
    sms_id: str
    body: dict[str, Any]  # keys lower-cased
    template: StandInTemplate
    journey: bool
    outcome: _Outcome | None = None


@dataclass(frozen=True, slots=True)
class _Route:
    name: str
    method: str
    envelope: str  # CodeResult | CodeResponse | Code | Error
    handler: str


_ROUTES: dict[str, _Route] = {
    "mainservice.svc/json/sendzalomessage_v4_post_json": _Route(
        "SendZaloMessage_V4_post_json", "POST", "CodeResult", "_on_send"
    ),
    "mainservice.svc/json/summaryzalomessage_v4_post_json": _Route(
        "SummaryZaloMessage_V4_post_json", "POST", "CodeResult", "_on_summary"
    ),
    "mainservice.svc/json/queryznsstatus": _Route(
        "QueryZnsStatus", "POST", "CodeResult", "_on_query_zns_status"
    ),
    "mainservice.svc/json/getsendstatus": _Route(
        "GetSendStatus", "GET", "CodeResponse", "_on_get_send_status"
    ),
    "mainservice.svc/json/gettemplate": _Route(
        "GetTemplate", "POST", "CodeResult", "_on_templates"
    ),
    "mainservice.svc/json/getznstemplateinfo": _Route(
        "GetZnsTemplateInfo", "GET", "Error", "_on_template_info"
    ),
    "mainservice.svc/json/getbalance_json": _Route(
        "GetBalance_json", "POST", "CodeResponse", "_on_balance"
    ),
    "mainservice.svc/json/zns/getquota": _Route("ZNS/GetQuota", "POST", "CodeResult", "_on_quota"),
    "mainservice.svc/json/zns/getlistzoa": _Route(
        "ZNS/GetListZOA", "POST", "CodeResult", "_on_list_oas"
    ),
    "zalocallback/getcallback": _Route("GetCallback", "POST", "Code", "_on_get_callback"),
}
SEND_ENDPOINT = "SendZaloMessage_V4_post_json"


def _route_key(name: str) -> str:
    """Find the route for an endpoint name given loosely ("ZNS/GetQuota/", "getquota", ...)."""
    wanted = name.strip("/").lower()
    for key in _ROUTES:
        if key == wanted or key.endswith("/" + wanted):
            return key
    raise ValueError(f"the eSMS stand-in has no endpoint called {name!r}")


def _envelope(route: _Route, code: int | str, message: str, **extra: Any) -> dict[str, Any]:
    if route.envelope == "Code":
        return {"Code": int(code), "Message": message, **extra}
    if route.envelope == "Error":
        as_int = int(code)
        return {"Data": None, "Error": 0 if as_int == 100 else as_int, "Message": message, **extra}
    reply: dict[str, Any] = {route.envelope: str(code), "ErrorMessage": message}
    if route.handler == "_on_send":
        reply["CountRegenerate"] = 0
    reply.update(extra)
    return reply


def _success(route: _Route) -> dict[str, Any]:
    """The documented success envelope (no ErrorMessage unless the handler adds one)."""
    if route.envelope == "Code":
        return {"Code": 100, "Message": "Success"}
    if route.envelope == "Error":
        return {"Data": None, "Error": 0, "Message": "Success"}
    reply: dict[str, Any] = {route.envelope: "100"}
    if route.handler == "_on_send":
        reply["CountRegenerate"] = 0
    return reply


class _Rejected(Exception):
    """A request eSMS would refuse with `code`."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_PHONE = re.compile(r"0\d{9}|84\d{9}")
_DATE = re.compile(r"\d{2}/\d{2}/\d{4}")


class EsmsStandIn:
    """A fake eSMS gateway with the documented endpoints, validation, faults and callbacks."""

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        secret_key: str = DEFAULT_SECRET_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        balance: float = 5_000_000.0,
        daily_quota: int = 500,
        auto_deliver: float | None = None,
    ) -> None:
        self._api_key = api_key
        self._secret_key = secret_key
        self._initial_balance = balance
        self._daily_quota = daily_quota
        self._auto_deliver = auto_deliver
        self._lock = threading.RLock()
        self._requests: list[RecordedRequest] = []
        self._faults: list[_Fault] = []
        self._sends: dict[str, _StoredSend] = {}
        self._request_ids: set[str] = set()
        self._balance = balance
        self._remaining_quota: dict[str, int] = {}
        self._oas: tuple[tuple[str, str], ...] = OFFICIAL_ACCOUNTS
        self._templates: tuple[StandInTemplate, ...] = TEMPLATES
        self._wake = asyncio.Event()  # set to end every pending injected delay at once
        self._tasks: set[asyncio.Task[None]] = set()
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST"])])
        self._server = ServerThread(app, host=host, port=port)

    # lifecycle

    def start(self) -> Self:
        self._server.start()
        return self

    def stop(self) -> None:
        self._release_delays()
        self._server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget requests, faults, sends and RequestIds; restore balance and quota."""
        self._release_delays()
        with self._lock:
            self._requests.clear()
            self._faults.clear()
            self._sends.clear()
            self._request_ids.clear()
            self._balance = self._initial_balance
            self._remaining_quota.clear()
            self._oas, self._templates = OFFICIAL_ACCOUNTS, TEMPLATES

    def use_catalogue(
        self, oas: Sequence[tuple[str, str]], templates: Sequence[StandInTemplate]
    ) -> None:
        """Serve these OAs (id, name) and templates until reset() restores the default ones."""
        with self._lock:
            self._oas, self._templates = tuple(oas), tuple(templates)

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def base_url(self) -> str:
        return f"{self._server.url}/MainService.svc/json/"

    @property
    def callback_api_url(self) -> str:
        return f"{self._server.url}/ZaloCallback/"

    @property
    def api_key(self) -> str:
        return self._api_key

    @property
    def secret_key(self) -> str:
        return self._secret_key

    # configuration and inspection

    @property
    def balance(self) -> float:
        with self._lock:
            return self._balance

    @balance.setter
    def balance(self, value: float) -> None:
        with self._lock:
            self._balance = value

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, endpoint: str) -> list[RecordedRequest]:
        name = _ROUTES[_route_key(endpoint)].name
        return [r for r in self.requests if r.endpoint == name]

    def sends(self) -> list[dict[str, Any]]:
        """The JSON bodies of every send request received (accepted or not), in order."""
        return [r.body for r in self.requests_to(SEND_ENDPOINT) if r.body is not None]

    def stored_sms_ids(self) -> list[str]:
        """SMSIDs of the accepted, non-sandbox sends (the ones that can be queried)."""
        with self._lock:
            return list(self._sends)

    def inject(
        self,
        endpoint_name: str,
        *,
        delay: float | None = None,
        status: int | None = None,
        body: str | bytes | None = None,
        code: int | str | None = None,
        times: int = 1,
    ) -> None:
        """Make the next `times` requests to an endpoint misbehave.

        `status`, `body` or `code` replace the real reply (the request is not acted on);
        a `delay` alone acts on the request, then holds the reply back (a lost reply).
        """
        if times < 1:
            raise ValueError("times must be at least 1")
        if delay is None and status is None and body is None and code is None:
            raise ValueError("inject() needs a delay, status, body or code")
        fault = _Fault(_route_key(endpoint_name), delay, status, body, code, times)
        with self._lock:
            self._faults.append(fault)

    def deliver(self, sms_id: str, *, success: bool = True, zalo_error: int | None = None) -> None:
        """Set the delivery outcome that status polls and GetCallback report from now on."""
        if success:
            outcome = _Outcome(True)
        else:
            outcome = _Outcome(False, -114 if zalo_error is None else zalo_error)
        with self._lock:
            self._stored(sms_id).outcome = outcome

    async def fire_callback(
        self,
        sms_id: str,
        *,
        encoding: CallbackEncoding = "json_in_string",
        send_status: int = 5,
        success: bool | None = None,
        zalo_error: int | None = None,
        http_timeout: float = 5.0,
    ) -> int:
        """GET the send's CallbackUrl the way eSMS does; return the HTTP status received."""
        url = self._callback_request(sms_id, encoding, send_status, success, zalo_error)
        async with httpx.AsyncClient(timeout=http_timeout) as http:
            response = await http.get(url)
        return response.status_code

    def fire_callback_sync(
        self,
        sms_id: str,
        *,
        encoding: CallbackEncoding = "json_in_string",
        send_status: int = 5,
        success: bool | None = None,
        zalo_error: int | None = None,
        http_timeout: float = 5.0,
    ) -> int:
        """Like fire_callback, for synchronous code."""
        url = self._callback_request(sms_id, encoding, send_status, success, zalo_error)
        with httpx.Client(timeout=http_timeout) as http:
            return http.get(url).status_code

    # callback building

    def _callback_request(
        self,
        sms_id: str,
        encoding: CallbackEncoding,
        send_status: int,
        success: bool | None,
        zalo_error: int | None,
    ) -> str:
        if success is not None:
            self.deliver(sms_id, success=success, zalo_error=zalo_error)
        with self._lock:
            send = self._stored(sms_id)
            outcome = send.outcome
        target = send.body.get("callbackurl")
        if not target:
            raise ValueError(f"send {sms_id} was made without a CallbackUrl")
        final = send_status == 5
        if final and outcome is None:
            raise ValueError(f"send {sms_id} has no outcome yet: call deliver() or pass success=")

        delivered = final and outcome is not None and outcome.success
        failed = (final and outcome is not None and not outcome.success) or send_status == 4
        pairs = [
            ("SMSID", sms_id),
            ("SendFailed", "1" if failed else "0"),
            ("SendStatus", str(send_status)),
            ("SendSuccess", "1" if delivered else "0"),
            ("TotalPrice", f"{send.template.price if delivered else 0:.4f}"),
            ("TotalReceiver", "1"),
            ("TotalSent", "1" if final else "0"),
            ("RequestId", ""),  # every documented sample leaves it empty
            ("TypeId", "27" if send.journey else "25"),
            ("telcoid", "2"),
            ("phonenumber", str(send.body.get("phone", ""))),
            ("partnerids", outcome.zalo_msg_id if delivered and outcome else ""),
            ("oaid", send.template.oaid),
            ("tempid", send.template.id),
        ]
        query = "&".join(f"{key}={quote(value, safe='')}" for key, value in pairs)
        if final and outcome is not None:
            query += "&error_info=" + _encode_error_info(outcome, encoding)
        separator = "&" if "?" in str(target) else "?"
        return f"{target}{separator}{query}"

    # HTTP handling

    async def _handle(self, request: Request) -> Response:
        key = request.url.path.strip("/").lower()
        route = _ROUTES.get(key)
        try:
            raw = await request.body()
        except ClientDisconnect:  # the caller gave up (a bot shutting down): nobody to answer
            return Response(status_code=499)
        body: dict[str, Any] | None = None
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
            body = parsed if isinstance(parsed, dict) else None
        with self._lock:
            self._requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.url.path,
                    endpoint=route.name if route else None,
                    body=body,
                    query=dict(request.query_params),
                )
            )
            fault = self._take_fault(key) if route else None
        if route is None:
            return PlainTextResponse("Endpoint not found.", status_code=404)
        if fault is not None and fault.replaces_reply:
            await self._hold(fault.delay)
            return _fault_response(route, fault)
        if request.method != route.method:
            return PlainTextResponse("Method not allowed.", status_code=405)
        if route.method == "POST" and body is None:
            return PlainTextResponse("The request body is not valid JSON.", status_code=400)
        fields = {k.lower(): v for k, v in (body or dict(request.query_params)).items()}
        try:
            if fields.get("apikey") != self._api_key or fields.get("secretkey") != self._secret_key:
                raise _Rejected(101, "Authorize Failed")
            with self._lock:
                reply = getattr(self, route.handler)(fields)
            reply = {**_success(route), **reply}
        except _Rejected as rejected:
            reply = _envelope(route, rejected.code, rejected.message)
        if fault is not None:
            await self._hold(fault.delay)
        return JSONResponse(reply)

    def _take_fault(self, key: str) -> _Fault | None:
        for fault in self._faults:
            if fault.endpoint == key:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    async def _hold(self, delay: float | None) -> None:
        if not delay:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=delay)

    def _release_delays(self) -> None:
        def swap() -> None:
            self._wake.set()
            self._wake = asyncio.Event()

        self._server.call_soon(swap)

    def _stored(self, sms_id: str) -> _StoredSend:
        try:
            return self._sends[sms_id]
        except KeyError:
            raise KeyError(f"the stand-in has no stored send {sms_id!r}") from None

    # endpoint handlers: called with the lock held, return the reply's extra fields

    def _validate_message(self, f: Mapping[str, Any]) -> tuple[StandInTemplate, bool]:
        oaid, temp_id = str(f.get("oaid") or ""), str(f.get("tempid") or "")
        if not oaid or not temp_id:
            raise _Rejected(791, "Missing OAID or TempID")
        if oaid not in dict(self._oas):
            raise _Rejected(799, "OAID is not active or not added to the account")
        template = self._find_template(oaid, temp_id)
        if template is None:
            raise _Rejected(789, "TemplateId is not config")
        if not _PHONE.fullmatch(str(f.get("phone") or "")):
            raise _Rejected(108, "Phone invalid")
        if template.status != "ENABLE":
            raise _Rejected(790, f"Template is {template.status}")
        journey = _truthy(f.get("isjourney"))
        if journey and not str(f.get("orderid") or "").strip():
            raise _Rejected(110, "OrderId is required for a journey message")
        if journey and not template.journey:
            raise _Rejected(790, "Template is not a journey template")
        _check_params(template, f.get("params"))
        send_date = f.get("senddate")
        if send_date is not None:
            try:
                datetime.strptime(str(send_date), "%Y-%m-%d %H:%M:%S")
            except ValueError:
                raise _Rejected(110, "SendDate must be yyyy-MM-dd HH:mm:ss") from None
        return template, journey

    def _on_send(self, f: Mapping[str, Any]) -> dict[str, Any]:
        request_id = str(f.get("requestid") or "")
        if len(request_id) > 50:
            raise _Rejected(110, "RequestId is longer than 50 characters")
        if request_id and request_id in self._request_ids:
            raise _Rejected(124, "RequestId is duplicated")
        template, journey = self._validate_message(f)
        sms_id = uuid.uuid4().hex + str(len(self._sends) + 250)
        if _truthy(f.get("sandbox")):
            return {"SMSID": sms_id}  # checked only: not stored, charged or delivered
        if self._balance < template.price:
            raise _Rejected(103, "Balance is not enough")
        self._balance -= template.price
        remaining = self._remaining_quota.get(template.oaid, self._daily_quota)
        self._remaining_quota[template.oaid] = max(0, remaining - 1)
        if request_id:
            self._request_ids.add(request_id)
        self._sends[sms_id] = _StoredSend(sms_id, dict(f), template, journey)
        if self._auto_deliver is not None:
            self._schedule_auto_delivery(sms_id, str(f.get("phone")))
        return {"SMSID": sms_id}

    def _on_summary(self, f: Mapping[str, Any]) -> dict[str, Any]:
        template, _journey = self._validate_message(f)
        return {"ErrorMessage": "success", "TotalPrice": template.price, "TotalReceiver": 1}

    def _status_fields(self, send: _StoredSend) -> dict[str, Any]:
        outcome = send.outcome
        delivered = outcome is not None and outcome.success
        return {
            "SMSID": send.sms_id,
            "SendFailed": 1 if outcome is not None and not outcome.success else 0,
            "SendStatus": 5 if outcome is not None else 2,
            "SendSuccess": 1 if delivered else 0,
            "TotalPrice": send.template.price if delivered else 0.0,
            "TotalReceiver": 1,
            "TotalSent": 1 if outcome is not None else 0,
        }

    def _lookup_send(self, sms_id: object) -> _StoredSend:
        if not sms_id:
            raise _Rejected(851, "Missing SMSID")
        send = self._sends.get(str(sms_id))
        if send is None:
            raise _Rejected(105, "SMSID not found")
        return send

    def _on_query_zns_status(self, f: Mapping[str, Any]) -> dict[str, Any]:
        send = self._lookup_send(f.get("smsid"))
        outcome = send.outcome
        data = self._status_fields(send)
        if outcome is None:
            error_info = None
        elif outcome.success:
            error_info = "0"
        else:
            error_info = str(outcome.zalo_error)
        data.update(
            ErrorInfo=error_info,
            FinalStatus="1" if outcome is not None else "0",
            ZaloMsgId=outcome.zalo_msg_id if outcome is not None and outcome.success else None,
        )
        return {"Data": data}

    def _on_get_send_status(self, f: Mapping[str, Any]) -> dict[str, Any]:
        return self._status_fields(self._lookup_send(f.get("refid")))

    def _on_get_callback(self, f: Mapping[str, Any]) -> dict[str, Any]:
        refs = f.get("listrefid")
        if not isinstance(refs, list):
            raise _Rejected(110, "ListRefid must be a list")
        oaid = str(f.get("oaid") or "")
        items = []
        for ref in refs[:200]:  # eSMS drops refs beyond 200
            send = self._sends.get(str(ref))
            if send is None or send.outcome is None or not send.body.get("callbackurl"):
                continue
            if oaid and send.template.oaid != oaid:
                continue
            outcome = send.outcome
            status = self._status_fields(send)
            items.append(
                {
                    **status,
                    "RequestId": str(send.body.get("requestid") or ""),
                    "TypeId": 27 if send.journey else 25,
                    "Telcoid": 2,
                    "PhoneNumber": str(send.body.get("phone") or ""),
                    "CallbackUrl": str(send.body.get("callbackurl")),
                    "Partnerids": outcome.zalo_msg_id if outcome.success else "",
                    "ErrorInfo": json.dumps(_error_object(outcome), separators=(",", ":")),
                    "OAId": send.template.oaid,
                    "ZnsTempId": send.template.id,
                }
            )
        return {"Data_callback": items}

    def _on_templates(self, f: Mapping[str, Any]) -> dict[str, Any]:
        oaid = str(f.get("oaid") or "")
        if oaid not in dict(self._oas):
            raise _Rejected(204, "OAID does not exist")
        return {
            "ZNSTemplates": [
                {
                    "TempId": int(t.id),
                    "TempName": t.name,
                    "TempContent": t.content,
                    "ZNSTempDetail": [
                        {
                            **({} if p.limit is None else {"Limit": p.limit}),
                            "Param": p.name,
                            "ParamLevel": p.level,
                            "RequireType": p.require_type,
                        }
                        for p in t.params
                    ],
                }
                for t in self._templates
                if t.oaid == oaid
            ]
        }

    def _on_template_info(self, f: Mapping[str, Any]) -> dict[str, Any]:
        template = self._find_template(str(f.get("oaid") or ""), str(f.get("templateid") or ""))
        if template is None:
            raise _Rejected(789, "TemplateId is not config")
        return {
            "Data": {
                "TemplateId": int(template.id),
                "TemplateName": template.name,
                "Status": template.status,
                "Reason": template.reason,
                "TemplateTag": template.tag,
                "TemplateQuality": "null",
                "Timeout": template.timeout_ms,
                "PreviewUrl": f"https://account.zalo.cloud/znspreview/{template.id}",
                "ListButtons": [],
                "ListParams": [
                    {
                        "Name": p.name,
                        "Require": True,
                        "Type": "STRING",
                        "MaxLength": p.limit or 0,  # 0 where GetTemplate has no Limit
                        "MinLength": 0,
                        "AcceptNull": False,
                    }
                    for p in sorted(template.params, key=lambda p: p.level)
                ],
            }
        }

    def _on_balance(self, f: Mapping[str, Any]) -> dict[str, Any]:
        return {"Balance": int(self._balance), "UserID": 9999}

    def _on_quota(self, f: Mapping[str, Any]) -> dict[str, Any]:
        oaid = str(f.get("oaid") or "")
        if oaid not in dict(self._oas):
            raise _Rejected(204, "OAID does not exist")
        return {
            "DailyQuota": self._daily_quota,
            "RemainingQuota": self._remaining_quota.get(oaid, self._daily_quota),
            "DailyQuotaPromotion": 100,
            "RemainingQuotaPromotion": 100,
            "MonthlyPromotionQuota": 3000,
            "RemainingMonthlyPromotionQuota": 3000,
            "EstimatedNextMonthPromotionQuota": 3000,
        }

    def _on_list_oas(self, f: Mapping[str, Any]) -> dict[str, Any]:
        oas = [{"OAID": oaid, "OAName": name} for oaid, name in self._oas]
        return {"ErrorMessage": "success", "ZOAList": oas}

    def _find_template(self, oaid: str, temp_id: str) -> StandInTemplate | None:
        wanted = temp_id.strip()
        return next((t for t in self._templates if t.oaid == oaid and t.id == wanted), None)

    # demo mode: deliver every send by itself

    def _schedule_auto_delivery(self, sms_id: str, phone: str) -> None:
        assert self._auto_deliver is not None
        loop = asyncio.get_running_loop()  # handlers run on the server's loop
        loop.call_later(self._auto_deliver, self._start_auto_delivery, sms_id, phone)

    def _start_auto_delivery(self, sms_id: str, phone: str) -> None:
        task = asyncio.get_running_loop().create_task(self._auto_delivery(sms_id, phone))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _auto_delivery(self, sms_id: str, phone: str) -> None:
        # Numbers ending in 000 have "no Zalo account", so the demo can show a failure too.
        success = not phone.endswith("000")
        self.deliver(sms_id, success=success, zalo_error=None if success else -118)
        with self._lock:
            has_callback = bool(self._sends[sms_id].body.get("callbackurl"))
        if has_callback:
            # Like eSMS: a callback that cannot be delivered is simply lost.
            with contextlib.suppress(httpx.HTTPError):
                await self.fire_callback(sms_id)


def _truthy(value: object) -> bool:
    return value is True or str(value).strip().lower() in ("1", "true")


def _check_params(template: StandInTemplate, params: object) -> None:
    if not isinstance(params, list):
        raise _Rejected(790, "Params must be a list")
    # A repeated parameter's value is passed once, where its name first appears, and must
    # suit every place it appears in.
    by_name: dict[str, list[StandInParam]] = {}
    for param in sorted(template.params, key=lambda p: p.level):
        by_name.setdefault(param.name, []).append(param)
    if len(params) != len(by_name):
        raise _Rejected(790, f"Template needs {len(by_name)} params, got {len(params)}")
    for value, occurrences in zip(params, by_name.values(), strict=True):
        for param in occurrences:
            _check_param(param, str(value))


def _check_param(param: StandInParam, text: str) -> None:
    if param.limit is not None and len(text) > param.limit:
        raise _Rejected(790, f"Param {param.name} is longer than {param.limit}")
    if param.require_type == "type_number" and not (text.isdigit() and len(text) <= 12):
        raise _Rejected(790, f"Param {param.name} must be a number")
    if param.require_type == "type_date" and not _is_date(text):
        raise _Rejected(790, f"Param {param.name} must be dd/MM/yyyy")
    if param.require_type == "type_cta_url" and not text.startswith(("http://", "https://")):
        raise _Rejected(790, f"Param {param.name} must be a URL")


def _is_date(text: str) -> bool:
    if not _DATE.fullmatch(text):
        return False
    try:
        datetime.strptime(text, "%d/%m/%Y")
    except ValueError:
        return False
    return True


def _fault_response(route: _Route, fault: _Fault) -> Response:
    if fault.status is not None:
        content = fault.body if fault.body is not None else "Internal Server Error"
        return Response(content, status_code=fault.status, media_type="text/html")
    if fault.body is not None:
        return Response(fault.body, status_code=200, media_type="application/json")
    assert fault.code is not None
    return JSONResponse(_envelope(route, fault.code, "injected by the stand-in"))


def _error_object(outcome: _Outcome) -> dict[str, Any]:
    if outcome.success:
        return {"error": 0, "message": "Success"}
    code = outcome.zalo_error if outcome.zalo_error is not None else -114
    return {"error": code, "message": _ZALO_MESSAGES.get(code, "Zalo error")}


def _encode_error_info(outcome: _Outcome, encoding: CallbackEncoding) -> str:
    """`error_info` exactly as it appears on the wire, in one of eSMS's encodings (§4)."""
    compact = {"separators": (",", ":")}
    error = _error_object(outcome)
    if encoding == "json_in_string":  # ZNS failure sample: JSON inside a JSON string
        return quote(json.dumps(json.dumps(error, **compact)), safe="{}")
    if encoding == "plain":  # UID sample
        if outcome.success:
            error["data"] = {
                "delivery_time": None,
                "message": "The message was delivered to the user's phone",
                "status": 1,
            }
        return quote(json.dumps(error, **compact), safe="{}")
    if encoding == "double_urlencoded":  # journey sample: twice encoded, with a timestamp
        if outcome.success:
            error = {
                "data": {"message_id": outcome.zalo_msg_id, "user_id": "31215806834323092"},
                **error,
            }
        stamp = outcome.at.strftime("%d/%m/%Y %H:%M:%S")
        return quote(quote(json.dumps(error, **compact) + "____" + stamp, safe=""), safe="")
    if encoding == "junk":  # GetCallback sample: .NET junk after the JSON
        return quote(json.dumps(error, **compact) + _NET_JUNK, safe="{}")
    raise ValueError(f"unknown callback encoding {encoding!r}")


DEFAULT_PORT = 3102  # beside the bot's 3000 and the Slack stand-in's 3101


def env_lines(standin: EsmsStandIn) -> list[str]:
    """The settings that point zns-bot at `standin`, as NAME=value lines."""
    return [
        f"ESMS_BASE_URL={standin.base_url}",
        f"ESMS_CALLBACK_API_URL={standin.callback_api_url}",
        f"ESMS_API_KEY={standin.api_key}",
        f"ESMS_SECRET_KEY={standin.secret_key}",
        f"ESMS_OAID={DEMO_OAID}",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m standins.esms",
        description=(
            "Run the local eSMS stand-in on loopback until Ctrl-C, for trying zns-bot "
            "without an eSMS account. It prints the settings to give the bot."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 = any free port")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="the only ApiKey it accepts")
    parser.add_argument(
        "--secret-key", default=DEFAULT_SECRET_KEY, help="the only SecretKey it accepts"
    )
    parser.add_argument(
        "--auto-deliver",
        type=float,
        default=argparse.SUPPRESS,  # the help says what happens without it
        metavar="SECONDS",
        help=(
            "deliver every send after SECONDS and fire its callback (numbers ending 000 "
            "fail with Zalo -118, no Zalo account) (default: off, sends stay accepted)"
        ),
    )
    args = parser.parse_args(argv)
    standin = EsmsStandIn(
        api_key=args.api_key,
        secret_key=args.secret_key,
        host=args.host,
        port=args.port,
        auto_deliver=getattr(args, "auto_deliver", None),
    )

    def banner() -> str:
        env = "\n".join(f"  {line}" for line in env_lines(standin))
        return (
            f"eSMS stand-in listening on {standin.url}\n"
            f"Give zns-bot these settings (in .env or the environment):\n{env}\n"
            "Ctrl-C stops it."
        )

    run_until_stopped(standin, banner, f"{args.host}:{args.port}")


if __name__ == "__main__":
    main()
