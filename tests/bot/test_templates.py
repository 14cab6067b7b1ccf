"""Template catalogue caching and parameter validation."""

import asyncio

import pytest

from bot.errors import EsmsTransientError, ParamsError, TemplateError
from bot.esms.types import (
    OfficialAccount,
    ParamType,
    Template,
    TemplateInfo,
    TemplateParam,
    TemplateStatus,
)
from bot.templates import TemplateCatalogue, check_value, validate_params

ORDER = Template(
    id="300",
    name="Order confirmed",
    oaid="oa1",
    params=(
        TemplateParam("amount", 3, 12, ParamType.NUMBER),
        TemplateParam("customer_name", 1, 30, ParamType.TEXT),
        TemplateParam("order_date", 2, 10, ParamType.DATE),
        TemplateParam("link", 4, 100, ParamType.URL),
        TemplateParam("gift", 5, 20, ParamType.TEXT, required=False),
    ),
    status=TemplateStatus.ENABLE,
)
GOOD = {
    "customer_name": "Nguyễn Văn A",
    "order_date": "09/02/2001",
    "amount": "150000",
    "link": "https://shop.example/o/1",
}


def test_returns_params_in_param_level_order():
    assert validate_params(ORDER, GOOD) == (
        "Nguyễn Văn A",
        "09/02/2001",
        "150000",
        "https://shop.example/o/1",
        "",
    )


def test_values_are_trimmed():
    values = dict(GOOD, customer_name="  Lan  ")
    assert validate_params(ORDER, values)[0] == "Lan"


def test_reports_every_problem_at_once_per_parameter():
    bad = {
        "customer_name": "x" * 31,
        "order_date": "9/2/2001",
        "amount": "150.000",
        "link": "shop.example/o/1",
        "colour": "red",
    }
    with pytest.raises(ParamsError) as info:
        validate_params(ORDER, bad)
    problems = info.value.problems
    assert set(problems) == {"customer_name", "order_date", "amount", "link", "colour"}
    assert "31 characters long: type at most 30" in problems["customer_name"]
    assert "dd/MM/yyyy" in problems["order_date"]
    assert "digits 0-9 only" in problems["amount"]
    assert "https://" in problems["link"]
    assert "not a parameter" in problems["colour"]


def test_missing_required_but_optional_may_be_empty():
    with pytest.raises(ParamsError) as info:
        validate_params(ORDER, {k: v for k, v in GOOD.items() if k != "amount"})
    assert info.value.problems == {"amount": "is required: type its value"}


@pytest.mark.parametrize(
    ("ptype", "value", "ok"),
    [
        (ParamType.DATE, "29/02/2024", True),
        (ParamType.DATE, "29/02/2023", False),
        (ParamType.DATE, "2024-02-29", False),
        (ParamType.NUMBER, "0012", True),
        (ParamType.NUMBER, "1234567890123", False),
        (ParamType.NUMBER, "١٢", False),
        (ParamType.NUMBER, "-5", False),
        (ParamType.URL, "http://a.vn", True),
        (ParamType.URL, "ftp://a.vn", False),
        (ParamType.URL, "https://", False),
        (ParamType.TEXT, "anything at all", True),
    ],
)
def test_check_value_by_type(ptype, value, ok):
    assert (check_value(TemplateParam("p", 1, 40, ptype), value) is None) is ok


def test_repeated_parameter_is_passed_once():
    template = Template(
        id="1",
        name="t",
        oaid="oa",
        params=(TemplateParam("code", 1, 6), TemplateParam("code", 2, 6)),
    )
    assert validate_params(template, {"code": "123456"}) == ("123456",)


def test_a_repeated_parameter_takes_one_value_that_suits_every_place_it_appears():
    template = Template(
        id="1",
        name="t",
        oaid="oa",
        params=(
            TemplateParam("name", 3, 30),
            TemplateParam("code", 2, None, required=False),
            TemplateParam("name", 1, 10, required=False),
        ),
    )
    (name, code) = template.distinct_params
    assert (name.name, name.level, name.max_length, name.required) == ("name", 1, 10, True)
    assert (code.name, code.max_length) == ("code", None)
    assert validate_params(template, {"name": "An", "code": "X1"}) == ("An", "X1")
    with pytest.raises(ParamsError) as caught:
        validate_params(template, {"name": "a" * 11})
    assert caught.value.problems == {"name": "is 11 characters long: type at most 10"}


def test_a_parameter_without_a_known_limit_takes_any_length_here():
    # eSMS gave no limit: it judges the length itself when the message is sent
    assert check_value(TemplateParam("note", 1, None), "x" * 5000) is None


def test_an_unknown_limit_in_either_source_leaves_the_other_one():
    from bot.templates import merge_info

    template = Template(
        id="1",
        name="t",
        oaid="oa",
        params=(
            TemplateParam("a", 1, None),
            TemplateParam("b", 2, 40),
            TemplateParam("c", 3, None),
        ),
    )
    info = TemplateInfo(
        id="1",
        name="t",
        status=TemplateStatus.ENABLE,
        param_limits={"a": (None, 25, True), "b": (None, None, True), "c": (0, None, True)},
    )
    merged = {p.name: p.max_length for p in merge_info(template, info).params}
    assert merged == {"a": 25, "b": 40, "c": None}


