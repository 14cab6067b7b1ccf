"""manifest.yml declares what the code uses: every slash command and every Web API scope."""

import re

import yaml

from handlers.listeners.commands import COMMAND
from tests import ROOT

MANIFEST = yaml.safe_load((ROOT / "manifest.yml").read_text(encoding="utf-8"))

# slack_sdk method → bot scopes it needs. A method missing here fails the test on purpose:
# whoever adds a Slack call must say which scope it needs.
SCOPES_FOR = {
    "chat_postMessage": {"chat:write", "chat:write.public"},  # cards go to channels not joined
    "chat_update": {"chat:write"},
    "chat_postEphemeral": {"chat:write"},
    "chat_getPermalink": set(),
    # Looking for a message an earlier attempt may have posted (exactly-once delivery):
    # public or private channel (cards, notifications), or the requester's DM.
    "conversations_history": {"channels:history", "groups:history", "im:history"},
    "conversations_replies": {"channels:history", "groups:history"},  # the card's thread
    "conversations_open": {"im:write"},
    "usergroups_users_list": {"usergroups:read"},
    "users_info": {"users:read"},
    "views_open": set(),
    "views_update": set(),
}


def used_slack_methods() -> set[str]:
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "handlers").rglob("*.py"))
    return set(re.findall(r"\bclient\.([a-z]+_[A-Za-z_]+)\(", source))


def test_structure_creates_the_app_in_one_step():
    assert MANIFEST["display_information"]["name"]
    assert MANIFEST["features"]["bot_user"]["display_name"]
    settings = MANIFEST["settings"]
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["interactivity"]["request_url"] == "https://YOUR-HOST/slack/events"
    # the type-ahead selects' options load requests reach the same Bolt endpoint
    assert settings["interactivity"]["message_menu_options_url"] == (
        "https://YOUR-HOST/slack/events"
    )
    assert settings["socket_mode_enabled"] is False
    for command in MANIFEST["features"]["slash_commands"]:
        assert command["url"] == "https://YOUR-HOST/slack/events"
        assert command["description"] and command["usage_hint"]


def test_every_slash_command_the_code_registers_is_declared():
    declared = {c["command"] for c in MANIFEST["features"]["slash_commands"]}
    assert declared == {COMMAND}


def test_every_scope_the_code_needs_is_declared():
    methods = used_slack_methods()
    assert {"chat_postMessage", "views_open", "usergroups_users_list"} <= methods
    unknown = methods - set(SCOPES_FOR)
    assert not unknown, f"add the scopes these Slack methods need to SCOPES_FOR: {unknown}"
    needed = {"commands"}.union(*(SCOPES_FOR[m] for m in methods))
    declared = set(MANIFEST["oauth_config"]["scopes"]["bot"])
    assert needed <= declared, f"manifest.yml lacks {needed - declared}"


def test_declared_scopes_are_the_issue_list():
    assert set(MANIFEST["oauth_config"]["scopes"]["bot"]) == {
        "commands",
        "chat:write",
        "chat:write.public",
        # conversations.history/replies: the relay looks for a message it may already have
        # posted before posting it again after a crash or lost reply (exactly once)
        "channels:history",
        "groups:history",
        "im:history",
        "im:write",
        "usergroups:read",
        "users:read",
    }
