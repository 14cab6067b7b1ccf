"""Pure Block Kit builders for zns-bot's modals, request card and messages (no I/O)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    CheckboxesElement,
    ContextBlock,
    DividerBlock,
    ExternalDataSelectElement,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.esms.types import OfficialAccount, ParamType, Template
from bot.phones import mask_phone
from bot.service import (
    CAMPAIGN_MAX,
    NOTE_MAX,
    ORDER_ID_MAX,
    REASON_MAX,
    SANDBOX_REASON,
    ContentCheck,
)
from handlers.ui.metadata import ApprovalMeta, RequestMeta, encode
from handlers.ui.text import shorten, slack_len, split_text
from storage.sends import SendRecord, SendState

REQUEST_VIEW = "zns_request"
APPROVAL_VIEW = "zns_approval"
REVIEW_ACTION = "zns_review"
CANCEL_ACTION = "zns_cancel"
OA_ACTION = "oa_select"
TEMPLATE_ACTION = "template_select"
VALUE_ACTION = "value"
PARAM_BLOCK = "param:"
SECTION_TEXT_MAX = 3000  # a section's text (Slack)
FIELD_MAX = 2000  # a section field's text (Slack)
VIEW_BLOCKS_MAX = 100  # blocks in a modal (Slack)
# The approval modal's blocks besides the parameter values, each at most once: sandbox
# context, details, content digest, parameters heading, note, quota, decision, reason.
APPROVAL_FIXED_BLOCKS = 8
APPROVAL_PARAM_BLOCKS = VIEW_BLOCKS_MAX - APPROVAL_FIXED_BLOCKS
# The card is a message: Slack refuses about 13,000 characters of block text in all. The
# values get 5,000 of them; the rest (details, note, status) stays under 5,000.
CARD_PARAMS_BUDGET = 5000
CARD_VALUE_MIN = 20  # characters a value keeps on the card however many parameters
CARD_NOTE_MAX = 1000
STATUS_MAX = 1500
NAME_MAX = 100  # a template's or parameter's name where shown
DIGEST_SHOWN = 16  # hex characters of the content digest: 64 bits, enough to compare
OPTION_TEXT_MAX = 75  # Slack's limit for an option's text
LABEL_MAX = 2000  # an input's label and hint
PLACEHOLDER_MAX = 150
INPUT_MAX = 3000  # the most a plain_text_input's max_length may be

_TYPE_WORDS = {
    ParamType.TEXT: "text",
    ParamType.NUMBER: "digits",
    ParamType.DATE: "date dd/MM/yyyy",
    ParamType.URL: "web address",
}

STATUS_LINES: dict[str, str] = {
    SendState.PENDING_APPROVAL: ":hourglass_flowing_sand: Waiting for an approver",
    SendState.APPROVED: ":white_check_mark: Sending",
    SendState.SUBMITTING: ":outbox_tray: Sending to eSMS",
    SendState.ACCEPTED: ":incoming_envelope: Accepted by eSMS — waiting for the delivery report",
    SendState.UNKNOWN: ":grey_question: Outcome unknown — checking with eSMS",
    SendState.DELIVERED: ":white_check_mark: Delivered",
    SendState.FAILED: ":x: Failed",
    SendState.EXPIRED: ":hourglass: Expired — nobody approved it in time",
    SendState.CANCELLED: ":heavy_multiplication_x: Cancelled by the requester",
    SendState.SANDBOXED: ":test_tube: Sandbox — accepted by eSMS, nothing delivered",
}


def user_ref(actor: str | None) -> str:
    """`slack:U123` → `<@U123>`; other actors (cli:…, system) as they are."""
    if actor and actor.startswith("slack:"):
        return f"<@{actor.removeprefix('slack:')}>"
    return f"`{actor}`" if actor else "someone"


def sandbox_tag(record: SendRecord) -> str:
    return " [SANDBOX]" if record.get("sandbox") else ""


def _plain(text: str) -> PlainTextObject:
    return PlainTextObject(text=text, emoji=True)


def _text_input(
    block_id: str,
    label: str,
    *,
    initial: str | None = None,
    optional: bool = False,
    max_length: int | None = None,
    multiline: bool = False,
    placeholder: str | None = None,
    hint: str | None = None,
) -> InputBlock:
    return InputBlock(
        block_id=block_id,
        label=_plain(shorten(label, LABEL_MAX)),
        optional=optional,
        hint=_plain(shorten(hint, LABEL_MAX)) if hint else None,
        element=PlainTextInputElement(
            action_id=VALUE_ACTION,
            initial_value=initial or None,
            max_length=max_length,
            multiline=multiline or None,
            placeholder=_plain(shorten(placeholder, PLACEHOLDER_MAX)) if placeholder else None,
        ),
    )


def option_text(name: str, ident: str, limit: int = OPTION_TEXT_MAX) -> str:
    """`name (id)` within Slack's option limit, shortening the name, not the id.

    Names that differ only at the end shorten alike; the id keeps their options apart.
    """
    suffix = f" ({ident})"
    if len(name) + len(suffix) <= limit:
        return f"{name}{suffix}"
    if len(suffix) >= limit - 1:  # no room for any of the name: an absurdly long id
        return shorten(f"{name}{suffix}", limit)
    return shorten(name, limit - len(suffix)) + suffix


def choice(name: str, ident: str) -> Option:
    """A select option for one OA or template: its shortened name and id, valued by its id."""
    text = option_text(name, ident) if name else shorten(ident, OPTION_TEXT_MAX)
    return Option(text=_plain(text), value=ident)


def mrkdwn_escape(text: object) -> str:
    """User text shown in mrkdwn: no links, mentions or formatting smuggled in."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def one_line(text: str) -> str:
    """A value on one card line: a line break shown as ↵, so that a value cannot pass
    itself off as the next parameter ("…\n• *order_code*: …")."""
    return _LINE_BREAK.sub(" ↵ ", text)


