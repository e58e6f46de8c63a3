"""A child stream fed by its parent's records: one SDK sync of the child, no extra requests.

The SDK syncs a child stream once per parent record (a SCHEMA, a log line, metrics and a
BATCH file each time). Contacts come embedded in each lead, so the child's one `sync()` runs
in a helper thread instead, and the parent hands it rows in lock-step: the parent waits while
the child writes them. Only one thread writes at any moment, messages keep their order (a
lead's contacts are written before the lead), and the child gets everything the SDK gives
any stream: SCHEMA, BATCH, `--test` limits, stream maps, metrics and state.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Any

from singer_sdk.exceptions import AbortedSyncFailedException, AbortedSyncPausedException
from singer_sdk.streams import Stream

ABORTED = (AbortedSyncFailedException, AbortedSyncPausedException)


class ChildFeed:
    """Runs `child.sync()` in a thread whose `rows()` are what the parent `send`s."""

    def __init__(self, child: Stream) -> None:
        self.child = child
        self._cond = threading.Condition()
        self._rows: list[dict] = []
        self._child_turn = True  # the child writes its SCHEMA first
        self._closed = self._done = False
        self.sent = 0  # rows handed over
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"feed-{child.name}",
                                        daemon=True)

    def start(self) -> ChildFeed:
        self._thread.start()
        self._wait_for_parent_turn()
        return self

    def _run(self) -> None:
        try:
            self.child.sync()
        except ABORTED:
            pass  # a `--test` record limit: the child stops, the parent goes on
        except BaseException as exc:  # raised in the parent's thread
            self._error = exc
        finally:
            with self._cond:
                self._done, self._child_turn = True, False
                self._cond.notify_all()

    def rows(self) -> Iterator[dict]:
        """The child's records (its `get_records`, in the child's thread)."""
        while True:
            with self._cond:
                self._child_turn = False  # everything handed over so far is written
                self._cond.notify_all()
                while not self._child_turn:
                    self._cond.wait()
                rows, self._rows = self._rows, []
                closed = self._closed
            yield from rows
            if closed:
                return

    def send(self, rows: Iterable[dict]) -> None:
        """Hand rows to the child and wait until it has written them (parent's thread)."""
        batch = list(rows)
        self.sent += len(batch)
        if batch and not self._done:
            with self._cond:
                self._rows.extend(batch)
                self._child_turn = True
                self._cond.notify_all()
            self._wait_for_parent_turn()

    def close(self) -> None:
        """End the child's sync (it finalizes its state) and wait for it."""
        with self._cond:
            self._closed = self._child_turn = True
            self._cond.notify_all()
        self._thread.join()
        self._raise()

    def _wait_for_parent_turn(self) -> None:
        with self._cond:
            while self._child_turn and not self._done:
                self._cond.wait()
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error


class FedChild(Stream):
    """A child stream whose records come from a `ChildFeed` (nothing when not fed)."""

    feed: ChildFeed | None = None

    def get_records(self, context: Any) -> Iterator[dict]:
        if self.feed is not None:
            yield from self.feed.rows()

    def send(self, rows: Iterable[dict]) -> None:
        """Rows for this stream's running sync (dropped when it is not syncing)."""
        if self.feed is not None:
            self.feed.send(rows)
