"""The store, opened as the settings say: one place for the command line and `serve`."""

from __future__ import annotations

import os
from pathlib import Path

from bot.config import Settings
from bot.errors import ConfigError
from storage.store import Store


def check_data_dir(data_dir: Path, *, write: bool) -> bool:
    """Whether ZNS_DATA_DIR exists; ConfigError naming the setting for one that cannot work:
    a file, one this user may not enter, or (`write`) may not write or could not create."""
    try:
        exists = data_dir.exists()
        if exists and not data_dir.is_dir():
            raise ConfigError(f"ZNS_DATA_DIR {data_dir} is a file, not a directory")
        # the nearest directory that exists: where serve would create the data directory
        parent = data_dir if exists else next(p for p in data_dir.absolute().parents if p.exists())
    except OSError as exc:  # a parent this user may not enter: exists() raises, not False
        raise ConfigError(f"ZNS_DATA_DIR {data_dir}: {exc.strerror or exc}") from None
    if write and not os.access(parent, os.W_OK | os.X_OK):
        if exists:
            raise ConfigError(f"ZNS_DATA_DIR {data_dir} is not writable by this user")
        raise ConfigError(
            f"ZNS_DATA_DIR {data_dir} cannot be created: {parent} is not writable by this user"
        )
    return exists


def open_store(settings: Settings, *, background_compaction: bool = False) -> Store:
    """Open and lock the live store of ZNS_DATA_DIR (migrating an older one first)."""
    check_data_dir(settings.zns_data_dir, write=True)
    return Store.open(
        settings.zns_data_dir,
        fsync=settings.zns_fsync,
        live_hours=settings.zns_live_hours,
        compression=settings.audit_compression,
        background_compaction=background_compaction,
    )
