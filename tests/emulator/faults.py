"""Fault injection (queued or random) and fixed-window rate limiting per endpoint group."""

from __future__ import annotations

import math
import random
import re
import threading
import time
from collections.abc import Iterable

FAULT_KINDS = ("500", "502", "503", "504", "reset", "truncate", "slow", "429")
#: Not in the default random mix: a 429 with no `rate_reset`, no RateLimit, no Retry-After;
#: a 400 whose error text echoes the request's Authorization header (a misbehaving proxy).
EXTRA_FAULT_KINDS = ("429bare", "echo")


class FaultPlan:
    """Queued faults first (in order, first matching prefix), else random at `rate`."""

    def __init__(
        self, rate: float = 0.0, seed: int = 0, kinds: Iterable[str] = FAULT_KINDS
    ) -> None:
        self.rate = rate
        self.kinds = tuple(kinds)
        self._check(self.kinds)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._queue: list[tuple[str, str]] = []

    @staticmethod
    def _check(kinds: Iterable[str]) -> None:
        bad = [k for k in kinds if k not in FAULT_KINDS + EXTRA_FAULT_KINDS]
        if bad:
            raise ValueError(f"unknown fault kinds {bad}; known: {FAULT_KINDS}")

    def inject(self, kinds: Iterable[str], path_prefix: str = "/api/v1/") -> None:
        kinds = list(kinds)
        self._check(kinds)
        with self._lock:
            self._queue.extend((k, path_prefix) for k in kinds)

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def pick(self, path: str) -> str | None:
        with self._lock:
            for i, (kind, prefix) in enumerate(self._queue):
                if path.startswith(prefix):
                    del self._queue[i]
                    return kind
            if self.rate > 0 and path.startswith("/api/v1/") and self._rng.random() < self.rate:
                return self._rng.choice(self.kinds)
        return None


#: How Close groups endpoints is not published. "segment": method + first path segment (every
#: `/activity/...` list shares one budget); "template": method + path template (ids removed).
RATE_GROUPS = ("segment", "template")
_EMU_ID = re.compile(r"^[a-z]+_[A-Za-z0-9]{16,}$")  # the emulator's ids: prefix_ + base62


class RateLimiter:
    """Fixed windows per group key; `hit` consumes one call, `peek` only reports."""

    def __init__(self, limit: int, window: float, groups: str = "segment") -> None:
        if groups not in RATE_GROUPS:
            raise ValueError(f"rate_groups {groups!r}: one of {RATE_GROUPS}")
        self.limit = int(limit)
        self.window = float(window)
        self.groups = groups
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], list[float]] = {}  # key -> [start, count]

    def key(self, method: str, path: str) -> tuple[str, str]:
        """The endpoint group of a call (`path` below /api/v1)."""
        parts = [p for p in path.split("/") if p]
        if self.groups == "segment":
            return method, parts[0] if parts else ""
        return method, "/".join("{id}" if _EMU_ID.match(p) else p for p in parts)

    def _state(self, key: tuple[str, str]) -> list[float]:
        now = time.monotonic()
        state = self._windows.get(key)
        if state is None or now - state[0] >= self.window:
            state = self._windows[key] = [now, 0]
        return state

    def hit(self, key: tuple[str, str]) -> tuple[bool, int, float]:
        """(allowed, remaining, reset seconds)."""
        with self._lock:
            state = self._state(key)
            allowed = state[1] < self.limit
            if allowed:
                state[1] += 1
            reset = max(self.window - (time.monotonic() - state[0]), 0.001)
            return allowed, int(self.limit - state[1]), reset

    def peek(self, key: tuple[str, str]) -> tuple[int, float]:
        with self._lock:
            state = self._state(key)
            reset = max(self.window - (time.monotonic() - state[0]), 0.001)
            return int(self.limit - state[1]), reset


def ratelimit_header(limit: int, remaining: int, reset: float) -> str:
    return f"limit={limit}, remaining={max(remaining, 0)}, reset={reset:.3f}"


def retry_after(reset: float) -> str:
    return str(max(1, math.ceil(reset)))
