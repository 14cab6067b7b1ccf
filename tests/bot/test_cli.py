"""The `zns-bot` console script, run as a real process against the eSMS stand-in."""

import argparse
import csv
import getpass
import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import bot
from standins.esms import DEMO_OAID, JOURNEY_TEMPLATE, ORDER_TEMPLATE, OTP_TEMPLATE
from standins.process import free_port, standin_env
from standins.socket_mode import DEFAULT_APP_TOKEN as APP_TOKEN
from storage.store import FILE_NAME, Store
from tests.conftest import ESMS_API_KEY, ESMS_SECRET_KEY
from tests.harness import (
    APPROVAL_CHANNEL,
    APPROVER,
    APPROVER_GROUP,
    BOT_TOKEN,
    NOTIFY_CHANNEL,
    SIGNING_SECRET,
)

ZNS_BOT = str(Path(sys.executable).parent / "zns-bot")


@pytest.fixture
def cli(tmp_path, esms_standin):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ESMS_", "ZNS_", "SLACK_"))}
    env.update(
        ESMS_API_KEY=ESMS_API_KEY,
        ESMS_SECRET_KEY=ESMS_SECRET_KEY,
        ESMS_BASE_URL=esms_standin.base_url,
        ESMS_CALLBACK_API_URL=esms_standin.callback_api_url,
        ESMS_OAID=DEMO_OAID,
        ESMS_TIMEOUT="0.5",
        ESMS_RETRY_BACKOFF="0.01",
        ZNS_DATA_DIR=str(tmp_path / "data"),
    )

    def run(*args: str, **overrides: str) -> subprocess.CompletedProcess[str]:
        merged = {k: v for k, v in {**env, **overrides}.items() if v is not None}
        return subprocess.run(
            [ZNS_BOT, *args],
            env=merged,
            cwd=tmp_path,  # no stray .env
            capture_output=True,
            text=True,
            timeout=60,
        )

    run.data_dir = tmp_path / "data"
    return run


def order_args(phone="0901 888 484"):
    return [
        "send",
        "--phone",
        phone,
        "--template",
        ORDER_TEMPLATE,
        "--param",
        "customer_name=Nguyễn Văn A",
        "--param",
        "order_code=DH-1001",
        "--param",
        "order_date=27/11/2026",
        "--param",
        "amount=150000",
        "--param",
        "tracking_url=https://shop.example/t/1",
        "--campaign",
        "cli-test",
    ]


def test_send_prints_smsid_records_and_audits(cli, esms_standin):
    result = cli(*order_args())
    assert result.returncode == 0, result.stderr
    (sms_id,) = esms_standin.stored_sms_ids()
    assert f"SMSID {sms_id}" in result.stdout
    assert "090****484" in result.stdout and "0901888484" not in result.stdout
    with Store.open(cli.data_dir) as store:
        (record,) = store.sends.in_states({"accepted"})
        assert record["sms_id"] == sms_id
        events = store.audit.for_send(record["id"])
        assert {e["actor"] for e in events} == {f"cli:{getpass.getuser()}", "esms"}
        assert [e["to_state"] for e in events if e["to_state"]][-1] == "accepted"
    (body,) = esms_standin.sends()
    assert body["RequestId"] == record["id"] and body["campaignid"] == "cli-test"


def test_journey_and_sandbox_flags(cli, esms_standin):
    result = cli(
        "send",
        "--phone",
        "84901888484",
        "--template",
        JOURNEY_TEMPLATE,
        "--param",
        "order_code=DH-9",
        "--param",
        "status=Đã giao",
        "--param",
        "eta=28/11/2026",
        "--journey",
        "--order-id",
        "ORD-9",
        "--sandbox",
    )
    assert result.returncode == 0, result.stderr
    # A sandbox send ends sandboxed: checked and accepted by eSMS, and never delivered.
    assert result.stdout.startswith("sandboxed [SANDBOX]: accepted by eSMS, nothing delivered")
    (body,) = esms_standin.sends()
    assert body["IsJourney"] is True and body["OrderId"] == "ORD-9"
    assert body["Sandbox"] == "1"
    assert esms_standin.stored_sms_ids() == []  # sandbox: not stored, not delivered
    with Store.open(cli.data_dir) as store:
        (record,) = store.sends.in_states({"sandboxed"})
        assert f"SMSID {record['sms_id']}" in result.stdout


