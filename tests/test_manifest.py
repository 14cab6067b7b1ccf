"""The manifests declare what the code uses: every slash command and exactly the scopes needed."""

import ast
import copy
import functools
from typing import Any

import yaml
from slack_sdk.web.async_client import AsyncWebClient

from handlers.listeners.commands import COMMAND, SUBCOMMANDS
from tests import ROOT


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))


MANIFEST = load("manifest.yml")  # Slack calls the bot over HTTPS
SOCKET_MANIFEST = load("manifest.socket.yml")  # the bot opens a socket to Slack
EVENTS_URL = "https://YOUR-HOST/slack/events"

# slack_sdk method → the bot scopes it needs, from each method's page on docs.slack.dev
# ("Required scopes"). A method missing here fails the test on purpose: whoever adds a
# Slack call must say which scope it needs.
SCOPES_FOR = {
    "auth_test": set(),  # `check`: whether the bot token works
    "chat_postMessage": {"chat:write", "chat:write.public"},  # cards go to channels not joined
    "chat_update": {"chat:write"},
    "chat_postEphemeral": {"chat:write"},
    "chat_getPermalink": set(),
    # Looking for a message an earlier attempt may have posted (exactly-once delivery):
    # public or private channel (cards, notifications), or the requester's DM.
    "conversations_history": {"channels:history", "groups:history", "im:history"},
    "conversations_replies": {"channels:history", "groups:history"},  # the card's thread
    # `check`: the approvals and notification channels, public or private (im:read and
    # mpim:read would be for DMs, which it never asks about)
    "conversations_info": {"channels:read", "groups:read"},
    "conversations_open": {"im:write"},  # failure DMs, and the DM an audit CSV goes to
    # `/zns audit`: files.getUploadURLExternal and files.completeUploadExternal
    "files_upload_v2": {"files:write"},
    "usergroups_users_list": {"usergroups:read"},
    "views_open": set(),
    "views_update": set(),
    "views_publish": set(),  # the App Home (docs: no scope; Tier 4)
    # `check`, with the app-level token (its connections:write), not the bot's
    "apps_connections_open": set(),
}

# Scopes a declared feature needs rather than a Web API call.
FEATURE_SCOPES = {"slash_commands": {"commands"}}

WEB_API_METHODS = frozenset(name for name in vars(AsyncWebClient) if not name.startswith("_"))


@functools.cache
def used_slack_methods() -> dict[str, set[str]]:
    """Every Web API method the application refers to (called, or passed to be called),
    with the files that do: `client.chat_postMessage(...)`, `partial(client.auth_test)`,
    and `client.api_call("chat.postMessage")` alike."""
    used: dict[str, set[str]] = {}
    for package in ("bot", "handlers", "storage"):
        for path in (ROOT / package).rglob("*.py"):
            where = str(path.relative_to(ROOT))
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                name = None
                if isinstance(node, ast.Attribute) and node.attr in WEB_API_METHODS:
                    name = node.attr
                elif (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "api_call"
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                ):
                    name = str(node.args[0].value).replace(".", "_")
                if name is not None:
                    used.setdefault(name, set()).add(where)
    return used


def needed_scopes(manifest: dict[str, Any]) -> set[str]:
    needed = set().union(*(SCOPES_FOR[m] for m in used_slack_methods() if m in SCOPES_FOR))
    for feature, scopes in FEATURE_SCOPES.items():
        if manifest["features"].get(feature):
            needed |= scopes
    return needed


def test_the_scan_finds_the_calls_it_must():
    used = used_slack_methods()
    assert {"chat_postMessage", "views_open", "usergroups_users_list"} <= set(used)
    # `check` passes some uncalled (functools.partial, a bare reference): still found
    assert {"auth_test", "conversations_info", "apps_connections_open"} <= set(used)
    assert "bot/checks.py" in used["usergroups_users_list"]
    assert "users_info" not in used  # nothing reads user profiles (no users:read)