class FakeSource:
    """Counts calls; the end-to-end path against the eSMS stand-in lives in test_service.py."""

    def __init__(self):
        self.list_calls = 0
        self.status = TemplateStatus.ENABLE
        self.fail = False

    async def list_templates(self, oaid):
        self.list_calls += 1
        if self.fail:
            raise EsmsTransientError("eSMS is down")
        return [Template(id="300", name="", oaid=oaid, params=ORDER.params)]

    async def template_info(self, template_id, oaid):
        return TemplateInfo(
            id=template_id,
            name="Order confirmed",
            status=self.status,
            timeout_ms=7_200_000,
            param_limits={"customer_name": (None, 20, True)},
        )


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


async def test_catalogue_merges_detail_and_caches_for_ttl():
    source, clock = FakeSource(), Clock()
    catalogue = TemplateCatalogue(source, ttl=60, clock=clock)
    template = await catalogue.get("300", "oa1")
    assert template.name == "Order confirmed"
    assert template.timeout_ms == 7_200_000
    limits = {p.name: p.max_length for p in template.params}
    assert limits["customer_name"] == 20  # the tighter of Limit and MaxLength
    await catalogue.get("300", "oa1")
    assert source.list_calls == 1
    clock.now = 61
    source.status = TemplateStatus.DISABLE
    stale = await catalogue.get("300", "oa1")
    assert stale.status is TemplateStatus.ENABLE  # served at once, from the cache
    await catalogue.settled()
    assert source.list_calls == 2
    assert (await catalogue.get("300", "oa1")).status is TemplateStatus.DISABLE


async def test_catalogue_serves_stale_list_when_refresh_fails():
    source, clock = FakeSource(), Clock()
    catalogue = TemplateCatalogue(source, ttl=60, clock=clock)
    await catalogue.templates("oa1")
    source.fail, clock.now = True, 120
    assert [t.id for t in await catalogue.templates("oa1")] == ["300"]
    await catalogue.settled()
    assert source.list_calls == 2  # it did try
    assert [t.id for t in await catalogue.templates("oa1", refresh=True)] == ["300"]


async def test_catalogue_without_cache_raises_the_esms_error():
    source = FakeSource()
    source.fail = True
    with pytest.raises(EsmsTransientError):
        await TemplateCatalogue(source).templates("oa1")


async def test_sendable_refuses_a_template_that_is_not_enable():
    source = FakeSource()
    source.status = TemplateStatus.DISABLE
    catalogue = TemplateCatalogue(source)
    with pytest.raises(TemplateError, match="DISABLE, not ENABLE"):
        await catalogue.sendable("300", "oa1")
    assert await catalogue.enabled("oa1") == []


async def test_unknown_template_is_a_clear_error():
    with pytest.raises(TemplateError, match="template 999 is not registered for OA oa1"):
        await TemplateCatalogue(FakeSource()).get("999", "oa1")


class OaSource(FakeSource):
    def __init__(self):
        super().__init__()
        self.oa_calls = 0

    async def list_oas(self):
        self.oa_calls += 1
        if self.fail:
            raise EsmsTransientError("eSMS is down")
        return [OfficialAccount(oaid="oa1", name=f"Shop #{self.oa_calls}")]


async def test_oas_are_cached_for_ttl_then_fetched_before_answering():
    source, clock = OaSource(), Clock()
    catalogue = TemplateCatalogue(source, ttl=60, clock=clock)
    assert [oa.name for oa in await catalogue.oas()] == ["Shop #1"]
    clock.now = 59
    assert [oa.name for oa in await catalogue.oas()] == ["Shop #1"]
    clock.now = 60
    assert [oa.name for oa in await catalogue.oas()] == ["Shop #2"]  # not stale-first
    source.fail, clock.now = True, 200
    assert [oa.name for oa in await catalogue.oas()] == ["Shop #2"]  # the last good list
    assert source.oa_calls == 3


async def test_oas_without_cache_raise_the_esms_error():
    source = OaSource()
    source.fail = True
    with pytest.raises(EsmsTransientError):
        await TemplateCatalogue(source).oas()


async def test_concurrent_callers_share_one_fetch():
    source, gate = FakeSource(), asyncio.Event()
    list_templates = source.list_templates

    async def held(oaid):
        await gate.wait()
        return await list_templates(oaid)

    source.list_templates = held
    catalogue = TemplateCatalogue(source)
    waiting = [asyncio.create_task(catalogue.templates("oa1")) for _ in range(5)]
    await asyncio.sleep(0)
    gate.set()
    assert [len(t) for t in await asyncio.gather(*waiting)] == [1] * 5
    assert source.list_calls == 1
    await catalogue.refresh("oa1")  # a forced refresh does ask again
    assert source.list_calls == 2


async def test_a_failed_refresh_is_logged(caplog):
    source, clock = FakeSource(), Clock()
    catalogue = TemplateCatalogue(source, ttl=60, clock=clock)
    await catalogue.templates("oa1")
    source.fail, clock.now = True, 1  # later than the fetch: a refresh at 0 would reuse it
    await catalogue.refresh("oa1")
    assert "template refresh failed for OA oa1; serving cached list" in caplog.text