def param_label(name: str, ptype: ParamType, max_length: int | None) -> str:
    """`name (type, max N)`; N is what the box takes, and absent when eSMS gives no limit."""
    if max_length is None:
        return f"{name} ({_TYPE_WORDS[ptype]})"
    return f"{name} ({_TYPE_WORDS[ptype]}, max {min(max_length, INPUT_MAX):,})"


def param_hint(max_length: int | None) -> str | None:
    """Why the box stops before eSMS's limit, when Slack's input cannot take all of it."""
    if max_length is None or max_length <= INPUT_MAX:
        return None
    return f"eSMS allows {max_length:,} characters; Slack's box takes {INPUT_MAX:,}."


def request_modal(
    *,
    metadata: RequestMeta,
    oas: Sequence[OfficialAccount] = (),
    templates: Sequence[Template] | None = None,
    template: Template | None = None,
    values: Mapping[str, str] | None = None,
    allow_sandbox: bool = False,
    sandbox_forced: bool = False,
    notice: str | None = None,
) -> dict[str, Any]:
    """The /zns modal. `templates=None` means still loading; `template` adds its parameters."""
    values = values or {}
    blocks = _notices(notice, sandbox_forced)
    if templates is None:
        # Inputs would need a submit button; there is nothing to submit until templates load.
        blocks.append(
            SectionBlock(text=MarkdownTextObject(text=":hourglass: Loading templates from eSMS…"))
        )
        return _request_view(metadata, blocks, submit=False)
    blocks += _oa_select(oas, metadata.get("oaid"))
    blocks += _template_select(bool(templates), template)
    if template is not None:
        blocks += _param_inputs(template, values)
    blocks += _request_fields(values, sandbox_choice=allow_sandbox and not sandbox_forced)
    return _request_view(metadata, blocks, submit=True)


