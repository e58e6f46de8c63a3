"""Leads, the contacts embedded in them, and opportunities."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

from tap_close import schemas
from tap_close.client import KeyPage, id_path
from tap_close.errors import CloseAPIError, MaxSkipError
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
from tap_close.streams.feed import ChildFeed, FedChild
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

    Its event replay also carries the contacts' changes: tombstones, and the current
    version of contacts created or edited since the last run (a contact edit need not move
    its lead's date_updated). Its records feed the contacts child stream (see `feed.py`);
    the replayed contact rows are sent to that same feed, from the main thread.
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
            started = self.client.clock.now()
            yield self.replaying(True)  # export rows are unsorted: the bookmark is set after
            try:
                yield from run_export(self.client)
            except (ExportError, CloseAPIError) as exc:
                self.logger.warning("Export backfill failed (%s); paging /lead/ instead", exc)
            else:
                yield self.update_state(context, replication_key=self.replication_key,
                                        replication_key_value=format_ts(started))
                yield self.replaying(False)
                yield from self.replay(context)
                return
            yield self.replaying(False)
        yield from super().read_records(context)

    def keyset(self, base: dict[str, Any], start: dt.datetime | None = None
               ) -> Iterator[Any]:
        """Leads with date_updated >= start, in order.

        A first sync pages `/lead/` (fast, concurrent windows). Later runs, and a first sync
        that meets max_skip (a bulk update puts thousands of leads in the `query` filter's
        one minute), read Advanced Filtering instead: sorted, cursor-paged, no `_skip`.
        If search is refused (403/402/400), `/lead/` paging remains.
        """
        read_at: set[str] = set()
        if start is None:
            last: tuple[dt.datetime | None, set[str]] = (None, set())
            try:
                for page in super().keyset(base, start):
                    last = _last_key(page, last)
                    yield page
                return
            except MaxSkipError as exc:
                self.logger.warning("leads: %s; reading the rest through /data/search/", exc)
            start, read_at = last
        # Open above: a lead edited while we read is sent now (and its key caps at Close's
        # now in the bookmark); the next run's lookback skips it, as sent.
        pages = search_range(self.client, "lead", self.selected_fields(), start, None,
                             read_at_lower=read_at)
        yield from search_or_else(
            pages, partial(IncrementalStream.keyset, self, base, start),
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

    def event_actions(self, group: tuple[str, ...]) -> tuple[str, ...]:
        if "lead" in group:
            return ("deleted", "merged")
        return ("deleted", "created", "updated")  # a contact's

    def object_path(self, object_id: str) -> str:
        return id_path("/contact/" if object_id.startswith("cont_") else self.path, object_id)

    def known_columns(self) -> set[str]:
        contacts = self._contacts
        extra = {"contacts"} if contacts is not None and contacts.selected else set()
        return super().known_columns() | extra

    @property
    def _contacts(self) -> ContactsStream | None:
        contacts = self._tap.streams.get("contacts")
        return contacts if isinstance(contacts, ContactsStream) else None

    def get_records(self, context: Context | None) -> Iterator[Any]:
        """The leads; while they are read, the contacts stream syncs from them (if selected)."""
        contacts = self._contacts
        if contacts is None or not contacts.selected:
            yield from super().get_records(context)
            return
        contacts.feed = ChildFeed(contacts)
        try:
            contacts.feed.start()
            yield from super().get_records(context)
        finally:
            feed, contacts.feed = contacts.feed, None
            feed.close()

    def write_state_message(self) -> None:
        """With BATCH output, the contacts of the leads written so far may still be in the
        contacts' open batch file: end that sync first (its BATCH and STATE go out before
        this STATE, so a resumed run misses none of them), and start the next one."""
        contacts = self._contacts
        feed = contacts.feed if contacts is not None else None
        if contacts is not None and feed is not None and feed.sent and (
                contacts.get_batch_config(contacts.config)):
            feed.close()
            contacts.feed = ChildFeed(contacts)
            contacts.feed.start()
        super().write_state_message()

    def versioned_streams(self) -> list[CloseStream]:
        """A re-read of the leads re-reads their contacts too."""
        contacts = self._contacts
        return [self, contacts] if contacts is not None else [self]

    def target_for(self, event: dict) -> CloseStream:
        contacts = self._contacts
        if is_contact(event) and contacts is not None:
            return contacts
        return self

    def route(self, event: dict, row: dict) -> dict | Deferred | None:
        if not is_contact(event):
            return row
        contacts = self._contacts
        if contacts is not None and contacts.selected:
            # sent in order, from the main thread (the replay may run in a prefetch thread)
            return Deferred(lambda: contacts.send([row]))
        return None

    def get_child_context(self, record: dict, context: Context | None) -> dict:
        return {"lead": record}

    def sync_children(self, child_context: Context | None) -> None:
        """Hand the lead's embedded contacts to the contacts sync: no request, no state."""
        contacts = self._contacts
        if not child_context or contacts is None:
            return
        lead = child_context["lead"]
        if not lead.get("_sdc_deleted_at"):  # a tombstone's contacts have their own events
            contacts.send({**contact, "lead_id": lead.get("id")}
                          for contact in lead.get("contacts") or [])
        if "contacts" not in self.effective_schema["properties"]:
            lead.pop("contacts", None)  # kept for the contacts stream only
        if not self.selected:
            # Contacts alone are selected: the lead bookmark must still advance (after them).
            self.advance_bookmark(lead)


class ContactsStream(FedChild, CloseStream):
    """Contacts of every new or changed lead, taken from the lead payload.

    `/contact/` has no date filter; a contact change updates its lead, and each lead
    embeds its contacts, so this child stream is incremental through the leads bookmark
    (its own `date_updated` bookmark is informational: contacts come in lead order).
    """

    name = "contacts"
    path = "/contact/"
    static_schema = schemas.CONTACT
    custom_object = "contact"
    parent_stream_type = LeadsStream
    emits_tombstones = True  # from the leads' event replay
    state_partitioning_keys = ()
    replication_key = "date_updated"
    is_sorted = False


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
