"""EsmsClient over real HTTP against the eSMS stand-in: endpoints, envelopes, retries, secrets."""

import json
import logging
import sys
import uuid

import pytest

from bot.config import Settings
from bot.errors import (
    ESMS_CODES,
    ConfigError,
    ErrorCategory,
    EsmsBadInputError,
    EsmsBalanceError,
    EsmsConfigError,
    EsmsDuplicateError,
    EsmsError,
    EsmsNotYetError,
    EsmsRecipientError,
    EsmsThrottledError,
    EsmsTransientError,
    EsmsUnknownCodeError,
)
from bot.esms.client import EsmsClient, join_url
from bot.esms.types import (
    ParamType,
    SubmitOutcome,
    TemplateStatus,
    ZnsMessage,
)
from standins.esms import (
    DEMO_OAID,
    DISABLED_TEMPLATE,
    JOURNEY_TEMPLATE,
    ORDER_TEMPLATE,
    OTP_TEMPLATE,
    PENDING_TEMPLATE,
    SECOND_OA_TEMPLATE,
    SECOND_OAID,
)

SEND = "SendZaloMessage_V4_post_json"
CLASS_OF = {
    ErrorCategory.CONFIG: EsmsConfigError,
    ErrorCategory.BALANCE: EsmsBalanceError,
    ErrorCategory.BAD_INPUT: EsmsBadInputError,
    ErrorCategory.RECIPIENT: EsmsRecipientError,
    ErrorCategory.DUPLICATE: EsmsDuplicateError,
    ErrorCategory.THROTTLED: EsmsThrottledError,
    ErrorCategory.NOT_YET: EsmsNotYetError,
}
GETCALLBACK_JUNK = (
    '{"Code":100,"Message":"Success","Data_callback":[{"SMSID":"abc123","SendFailed":1,'
    '"SendSuccess":0,"SendStatus":5,"TotalPrice":0,"TotalReceiver":1,"TotalSent":1,'
    '"RequestId":"","TypeId":25,"Telcoid":1,"PhoneNumber":"0901888484","CallbackUrl":"x",'
    '"Partnerids":"","ErrorInfo":"{\\"error\\":-124,\\"message\\":\\"Access token is invalid\\"}'
    'Object reference not set to an instance of an object.","OAId":"1","ZnsTempId":"2"}]}'
)


def otp(**changes) -> ZnsMessage:
    fields = {
        "phone": "0901888484",
        "template_id": OTP_TEMPLATE,
        "params": ("686868",),
        "oaid": DEMO_OAID,
        "request_id": uuid.uuid4().hex,
    }
    return ZnsMessage(**(fields | changes))


def order(**changes) -> ZnsMessage:
    # In ParamLevel order: customer_name, order_code, order_date, amount, tracking_url.
    params = ("Nguyễn Văn A", "DH-1001", "09/02/2026", "150000", "https://shop.example/o/1")
    return otp(**({"template_id": ORDER_TEMPLATE, "params": params} | changes))


# --- sending -------------------------------------------------------------------------------


async def test_send_is_accepted_and_carries_every_field(esms_client, esms_standin):
    msg = otp(campaign="spring", callback_url="https://bot.example/esms/callback/t0k")
    result = await esms_client.send_zns(msg)

    assert result.outcome is SubmitOutcome.ACCEPTED
    assert result.request_id == msg.request_id
    assert result.sms_id in esms_standin.stored_sms_ids()
    (body,) = esms_standin.sends()
    assert body == {
        "ApiKey": esms_standin.api_key,
        "SecretKey": esms_standin.secret_key,
        "Phone": "0901888484",
        "Params": ["686868"],
        "TempID": OTP_TEMPLATE,
        "OAID": DEMO_OAID,
        "RequestId": msg.request_id,
        "Sandbox": "0",
        "campaignid": "spring",
        "CallbackUrl": "https://bot.example/esms/callback/t0k",
    }


async def test_send_omits_optional_fields_that_are_not_set(esms_client, esms_standin):
    await esms_client.send_zns(otp())
    (body,) = esms_standin.sends()
    for absent in ("campaignid", "CallbackUrl", "IsJourney", "OrderId", "SendDate"):
        assert absent not in body


async def test_journey_send_has_is_journey_true_and_order_id(esms_client, esms_standin):
    msg = otp(
        template_id=JOURNEY_TEMPLATE,
        params=("DH-1001", "on the way", "10/02/2026"),
        is_journey=True,
        order_id="ORDER-1001",
        send_date="2026-02-09 08:30:00",
    )
    result = await esms_client.send_zns(msg)
    assert result.outcome is SubmitOutcome.ACCEPTED
    (body,) = esms_standin.sends()
    assert body["IsJourney"] is True  # a JSON boolean, like the doc's example
    assert body["OrderId"] == "ORDER-1001"
    assert body["SendDate"] == "2026-02-09 08:30:00"