def _request_view(metadata: RequestMeta, blocks: list[Block], *, submit: bool) -> dict[str, Any]:
    return View(
        type="modal",
        callback_id=REQUEST_VIEW,
        title=_plain("Send a ZNS message"),
        submit=_plain("Request approval") if submit else None,
        close=_plain("Cancel"),
        private_metadata=encode(metadata),
        blocks=blocks,
    ).to_dict()


def _notices(notice: str | None, sandbox_forced: bool) -> list[Block]:
    blocks: list[Block] = []
    if notice:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=notice)))
    if sandbox_forced:
        blocks.append(
            ContextBlock(
                elements=[MarkdownTextObject(text=":test_tube: *SANDBOX*: nothing is delivered")]
            )
        )
    return blocks


def _type_ahead(
    action_id: str, placeholder: str, chosen: Option | None
) -> ExternalDataSelectElement:
    # Options come from the bot as the person types (handlers/listeners/options.py), so
    # every OA and template is reachable however many there are; a static select stops at
    # 100. The chosen one is the initial option: Slack shows it without asking for options.
    return ExternalDataSelectElement(
        action_id=action_id,
        placeholder=_plain(shorten(placeholder, PLACEHOLDER_MAX)),
        initial_option=chosen,
        min_query_length=1,
    )


def _oa_select(oas: Sequence[OfficialAccount], chosen_oaid: str | None) -> list[Block]:
    """The OA type-ahead, when there is more than one OA to choose from."""
    if len(oas) <= 1:
        return []
    named = next((oa for oa in oas if oa.oaid == chosen_oaid), None)
    chosen = choice(named.name if named else "", chosen_oaid) if chosen_oaid else None
    return [
        InputBlock(
            block_id="oaid",
            label=_plain("Zalo OA"),
            dispatch_action=True,
            element=_type_ahead(OA_ACTION, "Type an Official Account's name or id", chosen),
        )
    ]


def _template_select(any_templates: bool, template: Template | None) -> list[Block]:
    """The template type-ahead, or a warning when the OA has no ENABLE template."""
    if not any_templates:
        warning = ":warning: This OA has no ENABLE templates. Register one at eSMS."
        return [SectionBlock(text=MarkdownTextObject(text=warning))]
    chosen = choice(template.name, template.id) if template else None
    return [
        InputBlock(
            block_id="template",
            label=_plain("Template"),
            dispatch_action=True,
            element=_type_ahead(TEMPLATE_ACTION, "Type a template's name or id", chosen),
        )
    ]


def _param_inputs(template: Template, values: Mapping[str, str]) -> list[Block]:
    """One input per distinct parameter, in eSMS order, labelled with its rules.

    A repeated parameter gets one input (two would share a block_id, which Slack refuses,
    and eSMS takes its value once). eSMS's own limit is checked on submit; the box holds
    at most Slack's 3,000 and no limit at all when eSMS gives none.
    """
    return [
        _text_input(
            f"{PARAM_BLOCK}{param.name}",
            param_label(param.name, param.type, param.max_length),
            initial=values.get(f"{PARAM_BLOCK}{param.name}"),
            optional=not param.required,
            max_length=min(param.max_length, INPUT_MAX) if param.max_length else None,
            placeholder="dd/MM/yyyy" if param.type is ParamType.DATE else None,
            hint=param_hint(param.max_length),
        )
        for param in template.distinct_params
    ]


def _checkbox(block_id: str, label: str, choice: str) -> InputBlock:
    return InputBlock(
        block_id=block_id,
        label=_plain(label),
        optional=True,
        element=CheckboxesElement(
            action_id=VALUE_ACTION, options=[Option(text=_plain(choice), value="yes")]
        ),
    )


