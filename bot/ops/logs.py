"""Structured logging: one event per line on stderr, secrets redacted and phones masked.

`configure_logging()` installs one handler on the root logger (and replaces only the one it
installed before, so pytest's caplog and anything else on the root logger keep working).
The handler's `RedactionFilter` rewrites each record it sees before it is written:

- every configured secret value, `ApiKey=`/`SecretKey=`/token-like query values, Slack
  `xox?-`/`xapp-` tokens, `Bearer` credentials and the per-send token in eSMS callback URLs
  become `***`, in the message, in the `extra` fields and in the exception text;
- a `phone` (or `*_phone`) extra is replaced by its masked form (`090****484`), and so is
  every Vietnamese mobile number in the text, however it is spelt (`0901 888 484`,
  `84901888484`, `+84 901-888-484`, form-encoded `0901+888+484`);
- a message is cut to `MAX_MESSAGE` characters, a traceback to `MAX_TRACEBACK`, so no request
  body is ever written whole.

The record itself is rewritten, so handlers that run after this one see the clean version too.
`protect_records()` does the same to every record as it is created, whatever its logger and
level, before any handler (pytest's caplog included) sees it; it also shortens the records
slack_sdk and Bolt write with a whole request or response body in them (see `_SHORTENED`).
`redact_loggers()` puts the same filter on named loggers (httpx logs eSMS URLs), which rewrites
their records before any handler, pytest's caplog included, sees them.
"""

from __future__ import annotations

import functools
import json as jsonlib
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TextIO

import orjson
from pydantic import BaseModel

from bot.phones import mask_phone

MASK = "***"
MIN_SECRET_LENGTH = 4  # shorter "secrets" would blank ordinary text; they are ignored
MAX_MESSAGE = 2048  # characters of one message: room for any event of ours, never a body
MAX_TRACEBACK = 8192  # a traceback keeps its end, where the exception is
# What `exc_info=` takes (as typeshed's logging spells it).
ExcInfo = (
    bool
    | BaseException
    | tuple[type[BaseException], BaseException, TracebackType | None]
    | tuple[None, None, None]
    | None
)

# Attributes every LogRecord has; whatever else is on a record came from `extra=`.
_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's ANSI-coloured copy of the message
}
# Libraries that log routine work at INFO: kept at WARNING unless the level is DEBUG.
CHATTY_LOGGERS = ("apscheduler", "httpx", "httpcore")
_CORE_KEYS = ("ts", "level", "logger", "msg", "exc", "stack")
_SCRUBBED = "_zns_scrubbed"
_OURS = "_zns_logs_handler"

# (a literal every match contains, in lower case; the pattern; its replacement). The literal
# is a cheap test that lets ordinary text skip the regular expressions.
_PATTERNS: tuple[tuple[str, re.Pattern[str], str], ...] = (
    # Credentials and tokens in query strings and form bodies: ApiKey=..., token=...
    (
        "=",
        re.compile(
            r"(?i)\b(api_?key|secret_?key|[a-z_]*token|client_secret|password|passwd|"
            r"signature|sig)=[^&\s\"'#,;]*"
        ),
        r"\1=" + MASK,
    ),
    # Slack tokens: bot/user/app-level/refresh/configuration.
    ("xox", re.compile(r"\bxox[a-z]-[A-Za-z0-9-]+"), MASK),
    ("xapp-", re.compile(r"\bxapp-[A-Za-z0-9-]+"), MASK),
    ("bearer", re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + MASK),
    # The unguessable per-send token in the eSMS CallbackUrl path.
    ("/esms/callback/", re.compile(r"(/esms/callback/)[^/?\s\"'#]+"), r"\1" + MASK),
)


# A Vietnamese mobile number as people and encoders spell it: 0, 84 or +84 (also `%2B84`),
# then 9 digits starting 3, 5, 7, 8 or 9, with spaces, dots, dashes or a form-encoded `+`
# or `%20` between digit groups. Not inside a longer run of digits (ids, timestamps).
_SEP = r"(?:[ .\-+]|%20)?"
# "Not after a digit", except the hex digits of a percent escape: in a form-encoded body a
# phone follows `%22` (a quote) or `%3A`.
_NOT_AFTER_DIGIT = r"(?:(?<!\d)|(?<=%[0-9A-Fa-f]{2}))"
_PHONE = re.compile(
    _NOT_AFTER_DIGIT
    + r"(?:\+|%2[Bb])?(?:\(?84\)?|0)"
    + _SEP
    + r"([35789](?:"
    + _SEP
    + r"\d){8})(?![\d])"
)
_DIGIT_RUN = re.compile(r"\d{3}")  # cheap: text without three digits in a row has no phone


