"""The run's change events on disk: memory stays flat whatever the number of changes.

One SQLite file in a temporary directory of its own, removed when the run ends. Each event
is stored once (`event`), with one row per stream that owns it (`owned`), so a stream reads
only its own events, oldest first, one at a time.
"""

from __future__ import annotations

import atexit
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path

import msgspec

SCHEMA = """
CREATE TABLE event (key TEXT PRIMARY KEY, at TEXT NOT NULL, body BLOB NOT NULL);
CREATE INDEX event_at ON event (at);
CREATE TABLE owned (stream TEXT NOT NULL, at TEXT NOT NULL, key TEXT NOT NULL,
                    cost INTEGER NOT NULL, PRIMARY KEY (stream, at, key)) WITHOUT ROWID;
"""
BATCH = 50  # rows fetched at a time by a reader (each stream read ahead has one)
READER_CACHE, WRITER_CACHE = 256, 2048  # KiB of page cache per connection
REFRESH, FETCH = 1, 2  # an owned event re-emits its row: from its payload, or by a GET
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class EventStore:
    """Events by key, their owners, read back in date order. Writes are serialised by the
    caller (EventScan's lock); each reader has a connection of its own (WAL mode)."""

    def __init__(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="tap-close-events-"))
        self.path = self._dir / "events.sqlite"
        self._db = self._connect(cache_kib=WRITER_CACHE)
        self._db.executescript(SCHEMA)
        self._closed = threading.Event()
        atexit.register(self.close)

    def _connect(self, cache_kib: int = READER_CACHE) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA busy_timeout=60000")
        db.execute(f"PRAGMA cache_size=-{int(cache_kib)}")
        return db

    def add(self, rows: list[tuple[str, str, dict, list[tuple[str, int]]]]) -> None:
        """Store (key, at, event, owners) rows, owners as (stream, cost), in one transaction
        (few calls: each one gives the other threads the interpreter). Windows partition the
        log, so an event comes once; one stored before is ignored."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR IGNORE INTO event VALUES (?, ?, ?)",
                                 [(key, at, _encode(event)) for key, at, event, _ in rows])
            self._db.executemany("INSERT OR IGNORE INTO owned VALUES (?, ?, ?, ?)",
                                 [(stream, at, key, cost) for key, at, _, owners in rows
                                  for stream, cost in owners])

    def own(self, stream: str, rows: Iterable[tuple[str, str, int]]) -> None:
        """Note that `stream` owns the events (key, at, cost: REFRESH, FETCH or 0)."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR IGNORE INTO owned VALUES (?, ?, ?, ?)",
                                 ((stream, at, key, cost) for key, at, cost in rows))

    def refreshes(self, stream: str, since: str, skip: Collection[str] = ()
                  ) -> tuple[int, int]:
        """`stream`'s events since `since` that re-emit a row, but those in `skip` (a few
        hundred at most): (all, those needing a GET)."""
        marks = ",".join("?" * len(skip))  # placeholders only
        query = ("SELECT count(*), coalesce(sum(cost = ?), 0) FROM owned WHERE stream = ? "  # noqa: S608
                 f"AND at >= ? AND cost > 0 AND key NOT IN ({marks})")
        total, fetches = self._db.execute(query, (FETCH, stream, since, *skip)).fetchone()
        return int(total), int(fetches)

    def everything(self) -> Iterator[tuple[str, str, dict]]:
        """Every stored event (key, at, event), oldest first."""
        for key, at, body in self._read("SELECT key, at, body FROM event ORDER BY at, key", ()):
            yield key, at, _decode(body)

    def owned(self, stream: str, since: str) -> Iterator[dict]:
        """The events `stream` owns with at >= since, oldest first."""
        query = ("SELECT e.body FROM owned o JOIN event e ON e.key = o.key "
                 "WHERE o.stream = ? AND o.at >= ? ORDER BY o.at, o.key")
        for (body,) in self._read(query, (stream, since)):
            yield _decode(body)

    def keys_since(self, since: str, limit: int) -> list[str]:
        """Keys of events with at >= since, at most `limit` (+1 to tell it was more)."""
        rows = self._db.execute("SELECT key FROM event WHERE at >= ? LIMIT ?",
                                (since, limit + 1)).fetchall()
        return [key for (key,) in rows]

    def _read(self, query: str, params: tuple) -> Iterator[tuple]:
        db = self._connect()
        try:
            cursor = db.execute(query, params)
            while rows := cursor.fetchmany(BATCH):
                yield from rows
        finally:
            db.close()

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._db.close()
            shutil.rmtree(self._dir, ignore_errors=True)