def _request_fields(values: Mapping[str, str], *, sandbox_choice: bool) -> list[Block]:
    """What every request asks besides the template: phone, journey, campaign, note."""
    blocks: list[Block] = [
        _text_input(
            "phone",
            "Customer's phone",
            initial=values.get("phone"),
            placeholder="0901 888 484 or +84 901 888 484",
        ),
        _checkbox("journey", "Journey", "Journey message about one order"),
        _text_input(
            "order_id",
            "OrderId (journey only)",
            initial=values.get("order_id"),
            optional=True,
            max_length=ORDER_ID_MAX,
        ),
        _text_input(
            "campaign",
            "Campaign",
            initial=values.get("campaign"),
            optional=True,
            max_length=CAMPAIGN_MAX,
        ),
        _text_input(
            "note",
            "Note to the approver",
            initial=values.get("note"),
            optional=True,
            max_length=NOTE_MAX,
            multiline=True,
        ),
    ]
    if sandbox_choice:
        blocks.append(_checkbox("sandbox", "Sandbox", "Sandbox: checked by eSMS, not sent"))
    return blocks


def _fields(record: SendRecord, *, full: bool, preview_url: str | None = None) -> SectionBlock:
    """Who asked, which template, to whom (masked unless `full`), the price, and the options."""
    phone = record["phone"] if full else mask_phone(record["phone"])
    name = mrkdwn_escape(shorten(record["template_name"], NAME_MAX))
    fields = [
        MarkdownTextObject(text=f"*Requester*\n{user_ref(record.get('requester'))}"),
        MarkdownTextObject(text=f"*Template*\n{name} ({record['template_id']})"),
        MarkdownTextObject(text=f"*Phone*\n{phone}"),
        MarkdownTextObject(text=f"*Estimated price*\n{price_text(record)}"),
    ]
    if preview_url:
        fields.append(MarkdownTextObject(text=f"*Template preview*\n<{preview_url}|Open preview>"))
    if record.get("is_journey"):
        order = mrkdwn_escape(record.get("order_id"))
        fields.append(MarkdownTextObject(text=f"*Journey*\nOrderId `{order}`"))
    if record.get("campaign"):
        campaign = shorten(mrkdwn_escape(record["campaign"]), FIELD_MAX - 20)
        fields.append(MarkdownTextObject(text=f"*Campaign*\n{campaign}"))
    if record.get("sandbox"):
        fields.append(MarkdownTextObject(text="*Mode*\n:test_tube: SANDBOX (not delivered)"))
    return SectionBlock(fields=fields[:10])


def _note(record: SendRecord, limit: int) -> list[Block]:
    if not record.get("note"):
        return []
    note = shorten(mrkdwn_escape(record["note"]), limit)
    quoted = "\n".join(f">{line}" for line in _LINE_BREAK.split(note))  # every line quoted
    return [SectionBlock(text=MarkdownTextObject(text=f"*Note*\n{quoted}"))]


