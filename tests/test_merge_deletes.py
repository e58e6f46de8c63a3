"""Deletes around a lead merge (issue 20 item 9), both readings of Close's merge events.

Close logs "updated and deleted events for the leads and any related objects involved" in a
merge. Switched on, the emulator logs a `deleted` event (no merge metadata, the merge's
second, the source lead) for every contact, opportunity and activity the merge moved, though
they keep their ids. Either way, after a full sync, edits, the merge and an incremental run,
every stream equals the truth field by field: nothing moved is tombstoned.
"""

from __future__ import annotations

import pytest

from tests.emulator import CloseEmulator
from tests.test_field_values import full_and_incremental


@pytest.mark.parametrize("quirks", [(), ("merge_deletes_moved_children",)],
                         ids=["updates-only", "deletes-too"])
def test_children_moved_by_a_merge_are_not_tombstoned(quirks: tuple[str, ...]) -> None:
    with CloseEmulator(seed=27, n_leads=12, event_history=20, quirks=quirks) as emu:
        found, runs = full_and_incremental(emu)
        assert found == [{}, {}]
        deleted = [e for e in emu.events if e["action"] == "deleted"
                   and not e["object_id"].startswith("lead_")]
        moved = [e for e in deleted if e["object_id"] in emu.truth("contacts")
                 | emu.truth("opportunities") | emu.truth("note_activities")
                 | emu.truth("call_activities") | emu.truth("email_activities")]
        assert bool(moved) is bool(quirks), "the switch logs deletes of moved children"
        tombstoned = {r["id"] for rows in runs[1].records.values() for r in rows
                      if r.get("_sdc_deleted_at")}
        assert not tombstoned & {e["object_id"] for e in moved}