def test_bad_input_lists_every_problem_and_changes_nothing(cli, esms_standin):
    result = cli(
        "send", "--phone", "12ab", "--template", OTP_TEMPLATE, "--param", "otp=12345678901"
    )
    assert result.returncode == 2
    assert "phone" in result.stderr and "param:otp" in result.stderr
    assert "Traceback" not in result.stderr
    assert esms_standin.sends() == []
    with Store.open(cli.data_dir) as store:
        assert store.audit.verify().count == 0


def test_esms_refusal_exits_non_zero_with_plain_words(cli, esms_standin):
    esms_standin.inject("SendZaloMessage_V4_post_json", code=789)
    result = cli(*order_args())
    assert result.returncode == 1
    assert "not configured for this OA" in result.stderr and "789" in result.stderr


def test_status_shows_cli_sends_their_actor_sandbox_and_refusal(cli, esms_standin):
    me = f"cli:{getpass.getuser()}"
    assert cli(*order_args(), "--sandbox").returncode == 0
    esms_standin.inject("SendZaloMessage_V4_post_json", code=789)
    assert cli(*order_args()).returncode == 1
    listed = cli("status", "0901 888 484", "--json")
    assert listed.returncode == 0, listed.stderr
    refused, sandboxed = json.loads(listed.stdout)["sends"]  # newest first
    assert (sandboxed["state"], sandboxed["sandbox"]) == ("sandboxed", True)
    assert (sandboxed["requester"], sandboxed["approver"]) == (me, me)
    assert refused["state"] == "failed" and "not configured for this OA" in refused["result"]
    text = cli("status", sandboxed["send_id"])
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith(f"send {sandboxed['send_id']}  [SANDBOX]")
    assert f"  requester   {me}" in text.stdout and "090****484" in text.stdout
    assert "0901888484" not in text.stdout + listed.stdout


def test_lost_reply_exits_3_and_says_unknown(cli, esms_standin):
    esms_standin.inject("SendZaloMessage_V4_post_json", delay=3, times=3)
    result = cli(*order_args())
    assert result.returncode == 3
    assert "outcome unknown" in result.stderr


def test_missing_setting_is_one_clear_line(cli):
    result = cli(*order_args(), ESMS_API_KEY=None)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: missing setting: ESMS_API_KEY (set in the environment or in .env; see .env.example)"
    ]


def test_wrong_setting_is_one_clear_line(cli):
    result = cli("check", ESMS_TIMEOUT="soon")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "ESMS_TIMEOUT" in result.stderr and "Traceback" not in result.stderr


# --- zns-bot check: everything serve needs, one line each ---------------------------------


