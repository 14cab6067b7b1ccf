"""The eSMS stand-in itself: documented shapes, validation, faults, delivery and callbacks."""

import json
import signal
import subprocess
import sys
import uuid

import httpx
import pytest

from bot.esms.zalo import parse_callback, parse_error_info
from standins.esms import (
    DEMO_OAID,
    DISABLED_TEMPLATE,
    JOURNEY_TEMPLATE,
    ORDER_TEMPLATE,
    OTP_TEMPLATE,
    PENDING_TEMPLATE,
    SECOND_OA_TEMPLATE,
    EsmsStandIn,
)

SEND = "SendZaloMessage_V4_post_json/"


@pytest.fixture
def http():
    with httpx.Client(timeout=5) as client:
        yield client


def creds(standin: EsmsStandIn) -> dict[str, str]:
    return {"ApiKey": standin.api_key, "SecretKey": standin.secret_key}


def otp_body(standin: EsmsStandIn, **changes) -> dict:
    body = {
        **creds(standin),
        "Phone": "0901888484",
        "Params": ["686868"],
        "TempID": OTP_TEMPLATE,
        "OAID": DEMO_OAID,
        "RequestId": uuid.uuid4().hex,
        "Sandbox": "0",
    }
    return {**body, **changes}


def post(http: httpx.Client, standin: EsmsStandIn, path: str, body: dict) -> dict:
    response = http.post(standin.base_url + path, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def send(http: httpx.Client, standin: EsmsStandIn, **changes) -> dict:
    return post(http, standin, SEND, otp_body(standin, **changes))


# --- lifecycle and routing -----------------------------------------------------------------


def test_starts_on_an_ephemeral_port_and_stops():
    with EsmsStandIn() as standin:
        assert standin.base_url.endswith("/MainService.svc/json/")
        assert standin.callback_api_url.endswith("/ZaloCallback/")
        assert standin.url.startswith("http://127.0.0.1:") and not standin.url.endswith(":0")
        reply = httpx.post(standin.base_url + "GetBalance_json", json=creds(standin)).json()
        assert reply["CodeResponse"] == "100"
    with pytest.raises(httpx.ConnectError):
        httpx.post(standin.base_url + "GetBalance_json", json=creds(standin))


@pytest.mark.parametrize(
    "path",
    [
        "/MainService.svc/json/GetBalance_json",
        "/MainService.svc/json/GetBalance_json/",
        "/mainservice.svc/JSON/getbalance_json",
        "/MAINSERVICE.SVC/json/GETBALANCE_JSON/",
    ],
)
def test_paths_are_case_insensitive_and_slash_optional(http, esms_standin, path):
    reply = http.post(esms_standin.url + path, json=creds(esms_standin)).json()
    assert reply == {"Balance": 5_000_000, "CodeResponse": "100", "UserID": 9999}


def test_unknown_path_and_wrong_method(http, esms_standin):
    assert http.post(esms_standin.base_url + "NoSuchMethod", json={}).status_code == 404
    assert http.get(esms_standin.base_url + "GetBalance_json").status_code == 405
    assert http.post(esms_standin.base_url + "GetBalance_json", content=b"{nope").status_code == 400


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (SEND, {"CodeResult": "101", "CountRegenerate": 0, "ErrorMessage": "Authorize Failed"}),
        ("GetBalance_json", {"CodeResponse": "101", "ErrorMessage": "Authorize Failed"}),
        ("ZNS/GetQuota/", {"CodeResult": "101", "ErrorMessage": "Authorize Failed"}),
    ],
)
def test_wrong_keys_get_101_in_the_endpoint_envelope(http, esms_standin, path, expected):
    body = otp_body(esms_standin, SecretKey="wrong")
    assert http.post(esms_standin.base_url + path, json=body).json() == expected


def test_wrong_keys_on_getcallback_and_template_info(http, esms_standin):
    reply = http.post(
        esms_standin.callback_api_url + "GetCallback",
        json={"ApiKey": "x", "SecretKey": "y", "ListRefid": [], "OAId": DEMO_OAID},
    ).json()
    assert reply == {"Code": 101, "Message": "Authorize Failed"}
    info = http.get(
        esms_standin.base_url + "GetZnsTemplateInfo",
        params={"TemplateId": OTP_TEMPLATE, "ApiKey": "x", "SecretKey": "y", "OAId": DEMO_OAID},
    ).json()
    assert info == {"Data": None, "Error": 101, "Message": "Authorize Failed"}


# --- seeded catalogue ----------------------------------------------------------------------


