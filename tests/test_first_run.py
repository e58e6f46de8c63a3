"""A first run sends no tombstone for an object deleted before it began, even when it is resumed
from the STATE of an interrupted first run (as Meltano saves after a failed run)."""

from __future__ import annotations

import time

from tests.conftest import api_key_config
from tests.emulator import CloseEmulator
from tests.harness import TapRun, run_tap


def tombstoned(run: TapRun) -> set[str]:
    return {r["id"] for recs in run.records.values() for r in recs if r.get("_sdc_deleted_at")}


def first_checkpoint(run: TapRun) -> dict:
    """The first STATE with the leads' provisional event position: what a run killed right
    after it would have left."""
    for state in run.states:
        events = state.get("bookmarks", {}).get("leads", {}).get("events") or {}
        if events.get("complete") is False:
            return state
    raise AssertionError("no provisional event position in the first run's STATE")


def test_no_tombstones_for_objects_deleted_before_the_first_run() -> None:
    with CloseEmulator(seed=7, n_leads=30) as emu:
        contacts = {c["lead_id"]: c["id"] for c in emu.records("contacts")}
        early_lead, late_lead = sorted(set(contacts) & emu.truth("leads"))[:2]
        early_contact = contacts[early_lead]
        early_task = emu.add_task(early_lead)
        emu.delete_lead(early_lead)  # before any run: cascades to its contacts, opps, tasks
        # The tap knows Close's time to the second (`Date`): a delete within a second of a
        # first run's list read may be tombstoned (harmless: no row to delete).
        time.sleep(1.5)
        first = run_tap(api_key_config(emu)).assert_ok()
        assert not tombstoned(first)
        assert early_lead not in first.ids("leads")

        emu.delete_lead(late_lead)  # after the first run began: emitted, then deleted
        resumed = run_tap(api_key_config(emu), state=first_checkpoint(first)).assert_ok()
    dead = tombstoned(resumed)
    assert late_lead in dead, "a row the interrupted run emitted and Close deleted since"
    assert not dead & {early_lead, early_contact, early_task}, "deleted before the run began"
    assert resumed.live_ids("leads") == emu.truth("leads")
