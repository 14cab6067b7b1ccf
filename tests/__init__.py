"""zns-bot's tests, laid out as the source: tests/<package>/test_<module>.py; e2e/ apart."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the checkout