async def test_journey_without_order_id_is_refused_by_esms(esms_client, esms_standin):
    msg = otp(template_id=JOURNEY_TEMPLATE, params=("DH-1", "ok", "10/02/2026"), is_journey=True)
    with pytest.raises(EsmsBadInputError) as caught:
        await esms_client.send_zns(msg)
    assert caught.value.code == 110
    assert "OrderId" not in esms_standin.sends()[0]


async def test_sandbox_send_is_checked_but_not_stored(esms_client, esms_standin):
    balance_before = esms_standin.balance
    result = await esms_client.send_zns(otp(sandbox=True))
    assert result.outcome is SubmitOutcome.ACCEPTED and result.sms_id
    assert esms_standin.sends()[0]["Sandbox"] == "1"
    assert esms_standin.stored_sms_ids() == []
    assert esms_standin.balance == balance_before
    with pytest.raises(EsmsNotYetError) as caught:
        await esms_client.query_zns_status(result.sms_id)
    assert caught.value.code == 105


async def test_sandbox_send_is_still_validated(esms_client):
    with pytest.raises(EsmsConfigError) as caught:
        await esms_client.send_zns(otp(sandbox=True, params=("1", "2")))
    assert caught.value.code == 790


async def test_duplicate_request_id_is_already_submitted_not_an_error(esms_client, esms_standin):
    msg = otp()
    first = await esms_client.send_zns(msg)
    second = await esms_client.send_zns(msg)
    assert first.outcome is SubmitOutcome.ACCEPTED
    assert second.outcome is SubmitOutcome.ALREADY_SUBMITTED
    assert second.request_id == msg.request_id
    assert "already" in second.detail
    assert len(esms_standin.stored_sms_ids()) == 1


@pytest.mark.parametrize(
    ("changes", "error_class", "code"),
    [
        ({"template_id": SECOND_OA_TEMPLATE}, EsmsConfigError, 789),
        ({"oaid": ""}, EsmsConfigError, 791),
        ({"oaid": "123"}, EsmsConfigError, 799),
        ({"phone": "12345"}, EsmsBadInputError, 108),
        ({"params": ("1", "2")}, EsmsConfigError, 790),
        ({"params": ("12345678901",)}, EsmsConfigError, 790),
        ({"template_id": DISABLED_TEMPLATE, "params": ("An",)}, EsmsConfigError, 790),
    ],
)
async def test_send_refusals_raise_their_esms_error(esms_client, changes, error_class, code):
    with pytest.raises(error_class) as caught:
        await esms_client.send_zns(otp(**changes))
    assert caught.value.code == code
    assert caught.value.endpoint.startswith(SEND)


async def test_low_balance_is_a_balance_error(esms_client, esms_standin):
    esms_standin.balance = 10
    with pytest.raises(EsmsBalanceError, match="balance") as caught:
        await esms_client.send_zns(otp())
    assert caught.value.code == 103


async def test_estimate_price(esms_client, esms_standin):
    estimate = await esms_client.estimate_price(order())
    assert (estimate.total_price, estimate.total_receiver) == (330.0, 1)
    (request,) = esms_standin.requests_to("SummaryZaloMessage_V4_post_json")
    assert request.body["Params"][0] == "Nguyễn Văn A"
    assert "RequestId" not in request.body and "CallbackUrl" not in request.body
    assert esms_standin.stored_sms_ids() == []


async def test_estimate_price_of_invalid_params_raises(esms_client):
    with pytest.raises(EsmsConfigError) as caught:
        await esms_client.estimate_price(otp(params=("x" * 11,)))
    assert caught.value.code == 790


# --- delivery status -----------------------------------------------------------------------


async def test_query_zns_status_pending_then_delivered(esms_client, esms_standin):
    sent = await esms_client.send_zns(otp())
    pending = await esms_client.query_zns_status(sent.sms_id)
    assert pending.sms_id == sent.sms_id
    assert (pending.send_status, pending.final, pending.error_code) == (2, False, None)

    esms_standin.deliver(sent.sms_id)
    done = await esms_client.query_zns_status(sent.sms_id)
    assert (done.send_status, done.send_success, done.send_failed) == (5, 1, 0)
    assert (done.final, done.error_code) == (True, 0)
    assert done.zalo_msg_id and done.total_price == 300.0
    body = esms_standin.requests_to("QueryZnsStatus")[-1].body
    assert body["SmsId"] == sent.sms_id and body["SmsType"] == "25"


