"""A gap bigger than the event sample is read targeted (issue 21 item 3): the real CLI
against the emulator, with small event pages (10) so that a few hundred events pass the
sample. Only deletes, merges and the edits streams replay are read (object_type+action
queries); the target still equals the emulator's truth, ids and field values, under each
reading of the event log's spellings and filters.
"""

from __future__ import annotations

import json
import math
import signal
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.busy import Target, differences
from tests.conftest import api_key_config
from tests.emulator import CloseEmulator
from tests.test_bulk_changes import full_sync, run
from tests.test_reliability_support import TapProcess

ACTIVITIES = ("note_activities", "call_activities", "email_activities", "meeting_activities")
STREAMS = {"leads", "contacts", "opportunities", "tasks", *ACTIVITIES}
EVENT_PAGE = 10  # the emulator's /event/ _limit cap here
SWITCHED = "reading only the deletes, merges and edits the streams replay"


def event_requests(emu: CloseEmulator, since: int) -> list[dict]:
    return [e for e in emu.request_log[since:] if e["path"] == "/api/v1/event/"]


def ids(emu: CloseEmulator, stream: str) -> list[str]:
    return sorted(emu.truth(stream))


def lead_edits(emu: CloseEmulator, times: int) -> None:
    for _ in range(times):
        for lead_id in ids(emu, "leads"):
            emu.update_lead(lead_id)


def bulk_change(emu: CloseEmulator, noise_last: bool = False) -> None:
    """Many lead edits (no stream replays them), every note edited 6 times (past its cap:
    read in full), two calls edited (replayed), deletes of every kind, a merge. With
    `noise_last` the lead edits come last: the sample (newest first) sees no activity."""
    leads = ids(emu, "leads")
    lead_edits(emu, 0 if noise_last else 80)
    for _ in range(6):
        for note in ids(emu, "note_activities"):
            emu.update_activity(note)
    for call in ids(emu, "call_activities")[:2]:
        emu.update_activity(call)
    for stream in ("email_activities", "meeting_activities", "call_activities"):
        for activity in ids(emu, stream)[-2:]:
            emu.delete_activity(activity)
    for contact in ids(emu, "contacts")[:3]:
        emu.delete_contact(contact)
    emu.update_contact(ids(emu, "contacts")[-1])
    emu.delete_opportunity(ids(emu, "opportunities")[0])
    emu.delete_task(ids(emu, "tasks")[0])
    emu.merge_leads(leads[1], leads[2])
    emu.delete_lead(leads[3])
    lead_edits(emu, 80 if noise_last else 0)


def assert_exact(target: Target, emu: CloseEmulator) -> None:
    assert differences(target, emu, datetime.now(timezone.utc), sorted(STREAMS)) == {}


@pytest.mark.parametrize("quirks", [(), ("event_type_bare",), ("event_filter_unknown_refused",),
                                    ("event_type_bare", "event_filter_unknown_refused")])
def test_bulk_gap_is_read_targeted_and_exact(tmp_path: Path, quirks: tuple[str, ...]) -> None:
    with CloseEmulator(seed=81, n_leads=30, max_limit={"event": EVENT_PAGE},
                       quirks=quirks) as emu:
        catalog, target, state = full_sync(emu, tmp_path, STREAMS, Target())
        before_events, before = len(emu.events), len(emu.request_log)
        refused = "event_filter_unknown_refused" in quirks
        bulk_change(emu, noise_last=refused)  # the sample learns no spelling: all are asked
        out, state, stderr = run(emu, tmp_path, catalog, state, "bulk")
        target.load(out)
        assert SWITCHED in stderr
        assert "note_activities: over" in stderr and "call_activities: over" not in stderr
        assert_exact(target, emu)
        unfiltered = math.ceil((len(emu.events) - before_events) / EVENT_PAGE)
        requests = event_requests(emu, before)
        assert len(requests) < unfiltered / 2, (len(requests), unfiltered)
        assert not [e for e in requests if e["params"].get("object_type") == "lead"
                    and e["params"].get("action") == "updated"], "no lead edit is read"
        if refused:
            assert "Close knows no object_type" in stderr
        assert len(json.dumps(state)) < 64 * 1024
        # The next run starts from there: nothing lost, nothing new.
        out, state, _ = run(emu, tmp_path, catalog, state, "again")
        target.load(out)
        assert_exact(target, emu)


