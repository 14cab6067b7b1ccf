"""A cheap check of a Slack request before Bolt sees it: 401 when unsigned, 400 when malformed."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

import orjson

# Slack's timestamps are Unix seconds: ten digits until the year 2286. Anything else cannot
# be checked (slack_sdk's int() raises on "abc"), so it is a signature failure, not a crash.
_TIMESTAMP = re.compile(r"[0-9]{1,10}", re.ASCII)
MAX_AGE_SECONDS = 60 * 5  # as Bolt's own check: a replay window of five minutes
# Real Slack payloads nest about a dozen levels (a view's state: values → block → action →
# selected_options → text). Bolt parses them again with json, which raises RecursionError
# near 1,000 levels; far below that, deeper is not Slack.
MAX_DEPTH = 64
# A slash command's form has `command`; Slack's SSL check has `ssl_check`. Everything else
# (interactions, options loads such as block_suggestion) comes as `payload=<JSON object>`.
_FORM_KINDS = ("command", "ssl_check")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is refused before Bolt: its status and a short plain reason."""

    status: int
    reason: str


def check_signature(body: bytes, headers: Mapping[str, str], secret: str) -> Refusal | None:
    """401 unless `body` carries Slack's v0 signature with a timestamp within 5 minutes."""
    timestamp = headers.get("x-slack-request-timestamp", "")
    signature = headers.get("x-slack-signature", "")
    if not _TIMESTAMP.fullmatch(timestamp):
        return Refusal(401, "the request timestamp is missing or not a number")
    if not signature:
        return Refusal(401, "the request is not signed")
    if abs(time.time() - int(timestamp)) > MAX_AGE_SECONDS:
        return Refusal(401, "the request is too old (or from the future)")
    # Over the raw bytes: slack_sdk's verifier decodes the body as UTF-8 first and raises
    # on anything else.
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        return Refusal(401, "the signature does not match")
    return None


def check_shape(body: bytes, content_type: str | None) -> Refusal | None:
    """400 unless Bolt can parse `body` as Slack sends it: JSON object, or a form holding a
    JSON-object `payload`, or a slash command's (or SSL check's) plain form.

    Follows Bolt's own reading (slack_bolt.request.internals.parse_body) so that what passes
    here is exactly what Bolt then parses without raising.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return Refusal(400, "the body is not UTF-8")
    if not text:
        return Refusal(400, "the body is empty")
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind == "application/json" or text.startswith("{"):
        return _json_object(text, "the body")
    form = dict(parse_qsl(text, keep_blank_values=True))
    if "payload" in text:  # Bolt's own test: then it reads `payload` and nothing else
        payload = form.get("payload")
        if payload is None:
            return Refusal(400, "the form has no payload field")
        return _json_object(payload, "the payload")
    if not any(name in form for name in _FORM_KINDS):
        return Refusal(400, "the form is neither an interaction nor a slash command")
    return None


def _json_object(text: str, what: str) -> Refusal | None:
    try:
        # orjson refuses nesting past 1,024 levels itself, cheaply, instead of recursing.
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return Refusal(400, f"{what} is not valid JSON")
    if not isinstance(value, dict):
        return Refusal(400, f"{what} is not a JSON object")
    if _depth_exceeds(value, MAX_DEPTH):
        return Refusal(400, f"{what} is nested too deeply")
    return None


def _depth_exceeds(value: object, limit: int) -> bool:
    """True when `value` nests containers more than `limit` deep (iterative: no recursion)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values() if _container(child))
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node if _container(child))
    return False


def _container(value: object) -> bool:
    return isinstance(value, dict | list)