def test_seeded_oas_and_templates(http, esms_standin):
    oas = post(http, esms_standin, "ZNS/GetListZOA/", creds(esms_standin))["ZOAList"]
    assert {"OAID": DEMO_OAID, "OAName": "Demo Shop"} in oas and len(oas) >= 2

    body = {**creds(esms_standin), "OAId": DEMO_OAID, "SmsType": "25"}
    templates = {
        t["TempId"]: t for t in post(http, esms_standin, "GetTemplate/", body)["ZNSTemplates"]
    }
    assert templates[int(OTP_TEMPLATE)]["ZNSTempDetail"] == [
        {"Limit": 10, "Param": "otp", "ParamLevel": 1, "RequireType": "type_text"}
    ]
    order = templates[int(ORDER_TEMPLATE)]["ZNSTempDetail"]
    types = {d["RequireType"] for d in order}
    assert types == {"type_text", "type_number", "type_date", "type_cta_url"}
    levels = [d["ParamLevel"] for d in order]
    assert levels != sorted(levels) and sorted(levels) == list(range(1, len(order) + 1))
    assert any(d["RequireType"] == "type_text" and d["Limit"] == 30 for d in order)
    assert int(JOURNEY_TEMPLATE) in templates


@pytest.mark.parametrize(
    ("template_id", "status"),
    [
        (OTP_TEMPLATE, "ENABLE"),
        (DISABLED_TEMPLATE, "DISABLE"),
        (PENDING_TEMPLATE, "PENDING_REVIEW"),
    ],
)
def test_template_info_statuses(http, esms_standin, template_id, status):
    params = {"TemplateId": template_id, **creds(esms_standin), "OAId": DEMO_OAID}
    reply = http.get(esms_standin.base_url + "GetZnsTemplateInfo", params=params).json()
    assert (reply["Error"], reply["Message"]) == (0, "Success")
    assert reply["Data"]["Status"] == status
    assert reply["Data"]["Timeout"] == 7_200_000
    assert all(p["MaxLength"] > 0 for p in reply["Data"]["ListParams"])


# --- send validation -----------------------------------------------------------------------

ORDER_PARAMS = ["Nguyễn Văn A", "DH-1001", "09/02/2026", "150000", "https://shop.example/o/1"]
JOURNEY_PARAMS = ["DH-1", "on the way", "10/02/2026"]


def order_with(position: int, value: str) -> dict:
    params = list(ORDER_PARAMS)
    params[position] = value
    return {"TempID": ORDER_TEMPLATE, "Params": params}


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({}, "100"),
        ({"TempID": ORDER_TEMPLATE, "Params": ORDER_PARAMS}, "100"),
        ({"Phone": "84901888484"}, "100"),
        ({"TempID": SECOND_OA_TEMPLATE}, "789"),
        ({"TempID": "999999"}, "789"),
        ({"OAID": ""}, "791"),
        ({"TempID": None}, "791"),
        ({"OAID": "42"}, "799"),
        ({"Phone": "090188848"}, "108"),
        ({"Phone": "+84 901 888 484"}, "108"),
        ({"Params": []}, "790"),
        ({"Params": ["1", "2"]}, "790"),
        ({"Params": ["12345678901"]}, "790"),
        ({"Params": "686868"}, "790"),
        (order_with(2, "9/2/2026"), "790"),
        (order_with(3, "15.000"), "790"),
        (order_with(4, "shop.example"), "790"),
        (order_with(0, "x" * 31), "790"),
        ({"TempID": DISABLED_TEMPLATE, "Params": ["An"]}, "790"),
        ({"TempID": PENDING_TEMPLATE, "Params": ["An", "12"]}, "790"),
        ({"TempID": JOURNEY_TEMPLATE, "Params": JOURNEY_PARAMS, "IsJourney": True}, "110"),
        ({"IsJourney": True, "OrderId": "O-1"}, "790"),
        ({"SendDate": "09/02/2026 08:00"}, "110"),
        ({"RequestId": "r" * 51}, "110"),
    ],
)  # fmt: skip
def test_send_validation_matches_esms(http, esms_standin, changes, code):
    reply = send(http, esms_standin, **changes)
    assert reply["CodeResult"] == code, reply
    assert ("SMSID" in reply) == (code == "100")


def test_journey_send_with_order_id_is_accepted(http, esms_standin):
    reply = send(
        http,
        esms_standin,
        TempID=JOURNEY_TEMPLATE,
        Params=["DH-1", "on the way", "10/02/2026"],
        IsJourney=True,
        OrderId="ORDER-1",
    )
    assert reply["CodeResult"] == "100"


