"""The Makefile: `clean` keeps the data, and the venv follows the Python it is asked for."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests import ROOT
from tests.pythons import interpreters

STAMP = ".venv/.installed"
SUPPORTED = {v: p for v, p in interpreters().items() if v >= (3, 11)}
OUTER_MAKE = {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "PY", "VENV", "MKVENV", "INSTALL"}
TOO_OLD = {v: p for v, p in interpreters().items() if v < (3, 11)}


def make(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The project's Makefile run in `cwd`: its venv logic, without pip (seconds per venv)."""
    quick = ["MKVENV=$(PY) -m venv --without-pip", "INSTALL=true"]
    # Under `make test VENV=...` that make's variables reach us in the environment.
    env = {k: v for k, v in os.environ.items() if k not in OUTER_MAKE}
    return subprocess.run(
        ["make", "--no-print-directory", "-f", str(ROOT / "Makefile"), *quick, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def venv_version(cwd: Path) -> tuple[int, ...]:
    done = subprocess.run(
        [str(cwd / ".venv/bin/python"), "-c", "import sys; print(*sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return tuple(int(part) for part in done.stdout.split())


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    for name in ("pyproject.toml", "constraints.txt"):  # what the venv is built from
        (tmp_path / name).write_bytes((ROOT / name).read_bytes())
    return tmp_path


def test_clean_removes_what_make_builds_and_keeps_the_data(checkout: Path) -> None:
    store = checkout / "data" / "zns.json"
    store.parent.mkdir()
    store.write_text('{"sends": {"1": {}}}')
    demo = checkout / "demo-data" / "20261207-101500" / "zns.json"
    demo.parent.mkdir(parents=True)
    demo.write_text("{}")
    built = [".venv/bin", ".venv-3.13/bin", ".pytest_cache", ".ruff_cache", "build", "dist"]
    built += ["zns_bot.egg-info", "bot/__pycache__", "tests/storage/__pycache__"]
    for name in built:
        (checkout / name).mkdir(parents=True)
        (checkout / name / "x").write_text("x")

    done = make(checkout, "clean")
    assert done.returncode == 0, done.stderr
    assert [name for name in built if (checkout / name).exists()] == []
    assert store.read_text() == '{"sends": {"1": {}}}'
    assert demo.exists()  # the demo's stores have a target of their own

    done = make(checkout, "clean-demo")
    assert done.returncode == 0, done.stderr
    assert not (checkout / "demo-data").exists()
    assert store.read_text() == '{"sends": {"1": {}}}'


def test_no_target_removes_data(checkout: Path) -> None:
    targets = re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert {"clean", "clean-demo", "test", "demo"} <= set(targets)
    removals = []
    for target in targets:
        done = make(checkout, "-n", target)  # what it would run, with the venv's own steps
        assert done.returncode == 0, (target, done.stderr)
        removals += [line for line in done.stdout.splitlines() if re.search(r"\brm\b", line)]
    assert any("demo-data" in line for line in removals)  # the dry runs do show removals
    for line in removals:
        assert not re.search(r"(^|[\s/])(\./)?data(/|\s|$)", line), line


@pytest.mark.skipif(not TOO_OLD or not SUPPORTED, reason="needs a Python < 3.11 and one >= 3.11")
def test_a_python_too_old_gets_one_line_and_then_the_right_one_builds(checkout: Path) -> None:
    old = TOO_OLD[max(TOO_OLD)]
    done = make(checkout, f"PY={old}", STAMP)
    assert done.returncode != 0
    (line,) = done.stderr.splitlines()
    assert "needs Python 3.11 or newer" in line and "3.11, 3.12 and 3.13" in line, line
    assert not (checkout / ".venv").exists()

    done = make(checkout, "PY=python3-does-not-exist", STAMP)
    assert done.returncode != 0 and "does not run" in done.stderr

    version, python = min(SUPPORTED.items())
    done = make(checkout, f"PY={python}", STAMP)
    assert done.returncode == 0, done.stderr
    assert venv_version(checkout) == version


@pytest.mark.skipif(len(SUPPORTED) < 2, reason="needs two supported Pythons")
def test_a_venv_of_another_python_or_a_broken_one_is_rebuilt(checkout: Path) -> None:
    (first, first_python), (second, second_python) = list(SUPPORTED.items())[:2]
    stamp = checkout / STAMP
    assert make(checkout, f"PY={first_python}", STAMP).returncode == 0
    assert venv_version(checkout) == first
    built = stamp.stat().st_mtime_ns
    again = make(checkout, f"PY={first_python}", STAMP)
    assert "up to date" in again.stdout and stamp.stat().st_mtime_ns == built

    assert make(checkout, f"PY={second_python}", STAMP).returncode == 0
    assert venv_version(checkout) == second

    for python in (checkout / ".venv/bin").glob("python*"):
        python.unlink()  # its interpreter gone, as after a pyenv uninstall
    assert make(checkout, f"PY={second_python}", STAMP).returncode == 0
    assert venv_version(checkout) == second


def test_a_failed_install_is_redone_by_the_next_make(checkout: Path) -> None:
    python = SUPPORTED[min(SUPPORTED)]
    failed = make(checkout, f"PY={python}", STAMP, "INSTALL=false")
    assert failed.returncode != 0 and not (checkout / STAMP).exists()
    done = make(checkout, f"PY={python}", STAMP)
    assert done.returncode == 0, done.stderr
    assert (checkout / STAMP).exists()
