"""Deletes around a lead merge.

Close logs "updated and deleted events for the leads and any related objects involved" in a
merge; whether the children it moves keep their ids is not documented. So a `deleted` event
for a non-lead object that comes with a merge (merge metadata, or the same lead and second as
a `merged` event) is checked first: the object is read by id (one request) and, if Close
still has it, emitted instead of a tombstone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tap_close.client import id_path
from tap_close.errors import CloseAPIError

if TYPE_CHECKING:
    from tap_close.streams.changes import EventReplay

MergeMarks = set[tuple[str, str]]


def _second(event: dict) -> str:
    return str(event.get("date_updated") or "")[:19]  # YYYY-MM-DDTHH:MM:SS


def note_merge(event: dict, marks: MergeMarks) -> None:
    """Add the (lead id, second) of both leads of a `merged` event: destination and source."""
    if event.get("action") == "merged":
        meta = event.get("meta") or {}
        for lead in (event.get("object_id"), meta.get("merge_source_lead_id")):
            if lead:
                marks.add((str(lead), _second(event)))


def with_merge(event: dict, marks: MergeMarks) -> bool:
    """A `deleted` event of a non-lead object that arrived with a merge."""
    if event.get("action") != "deleted" or str(event.get("object_id")).startswith("lead_"):
        return False
    meta = event.get("meta") or {}
    if meta.get("merge_source_lead_id") or meta.get("merge_destination_lead_id"):
        return True
    return (str(event.get("lead_id")), _second(event)) in marks


def still_there(stream: EventReplay, event: dict, marks: MergeMarks) -> dict | None:
    """The object of a merge-time `deleted` event if Close still has it (else None)."""
    if not with_merge(event, marks):
        return None
    object_id = str(event.get("object_id"))
    try:
        path = stream.object_path(object_id)
    except NotImplementedError:  # a stream that reads no object by id otherwise
        path = id_path(stream.path, object_id)
    try:
        row = stream.client.get(path)
    except CloseAPIError as exc:
        if exc.status == 404:
            return None  # really deleted
        raise
    return stream.target_for(event).post_process(row) or row
