"""Activities, tasks, the event log and tombstones (issue: no silent data loss)."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from tests.conftest import api_key_config
from tests.emulator import CloseEmulator
from tests.harness import run_tap

ACTIVITY_STREAMS = {
    "call_activities": "call", "email_activities": "email",
    "email_thread_activities": "emailthread", "note_activities": "note",
    "meeting_activities": "meeting", "sms_activities": "sms",
    "whatsapp_message_activities": "whatsapp_message", "created_activities": "created",
    "lead_status_change_activities": "lead_status_change",
    "opportunity_status_change_activities": "opportunity_status_change",
    "task_completed_activities": "task_completed", "lead_merge_activities": "lead_merge",
    "form_submission_activities": "form_submission", "custom_activity_instances": "custom",
}
OTHER = ["tasks", "custom_activity_types", "activity_custom_fields"]


def test_full_sync_of_every_activity_type_and_task(emulator: CloseEmulator) -> None:
    run = run_tap(api_key_config(emulator)).assert_ok()
    for stream in [*ACTIVITY_STREAMS, *OTHER]:
        assert run.ids(stream) == emulator.truth(stream), stream
        assert emulator.truth(stream), f"the emulator has no {stream}"
        counts = Counter(r["id"] for r in run.records[stream])
        assert max(counts.values()) == 1, f"{stream} repeats ids"
    assert len({t["_type"] for t in run.records["tasks"]}) > 1, "all task types"
    assert run.ids("events") == emulator.truth("events")
    custom_cols = [k for r in run.records["custom_activity_instances"] for k in r
                   if k.startswith("custom_cf_")]
    assert custom_cols, "custom activity fields land as typed columns"


def test_second_run_emits_new_edited_and_deleted_exactly(emulator: CloseEmulator) -> None:
    first = run_tap(api_key_config(emulator)).assert_ok()
    leads = sorted(emulator.truth("leads"))
    notes = sorted(emulator.truth("note_activities"))
    calls = sorted(emulator.truth("call_activities"))
    opps = sorted(emulator.truth("opportunities"))
    tasks = sorted(emulator.truth("tasks"))
    victim = leads[5]
    victim_children = {
        "contacts": {c["id"] for c in emulator.records("contacts") if c["lead_id"] == victim},
        "opportunities": {o["id"] for o in emulator.records("opportunities")
                          if o["lead_id"] == victim},
        "tasks": {t["id"] for t in emulator.records("tasks") if t["lead_id"] == victim},
    }
    for stream in ACTIVITY_STREAMS:
        victim_children[stream] = {a["id"] for a in emulator.records(stream)
                                   if a.get("lead_id") == victim}
    survivors_note = next(n for n in notes if n not in victim_children["note_activities"])
    survivors_call = next(c for c in calls if c not in victim_children["call_activities"])
    new_note = emulator.add_activity("note", leads[1])
    emulator.update_activity(survivors_note)
    deleted_call = next(c for c in reversed(calls) if c not in victim_children["call_activities"]
                        and c != survivors_call)
    emulator.delete_activity(deleted_call)
    deleted_opp = next(o for o in opps if o not in victim_children["opportunities"])
    emulator.delete_opportunity(deleted_opp)
    deleted_task = next(t for t in tasks if t not in victim_children["tasks"])
    emulator.delete_task(deleted_task)
    emulator.delete_lead(victim)

    second = run_tap(api_key_config(emulator), state=first.state).assert_ok()

    def tombstones(stream: str) -> set[str]:
        return {r["id"] for r in second.records.get(stream, []) if r.get("_sdc_deleted_at")}

    assert tombstones("leads") == {victim}
    assert tombstones("contacts") == victim_children["contacts"]
    for row in second.records["contacts"]:  # a contact tombstone keeps the contact's fields
        if row.get("_sdc_deleted_at"):
            assert row["lead_id"] == victim and "emails" in row
    assert tombstones("opportunities") == victim_children["opportunities"] | {deleted_opp}
    assert tombstones("tasks") == victim_children["tasks"] | {deleted_task}
    assert tombstones("call_activities") == victim_children["call_activities"] | {deleted_call}
    assert second.live_ids("note_activities") == {new_note, survivors_note}
    edited = next(r for r in second.records["note_activities"] if r["id"] == survivors_note)
    truth = next(n for n in emulator.records("note_activities") if n["id"] == survivors_note)
    assert edited.get("note") == truth.get("note")
    for stream in ACTIVITY_STREAMS:
        if stream != "note_activities":
            assert not second.live_ids(stream), stream
        assert tombstones(stream) >= victim_children[stream], stream
        counts = Counter(second.ids(stream))
        assert all(n == 1 for n in Counter(r["id"] for r in second.records[stream]).values())
        del counts
    for stream in ("leads", "opportunities", "tasks"):
        assert not second.live_ids(stream), stream
    # a third run repeats nothing: no tombstone twice, no edit twice
    third = run_tap(api_key_config(emulator), state=second.state).assert_ok()
    for stream in [*ACTIVITY_STREAMS, "leads", "contacts", "opportunities", "tasks"]:
        assert not third.ids(stream), stream


def test_track_deletes_off(emulator: CloseEmulator) -> None:
    first = run_tap(api_key_config(emulator, track_deletes=False)).assert_ok()
    emulator.delete_lead(sorted(emulator.truth("leads"))[0])
    second = run_tap(api_key_config(emulator, track_deletes=False), state=first.state)
    second.assert_ok()
    assert not second.ids("leads") and not second.ids("contacts")


def test_max_skip_on_activities_and_tasks() -> None:
    with CloseEmulator(seed=8, n_leads=30, max_skip={"activity": 4, "task": 4},
                       max_limit={"activity": 3, "task": 3}) as emu:
        run = run_tap(api_key_config(emu)).assert_ok()
        for stream in [*ACTIVITY_STREAMS, "tasks"]:
            assert run.ids(stream) == emu.truth(stream), stream


def test_event_log_cursor_walk_and_settle_window() -> None:
    with CloseEmulator(seed=6, n_leads=20) as emu:
        emu.data.clock.offset = -dt.timedelta(minutes=20)  # these changes are 20 minutes old
        for lead_id in sorted(emu.truth("leads"))[:20]:
            emu.update_lead(lead_id)
            emu.update_lead(lead_id)
            emu.update_lead(lead_id)
            emu.update_lead(lead_id)
            emu.add_activity("note", lead_id)
        aged = {e["id"] for e in emu.events}
        assert len(aged) >= 2 * 50, "several pages of 50 events"
        first = run_tap(api_key_config(emu)).assert_ok()
        assert first.ids("events") == aged
        assert len(first.records["events"]) == len(aged), "no event twice"
        pages = [e for e in emu.request_log if e["path"] == "/api/v1/event/"]
        assert sum("_cursor" in e["params"] for e in pages) >= 1, "cursor paging used"
        assert all(not ("_cursor" in e["params"] and "date_updated__gte" in e["params"])
                   for e in pages), "no date filter with a cursor"
        bookmark = first.state["bookmarks"]["events"]["replication_key_value"]
        limit = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
        assert dt.datetime.fromisoformat(bookmark) <= limit

        emu.data.clock.offset = dt.timedelta(0)
        emu.update_lead(sorted(emu.truth("leads"))[-1])  # younger than 5 minutes: waits
        second = run_tap(api_key_config(emu), state=first.state).assert_ok()
        assert not second.ids("events")
