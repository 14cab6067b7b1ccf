"""Errors the store raises; bot.errors re-exports them as part of zns-bot's hierarchy."""


class StoreError(Exception):
    """The store cannot be opened or written. `str()` is fit to show a person."""


class NotFoundError(StoreError):
    """A record does not exist."""


class StoreLockedError(StoreError):
    """Another process (a running `zns-bot serve`, say) holds the store."""
