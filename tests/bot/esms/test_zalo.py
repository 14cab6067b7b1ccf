"""Zalo error reasons and the lenient callback parser, against eSMS's published vectors."""

from urllib.parse import parse_qsl

import httpx
import pytest

from bot.errors import InputError
from bot.esms.zalo import (
    ZALO_ERRORS,
    CallbackOutOfRange,
    parse_callback,
    parse_error_info,
    suggestion,
    zalo_reason,
)

# esms-api.md §4, verbatim (host removed).
FAILED_114 = (
    "?SMSID=f66545d2-c7e2-4603-984e-d2238c363c8292&SendFailed=1&SendStatus=5&SendSuccess=0"
    "&TotalPrice=0.0000&TotalReceiver=1&TotalSent=0&RequestId=&TypeId=25&telcoid=2"
    "&phonenumber=0901888484&partnerids=&error_info=%22{%5C%22error%5C%22%3A-114%2C%5C%22message"
    "%5C%22%3A%5C%22User%20is%20inactive%2C%20or%20reject%20the%20message%2C%20or%20using%20an"
    "%20outdated%20Zalo%20version%2C%20or%20other%20internal%20errors%5C%22}%22"
    "&oaid=1397492183140006179&tempid=2056446"
)
UID_SUCCESS = (
    "?SMSID=5450d5579bfa466a9f2a5911c82f4037&SendFailed=0&SendStatus=5&SendSuccess=1"
    "&TotalPrice=2104.0000&TotalReceiver=1&TotalSent=1&RequestId=&TypeId=25&telcoid=9"
    "&phonenumber=5308693166941955879&error_info={%22error%22%3A0%2C%22message%22%3A%22Success"
    "%22%2C%22data%22%3A{%22delivery_time%22%3Anull%2C%22message%22%3A%22The%20message%20was"
    "%20delivered%20to%20the%20user%27s%20phone%22%2C%22status%22%3A1}}&oaid=3639635426588416370"
    "&tempid=523194&partnerids=416f53d0cf0ec7569e19"
)
JOURNEY_SUCCESS = (
    "?SMSID=7d11c87a22934df390f73ec59d8defd6205&SendFailed=0&SendStatus=5&SendSuccess=1"
    "&TotalPrice=220.0000&TotalReceiver=1&TotalSent=1&RequestId=&TypeId=27"
    "&phonenumber=312158068343230&error_info=%257B%2522data%2522%3A%257B%2522message_id%2522%3A"
    "%2522e1a60e8890be9de4c4ab%2522%2C%2522user_id%2522%3A%252231215806834323092%2522%257D%2C"
    "%2522error%2522%3A0%2C%2522message%2522%3A%2522Success%2522%257D____24%2F04%2F2024%252016"
    "%3A58%3A01&oaid=4097311281936189049&partnerids=e1a60e8890be9derir3gfbff"
)
SMS_TWO_FAILED = (
    "?SMSID=dc712784-9c5f-4c69-b9a8-ea69d56adc9a87&SendFailed=2&SendStatus=5&SendSuccess=0"
    "&TotalPrice=0.0000&TotalReceiver=2&TotalSent=2&RequestId=&TypeId=2&telcoid=1"
    "&phonenumber=0901888484&switchsmsid="
)
GETCALLBACK_JUNK = (
    '{"error":-124,"message":"Access token is invalid"}'
    "Object reference not set to an instance of an object."
)
INACTIVE = (
    "User is inactive, or reject the message, or using an outdated Zalo version, "
    "or other internal errors"
)

# Every code in esms-api.md §8, plus eSMS's 1001.
DOCUMENTED_CODES = [
    0, -100, -101, -102, -103, -104, -105, -106, -107, -108, -109, -1091, -110, -111, -112,
    -1121, -1122, -1123, -1124, -113, -1131, -114, -115, -116, -117, -118, -119, -120, -1201,
    -1202, -121, -122, -124, -125, -126, -127, -130, -131, -132, -133, -134, -135, -1351, -137,
    -138, -139, -140, -141, -144, -1441, -145, -146, -147, -1471, -148, -149, -150, -1491, -151,
    -152, -153, -161, -162, 1001,
]  # fmt: skip


def query_of(vector: str) -> dict[str, str]:
    return dict(parse_qsl(vector.lstrip("?"), keep_blank_values=True))


# --- reasons and suggestions -------------------------------------------------------------


@pytest.mark.parametrize("code", DOCUMENTED_CODES)
def test_every_documented_code_has_a_reason_and_a_suggestion(code):
    assert code in ZALO_ERRORS
    assert zalo_reason(code) == ZALO_ERRORS[code]
    assert len(zalo_reason(code)) > 10
    assert len(suggestion(code)) > 5


