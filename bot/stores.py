"""The store, opened as the settings say: one place for the command line and `serve`."""

from __future__ import annotations

import os

from bot.config import Settings
from bot.errors import ConfigError
from storage.store import Store


def open_store(settings: Settings, *, background_compaction: bool = False) -> Store:
    """Open and lock the live store of ZNS_DATA_DIR (migrating an older one first)."""
    data_dir = settings.zns_data_dir
    # A setting's mistake, named as one (the store's own error does not know the setting).
    try:
        exists, is_dir = data_dir.exists(), data_dir.is_dir()
    except OSError as exc:  # a parent this user may not enter: exists() raises, not False
        raise ConfigError(f"ZNS_DATA_DIR {data_dir}: {exc.strerror or exc}") from None
    if exists and not is_dir:
        raise ConfigError(f"ZNS_DATA_DIR {data_dir} is a file, not a directory")
    if is_dir and not os.access(data_dir, os.W_OK | os.X_OK):
        raise ConfigError(f"ZNS_DATA_DIR {data_dir} is not writable by this user")
    return Store.open(
        settings.zns_data_dir,
        fsync=settings.zns_fsync,
        live_hours=settings.zns_live_hours,
        compression=settings.audit_compression,
        background_compaction=background_compaction,
    )
