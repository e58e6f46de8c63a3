"""The lookback: every incremental run re-reads `lookback_minutes` below its bookmark.

Close stamps rows with its own clock, which is not ours, and commits a row a little after
stamping it: a row may become visible after rows stamped later were read. So a bookmark is
never trusted to the instant: the next run starts `lookback_minutes` below it. What the last
run provably sent there is skipped: its STATE keeps short digests of the (id, key) of the
rows it sent at or above `bookmark - lookback` (`sent`), at most `MAX_SENT` per stream (a
fixed bound: past it the oldest are forgotten and sent again, at least once, which targets
absorb by upserting on the key).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections import deque
from collections.abc import Mapping
from typing import Any

DEFAULT_MINUTES = 5
MAX_SENT = 1000  # digests per stream in STATE: 8 base64 characters each
DIGEST = 6  # bytes


def lookback(config: Mapping[str, Any]) -> dt.timedelta:
    minutes = config.get("lookback_minutes")
    return dt.timedelta(minutes=DEFAULT_MINUTES if minutes is None else float(minutes))


def digest(rid: str, key: str) -> bytes:
    """The (id, key) of a sent row, in 6 bytes (a false match: 1 in 2^48 per pair)."""
    return hashlib.blake2b(f"{rid}|{key}".encode(), digest_size=DIGEST).digest()


class SentLog:
    """The rows this run sent near its bookmark, and what the last run left (`previous`)."""

    def __init__(self, previous: object = None, floor: str = "") -> None:
        self.previous: set[bytes] = set()
        if isinstance(previous, str):
            try:
                raw = base64.b64decode(previous.encode(), validate=True)
            except ValueError:  # a hand-edited STATE: nothing counts as sent
                raw = b""
            self.previous = {raw[i:i + DIGEST] for i in range(0, len(raw) - DIGEST + 1, DIGEST)}
        self.floor = floor  # keys below it cannot matter (canonical UTC text)
        self.sent: deque[tuple[str, bytes]] = deque(maxlen=MAX_SENT)

    def was_sent(self, rid: str, key: str) -> bool:
        """Sent by the last run (then kept for the next one too)."""
        if not self.previous:
            return False
        mark = digest(rid, key)
        if mark not in self.previous:
            return False
        self.sent.append((key, mark))
        return True

    def add(self, rid: str, key: str) -> None:
        if key >= self.floor:
            self.sent.append((key, digest(rid, key)))

    def encode(self, low: str) -> str:
        """The digests the next run needs: keys at or above `low` (the bookmark less the
        lookback, canonical UTC text)."""
        marks = dict.fromkeys(mark for key, mark in self.sent if key >= low)
        return base64.b64encode(b"".join(marks)).decode()
