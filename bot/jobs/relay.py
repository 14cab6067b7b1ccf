"""Drains the outbox into Slack through a Poster: in order per send, paced per channel,
keeping what failed, and posting each message exactly once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from bot.home import HomeBook, view_hash
from bot.posts import HomePoster, Kind, Poster, PostError, posts_new_message
from storage.clock import iso
from storage.errors import StoreError
from storage.outbox import PENDING
from storage.sends import SendRecord
from storage.store import Store

log = logging.getLogger(__name__)

# Slack allows about one chat.postMessage per second per channel, with short bursts.
PACE_S = 1.0
BURST = 1
BASE_BACKOFF_S = 2.0  # first retry after a failure; doubles with each further failure
MAX_BACKOFF_S = 300.0
# Least time between the starts of two passes over the outbox: a busy stream of new items
# behind a paced channel would otherwise rescan the whole backlog for each one.
PASS_GAP = timedelta(seconds=0.25)
# On the send record: {outbox key: when the first attempt to post it began (ISO time)}.
# Written before Slack is called, so after a crash between "posted" and "marked done" the
# next attempt knows to look for the message before posting it again.
TRIED_FIELD: Final = "outbox_tried"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Pass:
    """What one drain pass has found so far."""

    now: datetime
    blocked: set[str] = field(default_factory=set)  # sends whose earlier item waits: keep order
    carded: set[str] = field(default_factory=set)  # sends whose card was refreshed in this pass
    waiting: set[str] = field(default_factory=set)  # lanes found paced out in this pass
    posted: int = 0


@dataclass(frozen=True, slots=True)
class _Due:
    """A pending item as one pass sees it: read in place, not copied."""

    item_id: int
    send_id: str  # "" when the item names none
    order_key: str | None  # the item's send_id as stored: its order among the send's items
    kind: Kind
    lane: str | None
    current: SendRecord | None  # its send, as stored


class Relay:
    """Posts due outbox items. An item stays in the outbox until Slack has confirmed it.

    - Order: a send's items go out in the order they were queued; when one fails or must
      wait, the send's later items wait behind it.
    - Pace: about one post (chat.postMessage or chat.update) per `pace` seconds for each
      channel, the poster's pace key (DMs and ephemerals: per user); `burst` > 1 lets that
      many go at once first. An item whose channel posted just now is skipped for this pass
      while items for other channels go out; `run_until_idle` comes back for it when its
      channel is free again, waiting without blocking the event loop.
    - Failure: the item is retried after Slack's Retry-After, or after an exponential
      backoff (`base_backoff`, doubling, capped at `max_backoff`). A Retry-After also holds
      back the item's channel for that long.
    - Exactly once: see TRIED_FIELD and Poster.post's `tried_since`.

    - App Homes: an item of kind home names a person, not a send. It is rendered when it
      goes out, paced per person, held back until 10 s after their last publication
      unless they are looking (`HomeBook.take`), and not sent when the view is the one
      published last (see `_publish_home`).

    `clock` gives the time for pacing and scheduling, `sleep` waits for pacing; tests
    inject both to run without waiting.
    """

    def __init__(
        self,
        store: Store,
        poster: Poster,
        *,
        clock: Callable[[], datetime] = _utcnow,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        pace: float = PACE_S,
        burst: int = BURST,
        base_backoff: float = BASE_BACKOFF_S,
        max_backoff: float = MAX_BACKOFF_S,
        homes: HomePoster | None = None,
        book: HomeBook | None = None,
    ) -> None:
        self.store = store
        self.poster = poster
        self.homes = homes  # publishes App Homes (Kind.HOME items); None: skipped
        self.book = book
        self.clock = clock
        self.sleep = sleep
        self.pace = pace
        self.burst = burst
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.busy = False
        self.on_error: Callable[[str, str], None] = lambda kind, error: None  # for metrics
        self._closed = False
        self._again = False
        self._wake = asyncio.Event()  # set when new items are queued during a pause
        self._stopping = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._tokens: dict[str, tuple[float, datetime]] = {}  # pace key -> posts left, as of
        self._held: dict[str, datetime] = {}  # pace key -> Slack's Retry-After ends
        self._ready_at: datetime | None = None  # earliest time a paced-out item may go
        # item id -> (send id, pace key), for items whose send has its card: from then on
        # the key never changes, and a long backlog behind a paced lane is skipped unread.
        self._lanes: dict[int, tuple[str, str | None]] = {}

    def request_run(self) -> bool:
        """Note that new items wait; True when a running drain will pick them up itself."""
        self._again = True
        self._wake.set()
        return self.busy

    async def run_until_idle(self) -> int:
        """Drain until nothing more can be posted now, including items added meanwhile.

        Items held back only by pacing are waited for (without blocking the event loop;
        new items wake the wait early). Items waiting for a retry are left to a later run.
        When a drain is already running, ask it to look again and wait for it to finish.
        """
        if self._closed:
            return 0
        if self.busy:
            self.request_run()
            await self._idle.wait()
            return 0
        self.busy = True
        self._idle.clear()
        total = 0
        try:
            began: datetime | None = None  # when the last pass began
            while True:
                if began is not None:
                    # A pass reads every due item: however fast new items arrive, or posts
                    # free their channels, passes come at most one per gap.
                    await self._nap_until(began + PASS_GAP)
                self._again = False
                self._wake.clear()
                began = self.clock()
                sent = await self.drain()
                total += sent
                if self._closed:
                    return total
                if sent or self._again:
                    continue
                if self._ready_at is None:
                    return total
                await self._pause_until(self._ready_at)
        finally:
            self.busy = False
            self._idle.set()

    async def aclose(self) -> None:
        """Stop relaying (before the store closes): a running drain finishes the item in
        hand, skips its pacing wait and returns; later runs do nothing."""
        self._closed = True
        self._wake.set()
        self._stopping.set()
        await self._idle.wait()

    async def drain(self, limit: int = 100) -> int:
        """Post what is due now, at most `limit` posts; return how many Slack confirmed.

        Every due item is considered, oldest first, so a paced channel's backlog never
        hides the items of other channels behind it; items are only read in place (no
        copies) until one is actually sent.
        """
        this = _Pass(self.clock())
        self._ready_at = None
        due = self.store.outbox.due_ids(this.now)
        if len(self._lanes) > 2 * len(due) + 100:  # forget items no longer pending
            self._lanes = {i: self._lanes[i] for i in due if i in self._lanes}
        for item_id in due:
            if self._closed or this.posted >= limit:
                break
            found = self._look(item_id, this)
            if found is not None and found.kind == Kind.HOME:
                # A home names a person, not a send: no order among sends, no card.
                if await self._publish_home(item_id, this):
                    this.posted += 1
                continue
            if found is None or self._held_back(found, this):
                continue
            try:
                # Slack is never told of a change the disk may not keep (callbacks and polls
                # are written before their shared fsync has finished).
                await self.store.synced()
            except StoreError as exc:
                log.error("relay paused: the store cannot be written: %s", exc)
                break
            if self.store.outbox.first_pending(found.order_key) != item_id:
                continue  # settled while the disk caught up
            if await self._post(found, this):
                this.posted += 1
        return this.posted

    def _look(self, item_id: int, this: _Pass) -> _Due | None:
        """The item, if it is still pending and its send is not held back in this pass."""
        known = self._lanes.get(item_id)
        if known is not None and known[1] in this.waiting:
            this.blocked.add(known[0])  # the cheapest test: what a long backlog mostly is
            return None
        live = self.store.outbox.view(item_id)
        if live is None or live["status"] != PENDING:
            return None  # settled while an earlier post was awaited
        if live["kind"] == Kind.HOME:
            return _Due(item_id, "", None, Kind.HOME, None, None)
        send_id = live.get("send_id") or ""
        if send_id in this.blocked:
            return None
        current = self.store.sends.view(send_id) if send_id else None
        try:
            kind = Kind(live["kind"])
        except ValueError:  # nothing here can post it: settled, so it holds nothing up
            self.store.outbox.mark_done(item_id, {"skipped": f"unknown kind {live['kind']}"})
            return None
        lane = self.poster.pace_key(kind, current, live.get("payload") or {}) if current else None
        if current and current.get("card_ts"):
            self._lanes[item_id] = (send_id, lane)
        return _Due(item_id, send_id, live.get("send_id"), kind, lane, current)

    def _held_back(self, due: _Due, this: _Pass) -> bool:
        """Whether the item waits (order, its card, pacing) or is settled without a post."""
        outbox, send_id, current = self.store.outbox, due.send_id, due.current
        if due.lane in this.waiting:
            this.blocked.add(send_id)
            return True
        # Strict order per send across passes: an item goes only once every older item
        # of its send is done, even one that waits for a retry (or a found-again card
        # would be followed by a second card).
        if outbox.first_pending(due.order_key) != due.item_id:
            this.blocked.add(send_id)
            return True
        if current is None:
            outbox.mark_done(due.item_id, {"skipped": "the send no longer exists"})
            return True
        if due.kind == Kind.CARD and send_id in this.carded:
            # A card renders the send's current state, so one refresh covers them all.
            outbox.mark_done(due.item_id, {"coalesced": True})
            return True
        if due.kind != Kind.CARD and not current.get("card_ts"):
            this.blocked.add(send_id)  # thread replies and links need the card first
            return True
        free_at = self._free_at(due.lane) if due.lane else None
        if free_at is None:
            return False
        this.waiting.add(due.lane or "")
        this.blocked.add(send_id)
        self._ready_at = free_at if self._ready_at is None else min(self._ready_at, free_at)
        return True

    async def _post(self, due: _Due, this: _Pass) -> bool:
        """Post the item to Slack and mark it done; False when it must be tried again."""
        item = self.store.outbox.get(due.item_id)
        record: SendRecord = self.store.sends.get(due.send_id)
        tried_since = None
        if posts_new_message(due.kind, record):
            with self.store.db.transaction(sync=False):
                tried_since, record = self._note_attempt(item["key"], record)
            await self.store.synced()  # on disk before Slack hears of it; fsync off the loop
        try:
            result = await self.poster.post(
                due.kind,
                record,
                item.get("payload") or {},
                key=item["key"],
                tried_since=tried_since,
            )
        except PostError as exc:
            this.blocked.add(due.send_id)
            self.on_error(due.kind, exc.error)
            self._retry_later(item, str(exc), exc.retry_after, this.now, due.lane)
            return False
        except Exception as exc:  # a bug must not stall the outbox behind this item
            log.exception("slack post crashed item=%s kind=%s", item["id"], due.kind)
            this.blocked.add(due.send_id)
            self._retry_later(
                item, f"internal error: {type(exc).__name__}", None, this.now, due.lane
            )
            return False
        if due.lane and not result.get("recovered"):
            self._spend(due.lane)
        if due.kind == Kind.CARD and not result.get("recovered"):
            this.carded.add(due.send_id)  # a found-again card shows old state: the next renders
        # The card's ts and "done" are kept together; their fsync is the group commit's, in a
        # worker thread, so that a busy disk never holds the loop.
        with self.store.db.transaction(sync=False):
            if due.kind == Kind.CARD and not record.get("card_ts") and result.get("ts"):
                carded = self.store.sends.update_fields(
                    due.send_id, card_channel=result["channel"], card_ts=result["ts"]
                )
                if self.book is not None:  # the requester's home links to the thread now
                    self.book.card_posted(carded)
            self.store.outbox.mark_done(item["id"], result)
        await self.store.synced()
        return True

    async def _publish_home(self, item_id: int, this: _Pass) -> bool:
        """Publish one person's App Home as it is now; True when Slack took it.

        Paced per person like a channel, and no sooner than HOME_GAP after their last one
        unless they are looking (`HomeBook.take`); a view the same as the one published
        last is not sent again.
        """
        live = self.store.outbox.view(item_id)
        if live is None or live["status"] != PENDING:
            return False
        user = (live.get("payload") or {}).get("user")
        if self.homes is None or self.book is None or not isinstance(user, str):
            self.store.outbox.mark_done(item_id, {"skipped": "no App Home publisher"})
            return False
        lane = f"home:{user}"
        free_at = None if lane in this.waiting else self._free_at(lane)
        if lane in this.waiting or free_at is not None:
            this.waiting.add(lane)
            if free_at is not None:
                self._ready_at = free_at if self._ready_at is None else min(self._ready_at, free_at)
            return False
        if not self.book.take(item_id, user):
            return False
        try:
            await self.store.synced()  # never show Slack a change the disk may not keep
            view = await self.homes.render_home(user)
            digest = view_hash(view)
            unchanged = self.book.unchanged(user, digest)
            if not unchanged:
                await self.homes.publish_home(user, view)
        except Exception as exc:
            error = exc.error if isinstance(exc, PostError) else "internal"
            if not isinstance(exc, PostError):
                log.exception("home publish crashed item=%s", item_id)
            self.on_error(Kind.HOME, error)
            retry_after = exc.retry_after if isinstance(exc, PostError) else None
            item = self.store.outbox.get(item_id)
            self._retry_later(item, f"{type(exc).__name__}: {exc}", retry_after, this.now, lane)
            self.book.failed(user, item_id)
            return False
        with self.store.db.transaction(sync=False):
            if not unchanged:
                self.book.published(user, digest)
            self.store.outbox.mark_done(item_id, {"unchanged": unchanged, "hash": digest[:16]})
        await self.store.synced()
        if unchanged:
            return False
        self._spend(lane)
        return True

    def _note_attempt(self, key: str, record: SendRecord) -> tuple[datetime | None, SendRecord]:
        """Persist that posting `key` begins, before Slack is called (unless already noted).

        Returns when an earlier attempt began (None for the first attempt) and the record.
        """
        tried = dict(record.get(TRIED_FIELD) or {})
        if key in tried:
            return datetime.fromisoformat(tried[key]), record
        tried[key] = iso(self.clock())
        fields: dict[str, Any] = {TRIED_FIELD: tried}
        return None, self.store.sends.update_fields(record["id"], **fields)

    def _retry_later(
        self,
        item: dict[str, Any],
        error: str,
        retry_after: float | None,
        now: datetime,
        lane: str | None,
    ) -> None:
        attempts = int(item.get("attempts") or 0) + 1
        if retry_after:
            delay = retry_after
            if lane:  # Slack asked the channel to slow down, not only this item
                hold = self.clock() + timedelta(seconds=retry_after)
                self._held[lane] = max(hold, self._held.get(lane, hold))
        else:
            delay = min(self.max_backoff, self.base_backoff * 2.0 ** (attempts - 1))
        log.warning(
            "slack post failed item=%s kind=%s send=%s attempt=%d retry_in=%.1fs: %s",
            item["id"],
            item["kind"],
            item.get("send_id"),
            attempts,
            delay,
            error,
        )
        self.store.outbox.mark_failed_attempt(item["id"], error, now + timedelta(seconds=delay))

    # Pacing: a token bucket per pace key. A post takes a token; tokens come back one per
    # `pace` seconds, up to `burst`. So a lane sends at most `burst` posts at once and about
    # one per `pace` seconds after that (burst=1: never two posts within `pace` seconds).

    def _free_at(self, lane: str) -> datetime | None:
        """When `lane` may post next; None when it may post now."""
        now = self.clock()
        held = self._held.get(lane)
        if held is not None and held > now:
            return held
        missing = 1.0 - self._left(lane, now)
        if missing <= 1e-9:
            return None
        return now + timedelta(seconds=missing * self.pace)

    def _left(self, lane: str, now: datetime) -> float:
        if self.pace <= 0 or lane not in self._tokens:
            return float(self.burst)
        tokens, at = self._tokens[lane]
        return min(float(self.burst), tokens + (now - at).total_seconds() / self.pace)

    def _spend(self, lane: str) -> None:
        now = self.clock()
        self._tokens[lane] = (self._left(lane, now) - 1.0, now)

    async def _nap_until(self, when: datetime) -> None:
        """Wait until `when`; only closing the relay cuts it short."""
        await self._sleep_until(when, self._stopping)

    async def _pause_until(self, when: datetime) -> None:
        """Wait until `when` (by the relay's clock), or until new items are queued."""
        if not self._again:
            await self._sleep_until(when, self._wake)

    async def _sleep_until(self, when: datetime, interrupt: asyncio.Event) -> None:
        seconds = (when - self.clock()).total_seconds()
        if seconds <= 0 or self._closed:
            return
        napping = asyncio.ensure_future(self.sleep(seconds))
        woken = asyncio.ensure_future(interrupt.wait())
        try:
            await asyncio.wait({napping, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (napping, woken):
                task.cancel()
