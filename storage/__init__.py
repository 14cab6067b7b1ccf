"""TinyDB storage: a crash-safe append-log engine and the zns-bot records on top of it."""
