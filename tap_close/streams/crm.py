"""Leads, the contacts embedded in them, and opportunities."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tap_close import schemas
from tap_close.client import CloseAPIError
from tap_close.export import ExportError, run_export
from tap_close.streams.base import CloseStream, Deferred, IncrementalStream, format_ts
from tap_close.streams.changes import EventReplay
from tap_close.streams.feed import ChildFeed, FedChild

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context


class LeadsStream(EventReplay, IncrementalStream):
    """`/lead/` via the search `query` (minute precision) sorted by `date_updated`.

    Its event replay also carries the contacts' tombstones; its records feed the contacts
    child stream (see `feed.py`).
    """

    event_object_types = ("lead", "contact")

    name = "leads"
    path = "/lead/"
    static_schema = schemas.LEAD
    custom_object = "lead"
    use_fields_param = True
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

    def target_for(self, event: dict) -> CloseStream:
        contacts = self._contacts
        if event.get("object_type") == "contact" and contacts is not None:
            return contacts
        return self

    def route(self, event: dict, row: dict) -> dict | Deferred | None:
        if event.get("object_type") != "contact":
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

    name = "opportunities"
    path = "/opportunity/"
    static_schema = schemas.OPPORTUNITY
    custom_object = "opportunity"
    use_fields_param = True
    page_size = 250

    def window_params(
        self, lower: dt.datetime | None, upper: dt.datetime | None = None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"_order_by": "date_updated"}
        if lower:
            params["date_updated__gte"] = lower.isoformat()
        if upper:
            params["date_updated__lt"] = upper.isoformat()
        return params
