"""Helpers for the storage tests: open stores in tmp dirs and edit store files on disk."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from storage.engine import LogDB

Edit = Callable[[int, dict[str, Any]], dict[str, Any] | None]


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def state_of(db: LogDB) -> dict[str, dict[int, dict[str, Any]]]:
    """Every table's documents by id, as plain dicts."""
    return {name: {doc.doc_id: dict(doc) for doc in db.table(name)} for name in db.tables()}


def log_lines(path: Path) -> list[Any]:
    """The JSON values of the store file, one per line."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def edit_table_on_disk(path: Path, table: str, edit: Edit) -> None:
    """Rewrite every stored copy of `table`'s documents (snapshot and log) through `edit`.

    `edit(doc_id, doc)` returns the new document, or None to delete it. Snapshot totals
    are kept consistent, as someone tampering with the file on purpose would.
    """
    out: list[Any] = []
    total = 0
    for value in log_lines(path):
        if isinstance(value, dict) and value.get("table") == table:
            docs = {}
            for sid, doc in value["docs"].items():
                new = edit(int(sid), doc)
                if new is not None:
                    docs[sid] = new
            value["docs"] = docs
        elif isinstance(value, list):
            ops = []
            for op in value:
                if op[0] == "p" and op[1] == table:
                    new = edit(int(op[2]), op[3])
                    if new is None:
                        continue
                    op = [*op[:3], new]
                ops.append(op)
            if not ops:
                continue
            value = ops
        if isinstance(value, dict) and "docs" in value and "table" in value:
            total += len(value["docs"])
        if isinstance(value, dict) and "snapshot_end" in value:
            value["docs"] = total
        out.append(value)
    text = "".join(json.dumps(v, ensure_ascii=False, separators=(",", ":")) + "\n" for v in out)
    path.write_text(text)


_DECOMPRESS = {".gz": gzip.decompress, ".bz2": bz2.decompress, ".xz": lzma.decompress}


def every_byte(data_dir: Path) -> Iterator[tuple[Path, bytes]]:
    """Each file under `data_dir` and its bytes, decompressed when it is compressed."""
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        yield path, _DECOMPRESS[path.suffix](raw) if path.suffix in _DECOMPRESS else raw


def traces(data_dir: Path, *values: str) -> list[str]:
    """`file: value` for each of `values` found in any file under `data_dir`."""
    return [
        f"{path.name}: {value}"
        for path, raw in every_byte(data_dir)
        for value in values
        if value.encode() in raw
    ]
