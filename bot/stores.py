"""The store, opened as the settings say: one place for the command line and `serve`."""

from __future__ import annotations

from bot.config import Settings
from storage.store import Store


def open_store(settings: Settings, *, background_compaction: bool = False) -> Store:
    """Open and lock the live store of ZNS_DATA_DIR (migrating an older one first)."""
    return Store.open(
        settings.zns_data_dir,
        fsync=settings.zns_fsync,
        live_hours=settings.zns_live_hours,
        compression=settings.audit_compression,
        background_compaction=background_compaction,
    )
