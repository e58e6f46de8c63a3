"""Base streams: full-table lists and keyset-paged incremental lists."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
from collections.abc import Callable, Generator, Iterable, Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.singerlib import RecordMessage
from singer_sdk.singerlib.catalog import REPLICATION_INCREMENTAL, MetadataMapping

from tap_close import fields, parallel
from tap_close.client import CloseClient, KeyPage, key_page_decoder
from tap_close.errors import AccessDeniedError, CloseAPIError
from tap_close.ratelimit import endpoint_group
from tap_close.schemas import DELETED_AT, custom_field_column, custom_field_properties
from tap_close.sdk_compat import (
    StreamHooks,
    input_catalog,
    pop_deselected_record_properties,
    stream_version,
    utc_now,
)
from tap_close.streams.lookback import SentLog, lookback

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from tap_close.tap import TapClose

UTC = dt.timezone.utc
CUSTOM_KEY = "custom."


def parse_ts(value: Any) -> dt.datetime | None:
    """Parse a Close timestamp; naive values are UTC. None if it is not a timestamp."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def normalize_ts(value: Any) -> str | None:
    """Canonical UTC text of a Close timestamp; Close's usual form passes untouched (fast)."""
    if isinstance(value, str):
        if len(value) == 32 and value[19] == "." and value.endswith("+00:00"):
            return value
        if len(value) == 26 and value[19] == "." and value[10] == "T":
            return value + "+00:00"  # naive UTC with microseconds (pipelines, events)
    parsed = parse_ts(value)
    return format_ts(parsed) if parsed else None


