"""What the bot keeps in a modal's private_metadata, typed, and read back defensively."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypedDict


class RequestMeta(TypedDict, total=False):
    """The request modal's: where /zns was typed, and the OA and template chosen so far."""

    channel: str | None
    oaid: str | None
    template: str | None


class ApprovalMeta(TypedDict, total=False):
    """The approval modal's: the send under review and the content digest it shows."""

    send_id: str
    digest: str | None


def encode(meta: RequestMeta | ApprovalMeta) -> str:
    return json.dumps(meta, separators=(",", ":"))


def _decoded(view: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata as a dict of its str values; anything else Slack hands back is dropped."""
    try:
        data = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str)}


def request_meta(view: Mapping[str, Any]) -> RequestMeta:
    data = _decoded(view)
    return RequestMeta(
        channel=data.get("channel"), oaid=data.get("oaid"), template=data.get("template")
    )


def approval_meta(view: Mapping[str, Any]) -> ApprovalMeta:
    data = _decoded(view)
    meta = ApprovalMeta(send_id=data.get("send_id", ""))
    if "digest" in data:
        meta["digest"] = data["digest"]
    return meta