def test_duplicate_request_id_gets_124_without_smsid(http, esms_standin):
    first = send(http, esms_standin, RequestId="same-id")
    second = send(http, esms_standin, RequestId="same-id")
    assert first["CodeResult"] == "100"
    assert second == {
        "CodeResult": "124",
        "CountRegenerate": 0,
        "ErrorMessage": "RequestId is duplicated",
    }
    assert esms_standin.stored_sms_ids() == [first["SMSID"]]


def test_low_balance_gets_103_and_sends_are_charged(http, esms_standin):
    send(http, esms_standin)
    assert esms_standin.balance == 5_000_000 - 300
    esms_standin.balance = 299
    assert send(http, esms_standin)["CodeResult"] == "103"


def test_sandbox_is_validated_not_stored_not_charged(http, esms_standin):
    assert send(http, esms_standin, Sandbox="1", Params=[])["CodeResult"] == "790"
    reply = send(http, esms_standin, Sandbox="1")
    assert reply["CodeResult"] == "100" and reply["SMSID"]
    assert esms_standin.stored_sms_ids() == []
    assert esms_standin.balance == 5_000_000
    body = {**creds(esms_standin), "SmsId": reply["SMSID"], "SmsType": "25"}
    assert post(http, esms_standin, "QueryZnsStatus/", body)["CodeResult"] == "105"
    with pytest.raises(KeyError, match="no stored send"):
        esms_standin.fire_callback_sync(reply["SMSID"], success=True)


def test_summary_estimates_without_storing(http, esms_standin):
    body = otp_body(esms_standin, TempID=ORDER_TEMPLATE, Params=ORDER_PARAMS)
    reply = post(http, esms_standin, "SummaryZaloMessage_V4_post_json/", body)
    assert (reply["CodeResult"], reply["TotalPrice"], reply["TotalReceiver"]) == ("100", 330.0, 1)
    assert esms_standin.stored_sms_ids() == []


def test_quota_counts_down(http, esms_standin):
    body = {**creds(esms_standin), "OAID": DEMO_OAID}
    before = post(http, esms_standin, "ZNS/GetQuota/", body)
    send(http, esms_standin)
    after = post(http, esms_standin, "ZNS/GetQuota/", body)
    assert (before["DailyQuota"], before["RemainingQuota"], after["RemainingQuota"]) == (
        500,
        500,
        499,
    )
    assert (
        post(http, esms_standin, "ZNS/GetQuota/", {**body, "OAID": "nope"})["CodeResult"] == "204"
    )


# --- recording -----------------------------------------------------------------------------


def test_records_every_request(http, esms_standin):
    send(http, esms_standin, RequestId="rec-1")
    http.get(esms_standin.base_url + "GetSendStatus", params={"RefId": "x", **creds(esms_standin)})
    http.post(esms_standin.url + "/nowhere", json={"a": 1})
    first, second, third = esms_standin.requests
    assert (first.method, first.path, first.endpoint) == (
        "POST",
        "/MainService.svc/json/SendZaloMessage_V4_post_json/",
        "SendZaloMessage_V4_post_json",
    )
    assert first.body["RequestId"] == "rec-1"
    assert (second.method, second.endpoint, second.body) == ("GET", "GetSendStatus", None)
    assert second.query["RefId"] == "x"
    assert (third.endpoint, third.body) == (None, {"a": 1})
    assert [b["RequestId"] for b in esms_standin.sends()] == ["rec-1"]
    assert len(esms_standin.requests_to("getsendstatus")) == 1


# --- fault injection -----------------------------------------------------------------------


def test_inject_status_applies_to_the_next_n_requests_only(http, esms_standin):
    esms_standin.inject(SEND, status=500, times=2)
    url = esms_standin.base_url + SEND
    statuses = [http.post(url, json=otp_body(esms_standin)).status_code for _ in range(3)]
    assert statuses == [500, 500, 200]
    assert len(esms_standin.stored_sms_ids()) == 1  # faulted requests are not acted on


def test_inject_body_and_code(http, esms_standin):
    esms_standin.inject("GetBalance_json", body="<html>garbled</html>")
    esms_standin.inject("GetBalance_json", code=160)
    esms_standin.inject("GetCallback", code=4242)
    esms_standin.inject("GetZnsTemplateInfo", code="789")
    url = esms_standin.base_url + "GetBalance_json"
    assert http.post(url, json=creds(esms_standin)).text == "<html>garbled</html>"
    assert http.post(url, json=creds(esms_standin)).json()["CodeResponse"] == "160"
    assert http.post(url, json=creds(esms_standin)).json()["CodeResponse"] == "100"
    callback = http.post(esms_standin.callback_api_url + "GetCallback", json={}).json()
    assert callback["Code"] == 4242
    info = http.get(esms_standin.base_url + "GetZnsTemplateInfo").json()
    assert (info["Error"], info["Data"]) == (789, None)


