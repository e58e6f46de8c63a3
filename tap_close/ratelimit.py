"""Close's rate limits: a budget per endpoint group, from the live `RateLimit` header.

Close groups endpoints by "URL paths and methods" and does not publish the groups. A call's
group here is its method and path template (ids removed). The templates of one family (method
and first path segment) start on one budget, the safe guess: if Close counts them together,
no 429. A template leaves it for a budget of its own once a header shows more calls left than
one counter allows after the calls of the window answered before it was sent, so if Close
counts it apart little budget is wasted. The budgets of a family are shared with the other
tap processes on the same api_url and credential: of the machine (budgetfile.py), or of every
machine through PostgreSQL (budgetpg.py). Calls are paced to `remaining` over the window's time
left, so a budget that other jobs spend too is not burst away at a fresh window; jobs that
share nothing estimate from the headers how many spend it (`crowd`) and pace to their share.
"""

from __future__ import annotations

import logging
import math
import random
import re
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, fields
from typing import Any, Protocol

from tap_close import parallel
from tap_close.budgetfile import open_files
from tap_close.errors import CancelledRead

logger = logging.getLogger("tap_close.ratelimit")
_RATELIMIT_RE = re.compile(r"(limit|remaining|reset)\s*=\s*([0-9.]+)", re.IGNORECASE)
_ID_CHARS = re.compile(r"[A-Z0-9]")  # path words are lower case; Close ids are base62
#: Calls kept back per other job unseen (crowd - 1) at a window's end: each may send its last
#: call on the same stale `remaining` as this one (three jobs of four threads sharing nothing,
#: simulated: 1.9 % 429s with none kept, 0.2 % with 0.75 and as many calls answered; 1: 4 %
#: fewer calls answered).
_END_RESERVE = 0.75


class SharedBudgets(Protocol):
    """Where processes meet (BudgetFiles: one machine; budgetpg.PgBudgets: a database)."""

    @property
    def skew(self) -> float: ...  # the shared clock minus time.monotonic()
    @property
    def member(self) -> str: ...  # this process, as its calls in flight are keyed
    @property
    def heartbeat(self) -> float | None: ...  # seconds between rewrites of calls in flight
    @property
    def poll(self) -> float: ...  # least seconds between reads of a family while waiting
    def live(self, member: str, at: float, now: float) -> bool: ...
    def open(self, family: str) -> AbstractContextManager[dict[str, Any]]: ...


def path_template(path: str) -> str:
    """`/lead/lead_Ab12.../` -> `/lead/{id}/` (a query string is dropped)."""
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    return "/" + "".join("{id}/" if _ID_CHARS.search(p) else f"{p}/" for p in parts)


def endpoint_group(method: str, path: str) -> str:
    """A call's endpoint group: method plus path template, e.g. `GET /activity/call/`."""
    return f"{method.upper()} {path_template(path)}"


def family(group: str) -> str:
    """The budget a group starts on: method plus first path segment, e.g. `GET /activity/*`."""
    method, _, template = group.partition(" ")
    return f"{method} /{template.strip('/').split('/', 1)[0]}/*"


def parse_ratelimit(value: str | None) -> dict[str, float]:
    """Parse `RateLimit: limit=100, remaining=50, reset=5.5` (case-insensitive)."""
    if not value:
        return {}
    return {k.lower(): float(v) for k, v in _RATELIMIT_RE.findall(value)}


