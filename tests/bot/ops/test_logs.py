"""Structured logs: one JSON event per line, secrets redacted and phones masked."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from bot.config import load_settings
from bot.ops.logs import (
    CHATTY_LOGGERS,
    MAX_MESSAGE,
    RedactionFilter,
    configure_logging,
    log_event,
    mask_phones,
    protect_records,
    redact_loggers,
    secrets_from_settings,
)

API_KEY = "apikey-LOGS-do-not-leak-7d1e"
SECRET_KEY = "secretkey-LOGS-do-not-leak-2b9a"
BOT_TOKEN = "xoxb-1111-2222-abcdefDEF"
PHONE = "0901888484"
MASKED = "090****484"


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    chatty = {name: logging.getLogger(name).level for name in CHATTY_LOGGERS}
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    for name, old in chatty.items():
        logging.getLogger(name).setLevel(old)


@pytest.fixture
def out() -> io.StringIO:
    return io.StringIO()


def configure(out: io.StringIO, **kwargs: Any) -> logging.Handler:
    kwargs.setdefault("secrets", [API_KEY, SecretStr(SECRET_KEY), None, ""])
    return configure_logging("DEBUG", stream=out, **kwargs)


def events(out: io.StringIO) -> list[dict[str, Any]]:
    text = out.getvalue()
    assert text.endswith("\n") or not text
    return [json.loads(line) for line in text.splitlines()]


def ours(handler_list: list[logging.Handler]) -> list[logging.Handler]:
    return [h for h in handler_list if getattr(h, "_zns_logs_handler", False)]


def test_each_event_is_one_json_object_with_the_core_fields_and_extras(out):
    configure(out)
    log = logging.getLogger("bot.test")
    before = datetime.now(UTC)
    log.info("submitted %s of %d", "send", 3, extra={"send_id": "zns-1", "attempt": 2})
    log.debug("tick")

    first, second = events(out)
    assert first["msg"] == "submitted send of 3"
    assert first["level"] == "INFO"
    assert first["logger"] == "bot.test"
    assert first["send_id"] == "zns-1"
    assert first["attempt"] == 2
    assert first["ts"].endswith("Z")
    ts = datetime.fromisoformat(first["ts"])
    assert ts.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= ts <= datetime.now(UTC) + timedelta(seconds=1)
    assert "exc" not in first
    assert second["msg"] == "tick" and second["level"] == "DEBUG"
    assert "send_id" not in second


def test_level_filters_events(out):
    configure_logging("warning", stream=out)
    log = logging.getLogger("bot.test")
    log.info("quiet")
    log.warning("loud")
    assert [e["msg"] for e in events(out)] == ["loud"]


def test_unknown_level_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
        configure_logging("LOUD")


def test_phone_extra_is_always_masked(out):
    configure(out)
    log = logging.getLogger("bot.test")
    log.info("submitted", extra={"phone": PHONE, "send_id": "zns-1"})
    log.info("typed", extra={"phone": "+84 901 888 484"})
    log_event(log, "approved", phone=PHONE, to_phone=PHONE, approver="U1")
    log_event(log, "nested", data={"phone": PHONE, "n": 1})

    first, second, third, fourth = events(out)
    assert first["phone"] == MASKED
    assert second["phone"] == MASKED  # +84 masks as its 0 form, as in message text
    assert third["phone"] == MASKED and third["to_phone"] == MASKED
    assert third["approver"] == "U1"
    assert fourth["data"] == {"phone": MASKED, "n": 1}
    assert PHONE not in out.getvalue() and "901888484" not in out.getvalue()


def test_configured_secrets_are_redacted_in_msg_extras_and_exceptions(out):
    configure(out)
    log = logging.getLogger("bot.test")
    log.warning("calling with %s and %s", API_KEY, SECRET_KEY)
    log.info("request", extra={"url": f"https://x/?k={API_KEY}", "headers": {"k": [SECRET_KEY]}})
    try:
        raise RuntimeError(f"eSMS refused key {API_KEY}")
    except RuntimeError:
        log.exception("send failed")

    text = out.getvalue()
    assert API_KEY not in text and SECRET_KEY not in text
    msg, request, failure = events(out)
    assert msg["msg"] == "calling with *** and ***"
    assert request["url"] == "https://x/?k=***"
    assert request["headers"] == {"k": ["***"]}
    assert failure["level"] == "ERROR"
    assert failure["msg"] == "send failed"
    assert "Traceback (most recent call last)" in failure["exc"]
    assert "RuntimeError: eSMS refused key ***" in failure["exc"]


def test_library_chatter_is_kept_to_warnings_unless_debugging(out):
    configure_logging("INFO", stream=out)
    for name in ("apscheduler.executors.default", "httpx", "httpcore.connection"):
        logging.getLogger(name).info("routine %s", name)
        logging.getLogger(name).warning("news from %s", name)
    logging.getLogger("bot.jobs.scheduler").info("ours")
    assert [e["msg"] for e in events(out)] == [
        "news from apscheduler.executors.default",
        "news from httpx",
        "news from httpcore.connection",
        "ours",
    ]

    debug = io.StringIO()
    configure_logging("DEBUG", stream=debug)
    logging.getLogger("httpx").debug("HTTP Request: GET /x")
    logging.getLogger("apscheduler.scheduler").info("Added job")
    assert [e["msg"] for e in events(debug)] == ["HTTP Request: GET /x", "Added job"]


def test_token_like_values_are_redacted_without_being_configured(out):
    configure_logging("DEBUG", stream=out)  # httpx's request lines are written at DEBUG only
    log = logging.getLogger("httpx")
    log.info(
        "HTTP Request: GET https://rest.esms.vn/GetBalance_json?ApiKey=abc123&SecretKey=def456 "
        '"HTTP/1.1 200 OK"'
    )
    log.info("slack %s and %s", "xoxb-123-456-abcDEF", "xapp-1-A111-222-ffff")
    log.info("hdr", extra={"auth": "Bearer abcdefghijklmnop", "q": "a=1&token=tok999&b=2"})
    log.info('GET /esms/callback/Zt0ken-abc123?SMSID=1 HTTP/1.1" 200')

    balance, slack, header, callback = events(out)
    assert balance["msg"] == (
        "HTTP Request: GET https://rest.esms.vn/GetBalance_json?ApiKey=***&SecretKey=*** "
        '"HTTP/1.1 200 OK"'
    )
    assert slack["msg"] == "slack *** and ***"
    assert header["auth"] == "Bearer ***"
    assert header["q"] == "a=1&token=***&b=2"
    assert callback["msg"] == 'GET /esms/callback/***?SMSID=1 HTTP/1.1" 200'
    for leaked in ("abc123", "def456", "abcDEF", "ffff", "abcdefghijklmnop", "tok999", "Zt0ken"):
        assert leaked not in out.getvalue()


def test_slack_bot_token_from_settings_is_redacted(out, monkeypatch):
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("ESMS_API_KEY", API_KEY)
    settings = load_settings(_env_file=None)
    secrets = secrets_from_settings(settings)
    assert BOT_TOKEN in secrets and API_KEY in secrets

    configure_logging("INFO", stream=out, secrets=secrets)
    assert settings.slack_bot_token is not None
    token = settings.slack_bot_token.get_secret_value()
    assert settings.esms_api_key is not None
    key = settings.esms_api_key.get_secret_value()
    logging.getLogger("bot.test").info("token %s", token, extra={"key": key})
    (event,) = events(out)
    assert event == {**event, "msg": "token ***", "key": "***"}
    assert BOT_TOKEN not in out.getvalue() and API_KEY not in out.getvalue()


def test_newlines_never_split_an_event(out):
    configure(out)
    log = logging.getLogger("bot.test")
    log.info("line one\nline two\r\nline three", extra={"note": "a\nb"})
    try:
        raise ValueError("multi\nline")
    except ValueError:
        log.error("boom", exc_info=True)

    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["msg"] == "line one\nline two\r\nline three"
    assert first["note"] == "a\nb"
    assert "ValueError: multi\nline" in second["exc"]


def test_text_mode_is_also_one_line_per_event(out):
    configure(out, json=False)
    log = logging.getLogger("bot.test")
    log.info("hello\nworld %s", API_KEY, extra={"phone": PHONE, "send_id": "zns-1"})
    try:
        raise KeyError("x")
    except KeyError:
        log.exception("failed")

    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert "INFO bot.test: hello\\nworld ***" in lines[0]
    assert f"phone={MASKED}" in lines[0] and "send_id=zns-1" in lines[0]
    assert API_KEY not in lines[0]
    assert "ERROR bot.test: failed exc=Traceback" in lines[1]


def test_extras_that_clash_with_core_fields_do_not_overwrite_them(out):
    configure(out)
    log_event("bot.test", "the event", msg="not the event", level_="x", name="a name", ts=1)
    (event,) = events(out)
    assert event["msg"] == "the event"
    assert event["msg_"] == "not the event"
    assert event["name_"] == "a name"
    assert event["ts_"] == 1
    assert event["logger"] == "bot.test"


def test_log_event_levels_and_exceptions(out):
    configure_logging("INFO", stream=out)
    log = logging.getLogger("bot.test")
    log_event(log, "hidden", level="DEBUG", x=1)
    log_event(log, "shown", level=logging.WARNING, x=2)
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        log_event(log, "crashed", level="ERROR", exc_info=True)

    shown, crashed = events(out)
    assert shown == {**shown, "msg": "shown", "level": "WARNING", "x": 2}
    assert crashed["level"] == "ERROR" and "ZeroDivisionError" in crashed["exc"]


def test_configure_twice_installs_one_handler_and_keeps_others(out, caplog):
    root = logging.getLogger()
    configure(out)
    configure(out)
    second = io.StringIO()
    handler = configure_logging("INFO", stream=second)
    assert ours(root.handlers) == [handler]
    assert caplog.handler in root.handlers

    with caplog.at_level(logging.INFO):
        logging.getLogger("bot.test").info("once", extra={"phone": PHONE})
    assert len(events(second)) == 1
    assert out.getvalue() == ""
    assert [r.getMessage() for r in caplog.records] == ["once"]


def test_default_stream_is_stderr_at_the_time_of_writing(capsys):
    configure_logging("INFO", secrets=[API_KEY])
    logging.getLogger("bot.test").info("to stderr %s", API_KEY)
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert json.loads(line)["msg"] == "to stderr ***"


def test_a_bad_format_call_still_logs_one_line(out):
    # Handed to the handler directly: pytest's own capture handler would raise on this record.
    handler = configure(out)
    record = logging.LogRecord(
        "bot.test", logging.INFO, __file__, 1, "two args %s %s for %s", ("one", API_KEY), None
    )
    handler.handle(record)
    (event,) = events(out)
    assert event["msg"].startswith("two args %s %s for %s")
    assert "one" in event["msg"] and API_KEY not in event["msg"]


@pytest.fixture
def logger_name(request: pytest.FixtureRequest) -> Iterator[str]:
    """A logger of the test's own; the filters redact_loggers put on it go with the test."""
    name = f"tests.redact.{request.node.name}"
    yield name
    logger = logging.getLogger(name)
    for installed in list(logger.filters):
        logger.removeFilter(installed)


