"""What `status` shows of a lookup: labelled fields, plain lines and JSON, phones masked."""

from __future__ import annotations

from typing import Any

from bot.lookup import Key, Lookup, SendView, TrailEntry
from bot.ops.logs import mask_phones
from bot.phones import mask_phone

KIND_WORDS = {"send": "send id", "sms": "SMSID", "phone": "phone"}
_LABEL = 11  # the width of the field labels in the text


def phone_text(view: SendView, *, unmask: bool = False) -> str:
    if view.phone_erased:
        return "erased"
    if not view.phone:
        return "unknown"
    return view.phone if unmask else mask_phone(view.phone)


def key_text(key: Key, *, unmask: bool = False) -> str:
    """The key as shown back to people: a phone masked like everywhere else."""
    return mask_phone(key.value) if key.kind == "phone" and not unmask else key.value


def readings(lookup: Lookup, *, unmask: bool = False) -> list[tuple[str, str]]:
    """(kind, value) of each reading tried. When the key reads as a phone, its other
    readings (SMSID, send id) are that phone as typed: masked as well."""
    typed_phone = not unmask and any(k.kind == "phone" for k in lookup.tried)
    return [
        (k.kind, mask_phones(key_text(k)) if typed_phone else key_text(k, unmask=unmask))
        for k in lookup.tried
    ]


def utc(ts: str) -> str:
    """`2026-12-07T16:50:01.123456+00:00` → `2026-12-07 16:50:01` (the store keeps UTC)."""
    return f"{ts[:10]} {ts[11:19]}" if len(ts) >= 19 else ts


def template_text(view: SendView) -> str:
    if view.template_name:
        return f"{view.template_id} ({view.template_name})"
    return view.template_id or "unknown"


def status_fields(view: SendView, *, unmask: bool = False) -> list[tuple[str, str]]:
    """(label, value) pairs, in the order to show them: the text's lines, a Slack section's
    fields. The state's meaning is shown with it; the result only when it says more."""
    fields = [("state", f"{view.state}: {view.meaning}")]
    if view.result and view.result != view.meaning:
        fields.append(("result", view.result))
    if view.suggestion and view.suggestion != "nothing to do":
        fields.append(("what to do", view.suggestion))
    fields += [
        ("template", template_text(view)),
        ("phone", phone_text(view, unmask=unmask)),
        ("requester", view.requester or "unknown"),
        ("approver", view.approver or "none yet"),
        ("SMSID", view.sms_id or "none"),
        ("sandbox", "yes: checked by eSMS only, never delivered" if view.sandbox else "no"),
        ("created", f"{utc(view.created_at)} UTC"),
        ("stored", "live store" if view.where == "live" else "archive (left the live store)"),
    ]
    return fields


def trail_line(entry: TrailEntry) -> str:
    return f"{utc(entry.ts)}  {entry.kind:<13} {entry.actor:<18} {entry.detail}".rstrip()


def status_lines(view: SendView, *, unmask: bool = False) -> list[str]:
    """One send in full: its fields, then its audit trail (UTC), oldest first."""
    tag = "  [SANDBOX]" if view.sandbox else ""
    lines = [f"send {view.send_id}{tag}"]
    lines += [f"  {label:<{_LABEL}} {value}" for label, value in status_fields(view, unmask=unmask)]
    lines.append(f"audit trail ({len(view.trail)} events, UTC):")
    lines += [f"  {trail_line(entry)}" for entry in view.trail]
    return lines


def summary_line(view: SendView) -> str:
    """One send on one line, for a phone's list (the phone is the list's: not repeated)."""
    tag = " [SANDBOX]" if view.sandbox else ""
    sms = f"  SMSID {view.sms_id}" if view.sms_id else ""
    outcome = view.result or view.meaning
    return (
        f"{utc(view.created_at)}  {view.send_id}  {view.state}{tag}  "
        f"template {view.template_id or '?'}{sms}: {outcome}"
    )


def not_found_line(lookup: Lookup, *, unmask: bool = False) -> str:
    tried = ", ".join(
        f"{KIND_WORDS[kind]} {value}" for kind, value in readings(lookup, unmask=unmask)
    )
    return f"no send found for {tried} (live or archived)"


def lookup_lines(lookup: Lookup, *, unmask: bool = False) -> list[str]:
    """The lines `zns-bot status` prints: one send in full, or a phone's sends one a line."""
    if lookup.key is None:
        return [not_found_line(lookup, unmask=unmask)]
    if lookup.key.kind != "phone":
        lines: list[str] = []
        for view in lookup.views:  # one, unless eSMS gave two sends the same SMSID
            lines += [*([""] if lines else []), *status_lines(view, unmask=unmask)]
        return lines
    shown = key_text(lookup.key, unmask=unmask)
    newest = f", the newest {len(lookup.views)} shown" if lookup.more else ""
    lines = [f"{lookup.total} send(s) to {shown}, newest first{newest}:"]
    lines += [f"  {summary_line(v)}" for v in lookup.views]
    if lookup.more:
        lines.append(
            f"  … and {lookup.more} older: `zns-bot audit export --csv - --phone …` has them all"
        )
    lines.append("details and audit trail: zns-bot status <send id>")
    return lines


def status_json(view: SendView, *, unmask: bool = False) -> dict[str, Any]:
    """One send for scripts. The same fields as the text; no secrets or tokens exist in a
    view to leak, and the phone is masked unless asked."""
    return {
        "send_id": view.send_id,
        "stored": view.where,
        "state": view.state,
        "meaning": view.meaning,
        "result": view.result or None,
        "suggestion": view.suggestion or None,
        "error_code": view.error_code,
        "template": {"id": view.template_id or None, "name": view.template_name or None},
        "oaid": view.oaid or None,
        "phone": phone_text(view, unmask=unmask),
        "phone_masked": not unmask and bool(view.phone) and not view.phone_erased,
        "requester": view.requester or None,
        "approver": view.approver or None,
        "sms_id": view.sms_id or None,
        "sandbox": view.sandbox,
        "slack_card": {"channel": view.card[0], "ts": view.card[1]} if view.card else None,
        "created_at": view.created_at or None,
        "updated_at": view.updated_at or None,
        "trail": [
            {"ts": e.ts, "kind": e.kind, "actor": e.actor, "detail": e.detail} for e in view.trail
        ],
    }


def lookup_json(lookup: Lookup, *, unmask: bool = False) -> dict[str, Any]:
    """A lookup for scripts: what the key was read as, what it found, and whether more."""
    return {
        "query": {
            "tried": [
                {"kind": kind, "value": value} for kind, value in readings(lookup, unmask=unmask)
            ],
            "matched": lookup.key.kind if lookup.key else None,
        },
        "found": lookup.key is not None,
        "total": lookup.total,
        "shown": len(lookup.views),
        "more": lookup.more,
        "sends": [status_json(v, unmask=unmask) for v in lookup.views],
    }