def test_inject_delay_acts_on_the_request_but_holds_the_reply(esms_standin):
    esms_standin.inject(SEND, delay=30)
    with httpx.Client(timeout=0.5) as quick, pytest.raises(httpx.ReadTimeout):
        quick.post(esms_standin.base_url + SEND, json=otp_body(esms_standin))
    assert len(esms_standin.stored_sms_ids()) == 1  # the "lost reply" case


def test_inject_rejects_unknown_endpoints_and_empty_faults(esms_standin):
    with pytest.raises(ValueError, match="no endpoint"):
        esms_standin.inject("SendSms", status=500)
    with pytest.raises(ValueError, match="needs"):
        esms_standin.inject(SEND)


# --- delivery simulation -------------------------------------------------------------------


def query_status(http, standin, sms_id):
    body = {**creds(standin), "SmsId": sms_id, "SmsType": "25"}
    return post(http, standin, "QueryZnsStatus/", body)


def test_status_is_pending_until_delivered(http, esms_standin):
    sms_id = send(http, esms_standin)["SMSID"]
    pending = query_status(http, esms_standin, sms_id)["Data"]
    assert (pending["ErrorInfo"], pending["FinalStatus"], pending["SendStatus"]) == (None, "0", 2)

    esms_standin.deliver(sms_id)
    done = query_status(http, esms_standin, sms_id)["Data"]
    assert (done["ErrorInfo"], done["FinalStatus"], done["SendStatus"]) == ("0", "1", 5)
    assert (done["SendSuccess"], done["TotalPrice"]) == (1, 300.0)
    assert done["ZaloMsgId"]

    params = {"RefId": sms_id, **creds(esms_standin)}
    status = http.get(esms_standin.base_url + "GetSendStatus", params=params).json()
    assert (status["CodeResponse"], status["SendStatus"], status["SendSuccess"]) == ("100", 5, 1)


def test_failed_delivery_reports_the_zalo_code(http, esms_standin):
    sms_id = send(http, esms_standin)["SMSID"]
    esms_standin.deliver(sms_id, success=False, zalo_error=-118)
    data = query_status(http, esms_standin, sms_id)["Data"]
    assert (data["ErrorInfo"], data["SendFailed"], data["SendSuccess"]) == ("-118", 1, 0)


def test_status_errors(http, esms_standin):
    assert query_status(http, esms_standin, "")["CodeResult"] == "851"
    assert query_status(http, esms_standin, "unknown")["CodeResult"] == "105"
    with pytest.raises(KeyError):
        esms_standin.deliver("unknown")


def test_getcallback_returns_final_sends_made_with_a_callback_url(http, esms_standin):
    with_hook = send(http, esms_standin, CallbackUrl="https://bot.example/cb")["SMSID"]
    without_hook = send(http, esms_standin)["SMSID"]
    not_final = send(http, esms_standin, CallbackUrl="https://bot.example/cb")["SMSID"]
    esms_standin.deliver(with_hook, success=False, zalo_error=-124)
    esms_standin.deliver(without_hook)
    body = {
        **creds(esms_standin),
        "ListRefid": [with_hook, without_hook, not_final],
        "OAId": DEMO_OAID,
    }
    reply = http.post(esms_standin.callback_api_url + "GetCallback", json=body).json()
    assert (reply["Code"], reply["Message"]) == (100, "Success")
    (item,) = reply["Data_callback"]
    assert item["SMSID"] == with_hook and item["SendFailed"] == 1
    assert parse_error_info(item["ErrorInfo"]) == (-124, "Access token is invalid")

    only_first_200 = {**body, "ListRefid": ["x"] * 200 + [with_hook]}
    reply = http.post(esms_standin.callback_api_url + "GetCallback", json=only_first_200).json()
    assert reply["Data_callback"] == []


# --- callbacks -----------------------------------------------------------------------------


def hooked_send(http, standin, receiver, **changes) -> str:
    url = f"{receiver.url}/esms/callback/tok-{uuid.uuid4().hex[:8]}"
    reply = send(http, standin, CallbackUrl=url, **changes)
    assert reply["CodeResult"] == "100"
    return reply["SMSID"]