def mask_phones(text: str) -> str:
    """Every Vietnamese mobile number in `text` masked as `mask_phone` masks it: `090****484`."""
    if not _DIGIT_RUN.search(text):
        return text
    return _PHONE.sub(_mask_match, text)


def _mask_match(match: re.Match[str]) -> str:
    return mask_phone("0" + re.sub(r"%20|\D", "", match.group(1)))


def cap(text: str, limit: int = MAX_MESSAGE, *, keep_end: bool = False) -> str:
    """`text` cut to at most `limit` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    note = f" …[{len(text) - limit + 40} chars cut]… "
    keep = limit - len(note)
    return note + text[-keep:] if keep_end else text[:keep] + note


def _secret_text(value: object) -> str | None:
    if value is None:
        return None
    getter = getattr(value, "get_secret_value", None)  # pydantic SecretStr
    text = getter() if callable(getter) else value
    return text if isinstance(text, str) else str(text)


class RedactionFilter(logging.Filter):
    """Blanks secrets and masks phones on each record; never drops a record.

    `secrets` are values never to print (str, or pydantic SecretStr; None is skipped).
    """

    def __init__(self, secrets: Iterable[object] = ()) -> None:
        super().__init__()
        self.secrets: tuple[str, ...] = ()
        self.add_secrets(secrets)

    def add_secrets(self, secrets: Iterable[object]) -> None:
        """Blank these values too from now on."""
        values = {_secret_text(s) for s in secrets} | set(self.secrets)
        kept = (v for v in values if v and len(v) >= MIN_SECRET_LENGTH)
        # Longest first, so a secret that contains another is blanked whole.
        self.secrets = tuple(sorted(kept, key=len, reverse=True))

    def redact(self, text: str, limit: int = MAX_MESSAGE, *, keep_end: bool = False) -> str:
        # Cut loosely first so a huge body costs little to scan, then exactly: a secret or
        # phone split by the first cut is gone with the second.
        text = cap(text, 4 * limit, keep_end=keep_end)
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        lowered = text.lower()
        for literal, pattern, replacement in _PATTERNS:
            if literal in lowered:
                text = pattern.sub(replacement, text)
        return cap(mask_phones(text), limit, keep_end=keep_end)

    def filter(self, record: logging.LogRecord) -> bool:
        # A logger's filter and then the handler's may both see a record, each with secrets
        # of its own: only a filter that has already scrubbed the record skips it. (The marker
        # holds the filters' ids, never their secrets: a record's __dict__ gets printed.)
        scrubbed: tuple[int, ...] = getattr(record, _SCRUBBED, ())
        if id(self) in scrubbed:
            return True
        record.msg = self.redact(_message(record))
        record.args = ()
        for key in _extra_keys(record):
            value = record.__dict__[key]
            if _is_phone_key(key):
                value = _mask(value)
            record.__dict__[key] = self._scrub(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = _FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text, MAX_TRACEBACK, keep_end=True)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info, MAX_TRACEBACK, keep_end=True)
        setattr(record, _SCRUBBED, (*scrubbed, id(self)))
        return True

    def _scrub(self, value: object) -> object:
        if isinstance(value, str):
            return self.redact(value)
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, Mapping):
            return {
                self.redact(str(k)): _mask(v) if _is_phone_key(str(k)) else self._scrub(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple | set | frozenset):
            return [self._scrub(v) for v in value]
        return self.redact(str(value))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, the extra fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, object] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": _message(record),
        }
        for key in _extra_keys(record):
            name = key if key not in _CORE_KEYS else f"{key}_"
            value = record.__dict__[key]
            event[name] = _mask(value) if _is_phone_key(key) else value
        exc = _exception_text(record)
        if exc:
            event["exc"] = exc
        if record.stack_info:
            event["stack"] = record.stack_info
        try:
            return orjson.dumps(event, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except orjson.JSONEncodeError:  # what orjson refuses (an int over 64 bits...)
            return jsonlib.dumps(event, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`ts LEVEL logger: msg key=value ...`, newlines escaped so an event stays on one line."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record), record.levelname, f"{record.name}:", _message(record)]
        for key in _extra_keys(record):
            value = record.__dict__[key]
            value = _mask(value) if _is_phone_key(key) else value
            text = value if isinstance(value, str) else jsonlib.dumps(value, default=str)
            parts.append(f"{key}={text}")
        exc = _exception_text(record)
        if exc:
            parts.append(f"exc={exc}")
        return _one_line(" ".join(parts))


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to the given stream, or to whatever `sys.stderr` is at the time of writing."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._fixed = stream
        super().__init__(stream)

    @property
    def stream(self) -> TextIO:
        return self._fixed if self._fixed is not None else sys.stderr

    @stream.setter
    def stream(self, value: TextIO | None) -> None:
        self._fixed = value

    def format(self, record: logging.LogRecord) -> str:
        # A formatter that let a newline through would split one event over several lines.
        return _one_line(super().format(record))


def configure_logging(
    level: str | int = "INFO",
    *,
    json: bool = True,
    secrets: Iterable[object] = (),
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send every log event to stderr (or `stream`), one line each; returns the handler.

    `secrets` are values never to print (str, or pydantic SecretStr; None is skipped).
    Calling it again replaces the handler it installed before; other handlers stay.
    """
    numeric = _level(level)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(old)
        old.close()
    handler = _StderrHandler(stream)
    setattr(handler, _OURS, True)
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    secrets = list(secrets)
    handler.addFilter(RedactionFilter(secrets))
    protect_records(secrets)
    root.addHandler(handler)
    root.setLevel(numeric)
    # Their INFO is per tick and per request (APScheduler two lines per job run, httpx one
    # per call: 78 lines a minute from an idle bot); worth reading only when debugging.
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(
            logging.NOTSET if numeric <= logging.DEBUG else logging.WARNING
        )
    return handler


