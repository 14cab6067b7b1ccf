"""`zns-bot serve` refuses a bad setting, host or port in one line, exit 2, before "listening"."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from standins.process import free_port, standin_env
from standins.servers import loopback_socket

ZNS_BOT = str(Path(sys.executable).parent / "zns-bot")


@pytest.fixture
def serve(tmp_path, slack_standin, esms_standin):
    """Run `zns-bot serve` with the stand-ins' settings plus `overrides`; it must exit."""
    env = standin_env(slack_standin, esms_standin, tmp_path / "data")
    env.update(HOST="127.0.0.1", PORT=str(free_port()), METRICS_PORT=str(free_port()))

    def run(**overrides: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [ZNS_BOT, "serve"],
            env={**env, **overrides},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,  # a bot that started instead of refusing fails here, not forever
        )

    run.data_dir = tmp_path / "data"
    return run


def refused(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused start writes (nothing said "listening" before it)."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "listening" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ")
    return line


def test_a_bad_log_level_is_one_line(serve):
    line = refused(serve(LOG_LEVEL="LOUD"))
    assert "LOG_LEVEL: unknown log level 'LOUD'" in line


def test_a_misspelled_setting_in_dotenv_is_refused_before_anything_starts(serve, tmp_path):
    (tmp_path / ".env").write_text("ESMS_SANBOX=1\n", encoding="utf-8")
    line = refused(serve())
    assert line == "error: unknown setting ESMS_SANBOX (in .env): did you mean ESMS_SANDBOX?"
    assert not serve.data_dir.exists()


@pytest.mark.parametrize("setting", ["PORT", "METRICS_PORT"])
def test_a_taken_port_names_the_setting(serve, setting):
    with loopback_socket() as taken:
        taken.listen()
        port = taken.getsockname()[1]
        line = refused(serve(**{setting: str(port)}))
    assert line.startswith(f"error: {setting} {port} on 127.0.0.1 is in use")
    assert not serve.data_dir.exists()  # refused before the store was opened


@pytest.mark.parametrize("host", ["300.1.1.1", "no-such-host.invalid"])
def test_a_bad_host_names_host(serve, host):
    line = refused(serve(HOST=host))
    assert line.startswith(f"error: HOST '{host}' is not an IP address or a host name")


def test_a_host_not_of_this_machine_names_host(serve):
    # TEST-NET-1 (RFC 5737): never an address of this machine.
    line = refused(serve(HOST="192.0.2.1"))
    assert line.startswith("error: HOST 192.0.2.1 is not an address of this machine")


def test_a_data_dir_that_is_a_file_names_the_setting(serve, tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    line = refused(serve(ZNS_DATA_DIR=str(not_a_dir)))
    assert line == f"error: ZNS_DATA_DIR {not_a_dir} is a file, not a directory"


def test_serve_logs_unknown_settings_as_json_warnings(serve):
    # A taken PORT ends the run right after the warnings are logged: no server to stop.
    with loopback_socket() as taken:
        taken.listen()
        result = serve(ZNS_COLOUR="blue", PORT=str(taken.getsockname()[1]))
    warning, error = result.stderr.strip().splitlines()
    event = json.loads(warning)
    assert event["level"] == "WARNING"
    assert event["msg"] == "unknown setting ZNS_COLOUR (in the environment); ignored"
    assert error.startswith("error: PORT ")