def test_reasons_say_what_happened_in_plain_words():
    assert "no Zalo account" in zalo_reason(-118)
    assert "inactive" in zalo_reason(-114) and "outdated" in zalo_reason(-114)
    assert "eSMS" in zalo_reason(-124) and "token" in zalo_reason(-124)
    assert "night" in zalo_reason(-133) and "morning" in zalo_reason(-133)
    assert "daily" in zalo_reason(-144) and "quota" in zalo_reason(-144)
    assert "not online" in zalo_reason(1001)


def test_suggestions_tell_the_agent_what_to_do():
    assert "SMS" in suggestion(-118)
    assert "SMS" in suggestion(-114)
    assert "06:00" in suggestion(-133)
    assert "eSMS" in suggestion(-124)
    assert "later" in suggestion(-147)


def test_meanings_follow_zalos_corrected_table():
    """esms-api.md §8 as corrected in 2026-12: -140, -1471, -133, -134, -135, -161, -162."""
    assert "not allowed to send promotion" in zalo_reason(-140)
    assert "monthly" in zalo_reason(-1471) and "promotion" in zalo_reason(-1471)
    assert "template" in zalo_reason(-133) and "22:00–06:00" in zalo_reason(-133)
    assert "answered" in zalo_reason(-134)
    assert "not verified" in zalo_reason(-135) and "free package" in zalo_reason(-135)
    assert "sending mode" in zalo_reason(-161)
    assert "SendingMode 3" in zalo_reason(-162)


@pytest.mark.parametrize("code", [-139, -141, -140, -1441, -1471])
def test_refusals_and_promotion_limits_never_suggest_an_sms(code):
    advice = suggestion(code)
    assert "do not send it again" in advice or "wait until next month" in advice
    assert "send an SMS" not in advice and "SMS instead" not in advice


def test_customer_refusals_and_promotion_limits_say_why():
    assert "chose not to receive" in suggestion(-139)
    assert suggestion(-141) == suggestion(-139)
    assert "next month" in suggestion(-1471) and "next month" in suggestion(-1441)
    assert "promotion" in suggestion(-140)


@pytest.mark.parametrize("code", [-108, -110, -114, -118, -119, -134, 1001])
def test_recipients_zalo_cannot_take_it_suggests_another_way(code):
    assert code == -108 or "SMS" in suggestion(code)


def test_unknown_code_has_a_clear_fallback():
    assert "-9999" in zalo_reason(-9999)
    assert "do not know" in zalo_reason(-9999)
    assert zalo_reason(None) == "Zalo gave no reason"
    assert "eSMS" in suggestion(-9999)


# --- parse_error_info ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, (None, None)),
        ("", (None, None)),
        ("null", (None, None)),
        ("0", (0, None)),
        ("1001", (1001, None)),
        ("-118", (-118, None)),
        ('{"error":-118,"message":"Zalo account not existed"}', (-118, "Zalo account not existed")),
        ('"{\\"error\\":-114,\\"message\\":\\"inactive\\"}"', (-114, "inactive")),
        (GETCALLBACK_JUNK, (-124, "Access token is invalid")),
        ('{"error":"-133","message":"night"}', (-133, "night")),
        ("%7B%22error%22%3A-144%7D", (-144, None)),
        ("%257B%2522error%2522%253A0%257D____24%252F04%252F2024", (0, None)),
        ('{"data":{"x":1},"error":0,"message":"Success"}____24/04/2024 16:58:01', (0, "Success")),
        ('junk before "error" : -1124, "message":"bad date" and after', (-1124, "bad date")),
        ('junk before \\"error\\":-118 after', (-118, None)),
    ],
)
def test_parse_error_info_reads_every_encoding(raw, expected):
    assert parse_error_info(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["%", "%%%", "%zz", '"', "{", "[1,2]", '{"error":"abc"}', '{"error":true}', "\x00", '"\\"',
     "____", "nan", "1e999", '{"message":5}', '"' * 50, "%25" * 40 + "7B", "{" * 5000],
)  # fmt: skip
def test_parse_error_info_never_raises_on_nonsense(raw):
    code, message = parse_error_info(raw)
    assert code is None or isinstance(code, int)
    assert message is None or isinstance(message, str)


# --- parse_callback with the documented vectors ---------------------------------------------


def test_vector_zns_failed_114():
    report = parse_callback(query_of(FAILED_114))
    assert report.sms_id == "f66545d2-c7e2-4603-984e-d2238c363c8292"
    assert (report.send_status, report.send_success, report.send_failed) == (5, 0, 1)
    assert report.error_code == -114
    assert report.error_message == INACTIVE
    assert report.total_price == 0.0
    assert report.request_id is None and report.zalo_msg_id is None


def test_vector_uid_success():
    report = parse_callback(query_of(UID_SUCCESS))
    assert report.sms_id == "5450d5579bfa466a9f2a5911c82f4037"
    assert (report.send_status, report.send_success, report.send_failed) == (5, 1, 0)
    assert (report.error_code, report.error_message) == (0, "Success")
    assert report.total_price == 2104.0
    assert report.zalo_msg_id == "416f53d0cf0ec7569e19"


