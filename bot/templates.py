"""The template catalogue (GetTemplate + GetZnsTemplateInfo, cached) and parameter validation."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Protocol
from urllib.parse import urlsplit

from bot.cache import SwrCache
from bot.errors import EsmsError, ParamsError, TemplateError
from bot.esms.types import (
    OfficialAccount,
    ParamType,
    Template,
    TemplateInfo,
    TemplateParam,
    TemplateStatus,
)

log = logging.getLogger(__name__)

NUMBER_MAX_DIGITS = 12  # Zalo's type_number: digits 0-9 only, at most 12
_DATE = re.compile(r"^\d{2}/\d{2}/\d{4}$")
_ALL_OAS = ""  # the one key of the OA list's cache


class TemplateSource(Protocol):
    """What the catalogue needs from the gateway (EsmsClient satisfies it)."""

    async def list_templates(self, oaid: str) -> list[Template]: ...

    async def template_info(self, template_id: str, oaid: str) -> TemplateInfo: ...

    async def list_oas(self) -> list[OfficialAccount]: ...


def merge_info(template: Template, info: TemplateInfo | None) -> Template:
    """Fold GetZnsTemplateInfo's status, timeout and tighter length limits into a template."""
    if info is None:
        return replace(template, status=TemplateStatus.UNKNOWN)
    params = []
    for param in template.params:
        _, max_len, required = info.param_limits.get(param.name, (None, None, param.required))
        known = [n for n in (param.max_length, max_len) if n]  # None or 0: eSMS did not say
        params.append(replace(param, max_length=min(known) if known else None, required=required))
    return replace(
        template,
        name=template.name or info.name,
        params=tuple(params),
        status=info.status,
        tag=info.tag,
        timeout_ms=info.timeout_ms,
        preview_url=info.preview_url,
    )


class TemplateCatalogue:
    """Templates per OA, fetched together and cached for `ttl` seconds.

    A stale list is served at once while a refresh runs in the background, and a failed
    refresh keeps the last good list: an eSMS hiccup must not stall or empty a modal.
    """

    def __init__(
        self,
        source: TemplateSource,
        *,
        ttl: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        # Stale-while-revalidate: a person waiting on a modal gets the list we have now;
        # eSMS is asked again in the background, once for many concurrent callers.
        self._cache: SwrCache[str, dict[str, Template]] = SwrCache(
            ttl=ttl, clock=clock, keep_on=(EsmsError,), on_kept=_kept_templates, coalesce=True
        )
        self._oas: SwrCache[str, list[OfficialAccount]] = SwrCache(
            ttl=ttl, clock=clock, keep_on=(EsmsError,), background=False
        )

    async def oas(self) -> list[OfficialAccount]:
        """The account's Zalo OAs (cached like templates; stale on a failed refresh)."""
        return await self._oas.get(_ALL_OAS, self._source.list_oas)

    async def templates(self, oaid: str, *, refresh: bool = False) -> list[Template]:
        """Every template of the OA, in eSMS's order, with status merged in."""
        return list((await self._load(oaid, refresh=refresh)).values())

    async def enabled(self, oaid: str) -> list[Template]:
        return [t for t in await self.templates(oaid) if t.status is TemplateStatus.ENABLE]

    async def get(self, template_id: str, oaid: str, *, refresh: bool = False) -> Template:
        """One template by id; raises TemplateError if the OA has no such template."""
        by_id = await self._load(oaid, refresh=refresh)
        template = by_id.get(str(template_id))
        if template is None and not refresh:
            by_id = await self._load(oaid, refresh=True)
            template = by_id.get(str(template_id))
        if template is None:
            raise TemplateError(
                f"template {template_id} is not registered for OA {oaid}: choose another template"
            )
        return template

    async def sendable(self, template_id: str, oaid: str) -> Template:
        """A template that may be sent right now (status ENABLE, checked against fresh data)."""
        template = await self.get(template_id, oaid)
        if template.status is not TemplateStatus.ENABLE:
            template = await self.get(template_id, oaid, refresh=True)
        if template.status is not TemplateStatus.ENABLE:
            raise TemplateError(
                f"template {template.name} ({template.id}) is {template.status.value}, "
                "not ENABLE; Zalo will not deliver it: choose an ENABLE template"
            )
        return template

    async def refresh(self, oaid: str) -> list[Template]:
        return await self.templates(oaid, refresh=True)

    async def _load(self, oaid: str, *, refresh: bool) -> dict[str, Template]:
        fetch = functools.partial(self._fetch, oaid)
        if refresh:
            return await self._cache.refresh(oaid, fetch)
        return await self._cache.get(oaid, fetch)

    async def settled(self) -> None:
        """Wait for background refreshes (for shutdown and tests)."""
        await self._cache.settled()

    async def _fetch(self, oaid: str) -> dict[str, Template]:
        listed = await self._source.list_templates(oaid)
        infos = await asyncio.gather(
            *(self._source.template_info(t.id, oaid) for t in listed), return_exceptions=True
        )
        merged: dict[str, Template] = {}
        for template, info in zip(listed, infos, strict=True):
            detail: TemplateInfo | None = None
            if isinstance(info, BaseException):
                if not isinstance(info, EsmsError):
                    raise info
                log.warning("no detail for template %s: %s", template.id, info)
            else:
                detail = info
            merged[template.id] = merge_info(template, detail)
        return merged


def _kept_templates(oaid: str, error: Exception) -> None:
    log.warning("template refresh failed for OA %s; serving cached list", oaid)


def check_value(param: TemplateParam, value: str) -> str | None:
    """What is wrong with one value for one parameter, or None when it is fine."""
    if not value:
        return "is required: type its value" if param.required else None
    if param.max_length is not None and len(value) > param.max_length:
        return f"is {len(value)} characters long: type at most {param.max_length}"
    if param.type is ParamType.NUMBER:
        if not value.isascii() or not value.isdigit():
            return "must contain digits 0-9 only (no spaces, dots or commas)"
        if len(value) > NUMBER_MAX_DIGITS:
            return f"is over {NUMBER_MAX_DIGITS} digits: type at most {NUMBER_MAX_DIGITS}"
    elif param.type is ParamType.DATE:
        if not _DATE.match(value):
            return "must be a date written dd/MM/yyyy, for example 09/02/2001"
        try:
            datetime.strptime(value, "%d/%m/%Y")
        except ValueError:
            return f"{value} is not a real calendar date: type one such as 09/02/2001"
    elif param.type is ParamType.URL:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or " " in value:
            return "must be a full web address starting with https://"
    return None


def validate_params(template: Template, values: Mapping[str, str]) -> tuple[str, ...]:
    """Check named values against the template; return eSMS's positional `Params` list.

    Raises ParamsError listing every problem at once, keyed by parameter name.
    """
    problems: dict[str, str] = {}
    known = {p.name for p in template.params}
    for name in values:
        if name not in known:
            problems[name] = (
                f"is not a parameter of template {template.name}; "
                f"it takes: {', '.join(p.name for p in template.distinct_params) or 'nothing'}"
            )
    ordered: list[str] = []
    for param in template.distinct_params:  # eSMS: a repeated parameter is passed once
        value = (values.get(param.name) or "").strip()
        problem = check_value(param, value)
        if problem:
            problems[param.name] = problem
        ordered.append(value)
    if problems:
        raise ParamsError(problems)
    return tuple(ordered)
