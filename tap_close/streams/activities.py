"""Activities (one stream per type), custom activities, and tasks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from tap_close import schemas
from tap_close.client import KeyPage, MaxSkipError, id_path
from tap_close.streams.base import UTC, CloseStream, IncrementalStream, format_ts, parse_ts
from tap_close.streams.changes import EventReplay
from tap_close.streams.simple import list_stream

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context


class Kind(NamedTuple):
    stream: str
    path: str  # under /activity/
    type_name: str  # the activity's `_type`
    schema: dict
    events: tuple[str, ...]  # event object_type names for this kind


KINDS = [
    Kind("call_activities", "call", "Call", schemas.CALL_ACTIVITY, ("activity.call",)),
    Kind("email_activities", "email", "Email", schemas.EMAIL_ACTIVITY, ("activity.email",)),
    Kind("email_thread_activities", "emailthread", "EmailThread",
         schemas.EMAIL_THREAD_ACTIVITY, ("activity.emailthread", "activity.email_thread")),
    Kind("note_activities", "note", "Note", schemas.NOTE_ACTIVITY, ("activity.note",)),
    Kind("meeting_activities", "meeting", "Meeting", schemas.MEETING_ACTIVITY,
         ("activity.meeting",)),
    Kind("sms_activities", "sms", "SMS", schemas.SMS_ACTIVITY, ("activity.sms",)),
    Kind("whatsapp_message_activities", "whatsapp_message", "WhatsAppMessage",
         schemas.WHATSAPP_MESSAGE_ACTIVITY, ("activity.whatsapp_message",)),
    Kind("created_activities", "created", "Created", schemas.CREATED_ACTIVITY,
         ("activity.created",)),
    Kind("lead_status_change_activities", "status_change/lead", "LeadStatusChange",
         schemas.LEAD_STATUS_CHANGE_ACTIVITY,
         ("activity.lead_status_change", "status_change.lead")),
    Kind("opportunity_status_change_activities", "status_change/opportunity",
         "OpportunityStatusChange", schemas.OPPORTUNITY_STATUS_CHANGE_ACTIVITY,
         ("activity.opportunity_status_change", "status_change.opportunity")),
    Kind("task_completed_activities", "task_completed", "TaskCompleted",
         schemas.TASK_COMPLETED_ACTIVITY, ("activity.task_completed",)),
    Kind("lead_merge_activities", "lead_merge", "LeadMerge", schemas.LEAD_MERGE_ACTIVITY,
         ("activity.lead_merge",)),
    Kind("form_submission_activities", "form_submission", "FormSubmission",
         schemas.FORM_SUBMISSION_ACTIVITY, ("activity.form_submission",)),
    Kind("custom_activity_instances", "custom", "CustomActivity", schemas.CUSTOM_ACTIVITY,
         ("activity.custom_activity", "activity.custom")),
]
KNOWN_EVENT_TYPES = {name for kind in KINDS for name in kind.events}


def _payload_type(event: dict) -> str | None:
    for key in ("data", "previous_data"):
        payload = event.get(key)
        if isinstance(payload, dict) and payload.get("_type"):
            return str(payload["_type"])
    return None


class ActivityStream(EventReplay, IncrementalStream):
    """One activity type, incremental on `date_created` (keyset, `_order_by=date_created`).

    Activities cannot be filtered on `date_updated`: edits and deletes come from the event
    log (`updated` events re-emit the current activity, `deleted` ones a tombstone).
    """

    kind: ClassVar[Kind]
    replication_key = "date_created"
    replay_updates = True
    use_fields_param = True

    def window_params(
        self, lower: dt.datetime | None, upper: dt.datetime | None = None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"_order_by": "date_created"}
        if lower:
            params["date_created__gte"] = lower.isoformat()
        if upper:
            params["date_created__lt"] = upper.isoformat()
        return params

    def owns(self, event: dict) -> bool:
        object_type = str(event.get("object_type") or "")
        if object_type in self.kind.events:
            return True
        # An event name we do not know: fall back to the payload's `_type`.
        return (object_type.startswith("activity") and object_type not in KNOWN_EVENT_TYPES
                and _payload_type(event) == self.kind.type_name)

    def object_path(self, object_id: str) -> str:
        return id_path(self.path, object_id)


def _activity_stream(kind: Kind) -> type[ActivityStream]:
    attrs = {"name": kind.stream, "path": f"/activity/{kind.path}/", "kind": kind,
             "static_schema": kind.schema}
    if kind.path == "custom":
        attrs["custom_object"] = "activity"
    return type(f"{kind.type_name}ActivityStream", (ActivityStream,), attrs)


ACTIVITY_STREAMS = [_activity_stream(kind) for kind in KINDS]


CustomActivityTypesStream = list_stream("custom_activity_types", "/custom_activity/",
                                        schemas.CUSTOM_ACTIVITY_TYPE)
ActivityCustomFieldsStream = list_stream("activity_custom_fields", "/custom_field/activity/",
                                         schemas.CUSTOM_FIELD, page_size=1000)


class TasksStream(EventReplay, CloseStream):
    """Every task type (`_type=all`), incremental on `date_updated`.

    `/task/` filters on `date_updated` but cannot sort by it, so the tap reads the window
    [bookmark, run start) with `_skip` paging in `date_created` order, halving the window
    whenever Close answers max_skip. The bookmark moves to a window's end once it is read.
    """

    name = "tasks"
    path = "/task/"
    static_schema = schemas.TASK
    replication_key = "date_updated"
    is_sorted = False
    page_size = 1000
    event_object_types = ()

    def owns(self, event: dict) -> bool:
        return str(event.get("object_type") or "").startswith("task")

    def advance_bookmark(self, latest_record: dict, *, context: Context | None = None) -> None:
        """Bookmarks move per finished window instead (records are not in key order)."""

    def read_records(self, context: Context | None) -> Iterator[Any]:
        start = self.get_starting_timestamp(context)
        lower = start.astimezone(UTC) if start else dt.datetime(2012, 1, 1, tzinfo=UTC)
        upper = self._tap.run_started
        pending = [(lower, upper)]
        while pending:
            window = pending.pop()
            try:
                # Rows stream out; a split after max_skip may repeat some (at least once).
                yield from self._read_window(*window)
            except MaxSkipError:
                if window[1] - window[0] <= dt.timedelta(seconds=1):
                    raise
                middle = window[0] + (window[1] - window[0]) / 2
                pending += [(middle, window[1]), (window[0], middle)]  # earlier half first
                self.logger.info("max_skip: splitting %s at %s", self.name, format_ts(middle))
                continue
            yield self.update_state(context, replication_key=self.replication_key,
                                    replication_key_value=format_ts(window[1]))
        yield from self.replay(context)

    def _read_window(self, lower: dt.datetime, upper: dt.datetime) -> Iterator[KeyPage]:
        params = {"_type": "all", "_order_by": "date_created",
                  "date_updated__gte": lower.isoformat(), "date_updated__lt": upper.isoformat()}
        for page in self.client.raw_pages(self.path, params, page_size=self.page_size,
                                          key="date_updated"):
            page.skip.update(i for i, (value, _) in enumerate(page.keys)
                             if not (parse_ts(value) or upper) < upper)
            yield page
