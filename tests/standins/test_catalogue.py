"""The stand-in's big catalogue: more OAs and templates than a select holds, served over HTTP."""

import uuid

import httpx
import pytest

from bot.search import fold
from standins.catalogue import (
    DEMO_OA_POSITION,
    GENERATED_TEMPLATES,
    NO_LIMIT_TEMPLATE,
    OVER_SLACK_LIMIT,
    OVER_SLACK_TEMPLATE,
    REPEAT_TEMPLATE,
    big_oas,
    big_templates,
    use_big_catalogue,
)
from standins.esms import DEMO_OAID, EsmsStandIn


@pytest.fixture
def http():
    with httpx.Client(timeout=5) as client:
        yield client


def call(http: httpx.Client, standin: EsmsStandIn, path: str, **body) -> dict:
    keys = {"ApiKey": standin.api_key, "SecretKey": standin.secret_key}
    response = http.post(standin.base_url + path, json={**keys, **body})
    assert response.status_code == 200, response.text
    return response.json()


def test_the_catalogue_is_big_and_realistic():
    oas = big_oas()
    assert len(oas) == 130 and len({oaid for oaid, _ in oas}) == 130
    assert oas[DEMO_OA_POSITION][0] == DEMO_OAID and DEMO_OA_POSITION >= 100
    templates = big_templates()
    generated = [t for t in templates if t.id.startswith("5")]
    assert len(generated) == GENERATED_TEMPLATES
    assert all(t.status == "ENABLE" and t.oaid == DEMO_OAID for t in generated)
    assert all(80 <= len(t.name) <= 120 for t in generated)
    assert all("đ" in t.name.lower() for t in generated)  # Vietnamese, with the letter đ
    # names come in threes that differ only in the last character ("Quận 1", "Quận 3"...)
    assert len({t.name[:-1] for t in generated}) == GENERATED_TEMPLATES // 3
    assert len({t.name for t in generated}) == GENERATED_TEMPLATES
    assert len({t.id for t in templates}) == len(templates)


def test_the_big_catalogue_is_served_until_reset(http, esms_standin):
    use_big_catalogue(esms_standin)
    oas = call(http, esms_standin, "ZNS/GetListZOA/")["ZOAList"]
    assert len(oas) == 130 and oas[DEMO_OA_POSITION]["OAID"] == DEMO_OAID
    listed = call(http, esms_standin, "GetTemplate/", OAId=DEMO_OAID, SmsType="25")
    by_id = {str(t["TempId"]): t for t in listed["ZNSTemplates"]}
    assert len(by_id) == len([t for t in big_templates() if t.oaid == DEMO_OAID])
    (referral,) = by_id[NO_LIMIT_TEMPLATE]["ZNSTempDetail"]
    assert "Limit" not in referral  # eSMS left it out
    assert by_id[OVER_SLACK_TEMPLATE]["ZNSTempDetail"][1]["Limit"] == OVER_SLACK_LIMIT
    names = [d["Param"] for d in by_id[REPEAT_TEMPLATE]["ZNSTempDetail"]]
    assert names.count("customer_name") == 2
    assert "đơn hàng" in by_id[REPEAT_TEMPLATE]["TempName"].lower()
    assert fold(by_id[REPEAT_TEMPLATE]["TempName"]).startswith("don hang")

    esms_standin.reset()
    assert len(call(http, esms_standin, "ZNS/GetListZOA/")["ZOAList"]) == 2


@pytest.mark.parametrize(
    ("params", "code"),
    [
        (["Lan", "DH-1"], "100"),  # a repeated parameter's value is passed once
        (["Lan", "DH-1", "Lan"], "790"),
        (["L" * 31, "DH-1"], "790"),
    ],
)
def test_a_repeated_parameter_is_sent_once(http, esms_standin, params, code):
    use_big_catalogue(esms_standin)
    reply = call(
        http,
        esms_standin,
        "SendZaloMessage_V4_post_json/",
        Phone="0901888484",
        Params=params,
        TempID=REPEAT_TEMPLATE,
        OAID=DEMO_OAID,
        RequestId=uuid.uuid4().hex,
    )
    assert reply["CodeResult"] == code


def test_a_parameter_without_a_limit_takes_any_length(http, esms_standin):
    use_big_catalogue(esms_standin)
    reply = call(
        http,
        esms_standin,
        "SendZaloMessage_V4_post_json/",
        Phone="0901888484",
        Params=["R" * 500],
        TempID=NO_LIMIT_TEMPLATE,
        OAID=DEMO_OAID,
    )
    assert reply["CodeResult"] == "100"
