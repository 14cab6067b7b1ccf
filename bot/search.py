"""Type-ahead search over named things (OAs, templates): by id or any part of the name."""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

MAX_RESULTS = 100  # what Slack shows of one options load answer


@functools.lru_cache(maxsize=8192)  # every keystroke folds the same catalogue names again
def fold(text: str) -> str:
    """`text` as people type it: no case, no diacritics, spaces collapsed.

    NFD splits "ộ" into "o" and its marks, which are dropped; "đ" is a letter of its own
    in Unicode, not "d" with a mark, so it is mapped by hand ("don hang" finds "Đơn hàng").
    """
    lowered = text.casefold().replace("đ", "d")  # casefold has turned "Đ" into "đ"
    decomposed = unicodedata.normalize("NFD", lowered)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.split())


@dataclass(frozen=True, slots=True)
class Found(Generic[T]):
    """The first `limit` matches, in a stable order, and how many matched in all."""

    items: tuple[T, ...]
    total: int

    @property
    def truncated(self) -> bool:
        return self.total > len(self.items)


def search(
    items: Sequence[T],
    query: str,
    *,
    ident: Callable[[T], str],
    name: Callable[[T], str],
    limit: int = MAX_RESULTS,
) -> Found[T]:
    """Items whose id contains `query` or whose folded name contains the folded `query`.

    Best first, and otherwise in the catalogue's own order so the list does not jump
    between keystrokes: the exact id, then names starting with the query, then the rest.
    An empty query matches everything.
    """
    wanted = fold(query)
    raw = query.strip()
    ranked: list[tuple[int, int, T]] = []
    for position, item in enumerate(items):
        item_id, folded = ident(item), fold(name(item))
        if raw and item_id == raw:
            rank = 0
        elif folded.startswith(wanted) or (raw and item_id.startswith(raw)):
            rank = 1
        elif wanted in folded or (raw and raw in item_id):
            rank = 2
        else:
            continue
        ranked.append((rank, position, item))
    ranked.sort(key=lambda entry: (entry[0], entry[1]))
    return Found(items=tuple(item for _, _, item in ranked[:limit]), total=len(ranked))