@dataclass
class _Budget:
    # Shared with the machine's other processes (_SHARED).
    limit: float | None = None
    remaining: float | None = None  # calls left in this window (None: no limit known)
    reset_at: float = math.inf  # when this window surely ended (inf: not known yet)
    open_until: float = 0.0  # till when this window surely lasts
    window: float = 0.0  # longest reset seen: the window's length
    started: float = 0.0  # when the client's current window began
    counted: int = 0  # replies of this window's calls (each a call the server counted)
    next_at: float = 0.0  # paced: no call starts before
    paused_until: float = 0.0
    strays: int = 0  # replies this window to calls sent before it (maybe counted in it)
    # This process's own.
    own: int = 0  # calls in flight here
    others: int = 0  # calls in flight in the machine's other processes
    latency: float = 0.0  # seconds per request (moving average)
    probed: bool = False  # a reply seen: the limit (or that there is none) is known
    carried: float = 1.0  # jobs spending this budget as fast as this one, by past windows
    guess: float = 0.0  # ... by this window's headers so far (0: none yet)
    heard_at: float = 0.0  # when a header last set `remaining`
    told: bool = False  # the others were reported

    @property
    def inflight(self) -> int:
        return self.own + self.others

    @property
    def crowd(self) -> float:
        """How many jobs spend this budget as fast as this one (1: alone, or all seen)."""
        return max(self.carried, self.guess)

    def next_window(self) -> None:
        """A window's last guess (the most replies behind it) is carried into the next, whole
        if it rose (others just started: their next window is paced to share from its first
        call), else half (others that stopped are forgotten in a few windows)."""
        if self.guess:
            self.carried, self.guess = max(self.guess, 0.5 * self.carried + 0.5 * self.guess), 0.0


_SHARED = [f.name for f in fields(_Budget)][:10]
_TIMES = ("reset_at", "open_until", "started", "next_at", "paused_until")


def _dump(budget: _Budget, skew: float = 0.0) -> dict[str, Any]:
    """The shared fields, times on the shared clock (`skew`: it minus time.monotonic())."""
    out = {name: getattr(budget, name) for name in _SHARED}
    for name in _TIMES:
        out[name] += skew
    out["reset_at"] = None if budget.reset_at == math.inf else out["reset_at"]
    return out


def _load(budget: _Budget, record: dict[str, Any], skew: float = 0.0) -> None:
    for name in _SHARED:
        if name in record:
            value = record[name]
            setattr(budget, name, value - skew if name in _TIMES and value is not None else value)
    if budget.reset_at is None:
        budget.reset_at = math.inf
    budget.probed = budget.probed or budget.limit is not None


@dataclass(frozen=True)
class Ticket:
    """A started request: its endpoint group, the budget it drew on, when it started, and how
    many calls of that budget's window had been answered by then."""

    group: str
    key: str
    started: float
    counted: int = 0