async def test_fire_callback_failure_as_json_inside_a_json_string(
    http, esms_standin, callback_receiver
):
    sms_id = hooked_send(http, esms_standin, callback_receiver)
    status = await esms_standin.fire_callback(sms_id, success=False, zalo_error=-114)
    assert status == 200
    (received,) = callback_receiver.received
    assert received.path.startswith("/esms/callback/tok-")
    assert received.query["error_info"].startswith('"{\\"error\\":-114')
    report = parse_callback(received.query)
    assert (report.sms_id, report.send_status, report.send_failed) == (sms_id, 5, 1)
    assert report.error_code == -114
    assert report.error_message.startswith("User is inactive")
    assert received.query["TypeId"] == "25" and received.query["RequestId"] == ""
    assert received.query["phonenumber"] == "0901888484"


async def test_fire_callback_journey_double_urlencoded(http, esms_standin, callback_receiver):
    sms_id = hooked_send(
        http,
        esms_standin,
        callback_receiver,
        TempID=JOURNEY_TEMPLATE,
        Params=["DH-1", "on the way", "10/02/2026"],
        IsJourney=True,
        OrderId="ORDER-1",
    )
    esms_standin.deliver(sms_id)
    await esms_standin.fire_callback(sms_id, encoding="double_urlencoded")
    (received,) = callback_receiver.received
    once_decoded = received.query["error_info"]
    assert once_decoded.startswith("%7B%22data%22") and "____" in once_decoded
    assert received.query["TypeId"] == "27"
    report = parse_callback(received.query)
    assert (report.error_code, report.error_message, report.send_success) == (0, "Success", 1)
    assert report.total_price == 220.0


@pytest.mark.parametrize(
    ("encoding", "success", "starts", "code"),
    [
        ("plain", True, '{"error":0,"message":"Success","data":{', 0),
        ("plain", False, '{"error":-118,', -118),
        ("junk", False, '{"error":-124,', -124),
        ("json_in_string", True, '"{\\"error\\":0', 0),
    ],
)
async def test_fire_callback_other_encodings(
    http, esms_standin, callback_receiver, encoding, success, starts, code
):
    sms_id = hooked_send(http, esms_standin, callback_receiver)
    zalo_error = None if success else code
    await esms_standin.fire_callback(
        sms_id, encoding=encoding, success=success, zalo_error=zalo_error
    )
    (received,) = callback_receiver.received
    assert received.query["error_info"].startswith(starts)
    if encoding == "junk":
        assert received.query["error_info"].endswith("instance of an object.")
    assert parse_callback(received.query).error_code == code


@pytest.mark.parametrize("progress", [2, 7])
async def test_fire_callback_progress_statuses(http, esms_standin, callback_receiver, progress):
    sms_id = hooked_send(http, esms_standin, callback_receiver)
    await esms_standin.fire_callback(sms_id, send_status=progress)
    (received,) = callback_receiver.received
    assert "error_info" not in received.query
    report = parse_callback(received.query)
    assert (report.send_status, report.send_success, report.send_failed) == (progress, 0, 0)


async def test_fire_callback_returns_the_receivers_status(http, esms_standin, callback_receiver):
    sms_id = hooked_send(http, esms_standin, callback_receiver)
    callback_receiver.status = 503
    assert await esms_standin.fire_callback(sms_id, success=True) == 503


def test_fire_callback_sync_and_its_preconditions(http, esms_standin, callback_receiver):
    sms_id = hooked_send(http, esms_standin, callback_receiver)
    with pytest.raises(ValueError, match="no outcome"):
        esms_standin.fire_callback_sync(sms_id)
    assert esms_standin.fire_callback_sync(sms_id, success=True, encoding="plain") == 200
    assert parse_callback(callback_receiver.received[0].query).send_success == 1
    no_hook = send(http, esms_standin)["SMSID"]
    with pytest.raises(ValueError, match="without a CallbackUrl"):
        esms_standin.fire_callback_sync(no_hook, success=True)


def test_auto_deliver_fires_callbacks_by_itself(callback_receiver):
    with EsmsStandIn(auto_deliver=0) as standin, httpx.Client() as http:
        ok = hooked_send(http, standin, callback_receiver)
        failed = hooked_send(http, standin, callback_receiver, Phone="0901888000")
        reports = {
            parse_callback(r.query).sms_id: parse_callback(r.query)
            for r in callback_receiver.wait_for(2)
        }
    assert reports[ok].send_success == 1
    assert reports[failed].error_code == -118


def test_runs_standalone_from_the_command_line():
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "standins.esms",
            "--port",
            "0",
            "--api-key",
            "k",
            "--secret-key",
            "s",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        first_line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in first_line
        url = first_line.rsplit(" ", 1)[1].strip()
        reply = httpx.post(
            f"{url}/MainService.svc/json/GetBalance_json", json={"ApiKey": "k", "SecretKey": "s"}
        )
        assert json.loads(reply.text)["CodeResponse"] == "100"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        proc.stdout.close()
