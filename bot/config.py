"""Settings from the environment and an optional `.env` file, with clear errors for bad ones."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.errors import ConfigError

CommaList = Annotated[list[str], NoDecode]

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# ZNS SmsType in template and status calls: 24 "Zalo ưu tiên" (priority), 25 "Zalo bình
# thường" (normal); eSMS's other types (SMS, Viber, 26/27 seen only in callbacks) are not ZNS.
ZNS_SMS_TYPES = ("24", "25")


def _is_web_url(value: str) -> bool:
    parts = urlsplit(value.strip())
    return parts.scheme in ("http", "https") and bool(parts.hostname)


class Settings(BaseSettings):
    """Every setting zns-bot reads. Names are the upper-case env variable names."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"

    esms_api_key: SecretStr | None = None
    esms_secret_key: SecretStr | None = None
    esms_base_url: str = "https://rest.esms.vn/MainService.svc/json/"
    esms_callback_api_url: str = "https://status-sms.esms.vn/ZaloCallback/"
    esms_oaid: str | None = None
    esms_sandbox: bool = False
    esms_sms_type: str = "25"
    esms_timeout: float = Field(15.0, gt=0)
    esms_max_attempts: int = Field(3, ge=1, le=10)
    esms_retry_backoff: float = Field(0.5, ge=0)

    zns_approval_channel: str | None = None
    zns_notify_channel: str | None = None
    zns_approvers: CommaList = Field(default_factory=list)
    zns_requesters: CommaList = Field(default_factory=list)
    zns_auditors: CommaList = Field(default_factory=list)
    zns_allow_self_approval: bool = False
    zns_allow_sandbox: bool = True
    zns_approval_ttl: int = Field(24 * 3600, gt=0)
    zns_timezone: str = "Asia/Ho_Chi_Minh"  # where a day begins, for the App Home's counts
    zns_template_ttl: int = Field(600, gt=0)
    zns_data_dir: Path = Path("./data")
    zns_fsync: bool = True
    zns_slack_pace: float = Field(1.0, ge=0)
    zns_slack_burst: int = Field(3, ge=1)
    # The live store keeps a final send this long after it ended (then the audit log does).
    zns_live_hours: float = Field(48.0, ge=0)
    zns_archive_every: int = Field(300, gt=0)  # seconds between archive passes
    # How sealed audit segments are compressed ("none": kept as plain lines).
    zns_audit_compression: Literal["none", "gzip", "bz2", "xz"] = "gzip"

    public_base_url: str | None = None
    log_level: str = "INFO"
    host: str = "127.0.0.1"
    port: int = Field(3000, ge=0, le=65535)
    # Refused before the app reads them: 413 (body), 414 (query string), 431 (headers).
    # 1 MiB: the largest approval submission is 173 KiB, the largest request submission
    # (20 inputs of 3000 Vietnamese characters) 575 KiB; see tests/bot/web/test_limits.py.
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    max_query_bytes: int = Field(16 * 1024, ge=256)
    max_header_bytes: int = Field(8 * 1024, ge=1024)
    # Seconds a connection may take to send a request's headers, and may idle between requests.
    header_timeout: float = Field(30.0, gt=0)
    # Seconds a request's whole body may take to arrive once its headers are in (408 after).
    body_timeout: float = Field(30.0, gt=0)
    keepalive_timeout: float = Field(5.0, gt=0)
    # Open connections beyond this get 503 (eSMS callbacks refused so are recovered by polling).
    max_connections: int = Field(500, ge=2)
    # /metrics is served only here, never on the public HOST:PORT.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9464, ge=0, le=65535)

    @field_validator("zns_approvers", "zns_requesters", "zns_auditors", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("esms_base_url", "esms_callback_api_url", "slack_api_url", mode="after")
    @classmethod
    def _api_url(cls, value: str) -> str:
        value = value.strip()
        if not _is_web_url(value):
            raise ValueError(f"{value!r} is not an http(s) URL with a host")
        return value if value.endswith("/") else value + "/"

    @field_validator("public_base_url", mode="after")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        # http is accepted here (a test or a proxy on loopback); `check` reports it.
        value = (value or "").strip()
        if not value:
            return None  # `PUBLIC_BASE_URL=` as copied from .env.example: unset
        if not _is_web_url(value):
            raise ValueError(f"{value!r} needs a scheme and a host, e.g. https://zns.example.com")
        return value

    @field_validator("log_level", mode="after")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"unknown log level {value!r}; use {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("esms_sms_type", mode="before")
    @classmethod
    def _sms_type(cls, value: object) -> object:
        text = str(value).strip()
        if text not in ZNS_SMS_TYPES:
            raise ValueError(f"{value!r} is not a ZNS SmsType; use 24 (priority) or 25 (normal)")
        return text

    @field_validator("zns_timezone", mode="after")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value.strip())
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone, e.g. Asia/Ho_Chi_Minh") from None
        return value.strip()

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.zns_timezone)

    @field_validator("zns_audit_compression", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _metrics_apart(self) -> Settings:
        if self.metrics_port and self.metrics_port == self.port:
            raise ValueError("METRICS_PORT must differ from PORT (/metrics is not public)")
        return self

    @property
    def audit_compression(self) -> str | None:
        return None if self.zns_audit_compression == "none" else self.zns_audit_compression

    def require(self, *names: str) -> None:
        """Raise one ConfigError naming every missing setting and where it comes from."""
        missing = [name.upper() for name in names if not getattr(self, name.lower())]
        if missing:
            raise ConfigError(
                f"missing setting{'s' if len(missing) > 1 else ''}: {', '.join(missing)} "
                "(set in the environment or in .env; see .env.example)"
            )


def load_settings(**overrides: object) -> Settings:
    """Load settings, turning pydantic's validation report into one readable ConfigError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ".".join(str(part) for part in err["loc"]).upper()
            # A check across settings has no location; its message names them itself.
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{name}: {msg}" if name else msg)
        raise ConfigError("invalid setting " + "; ".join(problems)) from None