def test_redact_loggers_cleans_records_before_any_handler_sees_them(caplog, logger_name):
    redact_loggers(logger_name, secrets=[API_KEY])
    redact_loggers(logger_name, secrets=[SecretStr(SECRET_KEY), None, "abc"])  # added to it
    log = logging.getLogger(logger_name)
    assert [type(f) for f in log.filters] == [RedactionFilter]

    with caplog.at_level(logging.INFO, logger=logger_name):  # no handler of ours at all
        log.info(
            "GET /x?ApiKey=%s&SecretKey=%s key %s, abc",
            "a1b2",
            "c3d4",
            SECRET_KEY,
            extra={"key": API_KEY, "phone": PHONE},
        )
    (record,) = caplog.records
    assert record.getMessage() == "GET /x?ApiKey=***&SecretKey=*** key ***, abc"
    assert record.__dict__["key"] == "***"
    assert record.__dict__["phone"] == MASKED
    for text in (caplog.text, repr(record.__dict__)):  # the marker holds no secret either
        for leaked in (API_KEY, SECRET_KEY, "a1b2", "c3d4", PHONE):
            assert leaked not in text


def test_a_record_redacted_on_its_logger_still_gets_the_handlers_secrets(out, logger_name):
    configure(out)  # the handler's filter knows API_KEY and SECRET_KEY
    logger_only = "logger-only-secret-5e6f"
    redact_loggers(logger_name, secrets=[logger_only])
    logging.getLogger(logger_name).warning("%s %s %s", logger_only, API_KEY, SECRET_KEY)
    (event,) = events(out)
    assert event["msg"] == "*** *** ***"
    for leaked in (logger_only, API_KEY, SECRET_KEY):
        assert leaked not in out.getvalue()


