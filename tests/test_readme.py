"""The README's map of the tree names every package and every module at the top of bot/."""

from __future__ import annotations

import re

from tests import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
MAP = README[README.index("## What is here") :]
MAP = MAP[: MAP.index("\n## ", 1)]


def packages() -> list[str]:
    found = []
    for top in ("bot", "handlers", "storage", "standins"):
        for init in sorted((ROOT / top).rglob("__init__.py")):
            found.append(init.parent.relative_to(ROOT).as_posix() + "/")
    return found


def test_the_map_names_every_package() -> None:
    listed = packages()
    assert {"bot/", "bot/esms/", "handlers/listeners/", "standins/"} <= set(listed)
    for package in listed:
        name = package if package.count("/") == 1 else package.split("/", 1)[1]
        assert f"`{package}`" in MAP or f"`{name}`" in MAP, f"the README's map lacks {package}"


def test_the_map_names_every_module_at_the_top_of_bot_and_handlers() -> None:
    for top in ("bot", "handlers"):
        for module in sorted((ROOT / top).glob("*.py")):
            if module.name == "__init__.py":
                continue
            assert f"`{module.name}`" in MAP, f"the README's map lacks {top}/{module.name}"


def test_the_map_names_no_module_that_is_gone() -> None:
    named = set(re.findall(r"`((?:bot|handlers|storage|standins)/[\w/]+\.py)`", README))
    assert [path for path in sorted(named) if not (ROOT / path).exists()] == []
