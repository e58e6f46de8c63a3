"""Custom data: shared custom fields, custom object types, their fields, and custom objects."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

from tap_close import parallel, schemas
from tap_close.client import id_path
from tap_close.parallel import chunked
from tap_close.streams.base import CloseStream, IncrementalStream, parse_ts
from tap_close.streams.changes import RETENTION, SETTLE, EventReplay
from tap_close.streams.search import search_or_else, search_range
from tap_close.streams.simple import list_stream

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

SharedCustomFieldsStream = list_stream("shared_custom_fields", "/custom_field/shared/",
                                       schemas.SHARED_CUSTOM_FIELD,
                                       events=("custom_fields.shared",), shared=True)
CustomObjectTypesStream = list_stream("custom_object_types", "/custom_object_type/",
                                      schemas.CUSTOM_OBJECT_TYPE, events=("custom_object_type",))
CustomObjectCustomFieldsStream = list_stream(
    "custom_object_custom_fields", "/custom_field/custom_object_type/", schemas.CUSTOM_FIELD,
    page_size=1000, shared=True)


LEADS_PER_TASK = 20  # leads asked one after another by one worker of the first listing

#: Undocumented: the type's name, and the other reading the emulator offers.
EVENT_SPELLINGS = ("custom_object", "custom_object_instance")


class CustomObjectsStream(EventReplay, CloseStream):
    """Custom object instances, typed with every custom object type's fields.

    `/custom_object/` needs a `lead_id`; Close's way to list them all is Advanced Filtering.
    The first run (or one after more than 30 days, or without the event log) lists them
    through `/data/search/` (sorted by date_updated, cursor-paged past the 10,000 cap); if
    search is refused, it asks each lead (concurrently). Nothing is listed when the org has
    no custom object types. Later runs search `date_updated` since the last run (less the
    event log's settle time), and the event log gives the deletes: no document names the
    `object_type` of custom-object events, so they are routed by the `custobj_` id prefix
    too. If that search is refused, `created`/`updated` events are fetched by id instead.
    """

    name = "custom_objects"
    path = "/custom_object/"
    static_schema = schemas.CUSTOM_OBJECT
    custom_object = "custom_object"
    event_object_types = ("custom_object",)
    id_prefixes = ("custobj_",)
    replay_updates = True  # only when the changes cannot be searched (`_from_events`)
    replay_creates = True
    _from_events = False
    #: Incremental through the event log (after the first run only changes are sent, so no
    #: ACTIVATE_VERSION); the `date_updated` bookmark is informational (rows are unsorted).
    replication_key = "date_updated"
    is_sorted = False

    def object_path(self, object_id: str) -> str:
        return id_path(self.path, object_id)

    def event_type_groups(self) -> list[tuple[str, ...]]:
        return [EVENT_SPELLINGS]

    def _needs_full_listing(self, context: Context | None) -> bool:
        if self.reconcile_version(context) is not None:
            return True  # a re-read in full (a new table version)
        position = self.previous_position(context) or {}
        since = parse_ts(position.get("since"))
        if position.get("complete") is False:  # the last run died before listing them all
            return True
        return since is None or since < self._tap.run_started - RETENTION

    def read_records(self, context: Context | None) -> Iterator[Any]:
        self._read_started = self.client.clock.now()
        if self._needs_full_listing(context):
            if self._has_types():
                yield from self._listing()
        else:
            yield from self._changes_since(context)
        yield from self.replay(context)

    def refreshes(self, event: dict) -> bool:
        return self._from_events and super().refreshes(event)

    def may_refresh(self, event: dict) -> bool:
        return super().refreshes(event)  # kept: the search may yet be refused

    def _listing(self) -> Iterator[Any]:
        pages = search_range(self.client, "custom_object", self.selected_fields(), None, None)
        yield from search_or_else(pages, self._per_lead, self.logger,
                                  "custom_objects: listing them lead by lead")

    def _changes_since(self, context: Context | None) -> Iterator[Any]:
        """Custom objects with date_updated since the last run began (less SETTLE)."""
        since = parse_ts((self.previous_position(context) or {}).get("since"))
        assert since is not None  # else `_needs_full_listing`
        pages = search_range(self.client, "custom_object", self.selected_fields(),
                             since - SETTLE, None)
        yield from search_or_else(pages, self._use_events, self.logger,
                                  "custom_objects: created/updated events read by id")

    def _use_events(self) -> list[Any]:
        self._from_events = True
        return []

    def _per_lead(self) -> Iterator[Any]:
        leads = self._tap.streams["leads"]
        assert isinstance(leads, IncrementalStream)
        pages = leads.keyset({"_fields": "id,date_updated"})
        lead_ids = (lead["id"] for page in pages for lead in ([page] if isinstance(page, dict)
                                                              else page))
        tasks = (partial(self._of_leads, ids) for ids in chunked(lead_ids, LEADS_PER_TASK))
        for objects in parallel.ordered(tasks, self.client.workers):
            yield from objects

    def _of_leads(self, lead_ids: list[str]) -> Iterator[list[dict]]:
        """The custom objects of a few leads, as one list (one read-ahead page)."""
        found: list[dict] = []
        for lead_id in lead_ids:
            params = {"lead_id": lead_id}
            for page in self.client.pages(self.path, params, page_size=self.page_size):
                found.extend(page)
        yield found

    def _has_types(self) -> bool:
        return any(self.client.pages("/custom_object_type/", {"_fields": "id"}))


CUSTOM_OBJECT_STREAMS: list[type[CloseStream]] = [SharedCustomFieldsStream, CustomObjectTypesStream,
                         CustomObjectCustomFieldsStream, CustomObjectsStream]
