"""Phone normalisation and masking."""

import pytest

from bot.errors import PhoneError
from bot.phones import mask_phone, normalize_phone


@pytest.mark.parametrize(
    "raw",
    [
        "0901888484",
        "+84901888484",
        "+84 901 888 484",
        "84901888484",
        "0084901888484",
        "090-188-8484",
        "0901.888.484",
        " (090) 188 8484 ",
        "901888484",
    ],
)
def test_accepts_what_people_type(raw):
    assert normalize_phone(raw) == "0901888484"


@pytest.mark.parametrize(
    "raw",
    ["0326123456", "0561234567", "0701234567", "0866123456", "0987654321", "+84 88 999 1234"],
)
def test_every_mobile_prefix_normalises_to_ten_digits(raw):
    out = normalize_phone(raw)
    assert len(out) == 10 and out.startswith("0") and out.isdigit()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "enter the customer's mobile number"),
        ("   ", "enter the customer's mobile number"),
        ("abc", "characters a phone number cannot have"),
        ("0" * 300, "is not a phone number: type a Vietnamese mobile number"),
        ("+84901888484x", "characters a phone number cannot have"),
        ("0901888484 ext 2", "characters a phone number cannot have"),
        ("+1 650 253 0000", "+1 is not a Vietnamese number"),
        ("+66 81 234 5678", "+66 is not a Vietnamese number"),
        ("0123456789", "not a valid Vietnamese mobile number"),
        ("09018884", "not a valid Vietnamese mobile number"),
        ("090188848412", "not a valid Vietnamese mobile number"),
        ("02439123456", "landline or service number"),
        ("1900123456", "landline or service number"),
    ],
)
def test_rejects_with_a_reason_a_person_can_act_on(raw, reason):
    with pytest.raises(PhoneError) as info:
        normalize_phone(raw)
    assert reason in str(info.value)
    assert info.value.problems == {"phone": str(info.value)}


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("0901888484", "090****484"),
        ("+84 901 888 484", "849*****484"),
        ("12345", "*****"),
        ("", ""),
    ],
)
def test_mask(phone, masked):
    assert mask_phone(phone) == masked


def test_mask_never_shows_the_middle_digits():
    assert "1888" not in mask_phone(normalize_phone("+84 901 888 484"))