def test_a_phone_in_a_form_encoded_json_body_is_masked():
    # %22 (a quote) or %3A (a colon) right before it: the hex digits are not the phone's
    for body in (
        "payload=%7B%22phone%22%3A%220901888484%22%7D",
        "payload=%7B%22phone%22%3A+%220901+888+484%22%7D",
        "payload=%7B%22phone%22%3A%2284901888484%22%7D",
    ):
        masked = mask_phones(body)
        assert MASKED in masked and "901888484" not in masked.replace("+", ""), masked


@pytest.mark.parametrize(
    "typed",
    [
        "0901888484",
        "0901 888 484",
        "0901.888.484",
        "090-188-8484",
        "84901888484",
        "+84901888484",
        "+84 901 888 484",
        "(+84) 901-888-484",
        "%2B84901888484",  # form-encoded +84
        "0901+888+484",  # form-encoded spaces
        "0901%20888%20484",
    ],
)
def test_every_spelling_of_a_phone_in_text_is_masked_as_mask_phone_masks_it(typed):
    text = mask_phones(f'payload={{"phone":"{typed}","name":"A"}} and {typed}.')
    assert text.count(MASKED) == 2, text
    assert "901888484" not in re.sub(r"\D", "", text.replace(MASKED, ""))


@pytest.mark.parametrize(
    "text",
    [
        "SMSID 12345678901234 at 1733580000.123",  # long ids and timestamps are not phones
        "ts 2026-12-07 09:12:34, amount 150000, order DH-1001",
        "landline 02439123456",
        "a longer run 090188848412",
    ],
)
def test_numbers_that_are_not_mobile_phones_are_left_alone(text):
    assert mask_phones(text) == text


