"""The raw Close event log."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tap_close import schemas
from tap_close.errors import AccessDeniedError
from tap_close.streams.base import UTC, CloseStream, format_ts
from tap_close.streams.changes import RETENTION, SETTLE
from tap_close.streams.collaboration import strip_secrets
from tap_close.streams.eventlog import EventWindows

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context


class EventsStream(CloseStream):
    """`/event/` (cursor paging, newest first), incremental on `date_updated`.

    Each run reads [bookmark, now - 5 min) in concurrent date windows (`EventWindows`): Close
    may still re-order or consolidate the newest events. The bookmark moves over windows
    once they are complete. An event consolidated later (same id, new date_updated) is
    emitted again.
    Secret fields in `data`/`previous_data` are dropped as in the objects' own streams.
    """

    name = "events"
    path = "/event/"
    static_schema = schemas.EVENT
    replication_key = "date_updated"
    is_sorted = False

    def advance_bookmark(self, latest_record: dict, *, context: Context | None = None) -> None:
        """The bookmark is the end of the window read, set once the window is done."""

    def read_records(self, context: Context | None) -> Iterator[Any]:
        start = self.get_starting_timestamp(context)
        upper = self._tap.run_started - SETTLE
        oldest = self._tap.run_started - RETENTION
        lower = start.astimezone(UTC) if start else oldest
        if lower < oldest:
            if self.get_context_state(context).get("replication_key_value"):
                self.logger.warning(
                    "events: the bookmark %s is older than Close's 30-day event retention; "
                    "events before %s are gone from the log.", format_ts(lower),
                    format_ts(oldest))
            lower = oldest
        if lower >= upper:
            return
        windows = EventWindows(self.client, lower, upper, self.client.workers)
        try:
            for page, mark in windows.pages():
                for event in page:
                    for payload in ("data", "previous_data"):  # e.g. a webhook's signing key
                        strip_secrets(event.get(payload))
                    yield event
                if mark:  # every window below `mark` is done: resume from there
                    yield self.update_state(context, replication_key=self.replication_key,
                                            replication_key_value=format_ts(min(mark, upper)))
        except AccessDeniedError as exc:
            self._tap.event_scan.deny(exc)  # one WARNING for every stream; no bookmark