class _ImportSpy:
    """A meta path finder that only notes which modules Python had to look for."""

    def __init__(self) -> None:
        self.searched: list[str] = []

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        self.searched.append(fullname)


async def test_a_poll_makes_no_import_attempts(esms_client, esms_standin, monkeypatch):
    # httpcore imports sniffio for each lock it sets up; were sniffio missing (anyio no longer
    # installs it), every request would search sys.path for it a few times over.
    sent = await esms_client.send_zns(otp())
    await esms_client.query_zns_status(sent.sms_id)  # warm: connection and lazy imports done
    spy = _ImportSpy()
    monkeypatch.setattr(sys, "meta_path", [spy, *sys.meta_path])
    for _ in range(3):
        await esms_client.query_zns_status(sent.sms_id)
    assert spy.searched == []


@pytest.mark.parametrize("zalo_error", [-118, -114, 1001])
async def test_query_zns_status_failure_codes(esms_client, esms_standin, zalo_error):
    sent = await esms_client.send_zns(otp())
    esms_standin.deliver(sent.sms_id, success=False, zalo_error=zalo_error)
    report = await esms_client.query_zns_status(sent.sms_id)
    assert (report.send_failed, report.error_code, report.final) == (1, zalo_error, True)


async def test_query_zns_status_of_an_unknown_sms_is_not_yet(esms_client):
    with pytest.raises(EsmsNotYetError):
        await esms_client.query_zns_status("nope")


async def test_get_send_status_uses_get_with_query(esms_client, esms_standin):
    sent = await esms_client.send_zns(otp())
    esms_standin.deliver(sent.sms_id)
    report = await esms_client.get_send_status(sent.sms_id)
    assert (report.sms_id, report.send_status, report.send_success) == (sent.sms_id, 5, 1)
    (request,) = esms_standin.requests_to("GetSendStatus")
    assert request.method == "GET" and request.body is None
    assert request.query["RefId"] == sent.sms_id
    assert request.query["ApiKey"] == esms_standin.api_key


async def test_get_callbacks_replays_delivered_sends_and_chunks_by_200(esms_client, esms_standin):
    hook = "https://bot.example/esms/callback/t"
    ok = await esms_client.send_zns(otp(callback_url=hook))
    failed = await esms_client.send_zns(otp(callback_url=hook))
    pending = await esms_client.send_zns(otp(callback_url=hook))
    esms_standin.deliver(ok.sms_id)
    esms_standin.deliver(failed.sms_id, success=False, zalo_error=-118)
    ids = [ok.sms_id, *(f"unknown-{n}" for n in range(300)), failed.sms_id, pending.sms_id]

    reports = await esms_client.get_callbacks(ids, DEMO_OAID)

    by_id = {r.sms_id: r for r in reports}
    assert set(by_id) == {ok.sms_id, failed.sms_id}
    assert (by_id[ok.sms_id].send_success, by_id[ok.sms_id].error_code) == (1, 0)
    assert by_id[failed.sms_id].error_code == -118
    assert by_id[failed.sms_id].error_message == "Zalo account not existed"
    calls = esms_standin.requests_to("GetCallback")
    assert [len(c.body["ListRefid"]) for c in calls] == [200, 103]
    assert all(c.body["OAId"] == DEMO_OAID for c in calls)
    assert all(c.path == "/ZaloCallback/GetCallback" for c in calls)


async def test_get_callbacks_tolerates_trailing_junk_in_error_info(esms_client, esms_standin):
    esms_standin.inject("GetCallback", body=GETCALLBACK_JUNK)
    (report,) = await esms_client.get_callbacks(["abc123"], DEMO_OAID)
    assert (report.sms_id, report.send_failed) == ("abc123", 1)
    assert (report.error_code, report.error_message) == (-124, "Access token is invalid")


async def test_get_callbacks_with_no_ids_makes_no_call(esms_client, esms_standin):
    assert await esms_client.get_callbacks([], DEMO_OAID) == []
    assert esms_standin.requests == []


# --- templates and account -----------------------------------------------------------------


