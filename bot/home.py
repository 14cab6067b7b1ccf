"""The App Home's data, and when each person's home is published again (through the outbox)."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.cache import SwrCache
from bot.config import Settings
from bot.errors import EsmsError
from bot.esms.client import EsmsClient
from bot.phones import mask_phone
from bot.posts import Kind
from storage.clock import iso
from storage.outbox import PENDING
from storage.sends import FINAL_STATES, SendRecord, SendState
from storage.store import Store

log = logging.getLogger(__name__)

HOME_GAP = timedelta(seconds=10)  # at most one views.publish per person in this time
ACTIVE_FOR = timedelta(hours=24)  # a home opened this long ago still follows changes
KEEP_DAYS = 7  # days of counts kept in the live store
RECENT_KEEP = timedelta(days=30)  # a requester's short list, after their last request
WAITING_PAGE = 20  # waiting requests per page of the home
MAX_OAS = 5  # OAs whose counts one home shows
FIGURES_TTL = 300.0  # seconds eSMS's balance and quotas are cached
FIGURES_WAIT_S = 3.0  # a slow eSMS must not hold the home back: "unavailable" instead
UNAVAILABLE = "unavailable"
LEAVING_STATES = FINAL_STATES | {SendState.UNKNOWN}  # the states a send is archived in


def slack_user(actor: str | None) -> str | None:
    return actor.removeprefix("slack:") if actor and actor.startswith("slack:") else None


@dataclass(frozen=True, slots=True)
class HomeItem:
    """One request as a home lists it; the phone is masked already."""

    send_id: str
    template: str
    phone: str
    state: str
    created_at: str
    requester: str | None  # a Slack user id, when a Slack user made it
    card_channel: str | None = None
    card_ts: str | None = None


@dataclass(frozen=True, slots=True)
class HomeData:
    """Everything one person's home shows, gathered without Slack."""

    user: str
    approver: bool
    day: str  # today, in ZNS_TIMEZONE
    waiting: list[HomeItem] = field(default_factory=list)  # this page, oldest first
    waiting_total: int = 0
    waiting_page: int = 0
    mine: list[HomeItem] = field(default_factory=list)  # newest first
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # oaid -> state -> n
    balance: str = UNAVAILABLE
    quotas: dict[str, str] = field(default_factory=dict)  # oaid -> remaining of daily