# Records that third-party libraries write with a whole request or response in them, by
# (logger name prefix, message prefix): what is kept of them. Bodies hold modals, phones and
# names; the line keeps what says what happened. A refused Slack request is logged by us,
# once and short (bot/web/refusals.py), so Bolt's line, which holds the body, goes to DEBUG.
_BODY_MARKERS = (", params: ", ", headers: ", ", body: ", " (")
_SHORTENED: tuple[tuple[str, str, int | None], ...] = (
    ("slack_sdk.", "Sending a request - url: ", None),
    ("slack_sdk.", "Sending a request: ", None),
    ("slack_sdk.", "Received the following response - ", None),
    ("slack_sdk.", "ChatStream appended to buffer", None),
    ("slack_bolt.", "Invalid request signature detected", logging.DEBUG),
    ("slack_bolt.", "A global middleware (", None),
    ("slack_bolt.", "Skipped self event", None),
    ("slack_bolt.", "Responding with status: ", None),
)


def _shorten(record: logging.LogRecord) -> None:
    """Cut a known body-dumping record to its head (and demote it where `_SHORTENED` says)."""
    msg = record.msg
    if not isinstance(msg, str) or not record.name.startswith(("slack_sdk.", "slack_bolt.")):
        return
    for prefix, start, level in _SHORTENED:
        if record.name.startswith(prefix) and msg.startswith(start):
            text = _message(record)
            head = min(
                (i for i in (text.find(m, len(start)) for m in _BODY_MARKERS) if i > 0),
                default=len(start),
            )
            if start.startswith("Responding"):  # "Responding with status: 200 body: ..."
                head = text.find(" body", len(start))
                head = head if head > 0 else len(text)
            record.msg, record.args = text[:head] + " (body not logged)", ()
            if level is not None and record.levelno > level:
                record.levelno, record.levelname = level, logging.getLevelName(level)
            return


_PROCESS_FILTER: RedactionFilter | None = None


