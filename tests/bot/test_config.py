"""Settings: misspelled names refused with a suggestion, values validated in one line."""

from pathlib import Path

import pytest

from bot.config import Settings, load_settings
from bot.errors import ConfigError
from bot.settings_check import (
    BOLT_NAMES,
    FOREIGN_NAMES,
    check_environment,
    check_names,
    distance,
    read_dotenv,
)

KNOWN = tuple(Settings.model_fields)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("ESMS_SANBOX", "ESMS_SANDBOX", 1),  # a letter left out
        ("ESMS_SNADBOX", "ESMS_SANDBOX", 1),  # two neighbours swapped count once
        ("ZNS_APROVERS", "ZNS_APPROVERS", 1),
        ("ESMS_SANDBOXX", "ESMS_SANDBOX", 1),
        ("SLACK_BOT_TOKNE", "SLACK_BOT_TOKEN", 1),
        ("ESMS_SNDBXO", "ESMS_SANDBOX", 2),
        ("ESMS_SANDY", "ESMS_SANDBOX", 3),
        ("", "ABC", 3),
        ("SAME", "SAME", 0),
    ],
)
def test_distance_counts_edits_and_swaps(a, b, expected):
    assert distance(a, b) == expected == distance(b, a)


def test_a_near_miss_is_refused_naming_the_closest_known_name():
    report = check_names(KNOWN, {}, {"ESMS_SANBOX": "1"})
    assert report.refused == ["unknown setting ESMS_SANBOX (in .env): did you mean ESMS_SANDBOX?"]
    assert report.warnings == []
    with pytest.raises(ConfigError, match="did you mean ESMS_SANDBOX"):
        report.raise_refused()


def test_names_are_compared_upper_cased_as_settings_are_case_insensitive():
    report = check_names(KNOWN, {"zns_aproval_channel": "C1", "esms_sandbox": "1"}, {})
    assert report.refused == [
        "unknown setting ZNS_APROVAL_CHANNEL (in the environment): "
        "did you mean ZNS_APPROVAL_CHANNEL?"
    ]


def test_every_near_miss_is_in_the_one_error():
    report = check_names(KNOWN, {"ESMS_TIMOUT": "3"}, {"SLAKC_BOT_TOKEN": "x"})
    assert len(report.refused) == 2
    with pytest.raises(ConfigError) as raised:
        report.raise_refused()
    assert "\n" not in str(raised.value)
    assert "ESMS_TIMEOUT?" in str(raised.value) and "SLACK_BOT_TOKEN?" in str(raised.value)


def test_other_prefixed_names_are_warnings_and_bolts_own_are_named_as_unused():
    env = {"ZNS_SOMETHING_ELSE": "1", "SLACK_CLIENT_ID": "1", "SLACK_STATE_S3_BUCKET_NAME": "b"}
    report = check_names(KNOWN, env, {})
    assert report.refused == []
    assert report.warnings == [
        "SLACK_CLIENT_ID (in the environment) is a Slack Bolt setting not used by zns-bot; ignored",
        "SLACK_STATE_S3_BUCKET_NAME (in the environment) is a Slack Bolt setting not used by "
        "zns-bot; ignored",
        "unknown setting ZNS_SOMETHING_ELSE (in the environment); ignored",
    ]


def test_bolts_names_are_not_mistaken_for_typos():
    report = check_names(KNOWN, dict.fromkeys(BOLT_NAMES, "x"), {})
    assert report.refused == [] and len(report.warnings) == len(BOLT_NAMES)


def test_other_slack_tools_names_are_warnings_never_a_socket_mode_suggestion():
    # SLACK_API_TOKEN is one edit from SLACK_APP_TOKEN, which would turn on Socket Mode.
    report = check_names(KNOWN, dict.fromkeys(FOREIGN_NAMES, "x"), {"SLACK_API_TOKEN": "x"})
    assert report.refused == []
    assert "SLACK_API_TOKEN (in .env) is another Slack tool's setting, not zns-bot's; ignored" in (
        report.warnings
    )
    assert len(report.warnings) == len(FOREIGN_NAMES) + 1


