"""Slack-side request bodies, signed as Slack signs them: for the demo and the tests."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

from standins.slack import APP_ID, BOT_ID, TEAM_DOMAIN, TEAM_ID

DEFAULT_USER_ID = "U0AGENT01"
DEFAULT_CHANNEL_ID = "C0SUPPORT"
VERIFICATION_TOKEN = "legacy-verification-token"  # noqa: S105 - Slack still sends this field


def signed_headers(
    body: bytes, secret: str, timestamp: int | None = None, content_type: str | None = None
) -> dict[str, str]:
    """Slack's headers for `body`: the v0 signature over "v0:{timestamp}:{body}".

    timestamp defaults to now (Bolt rejects requests older than five minutes); content_type
    defaults to JSON for a JSON body (Events API) and form encoding otherwise.
    """
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    assert signature is not None
    if content_type is None:
        is_json = body.lstrip().startswith(b"{")
        content_type = "application/json" if is_json else "application/x-www-form-urlencoded"
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature,
    }


def new_trigger_id() -> str:
    """A fresh trigger id shaped like Slack's ("<digits>.<digits>.<hex>")."""
    unique = uuid.uuid4()
    return f"{unique.int % 10**13}.{unique.int % 10**10}.{unique.hex}"


def slash_command_body(
    command: str = "/zns",
    text: str = "",
    user_id: str = DEFAULT_USER_ID,
    channel_id: str = DEFAULT_CHANNEL_ID,
    trigger_id: str | None = None,
    *,
    user_name: str = "agent",
    channel_name: str = "support",
    response_url: str | None = None,
    team_id: str = TEAM_ID,
) -> bytes:
    """A slash command invocation, form-encoded with the fields (and order) Slack sends."""
    fields = {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "team_domain": TEAM_DOMAIN,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url
        or f"https://hooks.slack.com/commands/{team_id}/1111111111/{_hex_tail()}",
        "trigger_id": trigger_id or new_trigger_id(),
    }
    return urlencode(fields).encode()


def app_home_opened_body(
    user_id: str = DEFAULT_USER_ID, *, tab: str = "home", team_id: str = TEAM_ID
) -> bytes:
    """The Events API's app_home_opened, JSON as Slack posts it (`tab`: home or messages)."""
    event: dict[str, Any] = {
        "type": "app_home_opened",
        "user": user_id,
        "channel": f"D{uuid.uuid4().hex[:10].upper()}",
        "tab": tab,
        "event_ts": _action_ts(),
    }
    body = {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "api_app_id": APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": f"Ev{uuid.uuid4().hex[:10].upper()}",
        "event_time": int(time.time()),
        "authorizations": [
            {"team_id": team_id, "user_id": BOT_ID, "is_bot": True, "is_enterprise_install": False}
        ],
        "is_ext_shared_channel": False,
    }
    return json.dumps(body).encode()


def block_action_body(
    action_id: str,
    value: str | None = None,
    user_id: str = DEFAULT_USER_ID,
    *,
    block_id: str = "actions",
    action_type: str = "button",
    channel_id: str | None = None,
    view: Mapping[str, Any] | None = None,
    message: Mapping[str, Any] | None = None,
    container: Mapping[str, Any] | None = None,
    state_values: Mapping[str, Mapping[str, Any]] | None = None,
    selected_option: Mapping[str, Any] | None = None,
    trigger_id: str | None = None,
    user_name: str = "agent",
    team_id: str = TEAM_ID,
) -> bytes:
    """A block_actions interaction (a button click or a select change).

    Clicked on a message: pass `message` (e.g. one the Slack stand-in stored) and
    `channel_id`. In a modal: pass `view` (e.g. `standin.last_view()`), and `state_values`
    for what the user has typed so far. Selects carry `selected_option` instead of `value`.
    """
    if container is None:
        container = _container(view, message, channel_id)
    action = _action(action_id, block_id, action_type, value, selected_option)
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": _user(user_id, user_name, team_id),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "container": dict(container or {}),
        "trigger_id": trigger_id or new_trigger_id(),
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
    }
    if view is not None:
        full_view = json.loads(json.dumps(view))
        if state_values is not None:
            full_view["state"] = {"values": state(state_values)}
        payload["view"] = full_view
    if message is not None or channel_id is not None:
        if channel_id is not None:
            payload["channel"] = {"id": channel_id, "name": "channel"}
        if message is not None:
            payload["message"] = json.loads(json.dumps(message))
        payload["state"] = {"values": state(state_values or {})}
        payload["response_url"] = (
            f"https://hooks.slack.com/actions/{team_id}/2222222222/{_hex_tail()}"
        )
    payload["actions"] = [action]
    return _payload_form(payload)


def _container(
    view: Mapping[str, Any] | None,
    message: Mapping[str, Any] | None,
    channel_id: str | None,
) -> dict[str, Any] | None:
    """Where a click happened, as Slack names it: a modal, or a message in a channel."""
    if view is not None:
        return {"type": "view", "view_id": view["id"]}
    if message is None:
        return None
    if channel_id is None:
        raise ValueError("a click on a message needs the message's channel_id")
    return {
        "type": "message",
        "message_ts": message["ts"],
        "channel_id": channel_id,
        "is_ephemeral": False,
    }