def view_hash(view: Mapping[str, Any]) -> str:
    """What decides whether a home changed since it was last published."""
    encoded = json.dumps(view, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(encoded).hexdigest()


def _item(record: Mapping[str, Any]) -> HomeItem:
    return HomeItem(
        send_id=record["id"],
        template=str(record.get("template_name") or record.get("template_id") or ""),
        phone=mask_phone(str(record.get("phone") or "")),
        state=str(record["state"]),
        created_at=str(record["created_at"]),
        requester=slack_user(record.get("requester")),
        card_channel=record.get("card_channel"),
        card_ts=record.get("card_ts"),
    )


class HomeBook:
    """Keeps what the App Home needs up to date as sends change, gathers a person's home,
    and queues its publication (an outbox item of kind "home" per person, coalesced)."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        client: EsmsClient | None,
        kick: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self.kick = kick
        self._zone = settings.timezone
        self.gap = HOME_GAP  # tests shorten it; the coalescing has tests of its own
        self._balance: SwrCache[str, str] = SwrCache(ttl=FIGURES_TTL, keep_on=(EsmsError,))
        self._quotas: SwrCache[str, str] = SwrCache(ttl=FIGURES_TTL, keep_on=(EsmsError,))

    # Days: the counts are kept per day of ZNS_TIMEZONE in which the send was requested.

    def day_of(self, moment: datetime | str) -> str:
        if isinstance(moment, str):
            return self._day_of_iso(moment)
        return moment.astimezone(self._zone).date().isoformat()

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - one book per process; a send moves ~5 times
    def _day_of_iso(self, moment: str) -> str:
        return datetime.fromisoformat(moment).astimezone(self._zone).date().isoformat()

    def today(self) -> str:
        return self.day_of(self.store.clock())

    # Changes: called inside the transaction that changes the send, so they are kept with it.

    def moved(self, record: SendRecord, from_state: str | None) -> int:
        """A send was created (`from_state` None) or changed state: count it, note it in its
        requester's list, and queue a refresh for everyone whose home shows it. Returns how
        many refreshes were queued."""
        state = str(record["state"])
        changes = {state: 1} if from_state is None else {str(from_state): -1, state: 1}
        oaid = str(record.get("oaid") or "")
        self.store.day_counts.bump(self.day_of(record["created_at"]), oaid, changes)
        requester = slack_user(record.get("requester"))
        # The list shows a live send as it is now (`mine`): only its first and last states
        # need keeping, for its place in the list and for after it leaves the live store
        # (final, or unknown: a send whose reconcile gave up leaves too).
        if requester and (from_state is None or state in LEAVING_STATES):
            self.store.recent.note(requester, self._recent_item(record))
        waiting_changed = SendState.PENDING_APPROVAL in (from_state, state)
        queued = 0
        for doc in self.store.homes.active(self.store.clock() - ACTIVE_FOR):
            sees = (
                doc["user"] == requester
                or (waiting_changed and doc.get("approver"))
                or oaid in (doc.get("oas") or ())
            )
            if sees and self.queue(doc["user"]):
                queued += 1
        return queued

    def card_posted(self, record: SendRecord) -> None:
        """The send's card is in Slack now: its requester's list links to the thread."""
        requester = slack_user(record.get("requester"))
        if not requester:
            return
        self.store.recent.note(requester, self._recent_item(record))
        doc = self.store.homes.get(requester)
        if doc is not None and (doc.get("opened_at") or "") >= iso(self.store.clock() - ACTIVE_FOR):
            self.queue(requester)

    def _recent_item(self, record: SendRecord) -> dict[str, Any]:
        item = _item(record)
        return {
            "id": item.send_id,
            "template": item.template,
            "phone": item.phone,  # masked: this list outlives the send in the live store
            "oaid": record.get("oaid"),
            "state": item.state,
            "created_at": item.created_at,
            "card_channel": item.card_channel,
            "card_ts": item.card_ts,
        }

    # Publishing: one pending outbox item per person; due at once when they are looking
    # (open, a page click), else no sooner than HOME_GAP after the last publication.

    def opened(self, user: str, *, approver: bool) -> None:
        """The person opened their home: follow their changes for a day, publish now."""
        with self.store.db.transaction():
            self.store.homes.opened(user, approver=approver)
            self.queue(user, urgent=True)
        self.kick()

    def turn_page(self, user: str, page: int) -> None:
        """Show another page of the waiting requests."""
        with self.store.db.transaction():
            self.store.homes.update(user, page=max(0, page))
            self.queue(user, urgent=True)
        self.kick()

    def queue(self, user: str, *, urgent: bool = False) -> bool:
        """Queue a publication of `user`'s home unless one is pending (then it will show the
        latest state anyway); `urgent` makes a pending one due now. True when queued."""
        doc = self.store.homes.get(user) or {}
        now = self.store.clock()
        pending = doc.get("queued")
        if pending is not None:
            item = self.store.outbox.view(pending)
            if item is not None and item["status"] == PENDING:
                if urgent and not doc.get("urgent"):
                    self.store.outbox.defer(pending, now)
                    self.store.homes.update(user, urgent=True)
                return False
        due = None if urgent else self._next_allowed(doc)
        key = f"home:{user}:{uuid.uuid4().hex[:12]}"
        item_id = self.store.outbox.add(Kind.HOME, {"user": user}, key=key, due_at=due)
        self.store.homes.update(user, queued=item_id, urgent=urgent)
        return True

    def _next_allowed(self, doc: Mapping[str, Any]) -> datetime | None:
        published = doc.get("published_at")
        return datetime.fromisoformat(published) + self.gap if published else None

    def take(self, item_id: int, user: str) -> bool:
        """The relay is about to publish `user`'s home for item `item_id`: False (and the item
        deferred) when their last publication was under `gap` ago and nobody is looking.
        From here on, a change queues a new item (this one may render before it)."""
        doc = self.store.homes.get(user) or {}
        allowed = self._next_allowed(doc)
        if not doc.get("urgent") and allowed is not None and allowed > self.store.clock():
            with self.store.db.transaction():
                self.store.outbox.defer(item_id, allowed)
            return False
        if doc.get("queued") == item_id:
            with self.store.db.transaction():
                self.store.homes.update(user, queued=None, urgent=False)
        return True

    def unchanged(self, user: str, digest: str) -> bool:
        return (self.store.homes.get(user) or {}).get("hash") == digest

    def published(self, user: str, digest: str) -> None:
        self.store.homes.update(user, hash=digest, published_at=iso(self.store.clock()))

    def failed(self, user: str, item_id: int) -> None:
        """The publication will be retried: later changes wait for this item."""
        if (self.store.homes.get(user) or {}).get("queued") is None:
            self.store.homes.update(user, queued=item_id)

    def sweep(self, now: datetime | None = None) -> dict[str, int]:
        """Bound the live store: homes not opened for a day, counts of old days, requesters'
        lists idle for a month."""
        now = now or self.store.clock()
        oldest_day = self.day_of(now - timedelta(days=KEEP_DAYS - 1))
        with self.store.db.transaction():
            return {
                "homes": self.store.homes.sweep(now - ACTIVE_FOR),
                "days": self.store.day_counts.prune(oldest_day),
                "recent": self.store.recent.sweep(now - RECENT_KEEP),
            }

    # Gathering a home.

    def waiting(self, user: str) -> list[SendRecord]:
        """Requests `user` may approve, oldest first (their own only with self-approval)."""
        actor = f"slack:{user}"
        allow_self = self.settings.zns_allow_self_approval
        return [
            r
            for r in self.store.sends.views_in_state(SendState.PENDING_APPROVAL)
            if allow_self or r.get("requester") != actor
        ]

    def mine(self, user: str) -> list[HomeItem]:
        """The person's last requests, newest first: live ones as they are now, archived ones
        as last noted."""
        items = []
        for noted in self.store.recent.of(user):
            live = self.store.sends.view(noted["id"])
            if live is not None:
                items.append(_item(live))
            else:
                items.append(
                    HomeItem(
                        send_id=noted["id"],
                        template=noted["template"],
                        phone=noted["phone"],
                        state=noted["state"],
                        created_at=noted["created_at"],
                        requester=user,
                        card_channel=noted.get("card_channel"),
                        card_ts=noted.get("card_ts"),
                    )
                )
        return items

    def oas_of(self, mine: list[HomeItem], user: str) -> list[str]:
        """The OAs the person used lately, else the default one."""
        oas: list[str] = []
        for noted in self.store.recent.of(user):
            oaid = noted.get("oaid")
            if oaid and oaid not in oas:
                oas.append(oaid)
        if not oas and self.settings.esms_oaid:
            oas.append(self.settings.esms_oaid)
        return oas[:MAX_OAS]

    def gather_now(self, user: str, *, approver: bool) -> HomeData:
        """The home's data from the store alone (eSMS's figures as last cached)."""
        doc = self.store.homes.get(user) or {}
        waiting = self.waiting(user) if approver else []
        pages = max(1, -(-len(waiting) // WAITING_PAGE))
        page = min(int(doc.get("page") or 0), pages - 1)
        shown = waiting[page * WAITING_PAGE : (page + 1) * WAITING_PAGE]
        mine = self.mine(user)
        oas = self.oas_of(mine, user)
        day = self.today()
        return HomeData(
            user=user,
            approver=approver,
            day=day,
            waiting=[_item(r) for r in shown],
            waiting_total=len(waiting),
            waiting_page=page,
            mine=mine,
            counts=self.store.day_counts.of_day(day, oas),
            balance=self._cached(self._balance, "balance"),
            quotas={oaid: self._cached(self._quotas, oaid) for oaid in oas},
        )

    async def gather(self, user: str, *, approver: bool) -> HomeData:
        """The home's data, with eSMS's balance and quotas (cached; "unavailable" when eSMS
        fails or is slow)."""
        data = self.gather_now(user, approver=approver)
        if (doc := self.store.homes.get(user)) is not None and (
            doc.get("oas") != list(data.counts) or doc.get("approver") != approver
        ):
            with self.store.db.transaction():  # who sees which changes (see `moved`)
                self.store.homes.update(user, oas=list(data.counts), approver=approver)
        balance = await self._figure(self._balance, "balance", self._fetch_balance)
        quotas = {}
        for oaid in data.counts:
            fetch = functools.partial(self._fetch_quota, oaid)
            quotas[oaid] = await self._figure(self._quotas, oaid, fetch)
        return dataclasses.replace(data, balance=balance, quotas=quotas)

    def _cached(self, cache: SwrCache[str, str], key: str) -> str:
        return cache.peek(key) or UNAVAILABLE

    async def _figure(self, cache: SwrCache[str, str], key: str, fetch: Callable[[], Any]) -> str:
        try:
            return await asyncio.wait_for(cache.get(key, fetch), FIGURES_WAIT_S)
        except (EsmsError, TimeoutError) as exc:
            log.info("home: eSMS %s unavailable: %s", key, exc or "timed out")
            return UNAVAILABLE

    async def _fetch_balance(self) -> str:
        if self.client is None:
            return UNAVAILABLE
        balance = await self.client.balance()
        return f"{balance.balance:,.0f} VND"

    async def _fetch_quota(self, oaid: str) -> str:
        if self.client is None:
            return UNAVAILABLE
        quota = await self.client.quota(oaid)
        if quota.remaining_quota is None:
            return UNAVAILABLE
        return f"{quota.remaining_quota:,} of {quota.daily_quota or 0:,} left today"
