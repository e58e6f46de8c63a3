"""Leads, the contacts embedded in them, and opportunities."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

from tap_close import schemas
from tap_close.client import CloseAPIError, KeyPage, MaxSkipError
from tap_close.export import ExportError, run_export
from tap_close.streams.base import (
    CloseStream,
    Deferred,
    IncrementalStream,
    format_ts,
    parse_ts,
    sorted_range,
)
from tap_close.streams.changes import EventReplay
from tap_close.streams.search import search_or_else, search_range

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context


def _last_key(page: KeyPage, last: tuple[dt.datetime | None, set[str]]
              ) -> tuple[dt.datetime | None, set[str]]:
    """The last date_updated of the pages so far, with the ids read at it."""
    key, ids = last
    for value, rid in page.keys:
        when = parse_ts(value)
        if when is not None and when != key:
            key, ids = when, set()
        ids.add(str(rid))
    return key, ids


def is_contact(event: dict) -> bool:
    return str(event.get("object_id") or "").startswith("cont_") or (
        event.get("object_type") == "contact")


class LeadsStream(EventReplay, IncrementalStream):
    """`/lead/` via the search `query` (minute precision) sorted by `date_updated`.

    Its event replay also carries the contacts' changes (contacts are emitted here):
    tombstones, and the current version of contacts created or edited since the last run,
    since a contact edit need not move its lead's date_updated.
    """

    event_object_types = ("lead", "contact")
    id_prefixes = ("lead_", "cont_")

    name = "leads"
    path = "/lead/"
    static_schema = schemas.LEAD
    custom_object = "lead"
    use_fields_param = True
    opt_in_properties = ("primary_email", "primary_phone", "primary_address_summary",
                         "contacts_summary", "localtime", "recent_calls", "summaries")
    page_size = 200

    def floor(self, value: dt.datetime) -> dt.datetime:
        return value.replace(second=0, microsecond=0)

    def read_records(self, context: Context | None) -> Iterator[Any]:
        state = self.get_context_state(context)
        if self.config.get("use_export_for_backfill") and not state.get("replication_key_value"):
            started = dt.datetime.now(dt.timezone.utc)
            yield self.replaying(True)  # export rows are unsorted: the bookmark is set after
            try:
                yield from run_export(self.client)
            except (ExportError, CloseAPIError) as exc:
                self.logger.warning("Export backfill failed (%s); paging /lead/ instead", exc)
            else:
                yield self.update_state(context, replication_key=self.replication_key,
                                        replication_key_value=format_ts(started),
                                        bookmark_ids=[])
                yield self.replaying(False)
                yield from self.replay(context)
                return
            yield self.replaying(False)
        yield from super().read_records(context)

    def keyset(
        self, base: dict[str, Any], start: dt.datetime | None = None,
        emitted_at_start: frozenset[str] | set[str] = frozenset(),
    ) -> Iterator[Any]:
        """Leads with date_updated >= start, in order.

        A first sync pages `/lead/` (fast, concurrent windows). Later runs, and a first sync
        that meets max_skip (a bulk update puts thousands of leads in the `query` filter's
        one minute), read Advanced Filtering instead: sorted, cursor-paged, no `_skip`.
        If search is refused (403/402/400), `/lead/` paging remains.
        """
        if start is None:
            last: tuple[dt.datetime | None, set[str]] = (None, set())
            try:
                for page in super().keyset(base, start, emitted_at_start):
                    last = _last_key(page, last)
                    yield page
                return
            except MaxSkipError as exc:
                self.logger.warning("leads: %s; reading the rest through /data/search/", exc)
            start, emitted_at_start = last
        pages = search_range(self.client, "lead", self.selected_fields(), start,
                             self._tap.run_started, read_at_lower=emitted_at_start)
        yield from search_or_else(
            pages, partial(IncrementalStream.keyset, self, base, start, emitted_at_start),
            self.logger, "leads: paging /lead/")

    def window_params(
        self, lower: dt.datetime | None, upper: dt.datetime | None = None
    ) -> dict[str, Any]:
        clause = f'date_updated >= "{lower:%Y-%m-%dT%H:%M}" ' if lower else ""
        if upper:
            clause += f'date_updated < "{upper:%Y-%m-%dT%H:%M}" '
        return {"query": f"{clause}sort:date_updated"}

    def selected_fields(self) -> list[str]:
        fields = super().selected_fields()
        contacts = self._tap.streams.get("contacts")
        if contacts is not None and contacts.selected and "contacts" not in fields:
            fields.append("contacts")
        if self.replication_key not in fields:
            fields.append(self.replication_key)
        return fields

    def refreshes(self, event: dict) -> bool:
        """Contact creates and edits (hook: contact rows go to the contacts stream)."""
        return is_contact(event) and event.get("action") in ("created", "updated")

    def object_path(self, object_id: str) -> str:
        return f"/contact/{object_id}/" if object_id.startswith("cont_") else f"/lead/{object_id}/"

    def target_for(self, event: dict) -> CloseStream:
        contacts = self._tap.streams.get("contacts")
        if is_contact(event) and isinstance(contacts, ContactsStream):
            return contacts
        return self

    def route(self, event: dict, row: dict) -> dict | Deferred | None:
        if not is_contact(event):
            return row
        contacts = self._tap.streams.get("contacts")
        if isinstance(contacts, ContactsStream) and contacts.selected:
            # written in order, in the main thread (the replay may run in a prefetch thread)
            return Deferred(lambda: contacts.emit(row))
        return None

    def get_child_context(self, record: dict, context: Context | None) -> dict:
        return {"lead": record}

    def _sync_children(self, child_context: Context | None) -> None:
        """Emit the lead's embedded contacts directly: no request, no per-lead STATE."""
        if not child_context:
            return
        lead = child_context["lead"]
        if lead.get("_sdc_deleted_at"):
            return  # a tombstone's last known contacts are deleted too (their own events)
        for child in self.child_streams:
            if isinstance(child, ContactsStream) and child.selected:
                child.emit_from_lead(lead)

    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        row = super().post_process(row, context) or row
        if not self.selected:
            # Contacts alone are selected: the lead bookmark must still advance.
            self._increment_stream_state(row, context=context)
        return row