def _action(
    action_id: str,
    block_id: str,
    action_type: str,
    value: str | None,
    selected_option: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The clicked element: a button's value, or a select's chosen option."""
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": block_id,
        "type": action_type,
        "action_ts": _action_ts(),
    }
    if action_type == "button":
        action["text"] = {"type": "plain_text", "text": action_id, "emoji": True}
        if value is not None:
            action["value"] = value
    elif selected_option is not None or value is not None:
        action["selected_option"] = dict(selected_option or _option(str(value), text=str(value)))
    return action


def block_suggestion_body(
    action_id: str,
    value: str,
    user_id: str = DEFAULT_USER_ID,
    *,
    block_id: str,
    view: Mapping[str, Any],
    state_values: Mapping[str, Mapping[str, Any]] | None = None,
    user_name: str = "agent",
    team_id: str = TEAM_ID,
) -> bytes:
    """An options load request: someone typed `value` into a modal's external_select.

    Slack sends it form-encoded like any interaction, with the modal (and what has been
    chosen in it so far, `state_values`) and expects the options in the reply body.
    """
    full_view = json.loads(json.dumps(view))
    full_view["state"] = {"values": state(state_values or {})}
    payload: dict[str, Any] = {
        "type": "block_suggestion",
        "user": _user(user_id, user_name, team_id),
        "container": {"type": "view", "view_id": view["id"]},
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "action_id": action_id,
        "block_id": block_id,
        "value": value,
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
        "view": full_view,
    }
    return _payload_form(payload)


def view_submission_body(
    callback_id: str,
    state_values: Mapping[str, Mapping[str, Any]],
    user_id: str = DEFAULT_USER_ID,
    private_metadata: str | None = None,
    view_id: str | None = None,
    *,
    view: Mapping[str, Any] | None = None,
    view_hash: str | None = None,
    blocks: list[dict[str, Any]] | None = None,
    title: str = "Send ZNS",
    user_name: str = "agent",
    team_id: str = TEAM_ID,
) -> bytes:
    """A view_submission: the user pressed Submit on a modal.

    `view` (e.g. `standin.last_view()`) supplies id, hash, blocks, title and
    private_metadata; arguments given explicitly win. `state_values` is
    {block_id: {action_id: element state}} where a plain string (or None) stands for a
    plain_text_input's value; see `option_state` and `checkboxes_state` for the others.
    """
    base: dict[str, Any] = json.loads(json.dumps(view)) if view is not None else {}
    the_id = view_id or base.get("id") or "V0000000001"
    full_view: dict[str, Any] = {
        "id": the_id,
        "team_id": team_id,
        "type": "modal",
        "blocks": blocks if blocks is not None else base.get("blocks", []),
        "private_metadata": (
            private_metadata if private_metadata is not None else base.get("private_metadata", "")
        ),
        "callback_id": callback_id,
        "state": {"values": state(state_values)},
        "hash": view_hash or base.get("hash") or "1700000000.0000ABCD",
        "title": base.get("title") or {"type": "plain_text", "text": title, "emoji": True},
        "clear_on_close": base.get("clear_on_close", False),
        "notify_on_close": base.get("notify_on_close", False),
        "close": base.get("close") or {"type": "plain_text", "text": "Cancel", "emoji": True},
        "submit": base.get("submit") or {"type": "plain_text", "text": "Submit", "emoji": True},
        "previous_view_id": base.get("previous_view_id"),
        "root_view_id": base.get("root_view_id") or the_id,
        "app_id": APP_ID,
        "external_id": base.get("external_id", ""),
        "app_installed_team_id": team_id,
        "bot_id": base.get("bot_id", BOT_ID),
    }
    payload = {
        "type": "view_submission",
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "user": _user(user_id, user_name, team_id),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": new_trigger_id(),
        "view": full_view,
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }
    return _payload_form(payload)


def state(values: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Expand shorthand state values: a string (or None) is a plain_text_input's value."""
    return {
        block_id: {
            action_id: (
                dict(element)
                if isinstance(element, Mapping)
                else {"type": "plain_text_input", "value": element}
            )
            for action_id, element in actions.items()
        }
        for block_id, actions in values.items()
    }


def option_state(
    value: str | None, text: str | None = None, element: str = "static_select"
) -> dict[str, Any]:
    """A select's (or radio_buttons') state: its chosen option, or None when nothing is chosen."""
    return {
        "type": element,
        "selected_option": None if value is None else _option(value, text=text or value),
    }


def checkboxes_state(values: Iterable[str]) -> dict[str, Any]:
    return {
        "type": "checkboxes",
        "selected_options": [_option(v, text=v, kind="mrkdwn") for v in values],
    }


def _option(value: str, *, text: str, kind: str = "plain_text") -> dict[str, Any]:
    text_object: dict[str, Any] = {"type": kind, "text": text}
    if kind == "plain_text":
        text_object["emoji"] = True
    return {"text": text_object, "value": value}


def _user(user_id: str, user_name: str, team_id: str) -> dict[str, str]:
    return {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id}


def _payload_form(payload: Mapping[str, Any]) -> bytes:
    # Interactions arrive form-encoded with one field, `payload`, holding compact JSON.
    return urlencode({"payload": json.dumps(payload, separators=(",", ":"))}).encode()


def _action_ts() -> str:
    return f"{time.time():.6f}"


def _hex_tail() -> str:
    return uuid.uuid4().hex[:24]