def protect_records(secrets: Iterable[object] = ()) -> RedactionFilter:
    """Scrub every log record of the process as it is created, before any handler sees it.

    Whatever the logger (slack_bolt, slack_sdk, httpx, apscheduler, uvicorn, ours) and the
    level, DEBUG included: secrets blanked, phones masked, the message capped, and known
    body-dumping records shortened. Calling it again adds `secrets`; the factory is installed
    once. A handler's own filter (configure_logging's) still scrubs the `extra=` fields,
    which are set on a record only after it is created.
    """
    global _PROCESS_FILTER
    if _PROCESS_FILTER is not None:
        _PROCESS_FILTER.add_secrets(secrets)
        return _PROCESS_FILTER
    scrubber = _PROCESS_FILTER = RedactionFilter(secrets)
    make = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        _shorten(record)
        scrubber.filter(record)
        # The handler's filter must scrub again: its extras are set after this point.
        record.__dict__.pop(_SCRUBBED, None)
        return record

    logging.setLogRecordFactory(factory)
    return scrubber


def redact_loggers(*names: str, secrets: Iterable[object] = ()) -> None:
    """Redact every record logged on these loggers before any handler sees it.

    A logger gets one RedactionFilter; calling again adds `secrets` to it. Only records
    logged on the logger itself pass its filters, not those of its children.
    """
    for name in names:
        logger = logging.getLogger(name)
        found = next((f for f in logger.filters if isinstance(f, RedactionFilter)), None)
        if found is None:
            logger.addFilter(RedactionFilter(secrets))
        else:
            found.add_secrets(secrets)


def log_event(
    logger: logging.Logger | str,
    event: str,
    *,
    level: int | str = logging.INFO,
    exc_info: ExcInfo = None,
    **fields: object,
) -> None:
    """Log `event` as the message with `fields` as extra fields (a `phone` field is masked).

    A field whose name a LogRecord already uses (`name`, `msg`, `args`, ...) gets a trailing
    underscore instead of breaking the call.
    """
    if isinstance(logger, str):
        logger = logging.getLogger(logger)
    numeric = _level(level)
    if not logger.isEnabledFor(numeric):
        return
    extra: dict[str, object] = {}
    for key, value in fields.items():
        name = f"{key}_" if key in _RECORD_ATTRS else key
        extra[name] = _mask(value) if _is_phone_key(key) else value
    # Masked here already; the filter must not mask the masked value again.
    logger.log(numeric, event, extra=extra, exc_info=exc_info, stacklevel=2)


def secrets_from_settings(settings: BaseModel) -> list[str]:
    """Every SecretStr value set on a Settings object, to pass as `secrets=`."""
    values = []
    for name in type(settings).model_fields:
        value = getattr(settings, name, None)
        if hasattr(value, "get_secret_value"):
            text = _secret_text(value)
            if text:
                values.append(text)
    return values


_FORMATTER = logging.Formatter()


def _level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    numeric = logging.getLevelName(str(level).strip().upper())
    if not isinstance(numeric, int):
        raise ValueError(
            f"unknown log level {level!r}; use DEBUG, INFO, WARNING, ERROR or CRITICAL"
        )
    return numeric


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # bad %-args must not lose the event (or raise from a filter)
        return f"{record.msg!s} {record.args!r}"


def _extra_keys(record: logging.LogRecord) -> list[str]:
    return [k for k in record.__dict__ if k not in _RECORD_ATTRS and not k.startswith("_zns_")]


def _exception_text(record: logging.LogRecord) -> str:
    if record.exc_info and not record.exc_text:
        record.exc_text = _FORMATTER.formatException(record.exc_info)
    return record.exc_text or ""


@functools.lru_cache(maxsize=1024)
def _is_phone_key(key: str) -> bool:
    lowered = key.lower()
    return lowered == "phone" or lowered.endswith("_phone")


def _mask(value: object) -> object:
    """Mask a phone value once; an already masked one (it has '*') is left as it is."""
    if value is None:
        return None
    if isinstance(value, list | tuple | set | frozenset):
        return [_mask(v) for v in value]
    text = str(value)
    if "*" in text:
        return text
    # A number typed as +84 or 84 masks as its 0 form, as one in the message text does.
    masked = mask_phones(text)
    return masked if masked != text else mask_phone(text)


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _one_line(text: str) -> str:
    return text.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\r")