def card_parameters(params: Mapping[str, str]) -> list[Block]:
    """Every parameter by name on the card, long values shortened so the card stays postable.

    A card is a message: about 13,000 characters of block text in all (slack-limits.md).
    The values share CARD_PARAMS_BUDGET; the approval modal shows each one in full.
    """
    if not params:
        return [SectionBlock(text=MarkdownTextObject(text="*Parameters*\n_(none)_"))]
    line_room = min(SECTION_TEXT_MAX - 100, CARD_PARAMS_BUDGET // len(params))
    lines: list[str] = []
    shortened = 0
    for name, value in params.items():
        label = f"• *{shorten(mrkdwn_escape(name), min(NAME_MAX, line_room // 2))}*: "
        if not value:
            lines.append(f"{label}_(empty)_")
            continue
        escaped = mrkdwn_escape(one_line(value))
        shown = shorten(escaped, max(CARD_VALUE_MIN, line_room - slack_len(label)))
        shortened += shown != escaped
        lines.append(label + shown)
    blocks: list[Block] = []
    text = "*Parameters*"
    for line in lines:  # as few sections as the lines fit in
        if slack_len(text) + 1 + slack_len(line) > SECTION_TEXT_MAX:
            blocks.append(SectionBlock(text=MarkdownTextObject(text=text)))
            text = line
        else:
            text = f"{text}\n{line}"
    blocks.append(SectionBlock(text=MarkdownTextObject(text=text)))
    if shortened:
        said = "1 long value is" if shortened == 1 else f"{shortened} long values are"
        blocks.append(
            ContextBlock(
                elements=[
                    MarkdownTextObject(
                        text=f":scissors: {said} shortened here (…); "
                        "the approver sees every value in full."
                    )
                ]
            )
        )
    return blocks


def param_sections(params: Mapping[str, str]) -> list[SectionBlock]:
    """Each value in full, as plain text (exactly what is sent, no escaping), in as many
    sections as it takes: a section holds 3,000 characters, so a longer value continues."""
    blocks: list[SectionBlock] = []
    for name, value in params.items():
        label = shorten(name, NAME_MAX)
        if not value:
            blocks.append(_plain_section(f"{label}: (left empty)"))
            continue
        # the length in the label: a value cannot pass text of its own off as another
        # parameter without the counts disagreeing
        head, more = f"{label} ({len(value):,} characters):\n", f"{label} (continued):\n"
        pieces = split_text(
            value, SECTION_TEXT_MAX - slack_len(head), SECTION_TEXT_MAX - slack_len(more)
        )
        blocks.append(_plain_section(head + pieces[0]))
        blocks.extend(_plain_section(more + piece) for piece in pieces[1:])
    return blocks


def _plain_section(text: str) -> SectionBlock:
    # emoji=False: ":smile:" typed in a value is sent as those characters, so show them
    return SectionBlock(text=PlainTextObject(text=text, emoji=False))


def approval_overflow(params: Mapping[str, str]) -> str | None:
    """Why the approval modal could not show these values in full, or None when they fit."""
    need = len(param_sections(params))
    if need <= APPROVAL_PARAM_BLOCKS:
        return None
    return (
        f"These values need {need} blocks in the approver's modal and it holds "
        f"{APPROVAL_PARAM_BLOCKS}: shorten the longest values and submit again."
    )


def _digest_block(content: ContentCheck | None) -> SectionBlock:
    if content is None or content.chained is None:
        text = "*Content digest*: none (requested before digests were chained in the audit log)"
    else:
        text = (
            f"*Content digest* `{content.chained[:DIGEST_SHOWN]}` — the SHA-256 of exactly "
            "what will be sent, chained in the audit log when it was requested"
        )
        if not content.intact:
            text += (
                "\n:warning: *The stored request no longer matches this digest.* "
                "Do not approve: reject it and ask an admin to run `zns-bot audit verify`."
            )
    return SectionBlock(text=MarkdownTextObject(text=text))


def price_text(record: SendRecord) -> str:
    """The price eSMS estimated; the request is stored before it answers, so say so."""
    estimate = record.get("estimate")
    if not estimate and record.get("estimate_pending"):
        return "estimating…"
    if not estimate:
        return "estimate unavailable"
    return f"{estimate['total_price']:,.0f} VND"


def status_line(record: SendRecord) -> str:
    """The card's status: who decided, then where the send stands now."""
    state = record["state"]
    if state == SendState.REJECTED:
        who = user_ref(record.get("approver"))
        reason = mrkdwn_escape(record.get("reject_reason", ""))
        return f":no_entry_sign: Rejected by {who}: {reason}"
    line = STATUS_LINES.get(state, state)
    if state == SendState.FAILED and record.get("error"):
        line += f": {record['error']}"
    if record.get("sms_id") and state in (
        SendState.ACCEPTED,
        SendState.DELIVERED,
        SendState.FAILED,
        SendState.UNKNOWN,
        SendState.SANDBOXED,
    ):
        line += f" · SMSID `{record['sms_id']}`"
    if record.get("approver"):
        line = f"Approved by {user_ref(record['approver'])} · {line}"
    return line


def request_card(record: SendRecord) -> dict[str, Any]:
    """The approvals-channel card: masked phone, preview, price, status, and buttons while open."""
    title = f"ZNS request{sandbox_tag(record)}"
    blocks: list[Block] = [HeaderBlock(text=_plain(title))]
    blocks.append(_fields(record, full=False))
    blocks.extend(card_parameters(record.get("params") or {}))
    blocks.extend(_note(record, CARD_NOTE_MAX))
    blocks.append(DividerBlock())
    status = shorten(status_line(record), STATUS_MAX)
    blocks.append(SectionBlock(block_id="status", text=MarkdownTextObject(text=status)))
    if record["state"] == SendState.PENDING_APPROVAL:
        blocks.append(
            ActionsBlock(
                block_id="decision",
                elements=[
                    ButtonElement(
                        text=_plain("Review"),
                        action_id=REVIEW_ACTION,
                        value=record["id"],
                        style="primary",
                    ),
                    ButtonElement(
                        text=_plain("Cancel request"), action_id=CANCEL_ACTION, value=record["id"]
                    ),
                ],
            )
        )
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=f"Request `{record['id']}`")]))
    text = (
        f"ZNS request{sandbox_tag(record)} from {user_ref(record.get('requester'))}: "
        f"{record['template_name']} to {mask_phone(record['phone'])} — "
        f"{STATUS_LINES.get(record['state'], record['state'])}"
    )
    return {"text": text, "blocks": [b.to_dict() for b in blocks]}


