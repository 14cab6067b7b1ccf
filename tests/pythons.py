"""The CPython interpreters on this machine by version: on PATH, and pyenv's, kept off it.

`python tests/pythons.py newest` prints the newest one's path (for .ci/run);
`python tests/pythons.py 3.13` prints that version's, or exits 1 when there is none.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

_NAME = re.compile(r"python3\.\d+")


def _candidates() -> list[str]:
    on_path = [shutil.which(f"python3.{minor}") for minor in range(8, 30)]
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    pyenv = sorted(str(p) for p in root.glob("*/bin/python3.*") if _NAME.fullmatch(p.name))
    return [c for c in [*on_path, *pyenv] if c]


def _version(python: str) -> tuple[int, int] | None:
    """What `python` says it is, if it runs (a pyenv shim of an unselected one does not)."""
    try:
        done = subprocess.run(
            [python, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except OSError:
        return None
    if done.returncode != 0:
        return None
    major, minor = done.stdout.split()
    return int(major), int(minor)


def interpreters() -> dict[tuple[int, int], str]:
    """One runnable interpreter per version, oldest first."""
    found: dict[tuple[int, int], str] = {}
    for python in _candidates():
        version = _version(python)
        if version is not None and version not in found:
            found[version] = python
    return dict(sorted(found.items()))


def main(argv: list[str]) -> int:
    found = interpreters()
    if argv == ["newest"] and found:
        print(found[max(found)])
        return 0
    asked = re.fullmatch(r"(\d+)\.(\d+)", argv[0]) if len(argv) == 1 else None
    if asked and (int(asked[1]), int(asked[2])) in found:
        print(found[int(asked[1]), int(asked[2])])
        return 0
    print(f"usage: {sys.argv[0]} newest | 3.N (found: {found})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