def format_ts(value: dt.datetime) -> str:
    """Canonical UTC form, so bookmarks compare correctly as strings."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def timestamp_plan(schema: dict) -> dict[str, Any]:
    """Where a schema has date-time values: {key: True | nested plan} (objects and arrays)."""
    plan: dict[str, Any] = {}
    for key, prop in (schema.get("properties") or {}).items():
        if prop.get("format") == "date-time":
            plan[key] = True
            continue
        target = prop.get("items") if "array" in (prop.get("type") or []) else prop
        inner = timestamp_plan(target) if isinstance(target, dict) else {}
        if inner:
            plan[key] = inner
    return plan


def apply_plan(row: dict, plan: dict[str, Any]) -> None:
    """Normalise the date-time values named by a `timestamp_plan`, in place."""
    for key, sub in plan.items():
        value = row.get(key)
        if value is None:
            continue
        if sub is True:
            if not (value.__class__ is str and len(value) == 32 and value[19] == "."
                    and value.endswith("+00:00")):  # canonical already: the usual case
                row[key] = normalize_ts(value)
        elif isinstance(value, dict):
            apply_plan(value, sub)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    apply_plan(item, sub)


class Deferred:
    """A change of stream state, yielded among the records by `read_records`.

    It is applied when the records before it have been written, in the main thread: so
    STATE never runs ahead of the data, even when the records were fetched in advance.
    """

    __slots__ = ("apply",)

    def __init__(self, apply: Callable[[], None]) -> None:
        self.apply = apply


class CloseStream(StreamHooks):
    """A Close list endpoint read with `_skip`/`_limit` paging (full table)."""

    # Close sends JSON-native values; post_process keeps only the schema's keys.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE
    path: ClassVar[str]
    static_schema: ClassVar[dict]
    primary_keys: ClassVar[tuple[str, ...]] = ("id",)
    page_size: ClassVar[int] = 100
    #: Close object whose custom fields become typed columns ("lead", "contact", ...).
    custom_object: ClassVar[str | None] = None
    #: Send `_fields` with the selected properties (lean payloads).
    use_fields_param: ClassVar[bool] = False
    #: Fixed query parameters of the list endpoint.
    list_params: ClassVar[dict[str, str]] = {}
    #: Properties Close computes at a cost (smart fields, transcripts): in the catalog with
    #: `selected-by-default: false`, so Close is asked for them only when selected.
    opt_in_properties: ClassVar[tuple[str, ...]] = ()
    #: The stream sends tombstones (records with `_sdc_deleted_at`): only then has the column.
    emits_tombstones: ClassVar[bool] = False

    _tap: TapClose
    _replaying = False  # True while replaying events (older records: no bookmark change)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._columns: dict[str, str] = {}  # Close key -> schema column ("" = dropped)

    @property
    def client(self) -> CloseClient:
        return self._tap.client

    @property
    def metadata(self) -> MetadataMapping:
        """The SDK's metadata; without an input catalog, opt-in properties are unselected."""
        metadata = super().metadata
        if self.opt_in_properties and input_catalog(self) is None:
            for name in self.opt_in_properties:
                entry = metadata.get(("properties", name))
                if entry is not None and entry.selected_by_default is None:
                    entry.selected_by_default = False
        return metadata

    @cached_property
    def schema(self) -> dict:
        schema = {**self.static_schema, "properties": dict(self.static_schema["properties"])}
        if not self.emits_tombstones:  # the object can be deleted, but this stream never says
            schema["properties"].pop(DELETED_AT.name, None)
        elif DELETED_AT.name not in schema["properties"]:
            schema["properties"].update(DELETED_AT.to_dict())
        if self.custom_object:
            definitions = self._tap.custom_field_definitions(self.custom_object)
            schema["properties"].update(custom_field_properties(definitions))
        return schema

    @cached_property
    def _timestamp_plan(self) -> dict[str, Any]:
        return timestamp_plan(self.schema)

    def selected_fields(self) -> list[str]:
        """API field names for the selected properties (custom columns map back to `custom.`)."""
        fields = []
        for name in self.schema["properties"]:
            if name != "id" and (name not in self._known_keys
                                 or not self.mask.get(("properties", name), True)):
                continue
            if self.custom_object and name.startswith("custom_cf_"):
                fields.append(CUSTOM_KEY + name[len("custom_") :])
            else:
                fields.append(name)
        return fields

    def base_params(self, context: Context | None) -> dict[str, Any]:
        params: dict[str, Any] = dict(self.list_params)
        if self.use_fields_param:
            names = self.selected_fields()
            if self.custom_object == "lead":  # `custom` = all custom fields (leads' docs)
                names = fields.all_custom(names, self.schema["properties"])
            params["_fields"] = ",".join(names)
        return params

    @property
    def emit_activate_version_messages(self) -> bool:
        """Full-table streams send ACTIVATE_VERSION (so targets can drop vanished rows) unless
        the `emit_activate_version_messages` setting is false."""
        return bool(self.config.get("emit_activate_version_messages", True))

    @cached_property
    def _everything_selected(self) -> bool:
        return all(self.mask.values())

    @cached_property
    def _json_text_columns(self) -> tuple[str, ...]:
        """Free-form columns, sent as JSON text (see `schemas.JSON_TEXT`)."""
        return tuple(name for name, prop in self.schema["properties"].items()
                     if prop.get("contentMediaType") == "application/json")

    def process_record(self, record: dict, child_context: Context | None,
                       partition_context: Context | None) -> None:
        """Free-form values become JSON text (here: the one step the SDK runs once per record
        before RECORD or BATCH output and stream maps; `post_process` may run twice on a row).
        Then the SDK's step, skipped when there is no partition and no child stream (hot path:
        it would only make and copy an empty child context per record)."""
        for key in self._json_text_columns:
            value = record.get(key)
            if value is not None:
                record[key] = json.dumps(value, separators=(",", ":"), ensure_ascii=False,
                                         default=str)
        if partition_context or self.child_streams:
            super().process_record(record, child_context, partition_context)

    def write_starting_value(self, context: Context | None) -> None:
        """Once per context and run: a stream read ahead (`Prefetcher`) has it already."""
        done: set = self.__dict__.setdefault("_starting_values_written", set())
        key = repr(sorted((context or {}).items()))
        if key not in done:
            done.add(key)
            super().write_starting_value(context)

    def advance_bookmark(self, latest_record: dict, *, context: Context | None = None) -> None:
        """A record without the replication key (an id-only tombstone: no event payload)
        leaves the bookmark where it is."""
        if self.replication_key and latest_record.get(self.replication_key) is None:
            return
        super().advance_bookmark(latest_record, context=context)

    def write_record(self, record: dict) -> None:
        """The SDK's RECORD step without its per-record generator, and without the
        deselected-property walk when nothing is deselected (hot path)."""
        if not self._everything_selected:
            pop_deselected_record_properties(record, self.schema, self.mask)
        for stream_map in self.stream_maps:
            message = self._record_message(record, stream_map)
            if message is not None:
                self._tap.write_message(message)
        self.state_manager.is_flushed = False

    def _record_message(self, record: dict, stream_map: Any) -> RecordMessage | None:
        """The RECORD message of one stream map (None: the map filters the record out)."""
        mapped = stream_map.transform(record)
        if mapped is None:
            return None
        return RecordMessage(stream=stream_map.stream_alias, record=mapped,
                             version=stream_version(self), time_extracted=utc_now())

    def get_records(self, context: Context | None) -> Iterator[dict]:
        """Records of this stream; an endpoint the credential may not use is skipped.

        The records may have been fetched ahead (see `prefetch`) while earlier streams
        were written; `Deferred` state changes are applied here, in order.
        """
        chunks = self._tap.prefetcher.take(self, context) or [self.read_records(context)]
        try:
            for chunk in chunks:
                for item in chunk:
                    if isinstance(item, KeyPage):  # rows decoded here, as they are written
                        yield from item
                    elif isinstance(item, Deferred):
                        item.apply()
                    else:
                        yield item
        except AccessDeniedError as exc:
            self.logger.warning("Skipping stream '%s': %s", self.name, exc)

    def replaying(self, flag: bool) -> Deferred:
        """Mark the records that follow as replayed (older: the bookmark must not move)."""
        return Deferred(lambda: setattr(self, "_replaying", flag))

    def update_state(self, context: Context | None, **values: Any) -> Deferred:
        """Set state values once the records before are written (state touched in main only)."""
        return Deferred(lambda: self.get_context_state(context).update(values))

    def read_records(self, context: Context | None) -> Iterable[Any]:
        """The stream's data, in the order it must be written. The contract for overrides:

        - Yields raw rows (dicts as Close sends them: `post_process` maps and normalises them
          later), `KeyPage`s of rows (raw bytes, decoded only when written) and `Deferred`
          state changes. Nothing else.
        - May run in a worker thread, ahead of its turn (`Prefetcher`), while the main thread
          writes other streams: it must not write messages nor change anything the writer
          uses. It may read its own state (`self.get_context_state(context)` exists before it
          runs) and make requests through `self.client` (thread-safe).
        - State changes are never made directly: they are yielded as `Deferred`
          (`self.update_state(...)`,
          `self.replaying(...)`): they apply in the main thread once every row yielded before
          them has been written, so STATE never runs ahead of the data.
        - Streams with an event log (`EventReplay`) end with `yield from self.replay(context)`
          after their main pass (the mixin's `read_records` does it for the default pass; an
          override must keep it, on every path, or deletes and edits are lost).
        - Errors propagate to the main thread when the stream is written.
        """
        yield from self.client.raw_pages(
            self.path, self.base_params(context), page_size=self.page_size)

    @cached_property
    def _known_keys(self) -> frozenset[str]:
        return frozenset(self.known_columns())

    def known_columns(self) -> set[str]:
        """The columns records carry: the effective schema's (an input catalog's schema may
        drop some, as the SDK's conformance would), and always the primary and replication
        keys (paging and state need them)."""
        keys = set(self.effective_schema["properties"]) | set(self.primary_keys or ())
        if self.replication_key:
            keys.add(self.replication_key)
        return keys

    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        """Keep the schema's keys (custom fields renamed to typed columns), UTC timestamps.

        This is the whole conformance step: Close sends JSON-native values, so the SDK's
        per-value type conformance is switched off (TYPE_CONFORMANCE_LEVEL = NONE).
        """
        if self._known_keys.issuperset(row):  # the usual case with `_fields`: nothing to
            apply_plan(row, self._timestamp_plan)  # drop or rename
            return row
        columns = self._columns
        try:
            out = {column: value for key, value in row.items() if (column := columns[key])}
        except KeyError:  # a key not seen before: decide once, then map
            for key in row:
                if key not in columns:
                    columns[key] = self._column_of(key)
            out = {column: value for key, value in row.items() if (column := columns[key])}
        apply_plan(out, self._timestamp_plan)
        return out

    def _column_of(self, key: str) -> str:
        """The schema column a Close key goes to ("" = dropped, logged once)."""
        column = key
        if self.custom_object and key.startswith(CUSTOM_KEY):
            column = custom_field_column(key[len(CUSTOM_KEY):])
        if column in self._known_keys:
            return column
        self.logger.info("%s: ignoring field %r, not in the schema", self.name, key)
        return ""