def preview_url(record: SendRecord) -> str | None:
    """The template's preview (GetZnsTemplateInfo's PreviewUrl) kept with the request, when
    it is a plain web address that a mrkdwn link cannot be bent out of."""
    url = str((record.get("extra") or {}).get("preview_url") or "")
    if not url.startswith(("https://", "http://")) or len(url) > FIELD_MAX - 50:
        return None
    if any(c.isspace() or c in "<>|" for c in url):
        return None
    return url


def approval_modal(
    record: SendRecord,
    *,
    quota: str,
    metadata: ApprovalMeta,
    content: ContentCheck | None = None,
) -> dict[str, Any]:
    """The approver's modal: everything that will be sent, in full (phone, template and its
    preview, every value), the content digest the audit log chained, estimate and quota."""
    blocks: list[Block] = []
    if record.get("sandbox"):
        blocks.append(
            ContextBlock(elements=[MarkdownTextObject(text=":test_tube: *SANDBOX* request")])
        )
    blocks.append(_fields(record, full=True, preview_url=preview_url(record)))
    blocks.append(_digest_block(content))
    params = record.get("params") or {}
    sections = param_sections(params)
    heading = f"*Parameters* — {len(params)}, in full, exactly as they will be sent:"
    if len(sections) > APPROVAL_PARAM_BLOCKS:
        # refused at submit (approval_overflow); a request stored otherwise is not hidden
        # silently: what does not fit is named
        sections = sections[: APPROVAL_PARAM_BLOCKS - 1]
        sections.append(
            _plain_section("The remaining values do not fit in this window: reject this request.")
        )
    blocks.append(SectionBlock(text=MarkdownTextObject(text=heading)))
    blocks.extend(sections)
    blocks.extend(_note(record, SECTION_TEXT_MAX - 20))
    blocks.append(
        ContextBlock(elements=[MarkdownTextObject(text=f"OA {record['oaid']} · {quota}")])
    )
    blocks.append(
        InputBlock(
            block_id="decision",
            label=_plain("Decision"),
            element=StaticSelectElement(
                action_id=VALUE_ACTION,
                options=[
                    Option(text=_plain("Approve and send"), value="approve"),
                    Option(text=_plain("Reject"), value="reject"),
                ],
                initial_option=Option(text=_plain("Approve and send"), value="approve"),
            ),
        )
    )
    blocks.append(
        _text_input(
            "reason",
            "Reason (required to reject)",
            optional=True,
            max_length=REASON_MAX,
            multiline=True,
        )
    )
    view = View(
        type="modal",
        callback_id=APPROVAL_VIEW,
        title=_plain(f"Review request{sandbox_tag(record)}"[:24]),
        submit=_plain("Confirm"),
        close=_plain("Close"),
        private_metadata=encode(metadata),
        blocks=blocks,
    )
    return view.to_dict()