async def test_list_templates_maps_params(esms_client, esms_standin):
    templates = {t.id: t for t in await esms_client.list_templates(DEMO_OAID)}
    assert {OTP_TEMPLATE, ORDER_TEMPLATE, JOURNEY_TEMPLATE} <= set(templates)
    (otp_param,) = templates[OTP_TEMPLATE].params
    assert (otp_param.name, otp_param.level, otp_param.max_length, otp_param.type) == (
        "otp",
        1,
        10,
        ParamType.TEXT,
    )
    ordered = templates[ORDER_TEMPLATE].ordered_params
    assert [p.name for p in ordered] == [
        "customer_name",
        "order_code",
        "order_date",
        "amount",
        "tracking_url",
    ]
    assert [p.type for p in ordered] == [
        ParamType.TEXT,
        ParamType.TEXT,
        ParamType.DATE,
        ParamType.NUMBER,
        ParamType.URL,
    ]
    assert templates[ORDER_TEMPLATE].oaid == DEMO_OAID
    assert "customer_name" in templates[ORDER_TEMPLATE].content
    body = esms_standin.requests_to("GetTemplate")[0].body
    assert (body["OAId"], body["SmsType"]) == (DEMO_OAID, "25")


@pytest.mark.parametrize("limit", [{}, {"Limit": 0}, {"Limit": None}, {"Limit": ""}])
async def test_a_missing_or_zero_limit_is_unknown_not_zero(esms_client, esms_standin, limit):
    detail = {"Param": "code", "ParamLevel": 1, "RequireType": "type_text", **limit}
    reply = {
        "CodeResult": "100",
        "ZNSTemplates": [{"TempId": 7, "TempName": "t", "ZNSTempDetail": [detail]}],
    }
    esms_standin.inject("GetTemplate", body=json.dumps(reply))
    ((param,),) = [t.params for t in await esms_client.list_templates(DEMO_OAID)]
    assert param.max_length is None


async def test_a_zero_max_length_in_template_info_is_unknown(esms_client, esms_standin):
    listed = [{"Name": "code", "Require": True, "MaxLength": 0}, {"Name": "otp", "MaxLength": 6}]
    reply = {"Data": {"TemplateId": 7, "Status": "ENABLE", "ListParams": listed}, "Error": 0}
    esms_standin.inject("GetZnsTemplateInfo", body=json.dumps(reply))
    info = await esms_client.template_info("7", DEMO_OAID)
    assert info.param_limits["code"][1] is None and info.param_limits["otp"][1] == 6


@pytest.mark.parametrize(
    ("template_id", "status"),
    [
        (OTP_TEMPLATE, TemplateStatus.ENABLE),
        (DISABLED_TEMPLATE, TemplateStatus.DISABLE),
        (PENDING_TEMPLATE, TemplateStatus.PENDING_REVIEW),
    ],
)
async def test_template_info(esms_client, esms_standin, template_id, status):
    info = await esms_client.template_info(template_id, DEMO_OAID)
    assert (info.id, info.status, info.timeout_ms) == (template_id, status, 7_200_000)
    assert all(max_len for _min, max_len, _req in info.param_limits.values())
    (request,) = esms_standin.requests_to("GetZnsTemplateInfo")
    assert request.method == "GET"
    assert (request.query["TemplateId"], request.query["OAId"]) == (template_id, DEMO_OAID)


async def test_template_info_reason_and_limits(esms_client):
    info = await esms_client.template_info(DISABLED_TEMPLATE, DEMO_OAID)
    assert info.reason == "Template quality is low"
    assert info.tag == "PROMOTION"
    assert info.param_limits == {"customer_name": (0, 30, True)}


async def test_template_info_for_an_unknown_template_raises(esms_client):
    with pytest.raises(EsmsConfigError) as caught:
        await esms_client.template_info("999", DEMO_OAID)
    assert caught.value.code == 789


async def test_balance_quota_and_oas(esms_client, esms_standin):
    before = await esms_client.balance()
    quota_before = await esms_client.quota(DEMO_OAID)
    await esms_client.send_zns(otp())
    after = await esms_client.balance()
    quota_after = await esms_client.quota(DEMO_OAID)

    assert before.balance - after.balance == 300.0
    assert after.user_id == "9999"
    assert quota_after.remaining_quota == quota_before.remaining_quota - 1
    assert quota_after.daily_quota == 500
    assert esms_standin.requests_to("ZNS/GetQuota")[0].body["OAID"] == DEMO_OAID
    oas = await esms_client.list_oas()
    assert [(oa.oaid, oa.name) for oa in oas][:1] == [(DEMO_OAID, "Demo Shop")]
    assert SECOND_OAID in {oa.oaid for oa in oas}