def test_targeted_gap_without_event_payloads_is_exact(tmp_path: Path) -> None:
    """A non-admin key: events carry no `data`/`previous_data`. Edits cost a GET each (the
    two call edits: more than listing the calls), the notes past their cap are read in full,
    deletes are bare tombstones."""
    with CloseEmulator(seed=85, n_leads=30, max_limit={"event": EVENT_PAGE},
                       event_payloads=False) as emu:
        catalog, target, state = full_sync(emu, tmp_path, STREAMS, Target())
        before = len(emu.request_log)
        bulk_change(emu)
        out, state, stderr = run(emu, tmp_path, catalog, state, "bulk")
        target.load(out)
        assert SWITCHED in stderr
        assert_exact(target, emu)
        # Two GETs cost more than listing the few calls: read in full (either is exact).
        assert "call_activities: 2 edits (2 of them a GET each)" in stderr, stderr[-3000:]
        assert not [e for e in emu.request_log[before:]
                    if e["path"].startswith("/api/v1/activity/call/acti_")]
        out, state, _ = run(emu, tmp_path, catalog, state, "again")
        target.load(out)
        assert_exact(target, emu)


def test_kill_during_a_targeted_run_and_resume_stay_exact(tmp_path: Path) -> None:
    with CloseEmulator(seed=84, n_leads=30, max_limit={"event": EVENT_PAGE}) as emu:
        config = api_key_config(emu)
        catalog, target, state = full_sync(emu, tmp_path, STREAMS, Target())
        bulk_change(emu)
        proc = TapProcess(config, tmp_path, state=state, catalog=catalog, name="killed")
        assert proc.read_until(lambda line, _: '"stream":"note_activities"' in line
                               and line.startswith('{"type":"RECORD"')), "ended before"
        proc.send(signal.SIGKILL)
        killed = proc.finish()
        target.load(killed.stdout)
        assert SWITCHED in killed.stderr
        emu.delete_activity(ids(emu, "note_activities")[0])  # while no run is going
        out, _, _ = run(emu, tmp_path, catalog, killed.state or state, "resumed")
        target.load(out)
        assert_exact(target, emu)


def test_refused_filters_fall_back_to_every_event(tmp_path: Path) -> None:
    with CloseEmulator(seed=82, n_leads=30, max_limit={"event": EVENT_PAGE},
                       quirks=("event_filters_refused",)) as emu:
        catalog, target, state = full_sync(emu, tmp_path, STREAMS, Target())
        bulk_change(emu)
        out, state, stderr = run(emu, tmp_path, catalog, state, "bulk")
        target.load(out)
        assert SWITCHED in stderr
        assert "targeted reads failed (every object_type+action read refused)" in stderr
        assert "Traceback" not in stderr
        assert_exact(target, emu)


def test_lead_only_bulk_edit_reads_few_events_and_lists_no_activity(tmp_path: Path) -> None:
    with CloseEmulator(seed=83, n_leads=30, max_limit={"event": EVENT_PAGE}) as emu:
        catalog, target, state = full_sync(emu, tmp_path, STREAMS, Target())
        before_events, before = len(emu.events), len(emu.request_log)
        lead_edits(emu, 60)
        edits = len(emu.events) - before_events
        out, state, stderr = run(emu, tmp_path, catalog, state, "leads")
        target.load(out)
        assert SWITCHED in stderr
        assert "reading it in full" not in stderr and "is read in full" not in stderr
        since = state["bookmarks"]["note_activities"]["replication_key_value"][:4]
        listed = [e for e in emu.request_log[before:] if e["path"].startswith("/api/v1/activity/")
                  and not str(e["params"].get("date_created__gte", "")).startswith(since)]
        assert not listed, "no activity is read from its beginning"
        requests = event_requests(emu, before)
        assert len(requests) < edits / EVENT_PAGE / 2, (len(requests), edits)
        assert_exact(target, emu)
