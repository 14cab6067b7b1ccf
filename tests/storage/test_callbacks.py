"""Callback events are kept raw and de-duplicated on (SMSID, status), across restarts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from storage.callbacks import EXCERPT_CHARS, MAX_REFUSED_FIELDS, excerpt
from storage.store import Store


def test_a_replayed_callback_is_recorded_once(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        raw = {"SMSID": "S1", "SendStatus": "1", "error_info": "%7B%7D"}
        assert store.callbacks.record("S1", "1", raw) is True
        size = store.path.stat().st_size
        assert store.callbacks.record("S1", 1, raw) is False  # "1" and 1 are one status
        assert store.path.stat().st_size == size
        assert store.callbacks.record("S1", "2", raw) is True  # a new status is news
        assert store.callbacks.record("S2", "1", raw) is True
        stored = store.callbacks.for_sms("S1")
        assert [(c["send_status"], c["raw"], c["valid"]) for c in stored] == [
            ("1", raw, True),
            ("2", raw, True),
        ]
        assert store.callbacks.count() == 3
    with Store.open(tmp_path) as store:
        assert store.callbacks.record("S1", "1", {"again": True}) is False


def test_invalid_callbacks_are_kept_and_never_deduped(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        junk = {"SMSID": "S1", "SendStatus": "??"}
        assert store.callbacks.record("S1", "??", junk, valid=False, reason="bad status")
        assert store.callbacks.record("S1", "??", junk, valid=False, reason="bad status")
        assert store.callbacks.record(None, None, {}, valid=False, reason="no SMSID")
        # Invalid ones never hide a later valid callback with the same values.
        assert store.callbacks.record("S1", "??", junk) is True
        assert [c["valid"] for c in store.callbacks.for_sms("S1")] == [False, False, True]
        assert store.callbacks.for_sms("S1")[0]["reason"] == "bad status"
        assert store.callbacks.count() == 4


def test_a_valid_callback_needs_an_smsid_and_status(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        with pytest.raises(ValueError):
            store.callbacks.record(None, "1", {})
        with pytest.raises(ValueError):
            store.callbacks.record("S1", None, {})
        assert store.callbacks.count() == 0


@pytest.mark.parametrize(
    ("sms_id", "status"),
    [
        ("S1", "5"),
        ("S1", 5),
        ('quo"te\\back', "1"),
        ("tiếng Việt 😀", "2"),
        ("ctl\n\t\x00\x7f", "7"),
        ("</script>&", "5.0"),
    ],
)
def test_the_dedupe_key_is_spelled_as_stores_written_before_keep_it(
    tmp_path: Path, sms_id: str, status: str | int
) -> None:
    """Keys stored by earlier versions came from json.dumps: a replay must still match them."""
    with Store.open(tmp_path) as store:
        assert store.callbacks.record(sms_id, status, {}) is True
        [stored] = store.callbacks.for_sms(sms_id)
        assert stored["dedupe_key"] == json.dumps([str(sms_id), str(status)])
        assert store.callbacks.record(sms_id, str(status), {}) is False


def test_a_refused_callback_keeps_only_an_excerpt_of_each_field(tmp_path: Path) -> None:
    huge = "A" * 100_000
    raw = {"SMSID": huge, "SendStatus": "5", "B" * 1000: "x", **{f"f{i}": "v" for i in range(100)}}
    with Store.open(tmp_path) as store:
        store.callbacks.record(huge, "5", raw, valid=False, reason=f"SMSID {huge} is wrong")
        (kept,) = store.callbacks.for_sms(excerpt(huge))
        assert kept["sms_id"] == "A" * EXCERPT_CHARS + "…[cut: 100000 chars]"
        assert kept["raw"]["SMSID"] == kept["sms_id"]
        assert len(kept["raw"]) <= MAX_REFUSED_FIELDS + 1
        assert len(kept["reason"]) <= 2 * EXCERPT_CHARS + 30
        assert kept["send_status"] == "5"
    # The file on disk holds the excerpt, never the whole value.
    assert huge not in store.path.read_text()
    assert store.path.stat().st_size < 20_000