# --- envelopes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "body", "call", "check"),
    [
        ("ZNS/GetListZOA", '{"CodeResult":100,"ZOAList":[]}', "list_oas", []),
        ("ZNS/GetListZOA", '{"CodeResult":" 100 ","ZOAList":[]}', "list_oas", []),
        ("GetBalance_json", '{"CodeResponse":"100","Balance":7}', "balance", 7.0),
        ("GetBalance_json", '{"coderesponse":100,"Balance":"8"}', "balance", 8.0),
        ("GetCallback", '{"Code":"100","Data_callback":[]}', "callbacks", []),
        ("GetZnsTemplateInfo", '{"Error":"0","Data":{"Status":"ENABLE"}}', "info", "ENABLE"),
    ],
)
async def test_every_envelope_kind_reads_success(
    esms_client, esms_standin, endpoint, body, call, check
):
    esms_standin.inject(endpoint, body=body)
    if call == "list_oas":
        assert await esms_client.list_oas() == check
    elif call == "balance":
        assert (await esms_client.balance()).balance == check
    elif call == "callbacks":
        assert await esms_client.get_callbacks(["x"], DEMO_OAID) == check
    else:
        assert (await esms_client.template_info("1", DEMO_OAID)).status == check


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        ("ZNS/GetListZOA", '{"CodeResult":101,"ErrorMessage":"Authorize Failed"}'),
        ("GetBalance_json", '{"Balance":0,"CodeResponse":"101","ErrorMessage":"Authorize Failed"}'),
        ("GetCallback", '{"Code":101,"Message":"Authorize Failed"}'),
        ("GetZnsTemplateInfo", '{"Data":null,"Error":101,"Message":"Authorize Failed"}'),
    ],
)
async def test_every_envelope_kind_reads_errors(esms_client, esms_standin, endpoint, body):
    esms_standin.inject(endpoint, body=body)
    with pytest.raises(EsmsConfigError) as caught:
        if endpoint == "ZNS/GetListZOA":
            await esms_client.list_oas()
        elif endpoint == "GetBalance_json":
            await esms_client.balance()
        elif endpoint == "GetCallback":
            await esms_client.get_callbacks(["x"], DEMO_OAID)
        else:
            await esms_client.template_info("1", DEMO_OAID)
    assert caught.value.code == 101
    assert caught.value.raw_message == "Authorize Failed"


async def test_wrong_credentials_are_a_config_error(esms_standin):
    async with EsmsClient(
        api_key="wrong",
        secret_key="wrong",
        base_url=esms_standin.base_url,
        callback_api_url=esms_standin.callback_api_url,
        retry_backoff=0.01,
    ) as client:
        with pytest.raises(EsmsConfigError, match="ESMS_API_KEY"):
            await client.balance()
        with pytest.raises(EsmsConfigError) as caught:
            await client.template_info(OTP_TEMPLATE, DEMO_OAID)
    assert caught.value.code == 101


@pytest.mark.parametrize("code", sorted(ESMS_CODES))
async def test_every_esms_code_maps_to_its_category(esms_client, esms_standin, code):
    category, text = ESMS_CODES[code]
    esms_standin.inject("GetBalance_json", code=code, times=3)
    with pytest.raises(EsmsError) as caught:
        await esms_client.balance()
    assert type(caught.value) is CLASS_OF[category]
    assert caught.value.category is category
    assert caught.value.code == code
    assert text in str(caught.value)
    expected_calls = 3 if code == 160 else 1  # only 160 is worth retrying
    assert len(esms_standin.requests_to("GetBalance_json")) == expected_calls


@pytest.mark.parametrize("code", sorted(ESMS_CODES))
async def test_every_esms_code_on_send(esms_client, esms_standin, code):
    esms_standin.inject(SEND, code=code, times=3)
    msg = otp()
    if code == 124:
        result = await esms_client.send_zns(msg)
        assert result.outcome is SubmitOutcome.ALREADY_SUBMITTED
        return
    with pytest.raises(EsmsError) as caught:
        await esms_client.send_zns(msg)
    assert type(caught.value) is CLASS_OF[ESMS_CODES[code][0]]
    assert caught.value.code == code


async def test_unknown_code_is_a_clear_error_not_a_crash(esms_client, esms_standin):
    esms_standin.inject("GetBalance_json", code=4242)
    with pytest.raises(EsmsUnknownCodeError, match="4242") as caught:
        await esms_client.balance()
    assert caught.value.category is ErrorCategory.UNKNOWN
    esms_standin.inject(SEND, code="4242")
    with pytest.raises(EsmsUnknownCodeError):
        await esms_client.send_zns(otp())


