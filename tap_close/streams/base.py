"""Base streams: full-table lists and keyset-paged incremental lists."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk.streams import Stream

from tap_close.client import AccessDeniedError, CloseAPIError, CloseClient
from tap_close.schemas import custom_field_column, custom_field_properties, datetime_properties

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


def format_ts(value: dt.datetime) -> str:
    """Canonical UTC form, so bookmarks compare correctly as strings."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


class CloseStream(Stream):
    """A Close list endpoint read with `_skip`/`_limit` paging (full table)."""

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

    _tap: TapClose
    _replaying = False  # True while replaying events (older records: no bookmark change)

    @property
    def client(self) -> CloseClient:
        return self._tap.client

    @cached_property
    def schema(self) -> dict:
        schema = {**self.static_schema, "properties": dict(self.static_schema["properties"])}
        if self.custom_object:
            definitions = self._tap.custom_field_definitions(self.custom_object)
            schema["properties"].update(custom_field_properties(definitions))
        return schema

    @cached_property
    def _datetime_keys(self) -> tuple[str, ...]:
        return datetime_properties(self.schema)

    def selected_fields(self) -> list[str]:
        """API field names for the selected properties (custom columns map back to `custom.`)."""
        fields = []
        for name in self.schema["properties"]:
            if name != "id" and not self.mask.get(("properties", name), True):
                continue
            if self.custom_object and name.startswith("custom_cf_"):
                fields.append(CUSTOM_KEY + name[len("custom_") :])
            else:
                fields.append(name)
        return fields

    def base_params(self, context: Context | None) -> dict[str, Any]:
        params: dict[str, Any] = dict(self.list_params)
        if self.use_fields_param:
            params["_fields"] = ",".join(self.selected_fields())
        return params

    @property
    def emit_activate_version_messages(self) -> bool:
        """Full-table streams send ACTIVATE_VERSION so targets can drop vanished rows."""
        return True

    def get_records(self, context: Context | None) -> Iterator[dict]:
        """Records of this stream; an endpoint the credential may not use is skipped."""
        try:
            yield from self.read_records(context)
        except AccessDeniedError as exc:
            self.logger.warning("Skipping stream '%s': %s", self.name, exc)

    def read_records(self, context: Context | None) -> Iterable[dict]:
        for page in self.client.pages(
            self.path, self.base_params(context), page_size=self.page_size
        ):
            yield from page

    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        """Rename `custom.<id>` keys to typed columns and normalise timestamps to UTC."""
        if self.custom_object:
            for key in [k for k in row if k.startswith(CUSTOM_KEY)]:
                row[custom_field_column(key[len(CUSTOM_KEY) :])] = row.pop(key)
        for key in self._datetime_keys:
            value = row.get(key)
            if value is not None:
                parsed = parse_ts(value)
                row[key] = format_ts(parsed) if parsed else None
        return row


class IncrementalStream(CloseStream):
    """A list sorted ascending by `date_updated`, read with keyset paging.

    Each page restarts from the last key seen (at the filter's precision) with a small
    `_skip` inside that key, so `_skip` never grows towards Close's max_skip and records
    that move while we page are not skipped. Records already emitted are dropped by id.
    """

    replication_key = "date_updated"
    is_sorted = True
    #: Records re-read at each page boundary in case some left the boundary key.
    OVERLAP: ClassVar[int] = 5

    def floor(self, value: dt.datetime) -> dt.datetime:
        """The precision of the server-side filter (full precision by default)."""
        return value

    def window_params(self, lower: dt.datetime | None) -> dict[str, Any]:
        """Server-side filter and sort for records with key >= lower (None: all)."""
        raise NotImplementedError

    def _start(self, context: Context | None) -> tuple[dt.datetime | None, set[str]]:
        start = self.get_starting_timestamp(context)
        state = self.get_context_state(context)
        ids: set[str] = set()
        if start and state.get("replication_key_value"):
            bookmark = parse_ts(state["replication_key_value"])
            if bookmark == start:
                ids = set(state.get("bookmark_ids") or [])
        return (start.astimezone(UTC) if start else None), ids

    def read_records(self, context: Context | None) -> Iterator[dict]:
        start, emitted_at_start = self._start(context)
        yield from self.keyset(self.base_params(context), start, emitted_at_start)

    def keyset(
        self, base: dict[str, Any], start: dt.datetime | None = None,
        emitted_at_start: frozenset[str] | set[str] = frozenset(),
    ) -> Iterator[dict]:
        """Every record with key >= start (all if None), in key order, by keyset paging."""
        lower = self.floor(start) if start else None
        ids_at_lower: set[str] = set()
        limit = self.page_size
        overlap = self.OVERLAP
        while True:
            skip = max(0, len(ids_at_lower) - min(overlap, limit // 4))
            params = {**base, **self.window_params(lower), "_skip": skip}
            body, limit = self.client.page(self.path, params, limit)
            data = body.get("data") or []
            page_keys: list[tuple[dt.datetime, str]] = []
            for row in data:
                key = parse_ts(row.get(self.replication_key))
                rid = row.get("id")
                if key is None or not isinstance(rid, str):
                    continue
                floor = self.floor(key)
                page_keys.append((floor, rid))
                if floor == lower and rid in ids_at_lower:
                    continue  # re-read at the page boundary
                if start and (key < start or (key == start and rid in emitted_at_start)):
                    continue  # emitted by an earlier run
                yield row
            if not body.get("has_more") or not data or not page_keys:
                return
            new_lower = page_keys[-1][0]
            if new_lower != lower:
                lower, ids_at_lower = new_lower, set()
            before = len(ids_at_lower)
            ids_at_lower.update(rid for floor, rid in page_keys if floor == lower)
            if len(ids_at_lower) == before:  # nothing new: read on without overlap
                if overlap == 0:
                    msg = f"{self.name}: paging made no progress at {lower}"
                    raise CloseAPIError(msg)
                overlap = 0
            else:
                overlap = self.OVERLAP

    def _increment_stream_state(self, latest_record: dict, *, context: Context | None = None):
        """Also remember the ids at the bookmark, so the next run does not repeat them."""
        if self._replaying:
            return
        state = self.get_context_state(context)
        before = state.get("replication_key_value")
        super()._increment_stream_state(latest_record, context=context)
        after = state.get("replication_key_value")
        if after != before:
            state["bookmark_ids"] = [latest_record["id"]]
        elif latest_record["id"] not in state.setdefault("bookmark_ids", []):
            state["bookmark_ids"].append(latest_record["id"])
