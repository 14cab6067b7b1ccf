"""The pre-Bolt check passes what Slack sends and refuses, cheaply, what Bolt cannot parse."""

from __future__ import annotations

import json
import time
from urllib.parse import quote

import pytest

from bot.web.slack_gate import MAX_DEPTH, check_shape, check_signature
from standins.payloads import signed_headers, slash_command_body

SECRET = "gate-secret"


def form(payload: object) -> bytes:
    return b"payload=" + quote(json.dumps(payload)).encode()


def nested(depth: int) -> dict[str, object]:
    value: dict[str, object] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (slash_command_body(), "application/x-www-form-urlencoded"),
        (b"ssl_check=1&token=x", "application/x-www-form-urlencoded"),
        (form({"type": "block_suggestion", "value": "đơn"}), "application/x-www-form-urlencoded"),
        (form({"type": "view_submission"}), "application/x-www-form-urlencoded; charset=utf-8"),
        (b'{"type":"url_verification","challenge":"c"}', "application/json"),
        (b'{"type":"event_callback"}', None),
        (json.dumps(nested(MAX_DEPTH)).encode(), "application/json"),
    ],
)
def test_what_slack_sends_passes(body, content_type):
    assert check_shape(body, content_type) is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (json.dumps(nested(MAX_DEPTH + 1)).encode(), "nested too deeply"),
        (form([{"type": "block_actions"}]), "not a JSON object"),
        (b"payload=%7B%22type", "not valid JSON"),
        (b'{"a": NaN}', "not valid JSON"),
        (b"text=payload&command=%2Fzns", "no payload field"),  # as Bolt reads it: {}
    ],
)
def test_what_bolt_cannot_parse_is_400(body, reason):
    refusal = check_shape(body, "application/x-www-form-urlencoded")
    assert refusal is not None and refusal.status == 400 and reason in refusal.reason


def test_a_good_signature_passes_and_anything_else_is_401():
    body = slash_command_body()
    headers = {k.lower(): v for k, v in signed_headers(body, SECRET).items()}
    assert check_signature(body, headers, SECRET) is None
    tampered = check_signature(body + b"&x=1", headers, SECRET)
    assert tampered is not None and tampered.status == 401
    old = {k.lower(): v for k, v in signed_headers(body, SECRET, int(time.time()) - 301).items()}
    refusal = check_signature(body, old, SECRET)
    assert refusal is not None and "too old" in refusal.reason
    unsigned = {"x-slack-request-timestamp": headers["x-slack-request-timestamp"]}
    refusal = check_signature(body, unsigned, SECRET)
    assert refusal is not None and refusal.status == 401
