"""`zns-bot privacy erase`: a customer's personal data out of the store, the chain intact."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.errors import InputError
from bot.phones import mask_phone, normalize_phone
from storage.erasure import ErasurePlan, apply_erasure, plan_erasure
from storage.store import Store


@dataclass(frozen=True)
class Outcome:
    """How an erasure ended: "erased", "nothing", "dry run", "refused" or "not confirmed"."""

    result: str
    lines: list[str]

    @property
    def ok(self) -> bool:
        return self.result in {"erased", "nothing", "dry run"}


def describe(plan: ErasurePlan, masked: str) -> list[str]:
    """What the plan would erase, in words; the phone masked."""
    return [
        f"customer {masked}: {len(plan.send_ids)} send(s)",
        f"  live store: {len(plan.live_sends)} send record(s), {len(plan.live_callbacks)} "
        f"callback(s), {len(plan.live_events)} audit event(s), {len(plan.outbox_items)} "
        "Slack post(s) not yet made or confirmed (dropped)",
        f"  audit segments: {plan.segment_events} event(s) in {len(plan.segments)} segment(s)",
    ]


def erase(
    store: Store,
    phone_text: str,
    *,
    actor: str,
    dry_run: bool = False,
    confirm: Callable[[str], bool] | None = None,
) -> Outcome:
    """Plan, then (unless a dry run, refused or not confirmed) erase and record it."""
    try:
        phone = normalize_phone(phone_text)
    except InputError as exc:
        raise InputError(f"--phone: {exc}") from None
    masked = mask_phone(phone)
    plan = plan_erasure(store, phone)
    if not plan.anything:
        return Outcome("nothing", [f"nothing to erase: no data of {masked} in the store"])
    lines = describe(plan, masked)
    if plan.refusal is not None:
        return Outcome("refused", [*lines, f"refused: {plan.refusal} Nothing was changed."])
    if dry_run:
        return Outcome("dry run", [*lines, "dry run: nothing was changed"])
    if confirm is not None and not confirm(f"erase the personal data of {masked}?"):
        return Outcome("not confirmed", [*lines, "not confirmed: nothing was changed"])
    event = apply_erasure(store, plan, actor)
    return Outcome(
        "erased",
        [
            *lines,
            f"erased: recorded in the audit log as event seq {event['seq']} (no phone in it); "
            "`zns-bot audit verify` still passes",
        ],
    )
