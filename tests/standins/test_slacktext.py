"""standins.slacktext: Slack markup shown as the Slack client shows it."""

import re
from pathlib import Path

from standins.slacktext import EMOJI, render, render_plain

USERS = {"U0AGENT01": "Mai Trần"}
CHANNELS = {"C0APPROVALS": "approvals"}


def test_user_mentions_show_names() -> None:
    assert render("Approved by <@U0AGENT01>.", USERS) == "Approved by @Mai Trần."
    # Slack shows an id it cannot name as the id; a label given in the markup wins over it
    assert render("<@U0NOBODY>", USERS) == "@U0NOBODY"
    assert render("<@U0NOBODY|lan>", USERS) == "@lan"


def test_channel_mentions_and_specials() -> None:
    assert render("see <#C0APPROVALS>", channels=CHANNELS) == "see #approvals"
    assert render("<#C0OTHER|general>") == "#general"
    assert render("<!here> and <!subteam^S0APP|@approvers>") == "@here and @approvers"


def test_links_show_their_text_and_optionally_the_url() -> None:
    link = "<https://x.example/a?b=1&amp;c=2|View the request>"
    assert render(link) == "View the request"
    assert render(link, show_urls=True) == "View the request (https://x.example/a?b=1&c=2)"
    assert render("<https://x.example/>") == "https://x.example/"


def test_emoji_codes_become_symbols() -> None:
    assert render(":hourglass_flowing_sand: Waiting") == "⏳ Waiting"
    assert render(":white_check_mark: ok :x:") == "✅ ok ❌"
    # unknown codes stay as typed, and a time is not an emoji code
    assert render(":not_a_code: at 12:30:45") == ":not_a_code: at 12:30:45"


def test_escapes_are_undone_once_and_only_slacks_three() -> None:
    assert render("a &lt;b&gt; &amp; c") == "a <b> & c"
    assert render("&amp;lt; typed") == "&lt; typed"
    assert render("&copy; stays") == "&copy; stays"
    # an escaped < is text, not the start of a mention
    assert render("&lt;@U0AGENT01&gt;", USERS) == "<@U0AGENT01>"


def test_bold_and_code_keep_their_marks() -> None:
    assert render("*Requester*: <@U0AGENT01> `zns-1`", USERS) == "*Requester*: @Mai Trần `zns-1`"


def test_plain_text_gets_emoji_only_when_it_asks() -> None:
    assert render_plain(":x: <@U0AGENT01>") == "❌ <@U0AGENT01>"
    assert render_plain(":smile: typed", emoji=False) == ":smile: typed"


def test_every_emoji_code_the_bot_writes_has_a_symbol() -> None:
    root = Path(__file__).parents[2]
    written: set[str] = set()
    for package in ("bot", "handlers"):
        for path in (root / package).rglob("*.py"):
            # a shortcode opening a message or following a space (not "id:card:created")
            written |= set(re.findall(r"(?:^|[\s\"'])\:([a-z][a-z0-9_]*):\s", path.read_text()))
    written.discard("smile")  # the example of a value typed by a person, shown as typed
    assert written, "the search found no emoji codes at all"
    assert written <= set(EMOJI), written - set(EMOJI)