@pytest.fixture
def check(tmp_path, slack_standin, esms_standin):
    """`zns-bot check` with every setting serve needs, pointed at both stand-ins."""
    env = standin_env(
        slack_standin,
        esms_standin,
        tmp_path / "data",
        zns_approvers=[APPROVER, APPROVER_GROUP],
        public_base_url="https://zns-bot.example",
        esms_timeout=0.5,
        esms_retry_backoff=0.01,
    )
    slack_standin.set_channels(None)  # the default workspace: every channel, the bot in it

    def run(**overrides: str | None) -> subprocess.CompletedProcess[str]:
        merged = {k: v for k, v in {**env, **overrides}.items() if v is not None}
        result = subprocess.run(
            [ZNS_BOT, "check"], env=merged, cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        shown = result.stdout + result.stderr
        assert "Traceback" not in shown
        for secret in (BOT_TOKEN, SIGNING_SECRET, ESMS_API_KEY, ESMS_SECRET_KEY, APP_TOKEN):
            assert secret not in shown
        return result

    yield run
    slack_standin.set_channels(None)  # the shared stand-in's other users expect the default


def lines(result: subprocess.CompletedProcess[str], subject: str) -> list[str]:
    """The check's lines about `subject`."""
    return [line for line in result.stdout.splitlines() if line[5:].startswith(f"{subject}:")]


def test_check_everything_ok_prints_the_mode(check):
    result = check()
    assert result.returncode == 0, result.stdout + result.stderr
    assert all(line.startswith(("ok   ", "note ")) for line in result.stdout.splitlines())
    assert lines(result, "mode") == [
        "ok   mode: LIVE: approved sends are delivered to customers and charged (ESMS_SANDBOX=0)"
    ]
    assert lines(result, "Slack") == [
        "ok   Slack: auth.test as @zns-bot in workspace ZNS Stand-in (T0ZNSTEAM)"
    ]
    assert "balance 5,000,000 VND" in result.stdout and "Demo Shop" in result.stdout
    for subject in ("ZNS_APPROVAL_CHANNEL", "ZNS_NOTIFY_CHANNEL", "ZNS_APPROVERS", "store"):
        assert lines(result, subject)[0].startswith("ok   "), result.stdout
    assert "S0APPROVERS resolves (1 member(s))" in result.stdout
    assert "serve creates it" in lines(result, "store")[0]  # no store yet: a first run
    sandbox = check(ESMS_SANDBOX="1")
    assert sandbox.returncode == 0
    assert lines(sandbox, "mode")[0].startswith("ok   mode: SANDBOX (ESMS_SANDBOX=1)")


def test_check_names_every_missing_setting_and_goes_on(check):
    result = check(SLACK_BOT_TOKEN=None, SLACK_SIGNING_SECRET=None, ZNS_APPROVERS=None)
    assert result.returncode == 1
    assert lines(result, "settings") == [
        "FAIL settings: SLACK_BOT_TOKEN is not set (serve needs it)",
        "FAIL settings: SLACK_SIGNING_SECRET is not set (serve needs it)",
        "FAIL settings: ZNS_APPROVERS is not set (serve needs it)",
    ]
    assert "balance 5,000,000 VND" in result.stdout  # the rest is still checked
    assert lines(result, "store")[0].startswith("ok   ")
    assert "failed" in result.stderr


def test_check_with_wrong_key_says_what_is_wrong_without_leaking_it(check):
    result = check(ESMS_SECRET_KEY="wrong-secret-XYZ")
    assert result.returncode == 1
    (esms,) = lines(result, "eSMS")
    assert esms.startswith("FAIL") and "rejected the API key or secret key" in esms
    assert "wrong-secret-XYZ" not in result.stderr + result.stdout
    assert lines(result, "Slack")[0].startswith("ok   ")  # one failure stops nothing


def test_check_fails_on_a_wrong_slack_token(check, slack_standin):
    result = check(SLACK_BOT_TOKEN="xoxb-not-the-bot-4242")
    assert result.returncode == 1
    (line,) = lines(result, "Slack")
    assert line.startswith("FAIL Slack: SLACK_BOT_TOKEN refused by auth.test: invalid_auth")
    assert "xoxb-not-the-bot-4242" not in result.stdout + result.stderr
    assert [c.error for c in slack_standin.calls("auth.test")] == ["invalid_auth"]


def test_check_says_when_slack_does_not_answer(check):
    result = check(SLACK_API_URL=f"http://127.0.0.1:{free_port()}/api/")  # nothing listens
    assert result.returncode == 1
    (line,) = lines(result, "Slack")
    assert line.startswith("FAIL Slack: no answer from Slack (")
    assert "SLACK_API_URL" in line and "SLACK_BOT_TOKEN" in line
    assert lines(result, "eSMS")[0].startswith("ok   ")


def test_check_fails_on_a_channel_that_does_not_exist(check, slack_standin):
    slack_standin.set_channels({NOTIFY_CHANNEL: "zns-notify"})
    result = check()
    assert result.returncode == 1
    (line,) = lines(result, "ZNS_APPROVAL_CHANNEL")
    assert line.startswith(f"FAIL ZNS_APPROVAL_CHANNEL: channel {APPROVAL_CHANNEL} not found")
    assert "channel_not_found" in line
    assert lines(result, "ZNS_NOTIFY_CHANNEL") == [
        f"ok   ZNS_NOTIFY_CHANNEL: #zns-notify ({NOTIFY_CHANNEL}), the bot is in it"
    ]
    assert slack_standin.calls("chat.postMessage") == []  # no test post


def test_check_tells_an_app_without_a_scope_to_reinstall(check, slack_standin):
    # an app installed from an older manifest, without channels:read
    slack_standin.inject("conversations.info", error="missing_scope", times=None)
    result = check()
    assert result.returncode == 1
    for channel in ("ZNS_APPROVAL_CHANNEL", "ZNS_NOTIFY_CHANNEL"):
        (line,) = lines(result, channel)
        assert line.startswith(f"FAIL {channel}: conversations.info for C0")
        assert "missing_scope: update the app from manifest.yml and reinstall it" in line


def test_check_fails_when_the_bot_is_not_in_the_notify_channel(check, slack_standin):
    slack_standin.set_channels(
        {
            APPROVAL_CHANNEL: {"name": "zns-approvals", "private": True},
            NOTIFY_CHANNEL: {"name": "zns-notify", "member": False},
        }
    )
    result = check()
    assert result.returncode == 1
    assert lines(result, "ZNS_NOTIFY_CHANNEL") == [
        f"FAIL ZNS_NOTIFY_CHANNEL: the bot is not in #zns-notify ({NOTIFY_CHANNEL}): "
        "/invite @zns-bot in that channel"
    ]
    assert lines(result, "ZNS_APPROVAL_CHANNEL")[0].startswith("ok   ")


def test_check_fails_on_an_unknown_user_group(check):
    result = check(ZNS_APPROVERS=f"{APPROVER},{APPROVER_GROUP},S0NOSUCH")
    assert result.returncode == 1
    assert lines(result, "ZNS_APPROVERS") == [
        f"ok   ZNS_APPROVERS: user group {APPROVER_GROUP} resolves (1 member(s))",
        "FAIL ZNS_APPROVERS: user group S0NOSUCH does not resolve: no_such_subteam",
    ]
    requesters = check(ZNS_REQUESTERS="S0NOBODY")
    assert requesters.returncode == 1
    assert "S0NOBODY does not resolve" in lines(requesters, "ZNS_REQUESTERS")[0]
    auditors = check(ZNS_AUDITORS="S0NOBODY")
    assert auditors.returncode == 1
    assert "S0NOBODY does not resolve" in lines(auditors, "ZNS_AUDITORS")[0]


def test_check_wants_an_https_public_url(check):
    result = check(PUBLIC_BASE_URL="http://zns-bot.example")
    assert result.returncode == 1
    assert lines(result, "PUBLIC_BASE_URL")[0].startswith("FAIL PUBLIC_BASE_URL: http://")
    unset = check(PUBLIC_BASE_URL=None)
    assert unset.returncode == 0
    assert lines(unset, "PUBLIC_BASE_URL") == [
        "note PUBLIC_BASE_URL: not set: delivery results by polling only (no callbacks)"
    ]


def test_check_checks_the_app_token_in_socket_mode(check, slack_standin):
    result = check(SLACK_APP_TOKEN=APP_TOKEN, SLACK_SIGNING_SECRET=None)
    assert result.returncode == 0, result.stdout  # Socket Mode needs no signing secret
    assert lines(result, "SLACK_APP_TOKEN")[0].startswith("ok   SLACK_APP_TOKEN: Socket Mode")
    # a one-use URL handed out, never used: no link opened
    assert [c.ok for c in slack_standin.calls("apps.connections.open")] == [True]
    assert slack_standin.socket_mode.connections() == []
    wrong = check(SLACK_APP_TOKEN="xapp-1-A0ZNSAPP1-wrong")
    assert wrong.returncode == 1
    assert "invalid_auth" in lines(wrong, "SLACK_APP_TOKEN")[0]
    shape = check(SLACK_APP_TOKEN=BOT_TOKEN)
    assert lines(shape, "SLACK_APP_TOKEN") == [
        "FAIL SLACK_APP_TOKEN: not an app-level token (xapp-…)"
    ]


def test_check_reads_an_existing_store_without_changing_it(cli, check):
    assert cli(*order_args()).returncode == 0
    store = cli.data_dir / FILE_NAME
    before = {p.name: p.stat().st_mtime_ns for p in cli.data_dir.iterdir()}
    result = check()
    assert result.returncode == 0, result.stdout
    assert lines(result, "store") == [
        f"ok   store: {store} reads (read-only, 1 live send(s)), and is writable"
    ]
    assert {p.name: p.stat().st_mtime_ns for p in cli.data_dir.iterdir()} == before


def test_check_leaves_a_0_1_store_to_serve(check, tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "zns.db").write_text("{}")
    result = check(ZNS_DATA_DIR=str(tmp_path / "old"))
    assert lines(result, "store") == [
        f"ok   store: a zns-bot 0.1 store in {tmp_path / 'old'}: serve migrates it"
    ]


def test_check_refuses_a_data_dir_that_is_a_file(check, tmp_path):
    (tmp_path / "a-file").write_text("not a directory")
    result = check(ZNS_DATA_DIR=str(tmp_path / "a-file"))
    assert result.returncode == 1
    assert lines(result, "store") == [
        f"FAIL store: ZNS_DATA_DIR {tmp_path / 'a-file'} is a file, not a directory"
    ]


def test_audit_verify_detects_tampering(cli):
    assert cli(*order_args()).returncode == 0
    ok = cli("audit", "verify")
    assert ok.returncode == 0 and "hash chain intact" in ok.stdout
    # edit one stored audit event's reason on disk
    for path in cli.data_dir.iterdir():
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        if "submitting to eSMS" in text:
            path.write_text(text.replace("submitting to eSMS", "submitting to eSMS!"))
            break
    else:
        pytest.fail("audit event not found on disk")
    broken = cli("audit", "verify")
    assert broken.returncode == 1
    assert "BROKEN" in broken.stderr


def test_audit_export_masks_phones_unless_unmasked(cli, tmp_path):
    assert cli(*order_args()).returncode == 0
    masked, unmasked = tmp_path / "masked.csv", tmp_path / "full.csv"
    assert cli("audit", "export", "--csv", str(masked)).returncode == 0
    assert cli("audit", "export", "--csv", str(unmasked), "--unmask").returncode == 0
    masked_text, full_text = masked.read_text(), unmasked.read_text()
    assert "0901888484" not in masked_text and "090****484" in masked_text
    assert "0901888484" in full_text
    rows = list(csv.DictReader(masked.open()))
    assert [r["seq"] for r in rows] == [str(n) for n in range(1, len(rows) + 1)]
    assert rows[-1]["to"] == "accepted" and rows[-1]["template_id"] == ORDER_TEMPLATE
    assert {r["phone"] for r in rows} == {"090****484"}
    assert all(isinstance(json.loads(r["data"]), dict | None) for r in rows)


def test_secrets_never_reach_the_store_or_output(cli):
    result = cli(*order_args())
    assert result.returncode == 0
    blob = result.stdout + result.stderr
    for path in cli.data_dir.rglob("*"):
        if path.is_file():
            blob += path.read_text(encoding="utf-8", errors="replace")
    assert ESMS_API_KEY not in blob and ESMS_SECRET_KEY not in blob


def test_a_misspelled_setting_is_refused_and_nothing_is_sent(cli, esms_standin):
    # ESMS_SANBOX=1 silently ignored would make a live, charged send.
    result = cli(*order_args(), ESMS_SANBOX="1")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: unknown setting ESMS_SANBOX (in the environment): did you mean ESMS_SANDBOX?"
    ]
    assert esms_standin.requests == []  # not even a template look-up
    assert not cli.data_dir.exists()  # nothing stored