def test_vector_journey_double_encoded_with_timestamp():
    report = parse_callback(query_of(JOURNEY_SUCCESS))
    assert report.sms_id == "7d11c87a22934df390f73ec59d8defd6205"
    assert (report.send_status, report.send_success, report.send_failed) == (5, 1, 0)
    assert (report.error_code, report.error_message) == (0, "Success")
    assert report.total_price == 220.0


def test_vector_sms_two_failed_has_no_error_info():
    report = parse_callback(query_of(SMS_TWO_FAILED))
    assert report.sms_id == "dc712784-9c5f-4c69-b9a8-ea69d56adc9a87"
    assert (report.send_status, report.send_success, report.send_failed) == (5, 0, 2)
    assert report.error_code is None and report.error_message is None


@pytest.mark.parametrize(
    ("vector", "code"),
    [(FAILED_114, -114), (UID_SUCCESS, 0), (JOURNEY_SUCCESS, 0), (SMS_TWO_FAILED, None)],
)
def test_vectors_survive_a_real_http_round_trip(callback_receiver, vector, code):
    # The same query strings, sent over HTTP and decoded by Starlette as the bot's route would.
    response = httpx.get(f"{callback_receiver.url}/esms/callback/tok{vector}")
    assert response.status_code == 200
    (received,) = callback_receiver.received
    report = parse_callback(received.query)
    assert report == parse_callback(query_of(vector))
    assert report.error_code == code


def test_callback_keys_match_in_any_case():
    query = {k.upper(): v for k, v in query_of(FAILED_114).items()}
    assert parse_callback(query).error_code == -114
    lower = {k.lower(): v for k, v in query_of(UID_SUCCESS).items()}
    assert parse_callback(lower).send_success == 1


def test_callback_without_smsid_is_refused_clearly():
    query = query_of(FAILED_114)
    del query["SMSID"]
    with pytest.raises(InputError, match="SMSID is missing") as caught:
        parse_callback(query)
    assert "SMSID" in caught.value.problems


def test_callback_with_non_numeric_counts_names_every_bad_field():
    query = query_of(UID_SUCCESS) | {"SendStatus": "done", "SendFailed": "1.5", "SMSID": " "}
    with pytest.raises(InputError) as caught:
        parse_callback(query)
    assert set(caught.value.problems) == {"SMSID", "SendStatus", "SendFailed"}
    assert "'done'" in str(caught.value)


def test_progress_callback_without_error_info():
    report = parse_callback({"SMSID": "abc", "SendStatus": "7"})
    assert report.send_status == 7
    assert (report.send_success, report.send_failed, report.error_code) == (0, 0, None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"error":123456789012345678901,"message":"m"}', (123456789012345678901, "m")),
        ('"{\\"error\\":-9223372036854775808}"', (-9223372036854775808, None)),
        ('{"error":-118,"message":"x\\ud800y"}', (-118, "x\ud800y")),
        ('{"error": NaN, "message": "not a number"}', (None, "not a number")),
        ("[" * 1030 + "]" * 1030, (None, None)),  # deeper than json goes: unreadable, no raise
        ("[" * 1010 + "]" * 1010, (None, None)),
    ],
)
def test_error_info_reads_every_json_value_exactly(raw, expected):
    """Codes past 64 bits stay exact integers; what a fast parser refuses is still read."""
    assert parse_error_info(raw) == expected


BASE = {"SMSID": "S1", "SendStatus": "5", "SendSuccess": "1", "SendFailed": "0"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("SendSuccess", str(2**64)),
        ("SendFailed", str(2**31)),  # one past a 32-bit int
        ("TotalSent", "-1"),  # a count is never negative
        ("TotalReceiver", "9" * 5000),  # past int()'s digit limit: still a clean refusal
        ("SendStatus", "1e999"),
        ("error_info", str(2**70)),
        ("error_info", '{"error":' + "9" * 5000 + ',"message":"x"}'),
        ("error_info", f'"{{\\"error\\":-{2**40},\\"message\\":\\"x\\"}}"'),
        ("TotalPrice", "100000000.01"),
        ("TotalPrice", "1e400"),
        ("TotalPrice", "-5"),
    ],
)
def test_numbers_esms_cannot_send_are_out_of_range(field, value):
    with pytest.raises(CallbackOutOfRange) as caught:
        parse_callback({**BASE, field: value})
    assert field in caught.value.problems


def test_numbers_at_the_edges_of_the_range_are_accepted():
    report = parse_callback(
        {
            **BASE,
            "SendSuccess": str(2**31 - 1),
            "error_info": str(-(2**31)),
            "TotalPrice": "100000000",
        }
    )
    assert report.send_success == 2**31 - 1
    assert report.error_code == -(2**31)
    assert report.total_price == 100_000_000


def test_a_count_that_is_not_a_number_is_malformed_not_out_of_range():
    with pytest.raises(InputError) as caught:
        parse_callback({**BASE, "SendSuccess": "many"})
    assert not isinstance(caught.value, CallbackOutOfRange)