def test_a_phone_in_any_message_is_masked_and_a_long_message_capped(out):
    configure(out)
    log = logging.getLogger("slack_bolt.test")
    log.info("body: %s", "payload=" + "x" * 3_000_000 + f" {PHONE} {API_KEY}")
    log.info("user typed %s", "+84 901 888 484")
    long, typed = events(out)
    assert len(long["msg"]) <= MAX_MESSAGE and "chars cut" in long["msg"]
    assert typed["msg"] == f"user typed {MASKED}"
    assert PHONE not in out.getvalue() and API_KEY not in out.getvalue()


def test_records_are_scrubbed_for_every_handler_at_every_level(caplog):
    protect_records([API_KEY])
    with caplog.at_level(logging.DEBUG):  # pytest's handler; none of ours
        logging.getLogger("apscheduler.test").debug("job for %s key %s", PHONE, API_KEY)
    (record,) = caplog.records
    assert record.getMessage() == f"job for {MASKED} key ***"


def test_slack_sdk_and_bolt_body_dumps_are_cut_to_their_head(caplog):
    protect_records()
    body = '{"channel": "C1", "text": "to 0901888484", "blocks": []}'
    with caplog.at_level(logging.DEBUG):
        sdk = logging.getLogger("slack_sdk.web.async_base_client")
        sdk.debug(
            f"Sending a request - url: POST http://x/api/chat.postMessage, params: {{}}, "
            f"json: {body}, headers: {{}}"
        )
        sdk.debug(f"Received the following response - status: 200, headers: {{}}, body: {body}")
        logging.getLogger("slack_bolt.RequestVerification").info(
            f"Invalid request signature detected (signature: v0=1, timestamp: 1, body: {body})"
        )
    sent, received, refused = caplog.records
    assert sent.getMessage() == (
        "Sending a request - url: POST http://x/api/chat.postMessage (body not logged)"
    )
    assert received.getMessage() == (
        "Received the following response - status: 200 (body not logged)"
    )
    # Demoted: the bot logs a refused request itself, once, short.
    assert refused.levelno == logging.DEBUG
    assert refused.getMessage() == "Invalid request signature detected (body not logged)"
    assert "C1" not in caplog.text
