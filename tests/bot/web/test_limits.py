"""LimitsMiddleware at its boundaries, and the body limit against the bot's largest modals."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bot.config import Settings
from bot.esms.types import OfficialAccount, Template, TemplateParam
from bot.service import REASON_MAX
from bot.web.limits import Limits, LimitsMiddleware
from handlers.ui.blocks import INPUT_MAX, request_modal
from standins.payloads import option_state, view_submission_body
from tests.handlers.ui.test_review_blocks import EVERYTHING, long_record, modal

LIMIT = Settings.model_fields["max_body_bytes"].default
LONGEST = "ễ" * INPUT_MAX  # 8 bytes a character once JSON-escaped and form-encoded


def test_the_largest_approval_submission_is_well_within_the_body_limit():
    # 20 parameters of 3000 Vietnamese characters, every optional block, the longest reason
    review = modal(long_record(20, INPUT_MAX, **EVERYTHING))
    values = {
        "decision": {"value": option_state("approve")},
        "reason": {"value": "ễ" * REASON_MAX},
    }
    body = view_submission_body("zns_approval", values, view=review)
    assert len(body) * 4 < LIMIT, len(body)  # 173 KiB


def test_the_largest_request_submission_is_within_the_body_limit():
    oa = OfficialAccount("4100000000000000000", "OA số 1")
    params = tuple(TemplateParam(f"p{n:02}", n, None) for n in range(1, 21))  # no eSMS limit
    template = Template(id="1", name="Hợp đồng " * 10, oaid=oa.oaid, params=params)
    view = request_modal(
        metadata={"oaid": oa.oaid}, oas=[oa], templates=[template], template=template
    )
    typed = {  # every text input typed full
        block["block_id"]: {block["element"]["action_id"]: LONGEST}
        for block in view["blocks"]
        if block.get("type") == "input" and block["element"]["type"] == "plain_text_input"
    }
    assert len(typed) >= 20
    body = view_submission_body("zns_request", typed, view=view)
    assert len(body) < LIMIT * 0.6, len(body)  # 575 KiB


async def _echo_length(request: Request) -> PlainTextResponse:
    return PlainTextResponse(str(len(await request.body())))


SMALL = Limits(max_body=100, max_query=50, max_headers=400)
# inside Starlette's own error middleware, as bot.web.routes places it
APP = Starlette(
    routes=[Route("/", _echo_length, methods=["POST"])],
    middleware=[Middleware(LimitsMiddleware, limits=SMALL)],
)


async def _post(content: bytes | None = None, chunks: list[bytes] | None = None, **kw: str):
    async def stream():
        for chunk in chunks or []:
            yield chunk

    transport = httpx.ASGITransport(app=APP)
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as http:
        body = content if chunks is None else stream()
        return await http.post("/", content=body, params=kw or None)


@pytest.mark.parametrize(
    ("size", "status"), [(100, 200), (101, 413)], ids=["at the limit", "one byte over"]
)
async def test_the_body_limit_is_inclusive_declared_or_streamed(size, status):
    declared = await _post(b"x" * size)
    streamed = await _post(chunks=[b"x" * (size - 1), b"x"])  # no Content-Length
    assert declared.status_code == streamed.status_code == status
    if status == 200:
        assert declared.text == streamed.text == str(size)
    else:
        assert streamed.headers["connection"] == "close"


async def test_query_strings_and_headers_at_and_over_their_limits():
    assert (await _post(b"", q="a" * 48)).status_code == 200  # "q=" + 48: exactly 50
    assert (await _post(b"", q="a" * 49)).status_code == 414
    transport = httpx.ASGITransport(app=APP)
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as http:
        assert (await http.post("/", headers={"x-big": "v" * 400})).status_code == 431