def test_a_misspelled_setting_in_dotenv_is_refused_by_check(cli, tmp_path, esms_standin):
    (tmp_path / ".env").write_text("ESMS_SANBOX=1\n", encoding="utf-8")
    result = cli("check")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: unknown setting ESMS_SANBOX (in .env): did you mean ESMS_SANDBOX?"
    ]
    assert esms_standin.requests == [] and not cli.data_dir.exists()


def test_other_unknown_settings_are_warnings_and_the_command_goes_on(cli, esms_standin):
    result = cli(*order_args(), ZNS_COLOUR="blue", SLACK_CLIENT_ID="123.456")
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines() == [
        "warning: SLACK_CLIENT_ID (in the environment) is a Slack Bolt setting not used by "
        "zns-bot; ignored",
        "warning: unknown setting ZNS_COLOUR (in the environment); ignored",
    ]
    assert len(esms_standin.sends()) == 1


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ESMS_SMS_TYPE", "99"),
        ("ESMS_BASE_URL", "rest.esms.vn"),
        ("SLACK_API_URL", "notaurl"),
        ("PUBLIC_BASE_URL", "example.com"),
        ("LOG_LEVEL", "LOUD"),
    ],
)
def test_a_bad_value_is_one_line_and_nothing_is_sent(cli, esms_standin, name, value):
    result = cli(*order_args(), **{name: value})
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: invalid setting {name}: ")
    assert esms_standin.requests == [] and not cli.data_dir.exists()