class ContactsStream(CloseStream):
    """Contacts of every new or changed lead, taken from the lead payload.

    `/contact/` has no date filter; a contact change updates its lead, and each lead
    embeds its contacts, so this stream is incremental through the leads bookmark.
    """

    name = "contacts"
    path = "/contact/"
    static_schema = schemas.CONTACT
    custom_object = "contact"
    parent_stream_type = LeadsStream
    state_partitioning_keys = ()
    _schema_written = False

    def emit_from_lead(self, lead: dict) -> None:
        for contact in lead.get("contacts") or []:
            self.emit({**contact, "lead_id": lead.get("id")})

    def emit(self, contact: dict) -> None:
        if not self._schema_written:
            self._write_schema_message()
            self._schema_written = True
        row = self.post_process(contact)
        if row is not None:
            self._write_record_message(row)

    def read_records(self, context: Context | None) -> list[dict]:
        return []  # records are written by the leads pass


class OpportunitiesStream(EventReplay, IncrementalStream):
    """`/opportunity/` with `date_updated__gte` and `_order_by=date_updated`."""

    event_object_types = ("opportunity",)
    id_prefixes = ("oppo_",)

    name = "opportunities"
    path = "/opportunity/"
    static_schema = schemas.OPPORTUNITY
    custom_object = "opportunity"
    use_fields_param = True
    page_size = 250

    def window_params(
        self, lower: dt.datetime | None, upper: dt.datetime | None = None
    ) -> dict[str, Any]:
        return sorted_range("date_updated", lower, upper)