def test_structure_creates_the_app_in_one_step():
    assert MANIFEST["display_information"]["name"]
    assert MANIFEST["features"]["bot_user"]["display_name"]
    settings = MANIFEST["settings"]
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["interactivity"]["request_url"] == EVENTS_URL
    # the type-ahead selects' options load requests reach the same Bolt endpoint
    assert settings["interactivity"]["message_menu_options_url"] == EVENTS_URL
    assert settings["socket_mode_enabled"] is False
    for command in MANIFEST["features"]["slash_commands"]:
        assert command["url"] == EVENTS_URL
        assert command["description"] and command["usage_hint"]


def test_the_failure_dms_have_a_read_only_messages_tab_beside_the_home_tab():
    for manifest in (MANIFEST, SOCKET_MANIFEST):
        home = manifest["features"]["app_home"]
        assert home["messages_tab_enabled"] is True  # the DMs that say what failed
        assert home["messages_tab_read_only_enabled"] is True  # nothing reads replies
        assert home["home_tab_enabled"] is True  # the App Home is published per person
    assert "views_publish" in used_slack_methods()


def registered_events() -> set[str]:
    """The event types the listeners register: `app.event("…")` in handlers/."""
    found = set()
    for path in (ROOT / "handlers").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "event"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                found.add(str(node.args[0].value))
    return found


def test_every_event_the_code_listens_to_is_subscribed_and_no_other():
    assert registered_events() == {"app_home_opened"}
    for manifest in (MANIFEST, SOCKET_MANIFEST):
        events = manifest["settings"]["event_subscriptions"]
        assert set(events["bot_events"]) == registered_events()
    assert MANIFEST["settings"]["event_subscriptions"]["request_url"] == EVENTS_URL
    assert "request_url" not in SOCKET_MANIFEST["settings"]["event_subscriptions"]


def test_every_slash_command_the_code_registers_is_declared():
    for manifest in (MANIFEST, SOCKET_MANIFEST):
        assert {c["command"] for c in manifest["features"]["slash_commands"]} == {COMMAND}


def test_every_method_the_code_calls_has_its_scopes_declared():
    used = used_slack_methods()
    unknown = {m: sorted(files) for m, files in used.items() if m not in SCOPES_FOR}
    assert not unknown, f"add the scopes these Slack methods need to SCOPES_FOR: {unknown}"
    for name in ("manifest.yml", "manifest.socket.yml"):
        declared = set(load(name)["oauth_config"]["scopes"]["bot"])
        missing = needed_scopes(load(name)) - declared
        assert not missing, f"{name} lacks {missing}"


def test_every_declared_scope_is_needed_by_some_call_or_feature():
    for name in ("manifest.yml", "manifest.socket.yml"):
        declared = set(load(name)["oauth_config"]["scopes"]["bot"])
        unused = declared - needed_scopes(load(name))
        assert not unused, f"{name} asks for scopes nothing uses: {unused}"
    # and the table itself names no method the code no longer calls
    assert set(SCOPES_FOR) <= set(used_slack_methods()), set(SCOPES_FOR) - set(used_slack_methods())


def test_the_socket_mode_manifest_is_the_same_app_without_request_urls():
    assert SOCKET_MANIFEST["settings"]["socket_mode_enabled"] is True
    assert "YOUR-HOST" not in (ROOT / "manifest.socket.yml").read_text(encoding="utf-8")
    assert SOCKET_MANIFEST["settings"]["interactivity"] == {"is_enabled": True}
    # The HTTP manifest, its request URLs taken out and Socket Mode on, is the socket one.
    http = copy.deepcopy(MANIFEST)
    for command in http["features"]["slash_commands"]:
        del command["url"]
    del http["settings"]["interactivity"]["request_url"]
    del http["settings"]["interactivity"]["message_menu_options_url"]
    del http["settings"]["event_subscriptions"]["request_url"]
    http["settings"]["socket_mode_enabled"] = True
    assert http == SOCKET_MANIFEST


def test_the_usage_hint_names_every_subcommand():
    for manifest in (MANIFEST, SOCKET_MANIFEST):
        (command,) = manifest["features"]["slash_commands"]
        hint = command["usage_hint"]
        assert len(hint) <= 1000  # Slack's limit for a usage hint
        assert "[phone]" in hint
        for name in SUBCOMMANDS:
            assert name in hint, name
