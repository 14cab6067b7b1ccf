"""query_fields: the callback's query string, decoded exactly as parse_qsl would."""

import random
from urllib.parse import parse_qsl

import pytest

from bot.web.callbacks import query_fields


def reference(raw: bytes) -> dict[str, str]:
    return dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"SMSID=abc&SendStatus=5&SendSuccess=1",
        b"a=1&a=2",  # a repeated name keeps its last value
        b"&&a=1&&",  # empty pairs are skipped
        b"flag&b=",  # no '=' and an empty value are both kept, as ""
        b"=orphan",  # an empty name is a name
        b"a=x=y",  # only the first '=' splits
        b"na+me=v+a+l",  # '+' is a space in names and values
        b"error_info=%22%7B%5C%22error%5C%22%3A-118%7D%22",  # JSON in a JSON string
        b"error_info=%257B%2522error%2522%253A0%257D____27%2F11",  # encoded twice: once here
        b"bad=%zz%4&trunc=%e2%82",  # broken escapes and a cut UTF-8 sequence
        b"vi=Tr%E1%BA%A7n+V%C4%83n",  # UTF-8 escapes
        "raw=ăn".encode(),  # unescaped non-ASCII bytes, read as latin-1
        b"plus=%2B&pct=%25",
    ],
)
def test_matches_parse_qsl(raw: bytes) -> None:
    assert query_fields(raw) == reference(raw)


def test_matches_parse_qsl_on_random_query_strings() -> None:
    rng = random.Random(20261127)
    alphabet = ["a", "Z", "0", "9", "&", "=", "+", "%", "2", "B", "e", "~", " ", "\xe9", "%41"]
    for _ in range(5000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 24)))
        raw = text.encode("latin-1")
        assert query_fields(raw) == reference(raw), raw