@pytest.mark.parametrize(
    "body", ["<html>Service Unavailable</html>", '{"Balance": 5}', "[100]", ""]
)
async def test_unreadable_reply_is_transient_and_not_retried(esms_client, esms_standin, body):
    esms_standin.inject("GetBalance_json", body=body, times=3)
    with pytest.raises(EsmsTransientError, match="could not read") as caught:
        await esms_client.balance()
    assert caught.value.code is None
    assert len(esms_standin.requests_to("GetBalance_json")) == 1


async def test_unreadable_reply_to_a_send_is_unknown(esms_client, esms_standin):
    esms_standin.inject(SEND, body="Object reference not set to an instance of an object.")
    result = await esms_client.send_zns(otp())
    assert result.outcome is SubmitOutcome.UNKNOWN
    assert "could not read" in result.detail
    assert len(esms_standin.sends()) == 1


async def test_http_404_without_a_code_points_at_the_base_url(esms_standin):
    async with EsmsClient(
        api_key="k",
        secret_key="s",
        base_url=esms_standin.url + "/Wrong.svc/json",
        callback_api_url=esms_standin.callback_api_url,
        retry_backoff=0.01,
    ) as client:
        with pytest.raises(EsmsConfigError, match=r"HTTP 404.*ESMS_BASE_URL"):
            await client.send_zns(otp())
    assert len(esms_standin.requests) == 1


# --- retries -------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", [{"status": 500}, {"status": 503}, {"code": 160}])
async def test_send_retries_with_the_identical_body(esms_client, esms_standin, fault):
    esms_standin.inject(SEND, **fault)
    msg = otp(callback_url="https://bot.example/cb")
    result = await esms_client.send_zns(msg)
    assert result.outcome is SubmitOutcome.ACCEPTED
    first, second = esms_standin.sends()
    assert first == second
    assert first["RequestId"] == msg.request_id


async def test_lost_reply_then_retry_finds_it_already_submitted(esms_client, esms_standin):
    # The stand-in acts on the first request but holds its reply past the client's timeout.
    esms_standin.inject(SEND, delay=30)
    result = await esms_client.send_zns(otp())
    assert result.outcome is SubmitOutcome.ALREADY_SUBMITTED
    first, second = esms_standin.sends()
    assert first == second
    assert len(esms_standin.stored_sms_ids()) == 1


async def test_timeouts_on_every_attempt_give_unknown(esms_client, esms_standin):
    esms_standin.inject(SEND, delay=30, times=5)
    msg = otp()
    result = await esms_client.send_zns(msg)
    assert result.outcome is SubmitOutcome.UNKNOWN
    assert result.request_id == msg.request_id and result.sms_id is None
    assert "may or may not have been sent" in result.detail
    bodies = esms_standin.sends()
    assert len(bodies) == 3
    assert {b["RequestId"] for b in bodies} == {msg.request_id}


async def test_server_errors_on_every_attempt_give_unknown_and_stop_at_max(
    esms_client, esms_standin
):
    esms_standin.inject(SEND, status=500, times=10)
    result = await esms_client.send_zns(otp())
    assert result.outcome is SubmitOutcome.UNKNOWN
    assert "HTTP 500" in result.detail
    assert len(esms_standin.sends()) == 3


async def test_refusal_after_a_lost_reply_is_still_unknown(esms_client, esms_standin):
    # The first attempt may have been accepted; a later refusal cannot prove it was not.
    esms_standin.inject(SEND, status=502)
    esms_standin.inject(SEND, code=103)
    result = await esms_client.send_zns(otp())
    assert result.outcome is SubmitOutcome.UNKNOWN
    assert "code 103" in result.detail
    assert len(esms_standin.sends()) == 2


async def test_throttling_on_every_attempt_raises_throttled(esms_client, esms_standin):
    esms_standin.inject(SEND, code=160, times=10)
    with pytest.raises(EsmsThrottledError):
        await esms_client.send_zns(otp())
    assert len(esms_standin.sends()) == 3


async def test_other_endpoints_retry_5xx_and_timeouts_then_give_up(esms_client, esms_standin):
    esms_standin.inject("GetBalance_json", status=502)
    assert (await esms_client.balance()).balance > 0
    assert len(esms_standin.requests_to("GetBalance_json")) == 2

    esms_standin.inject("ZNS/GetQuota", delay=30, times=10)
    with pytest.raises(EsmsTransientError, match=r"did not answer.*3 attempts"):
        await esms_client.quota(DEMO_OAID)
    assert len(esms_standin.requests_to("ZNS/GetQuota")) == 3


@pytest.mark.parametrize("code", [101, 789, 103, 108])
async def test_refusals_are_never_retried(esms_client, esms_standin, code):
    esms_standin.inject(SEND, code=code, times=3)
    with pytest.raises(EsmsError):
        await esms_client.send_zns(otp())
    assert len(esms_standin.sends()) == 1


