"""The built wheel: the application's packages and version, and none of the test kit."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import bot
from tests import ROOT


def build_wheel(project: Path, out: Path) -> Path:
    """Build `project`'s wheel into `out` offline: no index, no isolated build environment
    (hatchling comes from the test extra), no dependencies."""
    offline = ["--no-deps", "--no-build-isolation", "--no-index", "--quiet"]
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", *offline, "--wheel-dir", str(out), str(project)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    [wheel] = out.glob("*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    wheel = build_wheel(ROOT, tmp_path_factory.mktemp("wheel"))
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_wheel_holds_the_application_packages(wheel_names: list[str]) -> None:
    tops = {name.split("/", 1)[0] for name in wheel_names}
    assert {"bot", "handlers", "storage"} <= tops
    assert "bot/__init__.py" in wheel_names


def test_wheel_holds_no_test_kit(wheel_names: list[str]) -> None:
    tops = {name.split("/", 1)[0] for name in wheel_names}
    assert not {"standins", "tests"} & tops
    assert [name for name in wheel_names if "standins/" in name or "tests/" in name] == []


def test_wheel_version_is_bot_version(wheel_names: list[str]) -> None:
    # pyproject.toml reads the version from bot/__init__.py: the two cannot disagree.
    assert f"zns_bot-{bot.__version__}.dist-info/METADATA" in wheel_names


def test_wheel_carries_the_license(wheel_names: list[str]) -> None:
    assert f"zns_bot-{bot.__version__}.dist-info/licenses/LICENSE" in wheel_names