def test_public_base_url_without_a_scheme_shows_an_example(cli):
    result = cli("check", PUBLIC_BASE_URL="example.com")
    assert result.returncode == 2
    assert "PUBLIC_BASE_URL: 'example.com' needs a scheme and a host" in result.stderr
    assert "e.g. https://zns.example.com" in result.stderr


def test_a_data_dir_that_is_a_file_is_one_line_naming_the_setting(cli, tmp_path, esms_standin):
    not_a_dir = tmp_path / "data-file"
    not_a_dir.write_text("x")
    result = cli(*order_args(), ZNS_DATA_DIR=str(not_a_dir))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: ZNS_DATA_DIR {not_a_dir} is a file, not a directory"
    ]
    assert esms_standin.sends() == []


@pytest.mark.parametrize("where", ["missing-dir/out.csv", "."])
def test_audit_export_to_a_bad_path_is_one_line_and_creates_nothing(cli, tmp_path, where):
    assert cli(*order_args()).returncode == 0
    before = sorted(tmp_path.rglob("*"))
    target = tmp_path / where
    result = cli("audit", "export", "--csv", str(target))
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: --csv {target}") and line.endswith("; nothing was changed")
    assert "Traceback" not in result.stderr
    assert sorted(tmp_path.rglob("*")) == before