def sorted_range(key: str, lower: dt.datetime | None, upper: dt.datetime | None = None
                 ) -> dict[str, Any]:
    """List parameters for lower <= key < upper (None: unbounded), sorted by key."""
    params: dict[str, Any] = {"_order_by": key}
    if lower:
        params[f"{key}__gte"] = lower.isoformat()
    if upper:
        params[f"{key}__lt"] = upper.isoformat()
    return params


class Window:
    """Keyset paging of one key range [lower, upper) of an IncrementalStream.

    Each page restarts from the last key read (at the filter's precision) with a small
    `_skip` inside that key, so `_skip` stays far from Close's max_skip and records that
    move while we page are not skipped. Records seen at the boundary are dropped by id.
    """

    def __init__(
        self, stream: IncrementalStream, base: dict[str, Any], lower: dt.datetime | None,
        upper: dt.datetime | None, *, start: dt.datetime | None,
    ) -> None:
        self.stream, self.base, self.lower, self.upper = stream, base, lower, upper
        self.start = start
        self.ids_at_lower: set[str] = set()
        self.finished = False
        self._progressed = True
        self.first_key: dt.datetime | None = None  # of the first page: density estimate

    def resume_point(self) -> tuple[dt.datetime, set[str]]:
        assert self.lower is not None
        return self.lower, set(self.ids_at_lower)

    def pages(self) -> Generator[KeyPage, None, None]:
        """Pages of the window; each is decoded when its rows are read (by the consumer)."""
        stream = self.stream
        decode = key_page_decoder(stream.sort_key)
        limit = stream.page_size
        overlap = stream.OVERLAP
        while True:
            skip = max(0, len(self.ids_at_lower) - min(overlap, limit // 4))
            params = {**self.base, **stream.window_params(self.lower, self.upper), "_skip": skip}
            page, limit = stream.client.page(stream.path, params, limit, decode)
            page_keys: list[tuple[dt.datetime, str]] = []
            for i, (value, rid) in enumerate(page.keys):
                key = parse_ts(value)
                if key is None or not isinstance(rid, str):
                    continue  # emitted, but no paging boundary (nor bookmark) from it
                floor = stream.floor(key)
                page_keys.append((floor, rid))
                if (floor == self.lower and rid in self.ids_at_lower) or (  # re-read at the
                        self.start and key < self.start):  # boundary, or below the start (the
                    page.skip.add(i)  # filter may be coarser than the key)
            if self.first_key is None and page_keys:
                self.first_key = page_keys[0][0]
            more = page.has_more and bool(page_keys)
            if page_keys:  # the last page too: a window continued later starts past it
                self._advance(page_keys, overlap if more else None)
                overlap = stream.OVERLAP if self._progressed else 0
            self.finished = not more
            yield page
            if not more:
                return

    def _advance(self, page_keys: list[tuple[dt.datetime, str]], overlap: int | None) -> None:
        """Restart from the page's last key (`overlap` None: the last page, no check)."""
        new_lower = page_keys[-1][0]
        if new_lower != self.lower:
            self.lower, self.ids_at_lower = new_lower, set()
        before = len(self.ids_at_lower)
        self.ids_at_lower.update(rid for floor, rid in page_keys if floor == self.lower)
        self._progressed = len(self.ids_at_lower) > before
        if not self._progressed and overlap == 0:
            msg = f"{self.stream.name}: paging made no progress at {self.lower}"
            raise CloseAPIError(msg)


class Lookback(CloseStream):
    """An incremental stream that re-reads `lookback_minutes` below its bookmark each run and
    skips what the last run provably sent there (see `lookback.py`).

    Sorted streams also keep their order when Close commits a row late: a row whose key is
    below one this run has sent already is left to the next run (whose lookback reads it).
    """

    _high = ""  # the largest key this run's main pass has sent (canonical UTC text)
    _cap = ""  # Close's now, last looked at: no bookmark goes past it
    _late = 0
    _read_started: dt.datetime | None = None

    def lookback_start(self, context: Context | None) -> dt.datetime | None:
        """Where this run starts: start_date, or the bookmark, or the last run's read time
        less the lookback if that is earlier (rows stamped before the read began and
        committed after it).

        A bookmark older than that is exact by itself: rows stamped before `read_at - lookback`
        were committed when the last run read them. So a run after a quiet spell (or hours
        after a bulk edit) re-reads nothing old.
        """
        start = self.get_starting_timestamp(context)
        if start is None:
            return None
        start = start.astimezone(UTC)
        state = self.get_context_state(context)
        if state.get("replication_key_value"):
            read_at = parse_ts(state.get("read_at")) or start  # an earlier release's STATE
            start = min(start, read_at - lookback(self.config))
        return start

    def begin_read(self, context: Context | None) -> Deferred:
        """Close's time as this run's main pass begins; STATE keeps it with the bookmark."""
        now = self.client.clock.now()
        self._read_started = now  # (see EventReplay.replay)
        return self.update_state(context, read_at=format_ts(now))

    def resend_floor(self, state: dict) -> str | None:
        """The next run's start (see `lookback_start`), as canonical text."""
        bookmark = parse_ts(state.get("replication_key_value"))
        if bookmark is None:
            return None
        read_at = parse_ts(state.get("read_at")) or bookmark
        return format_ts(min(bookmark, read_at - lookback(self.config)))

    def sent_log(self, context: Context | None) -> SentLog:
        log = self.__dict__.get("_sent_log")
        if log is None:
            floor = "" if self.is_sorted else format_ts(
                min(self._tap.run_started, self.client.clock.now())
                - lookback(self.config) - dt.timedelta(minutes=10))
            log = self._sent_log = SentLog(self.get_context_state(context).get("sent"), floor)
        return log

    def note_sent(self, record: dict, context: Context | None) -> str | None:
        """Remember a main-pass record just written; returns its key (None: it has none)."""
        value = record.get(self.replication_key) if self.replication_key else None
        if not isinstance(value, str):
            return None
        self.sent_log(context).add(str(record["id"]), value)
        self._high = max(self._high, value)
        return value

    def move_bookmark(self, context: Context | None, when: dt.datetime) -> Deferred:
        """A window read through `when` (Close's time): the bookmark moves there, never back."""
        value = format_ts(when)

        def apply() -> None:
            state = self.get_context_state(context)
            before = parse_ts(state.get("replication_key_value"))
            if before is None or when > before:
                state.update(replication_key=self.replication_key, replication_key_value=value)

        return Deferred(apply)

    def capped(self, value: str) -> str:
        """A key no later than Close's now (a row stamped in the future, or clock skew)."""
        if value > self._cap:
            self._cap = format_ts(self.client.clock.now())
        return min(value, self._cap)

    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        row = super().post_process(row, context)  # type: ignore[assignment]
        if row is None or self._replaying or not self.replication_key:
            return row
        key = row.get(self.replication_key)
        if not isinstance(key, str):
            return row
        if self.is_sorted and key < self._high:
            if not self._late:
                self.logger.info(
                    "%s: a row stamped %s became visible after later rows were sent (a late "
                    "commit); it is left to the next run's lookback", self.name, key)
            self._late += 1
            return None
        if self.sent_log(context).was_sent(str(row.get("id")), key):
            return None  # in the lookback, and sent by the last run unchanged
        return row

    def write_state_message(self) -> None:
        log = self.__dict__.get("_sent_log")
        if log is not None:
            state = self.get_context_state(None)
            state.pop("bookmark_ids", None)  # an earlier release's form of `sent`
            floor = self.resend_floor(state)
            if floor is not None:
                state["sent"] = log.encode(floor)
        super().write_state_message()


class IncrementalStream(Lookback):
    """A list sorted ascending by its replication key, read by keyset `Window`s."""

    replication_key = "date_updated"
    is_sorted = True
    #: Records re-read at each page boundary in case some left the boundary key.
    OVERLAP: ClassVar[int] = 5

    @property
    def sort_key(self) -> str:
        """The key pages are sorted and restarted by (the replication key by default)."""
        return str(self.replication_key)

    def floor(self, value: dt.datetime) -> dt.datetime:
        """The precision of the server-side filter (full precision by default)."""
        return value

    def window_params(
        self, lower: dt.datetime | None, upper: dt.datetime | None = None
    ) -> dict[str, Any]:
        """Server-side filter and sort for lower <= key < upper (None: unbounded)."""
        raise NotImplementedError

    def read_records(self, context: Context | None) -> Iterator[Any]:
        start = self.lookback_start(context)
        yield self.begin_read(context)
        yield from self.keyset(self.base_params(context), start)

    def keyset(self, base: dict[str, Any], start: dt.datetime | None = None
               ) -> Iterator[KeyPage]:
        """Pages of every record with key >= start (all if None), in key order.

        The first page is read alone; if there is more, the rest of the time range is cut
        into windows read concurrently (`max_concurrency`) and emitted in order, so the
        bookmark only ever moves forward over records already written.
        """
        lower = self.floor(start) if start else None
        first = Window(self, base, lower, None, start=start)
        pages = first.pages()
        head = next(pages, None)
        if head is None:
            return
        yield head
        if first.finished:
            return
        workers = self.client.workers
        if workers <= 1:
            yield from pages
            return
        pages.close()
        cut = first.resume_point()
        now = self.floor(self._tap.run_started)
        bounds = [cut[0]]
        if cut[0] < now:
            # About four pages per window by the first page's density: enough windows to
            # overlap latency, few enough that part-filled last pages waste little of a
            # rate limit (at most two windows per worker).
            read = (cut[0] - first.first_key) if first.first_key else None
            pages_left = (now - cut[0]) / read if read else float(workers * 6)
            parts = max(1, min(workers * 2, math.ceil(pages_left / 4)))
            # Under a rate limit, every window's part-filled last page costs a request of
            # the group's budget: keep to a quarter of the limit's window count.
            rate = self.client.limiter.limit_of(endpoint_group("GET", self.path))
            if rate:
                parts = min(parts, max(1, int(rate // 4)))
            step = (now - cut[0]) / parts
            bounds += sorted({self.floor(cut[0] + step * i) for i in range(1, parts)} | {now})
            bounds = [b for i, b in enumerate(bounds) if i == 0 or b > bounds[i - 1]]
        windows = [Window(self, base, lo, hi, start=start)
                   for lo, hi in itertools.pairwise(bounds)]
        last = Window(self, base, bounds[-1], None, start=start)
        windows.append(last)
        windows[0].ids_at_lower = set(cut[1])
        yield from parallel.ordered((w.pages for w in windows), workers, len(head.data))
        # The open window above may have been read before the ones below it: a record
        # edited meanwhile moved up past it. Continue it from where it ended (one request
        # when nothing moved).
        yield from last.pages()

    def advance_bookmark(self, latest_record: dict, *, context: Context | None = None) -> None:
        """Move the bookmark to the record's key (never back, never past Close's now)."""
        if self._replaying or self.replication_method != REPLICATION_INCREMENTAL:
            return
        value = self.note_sent(latest_record, context)
        if value is None or not self.is_sorted:
            return
        state = self.get_context_state(context)
        before = state.get("replication_key_value")
        value = self.capped(value)
        if before is None or (isinstance(before, str) and value > before):
            state["replication_key"] = self.replication_key
            state["replication_key_value"] = value