async def test_max_attempts_one_means_no_retry(esms_standin):
    async with EsmsClient(
        api_key=esms_standin.api_key,
        secret_key=esms_standin.secret_key,
        base_url=esms_standin.base_url,
        callback_api_url=esms_standin.callback_api_url,
        max_attempts=1,
    ) as client:
        esms_standin.inject("GetBalance_json", status=500, times=3)
        with pytest.raises(EsmsTransientError, match="HTTP 500"):
            await client.balance()
    assert len(esms_standin.requests_to("GetBalance_json")) == 1


async def test_connection_refused_means_not_sent(closed_port_url):
    async with EsmsClient(
        api_key="k",
        secret_key="s",
        base_url=closed_port_url + "MainService.svc/json/",
        callback_api_url=closed_port_url + "ZaloCallback/",
        retry_backoff=0.01,
    ) as client:
        with pytest.raises(EsmsTransientError, match="not sent") as caught:
            await client.send_zns(otp())
        assert "3 attempts" in str(caught.value)
        with pytest.raises(EsmsTransientError, match="could not connect"):
            await client.template_info(OTP_TEMPLATE, DEMO_OAID)


# --- construction and URLs -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "path", "joined"),
    [
        ("https://h/x/json/", "GetBalance_json", "https://h/x/json/GetBalance_json"),
        ("https://h/x/json", "GetBalance_json", "https://h/x/json/GetBalance_json"),
        ("https://h/x/json/", "/ZNS/GetQuota/", "https://h/x/json/ZNS/GetQuota/"),
        ("https://h/ZaloCallback", "GetCallback", "https://h/ZaloCallback/GetCallback"),
    ],
)
def test_join_url(base, path, joined):
    assert join_url(base, path) == joined


async def test_base_urls_work_without_trailing_slash(esms_standin):
    async with EsmsClient(
        api_key=esms_standin.api_key,
        secret_key=esms_standin.secret_key,
        base_url=esms_standin.base_url.rstrip("/"),
        callback_api_url=esms_standin.callback_api_url.rstrip("/"),
    ) as client:
        assert (await client.balance()).balance > 0
        assert await client.get_callbacks(["x"], DEMO_OAID) == []
    paths = [r.path for r in esms_standin.requests]
    assert paths == ["/MainService.svc/json/GetBalance_json", "/ZaloCallback/GetCallback"]


def test_from_settings_names_missing_keys():
    with pytest.raises(ConfigError, match="ESMS_API_KEY, ESMS_SECRET_KEY"):
        EsmsClient.from_settings(Settings(_env_file=None, esms_api_key=None, esms_secret_key=None))
    with pytest.raises(ConfigError, match="ESMS_SECRET_KEY") as caught:
        EsmsClient.from_settings(Settings(_env_file=None, esms_api_key="k", esms_secret_key=""))
    assert "ESMS_API_KEY" not in str(caught.value)


async def test_from_settings_uses_the_settings(esms_standin):
    settings = Settings(
        _env_file=None,
        esms_api_key=esms_standin.api_key,
        esms_secret_key=esms_standin.secret_key,
        esms_base_url=esms_standin.base_url,
        esms_callback_api_url=esms_standin.callback_api_url,
        esms_max_attempts=2,
    )
    async with EsmsClient.from_settings(settings) as client:
        assert "max_attempts=2" in repr(client)
        assert (await client.balance()).balance > 0


def test_bad_urls_are_config_errors():
    with pytest.raises(ConfigError, match="ESMS_BASE_URL"):
        EsmsClient(
            api_key="k", secret_key="s", base_url="rest.esms.vn", callback_api_url="https://x/"
        )


async def test_each_call_logs_one_debug_line(esms_client, caplog):
    caplog.set_level(logging.DEBUG, logger="bot.esms.client")
    await esms_client.balance()
    (record,) = [r for r in caplog.records if r.name == "bot.esms.client"]
    assert record.levelno == logging.DEBUG
    line = record.getMessage()
    assert "endpoint=GetBalance_json" in line and "code=100" in line and "attempts=1" in line
    assert "elapsed_ms=" in line


# --- secrets -------------------------------------------------------------------------------


def _chain(exc: BaseException | None):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        yield from _chain(exc.__cause__)
        exc = exc.__context__


