"""The zns-bot store: one TinyDB log file in a data directory, with its record types."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from storage.archiver import Archiver
from storage.audit import AuditLog
from storage.callbacks import CallbackEvents
from storage.clock import Clock, utcnow
from storage.engine import DEFAULT_COMPACT_MIN_OPS, DEFAULT_COMPACT_RATIO, LogDB, open_db
from storage.errors import StoreError
from storage.group_commit import GroupCommit
from storage.homes import DayCounts, Homes, RecentRequests
from storage.outbox import Outbox
from storage.sends import SendRecords
from storage.views import OpenedViews

FILE_NAME = "live.db"  # the live store; the history is in audit/ (storage.segments)


class Store:
    """Sends, audit events, callback events, the outbox, opened views and what the App Home
    keeps (homes, day counts, recent requests), sharing one LogDB.

    Use it from one thread (the event loop's): a compare-and-set is atomic because
    nothing else runs between its read and its write.
    """

    def __init__(
        self,
        db: LogDB,
        data_dir: Path,
        clock: Clock = utcnow,
        *,
        live_hours: float = 48.0,
        compression: str | None = None,
        on_archive_step: Callable[[str], None] | None = None,
    ) -> None:
        self.db = db
        self.data_dir = data_dir
        self.clock = clock
        self.audit = AuditLog(db, clock)
        self.sends = SendRecords(db, self.audit, clock)
        self.callbacks = CallbackEvents(db, clock)
        self.outbox = Outbox(db, clock)
        self.views = OpenedViews(db, clock)
        self.homes = Homes(db, clock)
        self.day_counts = DayCounts(db)
        self.recent = RecentRequests(db, clock)
        self._group_commit = GroupCommit(db.storage)
        self.archive = Archiver(
            self, live_hours=live_hours, compression=compression, on_step=on_archive_step
        )

    @classmethod
    def open(
        cls,
        data_dir: Path | str,
        *,
        fsync: bool = True,
        clock: Clock = utcnow,
        compact_min_ops: int = DEFAULT_COMPACT_MIN_OPS,
        compact_ratio: float = DEFAULT_COMPACT_RATIO,
        live_hours: float = 48.0,
        compression: str | None = None,
        on_archive_step: Callable[[str], None] | None = None,
        background_compaction: bool = False,
    ) -> Store:
        """Open (creating the directory and file if needed) and lock the store.

        `background_compaction`: for `serve`, whose event loop must never wait for a
        snapshot to be written (storage/group_commit.py runs it in a worker thread).
        """
        data_dir = Path(data_dir)
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the data directory {data_dir}: {exc}") from exc
        from storage.migrate import migrate_if_needed  # release 0.1's zns.db, if still there

        migrate_if_needed(data_dir, clock=clock, live_hours=live_hours, compression=compression)
        db = open_db(
            data_dir / FILE_NAME,
            fsync=fsync,
            compact_min_ops=compact_min_ops,
            compact_ratio=compact_ratio,
            background_compaction=background_compaction,
        )
        try:
            return cls(
                db,
                data_dir,
                clock,
                live_hours=live_hours,
                compression=compression,
                on_archive_step=on_archive_step,
            )
        except BaseException:
            db.close()
            raise

    @property
    def path(self) -> Path:
        """The store file."""
        return self.db.storage.path

    def check_writable(self) -> None:
        """Raise StoreError unless a write would be accepted right now (for health checks)."""
        self.db.storage.check_writable()
        self.db.storage.probe_directory()

    async def check_writable_off_loop(self) -> None:
        """`check_writable` for the event loop: the file system probe in a worker thread."""
        self.db.storage.check_writable()
        await asyncio.to_thread(self.db.storage.probe_directory)

    async def synced(self) -> None:
        """Wait until every write so far is on disk (see `transaction(sync=False)`).

        Raises StoreError when they can never be (the disk failed).
        """
        await self._group_commit.wait()

    def close(self) -> None:
        try:
            self.archive.close()
        finally:
            self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
