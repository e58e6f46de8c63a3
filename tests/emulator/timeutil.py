"""Timestamp helpers in Close's formats (aware `+00:00` or naive UTC, microseconds)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

UTC = timezone.utc
_AWARE = "%Y-%m-%dT%H:%M:%S.%f+00:00"
_NAIVE = "%Y-%m-%dT%H:%M:%S.%f"


def fmt_aware(dt: datetime) -> str:
    """Close's usual format: `2024-03-05T10:01:22.123456+00:00`."""
    return dt.astimezone(UTC).strftime(_AWARE)


def fmt_naive(dt: datetime) -> str:
    """Naive UTC with microseconds (pipelines, events)."""
    return dt.astimezone(UTC).strftime(_NAIVE)


def parse_dt(value: str) -> datetime:
    """Parse ISO 8601 with or without offset (naive = UTC); also accepts a plain date."""
    text = value.strip().replace(" ", "T", 1)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


class Clock:
    """Real UTC time, made strictly increasing at microsecond precision."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = datetime(1970, 1, 1, tzinfo=UTC)
        self.offset = timedelta(0)  # tests move "now" back to age mutations and events

    def now(self) -> datetime:
        with self._lock:
            now = datetime.now(UTC) + self.offset
            if now <= self._last:
                now = self._last + timedelta(microseconds=1)
            self._last = now
            return now

    def peek(self) -> datetime:
        """The server's time now (for `Date` headers and visibility), stamping nothing."""
        return datetime.now(UTC) + self.offset