def _commands(parser, path=()):
    """Every (sub)command's parser, with the words that reach it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield (*path, name), child
                yield from _commands(child, (*path, name))


def test_version_is_the_installed_packages(cli):
    done = cli("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"zns-bot {metadata.version('zns-bot')}"
    assert metadata.version("zns-bot") == bot.__version__  # the one copy, as installed


def test_every_command_has_a_description_and_its_help_shows_it():
    from bot.cli import _parser

    commands = dict(_commands(_parser()))
    assert {("send",), ("serve",), ("audit", "verify"), ("privacy", "erase")} <= set(commands)
    for words, parser in commands.items():
        assert parser.description, f"`zns-bot {' '.join(words)}` has no description"
        # said more fully than the one-line help the parent's list shows
        assert len(parser.description) > 40, words


def test_send_help_documents_its_exit_codes(cli):
    done = cli("send", "--help", COLUMNS="100")
    assert done.returncode == 0
    epilog = done.stdout[done.stdout.index("exit status:") :]
    for code, meaning in [
        ("0", "accepted"),
        ("1", "failed"),
        ("2", "nothing was sent"),
        ("3", "outcome unknown"),
    ]:
        assert re.search(rf"^  {code}  .*{meaning}", epilog, re.MULTILINE), (code, epilog)
    assert "Send one ZNS template message" in done.stdout


def test_top_level_help_lists_commands_and_exit_status(cli):
    done = cli("--help")
    assert done.returncode == 0
    for command in ("send", "check", "serve", "audit", "privacy"):
        assert re.search(rf"^    {command}\s", done.stdout, re.MULTILINE), command
    assert "--version" in done.stdout
    assert "exit status:" in done.stdout
