"""Targeted reads of the event log, for a gap too big to read whole.

Most events of a bulk change are edits no stream replays (a lead's, a task's: their main
pass reads them by date_updated). Past a sample of every event (`sample_budget` pages),
the scan reads, over the whole gap, only what the selected streams replay: one
`object_type`+`action` query (a combination Close documents) per spelling and action.

Close spells some object types in more than one way (`activity.note` in its event list,
`note` in one example), so every candidate spelling is asked, and any spelling the sample
showed for a stream's events; once the sample shows a type's spelling, only that one is
asked. Close answers 400 to a value it does not know: no such spelling.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from tap_close.streams.eventlog import Query

if TYPE_CHECKING:
    from tap_close.streams.changes import EventReplay

#: Unfiltered pages read before switching: half the number of targeted queries before the
#: sample teaches any spelling (about what the switch costs once it has), within these
#: bounds: a gap of any size costs no more.
MIN_SAMPLE, MAX_SAMPLE = 20, 60
REFRESH_ACTIONS = ("updated", "created")


class TargetedQuery(Query):
    """`object_type`+`action`, for the streams (`owners`) that replay what it returns."""

    def __init__(self, object_type: str, action: str) -> None:
        super().__init__({"object_type": object_type, "action": action})
        self.action = action
        self.owners: set[str] = set()


def plan(streams: Iterable[EventReplay], observed: dict[str, set[str]],
         capped: Iterable[str] = ()) -> list[TargetedQuery]:
    """The queries for `streams`: each type's spellings (those `observed` in the sample if
    any) and actions; no edits for the `capped` streams (read in full instead). Merges of
    leads always (other streams' deletes that come with a merge are checked against them).
    """
    queries: dict[tuple[str, str], TargetedQuery] = {}

    def add(spelling: str, action: str, owner: str | None) -> None:
        query = queries.setdefault((spelling, action), TargetedQuery(spelling, action))
        if owner:
            query.owners.add(owner)

    add("lead", "merged", None)
    for stream in streams:
        seen = observed.get(stream.name, set())
        groups = stream.event_type_groups()
        known = {spelling for group in groups for spelling in group}
        every = sorted({a for group in groups for a in stream.event_actions(group)})
        wanted = [(sorted(seen & set(g)) or list(g), stream.event_actions(g)) for g in groups]
        wanted += [([spelling], tuple(every)) for spelling in sorted(seen - known)]
        for spellings, actions in wanted:
            for action in actions:
                if action in REFRESH_ACTIONS and stream.name in capped:
                    continue
                for spelling in spellings:
                    add(spelling, action, stream.name)
    return list(queries.values())


def sample_budget(streams: Iterable[EventReplay]) -> int:
    """Unfiltered pages worth reading before the switch (see MIN_SAMPLE)."""
    return max(MIN_SAMPLE, min(MAX_SAMPLE, len(plan(streams, {})) // 2))