async def test_secrets_never_appear_in_logs_reprs_or_errors(
    esms_client, esms_standin, closed_port_url, caplog
):
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    wrong = ("apikey-WRONG-Hq83-do-not-leak", "secretkey-WRONG-p2Lm-do-not-leak")
    secrets = (esms_standin.api_key, esms_standin.secret_key, *wrong)
    seen: list[str] = [repr(esms_client), str(esms_client)]
    errors: list[BaseException] = []

    async def run(call):
        try:
            seen.append(repr(await call))
        except Exception as exc:
            errors.append(exc)

    sent = await esms_client.send_zns(otp(callback_url="https://bot.example/cb"))
    esms_standin.deliver(sent.sms_id)
    # Success paths, GET endpoints included.
    await run(esms_client.template_info(OTP_TEMPLATE, DEMO_OAID))
    await run(esms_client.get_send_status(sent.sms_id))
    await run(esms_client.query_zns_status(sent.sms_id))
    await run(esms_client.get_callbacks([sent.sms_id], DEMO_OAID))
    await run(esms_client.balance())
    # Failure paths: 5xx, timeouts and garbled replies on GET and POST endpoints.
    esms_standin.inject("GetZnsTemplateInfo", status=500, times=3)
    await run(esms_client.template_info(OTP_TEMPLATE, DEMO_OAID))
    esms_standin.inject("GetSendStatus", delay=30, times=3)
    await run(esms_client.get_send_status(sent.sms_id))
    esms_standin.inject("GetSendStatus", body="<html>oops</html>")
    await run(esms_client.get_send_status(sent.sms_id))
    esms_standin.inject(SEND, body="not json")
    await run(esms_client.send_zns(otp()))
    esms_standin.inject(SEND, status=500, times=3)
    await run(esms_client.send_zns(otp()))
    await run(esms_client.send_zns(otp(template_id=SECOND_OA_TEMPLATE)))
    # Wrong credentials, and an eSMS that cannot be reached at all.
    for base in (esms_standin.base_url, closed_port_url):
        async with EsmsClient(
            api_key=wrong[0],
            secret_key=wrong[1],
            base_url=base,
            callback_api_url=base,
            timeout=0.5,
            retry_backoff=0.01,
        ) as other:
            seen.append(repr(other))
            await run(other.template_info(OTP_TEMPLATE, DEMO_OAID))
            await run(other.get_send_status("x"))
            await run(other.balance())
            await run(other.send_zns(otp()))

    # The failure paths really failed, and the GET lines really were logged (redacted).
    assert len(errors) >= 9
    assert any(isinstance(e, EsmsTransientError) for e in errors)
    assert any(isinstance(e, EsmsConfigError) and e.code == 101 for e in errors)
    assert any("GetSendStatus" in r.getMessage() and r.name == "httpx" for r in caplog.records)
    assert any(r.name.startswith("httpcore") for r in caplog.records)
    for record in caplog.records:
        seen.extend([record.getMessage(), repr(record.__dict__)])
    seen.append(caplog.text)
    for error in errors:
        for link in _chain(error):
            seen.extend([str(link), repr(link), repr(link.args)])
            seen.extend(str(getattr(link, name, "")) for name in ("raw_message", "endpoint"))
    for text in seen:
        for secret in secrets:
            assert secret not in text, f"secret leaked into: {text[:200]}"


async def test_the_clients_own_keys_are_blanked_in_any_form(esms_client, esms_standin, caplog):
    caplog.set_level(logging.DEBUG)
    api_key, secret_key = esms_standin.api_key, esms_standin.secret_key
    # Not as httpx writes a URL (it percent-encodes ","), so no pattern would blank it all.
    logging.getLogger("httpx").info("GET /x?ApiKey=%s,%s and %s", api_key, secret_key, api_key)
    logging.getLogger("bot.esms.client").debug("key %s", secret_key)
    assert [r.getMessage() for r in caplog.records] == ["GET /x?ApiKey=***,*** and ***", "key ***"]
    assert api_key not in caplog.text and secret_key not in caplog.text
    async with EsmsClient(
        api_key="k", secret_key="s", base_url="https://x/", callback_api_url="https://x/"
    ):
        pass  # another client: its keys are added to the same filter, not a filter of its own
    for name in ("httpx", "bot.esms.client"):
        assert [type(f).__name__ for f in logging.getLogger(name).filters] == ["RedactionFilter"]


async def test_client_keeps_secrets_as_secretstr():
    settings = Settings(_env_file=None, esms_api_key="apikey-abc", esms_secret_key="sk-abc")
    async with EsmsClient.from_settings(settings) as client:
        state = json.dumps({name: repr(value) for name, value in vars(client).items()})
    assert "apikey-abc" not in state and "sk-abc" not in state
    assert "SecretStr" in state
