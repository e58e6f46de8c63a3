"""Close's rate limits: one budget per endpoint group, from the live `RateLimit` header."""

from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import dataclass

from tap_close import parallel
from tap_close.errors import CancelledRead

_RATELIMIT_RE = re.compile(r"(limit|remaining|reset)\s*=\s*([0-9.]+)", re.IGNORECASE)


def endpoint_group(method: str, path: str) -> str:
    """Close limits per endpoint group: method plus the first path segment."""
    first = path.strip("/").split("/", 1)[0]
    return f"{method.upper()} /{first}/"


def parse_ratelimit(value: str | None) -> dict[str, float]:
    """Parse `RateLimit: limit=100, remaining=50, reset=5.5` (case-insensitive)."""
    if not value:
        return {}
    return {k.lower(): float(v) for k, v in _RATELIMIT_RE.findall(value)}


@dataclass
class _Budget:
    limit: float | None = None
    remaining: float | None = None  # calls left in this window (None: no limit known)
    reset_at: float = math.inf  # when this window surely ended (inf: not known yet)
    window: float = 0.0  # longest reset seen: the window's length
    started: float = 0.0  # when the client's current window began
    inflight: int = 0
    waiting: int = 0  # requests waiting for budget
    latency: float = 0.0  # seconds per request (moving average)
    probed: bool = False  # a reply seen: the group's limit (or that it has none) is known
    paused_until: float = 0.0


@dataclass(frozen=True)
class Ticket:
    """A started request: its endpoint group and when it started."""

    group: str
    started: float


class RateLimiter:
    """Per endpoint group budget from the live `RateLimit` header, shared by all threads.

    A request may start while `remaining` minus the requests in flight is at least one.
    Replies overtake each other, so a header's `remaining` is applied only downwards within a
    window (the server's count only grows). Each header's `now + reset` is a time by which
    the server's window has surely ended: a new window starts once that has passed, with the
    calls still in flight counted against it, and headers of requests started before it are
    ignored (they may describe the old one). A header ending later than this window by over
    half its length means the server has moved on: adopted, minus the calls in flight.
    Until a group's first reply, one request at a time. A 429 pauses the whole group.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: dict[str, _Budget] = {}

    def acquire(self, group: str) -> Ticket:
        """Wait for budget. A read-ahead whose consumer has stopped gives up (CancelledRead)
        instead of spending it."""
        waited = False
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
                        self._groups[group].waiting += 1
                time.sleep(max(ticket, 0.005))
        finally:
            if waited:
                with self._lock:
                    self._groups[group].waiting -= 1

    def _try(self, group: str) -> Ticket | float:
        """A ticket, or how long to wait before trying again."""
        with self._lock:
            budget = self._groups.setdefault(group, _Budget())
            now = time.monotonic()
            if now >= budget.reset_at:  # a new window (its end known from the replies)
                budget.reset_at, budget.started = math.inf, now
                if budget.limit is not None:
                    budget.remaining = budget.limit - budget.inflight
            if now < budget.paused_until:
                return budget.paused_until - now
            if not budget.probed and budget.inflight:
                return 0.005  # the first reply tells the limit
            if budget.remaining is not None and budget.remaining - budget.inflight < 1:
                return min(budget.reset_at - now, 0.05)  # replies may tell more
            budget.inflight += 1
            return Ticket(group, now)

    def release(self, ticket: Ticket, header: str | None) -> None:
        info = parse_ratelimit(header)
        with self._lock:
            budget = self._groups.setdefault(ticket.group, _Budget())
            budget.inflight = max(0, budget.inflight - 1)
            budget.probed = True
            took = time.monotonic() - ticket.started
            budget.latency = took if not budget.latency else 0.8 * budget.latency + 0.2 * took
            if ("remaining" not in info or "reset" not in info
                    or ticket.started < budget.started):
                return  # no header, or maybe of an earlier window
            ends = time.monotonic() + info["reset"]
            budget.limit = info.get("limit", budget.limit)
            budget.window = max(budget.window, info["reset"])
            left = info["remaining"]
            if budget.remaining is None:  # the first header
                budget.remaining, budget.reset_at = left - budget.inflight, ends
            elif ends > budget.reset_at + budget.window / 2 and budget.reset_at != math.inf:
                budget.remaining, budget.reset_at = left - budget.inflight, ends  # moved on
                budget.started = ticket.started
            else:  # this window: only down, and the nearest sure end
                budget.remaining = min(budget.remaining, left)
                budget.reset_at = min(budget.reset_at, ends)

    def spare(self, group: str) -> int | None:
        """Requests the group could start now that nobody is waiting for (None: no limit)."""
        with self._lock:
            budget = self._groups.get(group)
            if budget is None or budget.limit is None or budget.remaining is None:
                return None if budget is None or budget.probed else 0
            if budget.waiting:
                return 0
            # Little's law: more in flight than rate x latency only spends budget sooner.
            rate = budget.limit / budget.window if budget.window else budget.limit
            useful = math.ceil(rate * budget.latency) if budget.latency else budget.limit
            return max(0, min(int(budget.remaining - budget.inflight), int(useful)))

    def limit_of(self, group: str) -> float | None:
        """The group's requests per window, per Close's last RateLimit header (None: unknown)."""
        with self._lock:
            budget = self._groups.get(group)
            return budget.limit if budget else None

    def pause(self, group: str, seconds: float) -> None:
        """A 429: this window is spent; the group waits `seconds`."""
        with self._lock:
            budget = self._groups.setdefault(group, _Budget())
            until = time.monotonic() + seconds
            budget.paused_until = max(budget.paused_until, until)
            if budget.remaining is not None:
                budget.remaining, budget.reset_at = 0, min(budget.reset_at, until)