class RateLimiter:
    """Budgets from the live `RateLimit` header, shared by all threads (and, with `files`, by
    the machine's processes on the same organization and credential).

    A request may start while `remaining` minus the calls in flight is at least one, and not
    sooner after the last start than the window's time left divided by that many: paced, no
    burst on a fresh window that others may spend too. Replies overtake each other, so a
    header's `remaining` is applied only downwards within a window (the server's count only
    grows). Each header's `now + reset` is a time by which the server's window has surely
    ended: a new window starts once that has passed, with the calls still in flight counted
    against it, and headers of requests started before it are ignored (they may describe the
    old one). A header ending later than this window by over half its length means the server
    has moved on: adopted, minus the calls in flight. Until a budget's first reply, one request
    at a time. A 429 pauses the whole budget.
    """

    def __init__(self, files: SharedBudgets | None = None) -> None:
        self._lock = threading.Lock()
        self._groups: dict[str, _Budget] = {}  # budget key -> budget
        self._apart: set[str] = set()  # groups seen to count apart from their family
        self._waiting: dict[str, int] = {}  # group -> requests waiting for budget
        self._read: dict[str, float] = {}  # family -> when its shared state was last read
        self._files = files
        if files is not None and files.heartbeat:
            threading.Thread(target=self._beat, args=(files.heartbeat,), daemon=True,
                             name="rate-limit-heartbeat").start()

    @classmethod
    def for_account(cls, api_url: str, auth: object,
                    store: tuple[str, str] | None = None) -> RateLimiter:
        """A limiter sharing its budgets with the other tap processes on the same api_url and
        credential (an API key's fingerprint, or OAuth client and token store): those of this
        machine through files, or those of every machine through PostgreSQL, `store` being
        (URL, setting) (budgetpg), falling back to the files if the database fails."""
        who = str(getattr(auth, "username", None) or repr(auth))
        if store:
            from tap_close.budgetpg import PgBudgets  # noqa: PLC0415 - the optional driver

            return cls(PgBudgets(store[0], api_url, who, setting=store[1],
                                 fallback=lambda: open_files(api_url, who)))
        return cls(open_files(api_url, who))

    def _beat(self, every: float) -> None:
        """Rewrite this process's calls in flight now and then, so that they keep counting
        while it waits on slow replies (another machine cannot tell whether it lives)."""
        while True:
            time.sleep(every)
            with self._lock:
                families = {family(k) for k, b in self._groups.items() if b.own}
            for fam in families:
                with self._lock, self._shared(fam):
                    pass

    def key(self, group: str) -> str:
        """The budget a group draws on: its family's, or its own once seen to count apart."""
        return group if group in self._apart else family(group)

    def budgets(self) -> dict[str, str]:
        """Each group used so far: the budget it draws on."""
        with self._lock:
            return {g: self.key(g) for g in self._waiting}

    @contextmanager
    def _shared(self, fam: str) -> Iterator[None]:
        """Hold the family's state shared with other processes (with `_lock` held)."""
        if self._files is None:
            yield
            return
        files = self._files
        with files.open(fam) as state:
            skew, now = files.skew, time.monotonic()  # skew: as `open` found it
            self._read[fam] = now
            self._apart.update(state.get("apart", []))
            for key, budget in self._groups.items():
                if family(key) == fam:
                    budget.others = 0  # unless the file says otherwise
            for key, record in state.get("budgets", {}).items():
                budget = self._groups.setdefault(key, _Budget())
                _load(budget, record, skew)
                budget.others = sum(int(n) for n, _ in self._flying(record, now + skew).values())
            yield
            budgets = state.setdefault("budgets", {})
            for key, budget in self._groups.items():
                if family(key) == fam:
                    flying = self._flying(budgets.get(key, {}), now + skew)
                    if budget.own:
                        flying[files.member] = [budget.own, now + skew]
                    budgets[key] = {**_dump(budget, skew), "inflight": flying}
            state["apart"] = sorted(g for g in self._apart if family(g) == fam)

    def _flying(self, record: dict[str, Any], now: float) -> dict[str, list[float]]:
        """Other live processes' calls in flight in a shared budget record (shared clock)."""
        assert self._files is not None
        me, live = self._files.member, self._files.live
        return {who: v for who, v in record.get("inflight", {}).items()
                if who != me and live(who, v[1], now)}

    def _wait_here(self, group: str, now: float) -> float:
        """How long this process's own view says to wait, so that waiting threads do not each
        read the shared state (the shared wait is never shorter: starts and pauses only push
        it later; a read may show more left, so those are re-read every `poll` seconds)."""
        budget = self._groups.get(self.key(group))
        if budget is None or self._files is None:
            return 0.0
        wait = max(budget.next_at, budget.paused_until) - now
        if (wait <= 0 and budget.remaining is not None and now < budget.reset_at
                and budget.remaining - budget.inflight < 1):
            wait = self._read.get(family(group), -math.inf) + self._files.poll - now
        return wait

    def acquire(self, group: str) -> Ticket:
        """Wait for budget. A read-ahead whose consumer has stopped gives up (CancelledRead)
        instead of spending it."""
        waited = False
        with self._lock:
            self._waiting.setdefault(group, 0)
        try:
            while True:
                ticket = self._try(group)
                if isinstance(ticket, Ticket):
                    return ticket
                if parallel.cancelled():
                    raise CancelledRead(f"{group}: read ahead no longer needed")
                if not waited:
                    waited = True
                    with self._lock:
                        self._waiting[group] += 1
                time.sleep(max(ticket, 0.005))
        finally:
            if waited:
                with self._lock:
                    self._waiting[group] -= 1

    def _try(self, group: str) -> Ticket | float:
        """A ticket, or how long to wait before trying again."""
        with self._lock:
            wait = self._wait_here(group, time.monotonic())
            if wait > 0:
                return wait
        with self._lock, self._shared(family(group)):
            key = self.key(group)
            budget = self._groups.setdefault(key, _Budget())
            now = time.monotonic()
            if now >= budget.reset_at:  # a new window (its end known from the replies)
                budget.reset_at, budget.started, budget.counted = math.inf, now, 0
                budget.open_until, budget.heard_at, budget.strays = 0.0, now, 0
                budget.next_window()
                if budget.limit is not None:
                    budget.remaining = budget.limit - budget.inflight
            if now < budget.paused_until:
                return budget.paused_until - now
            if not budget.probed and budget.inflight:
                return 0.005  # the first reply tells the limit
            if budget.remaining is not None:
                # Others unseen (`crowd`) likely have as many calls in flight as we do, and
                # pace as we do: each takes its share.
                left = self._unseen_spent(budget, now) - budget.others - budget.own * budget.crowd
                if left - _END_RESERVE * max(0.0, budget.crowd - 1) < 1:
                    return min(budget.reset_at - now, 0.05)  # replies may tell more
                if now < budget.next_at:
                    return budget.next_at - now
                ends = budget.reset_at if budget.reset_at != math.inf else (
                    budget.started + budget.window)
                budget.next_at = now + max(0.0, ends - now) * budget.crowd / left
                if left < budget.crowd and random.random() * budget.crowd >= left:
                    return budget.next_at - now  # under one call each: a lottery, not all
            budget.own += 1
            return Ticket(group, key, now, budget.counted)

    def release(self, ticket: Ticket, header: str | None) -> None:
        info = parse_ratelimit(header)
        with self._lock, self._shared(family(ticket.group)):
            budget = self._groups.setdefault(ticket.key, _Budget())
            budget.own = max(0, budget.own - 1)
            budget.probed = True
            now = time.monotonic()
            took = now - ticket.started
            budget.latency = took if not budget.latency else 0.8 * budget.latency + 0.2 * took
            if ticket.started < budget.started:
                budget.strays += 1
            if ("remaining" not in info or "reset" not in info
                    or ticket.started < budget.started):
                return  # no header, or maybe of an earlier window
            ends, left = now + info["reset"], info["remaining"]
            if ticket.key != ticket.group and ticket.group in self._apart:  # drawn before the split
                return
            if self._counts_apart(ticket, budget, info, ends):
                self._apart.add(ticket.group)
                own = self._groups.setdefault(ticket.group, _Budget())
                own.limit, own.remaining, own.counted = budget.limit, left, 1
                own.reset_at, own.window, own.started = ends, info["reset"], ticket.started
                own.open_until = ticket.started + info["reset"]
                own.probed = True
                logger.info("Rate limit: %s counts apart from %s (remaining %g of %g after "
                            "%d calls); it gets its own budget", ticket.group, ticket.key,
                            left, budget.limit, ticket.counted)
                return
            budget.limit = info.get("limit", budget.limit)
            budget.window = max(budget.window, info["reset"])
            budget.counted += left > 0  # a 429 (remaining 0) was not counted
            lasts = ticket.started + info["reset"]  # the server said so at or after this
            if budget.remaining is None:  # the first header
                budget.remaining, budget.reset_at = left - budget.inflight, ends
                budget.open_until = lasts
            elif ends > budget.reset_at + budget.window / 2 and budget.reset_at != math.inf:
                budget.remaining, budget.reset_at = left - budget.inflight, ends  # moved on
                budget.started, budget.counted, budget.open_until = ticket.started, 1, lasts
                budget.strays = 0
                budget.next_window()
            else:  # this window: only down, and the nearest sure end
                if left <= budget.remaining:
                    budget.remaining, budget.heard_at = left, now
                budget.reset_at = min(budget.reset_at, ends)
                budget.open_until = max(budget.open_until, lasts)
                self._count_crowd(budget, left)
                if budget.carried > 1.5 and not budget.told:  # seen over windows
                    budget.told = True
                    logger.info("Rate limit: others spend the budget of %s too (about %.0f jobs "
                                "as busy as this one); calls are paced to this job's share",
                                ticket.key, budget.crowd)
                return
            budget.heard_at = now

    @staticmethod
    def _unseen_spent(budget: _Budget, now: float) -> float:
        """`remaining` less what the others unseen (`crowd`) likely spent since the header
        that told it: their share of it, pro rata of the window's time left then."""
        assert budget.remaining is not None
        if budget.crowd <= 1.0 or budget.heard_at <= 0:
            return budget.remaining
        ends = budget.reset_at if budget.reset_at != math.inf else (
            budget.started + budget.window)
        span = ends - budget.heard_at
        part = min(1.0, (now - budget.heard_at) / span) if span > 0 else 1.0
        return budget.remaining * (1 - part * (budget.crowd - 1) / budget.crowd)

    @staticmethod
    def _count_crowd(budget: _Budget, left: float) -> None:
        """Estimate who else spends the budget (jobs on other machines, nothing shared): the
        server counted more calls this window than ours answered or in flight (one more: a
        call may have been counted before our window began). The window's latest guess
        holds within it, and half of it carries into the next (`next_window`)."""
        if budget.limit is None or budget.counted < 2 or left < 1:
            return  # a 429 (or a stricter limit's) tells nothing of the others
        ours = budget.counted + budget.inflight + budget.strays
        used = budget.limit - left
        guess = used / ours if used > ours + 1 else 1.0
        budget.guess = min(guess, 16.0)

    @staticmethod
    def _counts_apart(ticket: Ticket, budget: _Budget, info: dict[str, float],
                      ends: float) -> bool:
        """Whether a call answered while its budget's window surely lasts was counted by
        another counter: on one counter, the calls of the window answered before it was sent
        were counted before it, so `remaining` is at most limit minus them (minus the call
        itself, or not: either reading), and the window's end is the one the budget knows."""
        limit = info.get("limit", budget.limit)
        now, margin = time.monotonic(), 0.02 + 0.05 * budget.window
        if (ticket.key == ticket.group or limit != budget.limit or limit is None
                or now + margin > budget.open_until):
            return False
        return (info["remaining"] + ticket.counted > limit
                or ends > budget.reset_at + (now - ticket.started) + margin)

    def spare(self, group: str) -> int | None:
        """Requests the group could start now that nobody is waiting for (None: no limit)."""
        with self._lock:
            budget = self._groups.get(self.key(group))
            if budget is None or budget.limit is None or budget.remaining is None:
                return None if budget is None or budget.probed else 0
            key = self.key(group)
            if any(n for g, n in self._waiting.items() if n and self.key(g) == key):
                return 0
            # Little's law: more in flight than rate x latency only spends budget sooner.
            rate = budget.limit / budget.window if budget.window else budget.limit
            useful = math.ceil(rate * budget.latency) if budget.latency else budget.limit
            return max(0, min(int(budget.remaining - budget.inflight), int(useful)))

    def limit_of(self, group: str) -> float | None:
        """The group's requests per window, per Close's last RateLimit header (None: unknown)."""
        with self._lock:
            budget = self._groups.get(self.key(group))
            return budget.limit if budget else None

    def pause(self, group: str, seconds: float) -> None:
        """A 429: this window is spent; the group's budget waits `seconds`."""
        with self._lock, self._shared(family(group)):
            budget = self._groups.setdefault(self.key(group), _Budget())
            until = time.monotonic() + seconds
            budget.paused_until = max(budget.paused_until, until)
            if budget.remaining is not None:
                budget.remaining, budget.reset_at = 0, min(budget.reset_at, until)


def budgets_seen(calls: list[tuple[str, float, float, dict[str, float]]]) -> dict[str, str]:
    """What one-at-a-time calls (group, sent, answered, RateLimit) say about the groups of a
    family: for each group, "shares <earlier group>" or "own budget", told only when it was
    answered while an earlier group's window surely lasted (there: on one counter, fewer calls
    left than that group's last header showed). Other jobs' calls meanwhile read as shared."""
    told: dict[str, str] = {}
    for i, (group, _, answered, info) in enumerate(calls):
        for other, sent, _, seen in reversed(calls[:i]):
            if (other == group or family(other) != family(group) or group in told
                    or info.get("limit") != seen.get("limit") or "remaining" not in info
                    or answered >= sent + seen.get("reset", 0)):
                continue
            shared = info["remaining"] < seen.get("remaining", 0)
            told[group] = f"shares {other}" if shared else "own budget"
    return told
