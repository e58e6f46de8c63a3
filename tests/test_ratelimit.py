"""The client's rate limiter against the emulator's fixed-window limiter, with replies
arriving out of order (random latency each way), many threads on one endpoint group."""

from __future__ import annotations

import random
import threading
import time

from tap_close.client import RateLimiter
from tests.emulator.faults import RateLimiter as ServerLimiter
from tests.emulator.faults import ratelimit_header


def _simulate(limit: int, window: float, threads: int, seconds: float, seed: int) -> dict:
    client, server = RateLimiter(), ServerLimiter(limit, window)
    counts = {"ok": 0, "429": 0}
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker(n: int) -> None:
        rng = random.Random(seed + n)
        while time.monotonic() < stop:
            ticket = client.acquire("GET /activity/")
            time.sleep(rng.uniform(0, 0.03))  # to the server
            allowed, remaining, reset = server.hit(("GET", "activity"))
            time.sleep(rng.uniform(0, 0.03))  # back: replies overtake each other
            header = ratelimit_header(limit, remaining if allowed else 0, reset)
            client.release(ticket, header)
            with lock:
                counts["ok" if allowed else "429"] += 1
            if not allowed:
                client.pause("GET /activity/", reset)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return counts


def test_out_of_order_replies_do_not_overspend_the_window() -> None:
    limit, window, seconds = 10, 0.25, 3.0
    counts = _simulate(limit, window, threads=16, seconds=seconds, seed=7)
    total = counts["ok"] + counts["429"]
    assert counts["429"] <= max(1, total // 100), counts  # at most 1 % answered 429
    # Most of the limit is used (loose here: the machine may be loaded; `make bench` measures).
    assert counts["ok"] >= 0.6 * limit * seconds / window, counts


def test_first_reply_tells_the_limit_before_a_burst() -> None:
    client = RateLimiter()
    first = client.acquire("g")
    started: list[object] = []
    waiter = threading.Thread(target=lambda: started.append(client.acquire("g")))
    waiter.start()
    time.sleep(0.05)
    assert not started  # one request at a time until a reply is seen
    client.release(first, "limit=1, remaining=0, reset=0.2")
    waiter.join(timeout=5)
    assert started  # after the window's reset


def test_stale_header_never_raises_remaining() -> None:
    client = RateLimiter()
    a = client.acquire("g")
    client.release(a, "limit=5, remaining=4, reset=10")
    old, new = client.acquire("g"), client.acquire("g")  # both in this window
    client.release(new, "limit=5, remaining=1, reset=10")
    client.release(old, "limit=5, remaining=2, reset=10")  # started earlier, replied later
    assert client._groups["g"].remaining == 1