def test_a_short_name_is_near_only_one_edit_away():
    # a .env shared with docker-compose has PGHOST and PGPORT: two edits from HOST and PORT
    report = check_names(KNOWN, {}, {"PGHOST": "db", "PGPORT": "5432", "HOTS": "x", "POTR": "1"})
    assert report.refused == [
        "unknown setting HOTS (in .env): did you mean HOST?",
        "unknown setting POTR (in .env): did you mean PORT?",
    ]


def test_an_unreadable_dotenv_is_one_line(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_bytes(b"ESMS_OAID=\xff\xfe\x00bad\n")
    with pytest.raises(ConfigError, match=r"cannot read the settings file .*: not utf-8 text$"):
        read_dotenv(env_file)


def test_the_shared_environment_is_checked_only_against_prefixed_names():
    # HOME is two edits from HOST, and every shell has it; in .env it would be a typo.
    env = {"HOME": "/root", "PATH": "/bin", "LOGNAME": "x", "HOSTNAME": "box", "PORT": "80"}
    assert check_names(KNOWN, env, {}).refused == []
    report = check_names(KNOWN, {}, {"LOG_LEVLE": "DEBUG", "PUBLC_BASE_URL": "https://x"})
    assert report.refused == [
        "unknown setting LOG_LEVLE (in .env): did you mean LOG_LEVEL?",
        "unknown setting PUBLC_BASE_URL (in .env): did you mean PUBLIC_BASE_URL?",
    ]


def test_a_setting_added_to_the_model_is_known_without_a_list_to_update():
    known = (*KNOWN, "zns_brand_new")
    assert check_names(known, {"ZNS_BRAND_NEW": "1"}, {}).warnings == []
    assert check_names(KNOWN, {"ZNS_BRAND_NEW": "1"}, {}).warnings != []


def test_dotenv_is_read_as_pydantic_settings_reads_it(tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    env_file.write_text("# comment\nexport ESMS_SANBOX=1\nZNS_APPROVERS='U1, U2'\nEMPTY=\n")
    assert read_dotenv(env_file) == {"ESMS_SANBOX": "1", "ZNS_APPROVERS": "U1, U2", "EMPTY": ""}
    assert read_dotenv(tmp_path / "missing.env") == {}
    monkeypatch.chdir(tmp_path)  # the model's own `.env`, relative to the working directory
    with pytest.raises(ConfigError, match=r"ESMS_SANBOX \(in \.env\): did you mean ESMS_SANDBOX"):
        check_environment({})
    Path(env_file).write_text("ZNS_EXTRA=1\n")
    assert check_environment({}) == ["unknown setting ZNS_EXTRA (in .env); ignored"]


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("log_level", "LOUD", "LOG_LEVEL: unknown log level 'LOUD'; use DEBUG, INFO"),
        ("public_base_url", "example.com", "PUBLIC_BASE_URL: 'example.com' needs a scheme and "),
        ("public_base_url", "ftp://zns.example.com", "e.g. https://zns.example.com"),
        ("slack_api_url", "notaurl", "SLACK_API_URL: 'notaurl' is not an http(s) URL with a host"),
        ("esms_base_url", "https:///json/", "ESMS_BASE_URL: "),
        ("esms_callback_api_url", "status-sms.esms.vn", "ESMS_CALLBACK_API_URL: "),
        ("esms_sms_type", "99", "ESMS_SMS_TYPE: '99' is not a ZNS SmsType; use 24 (priority) or"),
        ("zns_audit_compression", "zip", "ZNS_AUDIT_COMPRESSION: "),
    ],
)
def test_a_bad_value_is_one_line_naming_the_setting(name, value, says):
    with pytest.raises(ConfigError) as raised:
        load_settings(_env_file=None, **{name: value})
    message = str(raised.value)
    assert says in message and "\n" not in message


def test_good_values_are_normalised():
    settings = load_settings(
        _env_file=None,
        log_level=" debug ",
        esms_sms_type=" 24",
        zns_audit_compression="XZ",
        public_base_url="",
        slack_api_url="http://127.0.0.1:8080/api",
    )
    assert settings.log_level == "DEBUG" and settings.esms_sms_type == "24"
    assert settings.zns_audit_compression == "xz"
    assert settings.public_base_url is None  # `PUBLIC_BASE_URL=` copied from .env.example
    assert settings.slack_api_url == "http://127.0.0.1:8080/api/"
    assert load_settings(_env_file=None, public_base_url="http://127.0.0.1:3000").public_base_url
