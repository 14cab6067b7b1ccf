"""deploy/zns-bot.service: `zns-bot serve` hardened, as systemd accepts it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from bot.cli import EXIT_USAGE
from tests import ROOT

UNIT = ROOT / "deploy" / "zns-bot.service"
INSTALLED_SCRIPT = "/opt/zns-bot/.venv/bin/zns-bot"


def parse(text: str) -> dict[str, dict[str, list[str]]]:
    """A unit file as systemd reads it: sections of keys, a key repeated keeps every value."""
    sections: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not KEY=VALUE: {raw!r}"
        sections[section][key.strip()].append(value.strip())
    return sections


SERVICE = parse(UNIT.read_text())["Service"]


def one(key: str) -> str:
    (value,) = SERVICE[key]
    return value


def test_it_runs_serve_as_a_dedicated_user_with_the_env_file() -> None:
    assert one("ExecStart") == f"{INSTALLED_SCRIPT} serve"
    assert one("User") == "zns-bot"
    assert one("WorkingDirectory") == "/opt/zns-bot"
    assert one("EnvironmentFile") == "/etc/zns-bot/env"
    assert one("Restart") == "on-failure"
    # a bad setting exits 2: restarting would only loop
    assert one("RestartPreventExitStatus") == str(EXIT_USAGE)


def test_the_data_directory_is_the_only_writable_path() -> None:
    data_dir = one("Environment").removeprefix("ZNS_DATA_DIR=")
    assert data_dir == "/var/lib/" + one("StateDirectory")
    assert one("ReadWritePaths") == data_dir
    assert one("ProtectSystem") == "strict"
    assert one("UMask") == "0077"


def test_the_env_file_from_env_example_keeps_the_units_data_directory() -> None:
    # README installs .env (copied from .env.example) as the unit's EnvironmentFile, which
    # overrides Environment=: a ZNS_DATA_DIR there would move the store under the read-only
    # /opt/zns-bot and the service would fail to start.
    lines = (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
    set_there = {
        line.split("=", 1)[0].strip() for line in lines if "=" in line and not line.startswith("#")
    }
    assert "ZNS_DATA_DIR" not in set_there
    assert "ZNS_LIVE_HOURS" in set_there  # the file is read as expected


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("RestrictNamespaces", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallArchitectures", "native"),
    ],
)
def test_hardening(key: str, value: str) -> None:
    assert one(key) == value


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    # verify checks that ExecStart exists: point it at this checkout's console script
    script = Path(sys.executable).with_name("zns-bot")
    unit = tmp_path / "zns-bot.service"
    unit.write_text(UNIT.read_text().replace(INSTALLED_SCRIPT, str(script)))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_the_readme_deployment_section_gathers_the_pieces() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("\n## Deployment\n") :]
    section = section[: section.index("\n## ", 1)]
    for piece in (
        "deploy/zns-bot.service",
        "(#on-the-public-internet)",  # the proxy is described once, there
        "PUBLIC_BASE_URL/esms/callback/<token>",
        "**Backups.**",
        "**Upgrades.**",
        "zns-bot audit verify",
    ):
        assert piece in section, piece
    assert "## On the public internet" in readme.replace("### On", "## On")