def help_text() -> str:
    """Every subcommand of /zns, one a line."""
    return (
        "*/zns* sends a Zalo ZNS message through eSMS, approved by a second person.\n"
        "• `/zns` — choose the template and fill in the parameters\n"
        "• `/zns 0901888484` — the same, with the phone filled in\n"
        "• `/zns status <send id | SMSID | phone>` — what happened to a send "
        "(a phone: its last 10)\n"
        "• `/zns audit phone=… user=@… template=… state=… since=YYYY-MM-DD until=YYYY-MM-DD` "
        "— the audit log as a CSV, by DM\n"
        "• `/zns templates [page]` — the OA's templates, their parameters and limits\n"
        "• `/zns balance` — the eSMS balance and the OA's remaining quota\n"
        "• `/zns help` — this message\n"
        "Every send is approved by a second person in the approvals channel."
    )


def thread_text(record: SendRecord, state: str) -> str:
    """The reply posted in the card's thread when a send reaches `state`."""
    tag = sandbox_tag(record)
    who = user_ref(record.get("approver"))
    unknown_reason = record.get("unknown_reason") or "no reply from eSMS"
    texts: dict[str, str] = {
        SendState.APPROVED: f"Approved by {who}. Sending to eSMS…",
        SendState.REJECTED: f"Rejected by {who}: {mrkdwn_escape(record.get('reject_reason', ''))}",
        SendState.CANCELLED: f"Cancelled by {user_ref(record.get('requester'))}.",
        SendState.EXPIRED: "Expired: nobody approved it in time. It can no longer be approved.",
        SendState.ACCEPTED: f"Accepted by eSMS{tag}, SMSID `{record.get('sms_id')}`. "
        "Waiting for the delivery report.",
        SendState.UNKNOWN: f"Outcome unknown{tag}: {unknown_reason}. "
        "Checking with eSMS; do not send it again.",
        SendState.FAILED: f":x: Not sent{tag}: {record.get('error') or 'eSMS refused the message'}",
        SendState.DELIVERED: f":white_check_mark: Delivered{tag} to {mask_phone(record['phone'])}.",
        SendState.SANDBOXED: SANDBOX_REASON
        + (f". SMSID `{record['sms_id']}`." if record.get("sms_id") else ""),
    }
    return texts.get(state, f"Now {state.replace('_', ' ')}.")


def failure_dm(record: SendRecord, permalink: str | None) -> str:
    where = f" (<{permalink}|request thread>)" if permalink else ""
    advice = f"\nWhat to do: {record['suggestion']}." if record.get("suggestion") else ""
    return (
        f":x: Your ZNS message{sandbox_tag(record)} ({record['template_name']} to "
        f"{mask_phone(record['phone'])}) was not delivered: "
        f"{record.get('error') or 'unknown reason'}{where}{advice}"
    )


def notify_text(record: SendRecord, permalink: str | None) -> str:
    """The notification-channel line for a final result: template, phone, requester, link."""
    icon = ":white_check_mark:" if record["state"] == SendState.DELIVERED else ":x:"
    result = (
        "delivered" if record["state"] == SendState.DELIVERED else f"failed: {record.get('error')}"
    )
    link = f" · <{permalink}|thread>" if permalink else ""
    return (
        f"{icon} ZNS{sandbox_tag(record)} {record['template_name']} to "
        f"{mask_phone(record['phone'])} for {user_ref(record.get('requester'))}: {result}{link}"
    )


def posted_text(permalink: str | None) -> str:
    link = f" <{permalink}|View the request>" if permalink else ""
    return f":hourglass_flowing_sand: Your ZNS request is waiting for approval.{link}"
