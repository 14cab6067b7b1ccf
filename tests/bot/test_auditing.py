"""The audit export's row filters and row cap, over a real store's history."""

from __future__ import annotations

import csv
import io
import stat
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot import auditing
from bot.auditing import ExportFilter
from storage.store import Store


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """Five refusals by one person, two transitions by another: seven events."""
    data = tmp_path / "data"
    with Store.open(data, fsync=False, clock=lambda: datetime(2026, 12, 3, tzinfo=UTC)) as store:
        for _ in range(5):
            store.audit.append("slack:U1", "request_refused", reason="not in ZNS_REQUESTERS")
        store.audit.append("slack:U2", "transition", send_id="s1", to_state="approved")
        store.audit.append("slack:U2", "transition", send_id="s1", to_state="failed")
    return data


def export(data_dir: Path, wanted: ExportFilter, limit: int | None) -> tuple[list[str], int]:
    out = io.StringIO()
    history = auditing.open_history(data_dir)
    written = auditing.write_csv(out, history, wanted, unmask=False, limit=limit)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == written.rows
    return [r["action"] + ":" + r["actor"] for r in rows], written.matched


def test_the_cap_writes_the_first_rows_and_counts_every_match(data_dir: Path) -> None:
    assert export(data_dir, ExportFilter(), None) == (
        ["request_refused:slack:U1"] * 5 + ["transition:slack:U2"] * 2,
        7,
    )
    rows, matched = export(data_dir, ExportFilter(), 3)
    assert (rows, matched) == (["request_refused:slack:U1"] * 3, 7)
    written = auditing.Written(rows=3, matched=7)
    assert written.cut and not auditing.Written(rows=7, matched=7).cut


def test_rows_are_picked_by_actor_and_state(data_dir: Path) -> None:
    assert export(data_dir, ExportFilter(actor="slack:U2"), None)[1] == 2
    assert export(data_dir, ExportFilter(actor="slack:U2", state="failed"), None)[1] == 1
    assert export(data_dir, ExportFilter(actor="slack:U9"), None)[1] == 0
    assert export(data_dir, ExportFilter(template_id="231001"), None)[1] == 0  # no such send
    assert export(data_dir, ExportFilter(actor="slack:U1"), 2) == (
        ["request_refused:slack:U1"] * 2,
        5,
    )


def test_the_export_file_is_private_and_none_is_left_when_it_fails(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    history = auditing.open_history(data_dir)
    path, written = auditing.export_file(history, ExportFilter(), unmask=True, limit=4)
    assert path.parent == temp and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (written.rows, written.matched) == (4, 7)
    assert len(path.read_text(encoding="utf-8").splitlines()) == 5  # the header and 4 rows
    path.unlink()

    def broken(*args: object, **kwargs: object) -> auditing.Written:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(auditing, "write_csv", broken)
    with pytest.raises(OSError, match="No space left"):
        auditing.export_file(history, ExportFilter(), unmask=False, limit=4)
    assert list(temp.iterdir()) == []
