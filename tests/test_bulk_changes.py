"""Bulk changes and long gaps (issue 21): the real CLI against the emulator.

A bulk edit bigger than the tap's in-memory bounds (SEEN_LIMIT event keys kept in STATE)
leaves the target exact and STATE small; a gap longer than Close's 30-day event retention
heals itself: the next run re-reads each incremental stream as a new table version and sends
ACTIVATE_VERSION, so a target that honours it (MeltanoLabs target-postgres, soft delete)
ends equal to the emulator's truth, also when that run is killed and resumed.

`Target` below applies the tap's messages as such a loader does: upsert by key, tombstones
(`_sdc_deleted_at`) delete, ACTIVATE_VERSION v deletes rows of an older or no version.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from tests.conftest import api_key_config
from tests.emulator import CloseEmulator
from tests.pg import PgServer
from tests.test_loaders import loader
from tests.test_meltano import pg_server
from tests.test_reliability_support import TapProcess, selected_catalog

__all__ = ["pg_server"]  # the session fixture, shared with tests/test_meltano.py

UTC = dt.timezone.utc
ACTIVITIES = ("note_activities", "call_activities", "email_activities", "meeting_activities")
STREAMS = {"leads", "contacts", "opportunities", "tasks", *ACTIVITIES}
STATE_LIMIT = 64 * 1024
SEEN_LIMIT = 500  # tap_close.streams.changes.SEEN_LIMIT
GAP = dt.timedelta(days=31)


class Target:
    """Rows per stream as a loader that honours ACTIVATE_VERSION keeps them."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, tuple[int | None, dict]]] = {}
        self.activated: dict[str, list[int]] = {}
        self.states: list[str] = []

    def load(self, stdout: str) -> None:
        for line in stdout.splitlines():
            try:
                message = json.loads(line)
            except ValueError:
                continue  # a line cut short by a kill
            kind, stream = message.get("type"), message.get("stream")
            if kind == "RECORD":
                record = message["record"]
                self.rows.setdefault(stream, {})[record["id"]] = (message.get("version"), record)
            elif kind == "ACTIVATE_VERSION":
                version = message["version"]
                self.activated.setdefault(stream, []).append(version)
                table = self.rows.get(stream, {})
                for key in [k for k, (v, _) in table.items() if v is None or v < version]:
                    del table[key]
            elif kind == "STATE":
                self.states.append(line)

    def live(self, stream: str) -> dict[str, dict]:
        return {k: row for k, (_, row) in self.rows.get(stream, {}).items()
                if not row.get("_sdc_deleted_at")}


def when(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def assert_exact(target: Target, emu: CloseEmulator) -> None:
    """Every stream holds the truth's ids, each row at its current version (date_updated)."""
    for stream in sorted(STREAMS):
        truth = {r["id"]: r for r in emu.records(stream)}
        live = target.live(stream)
        assert set(live) == set(truth), stream
        for key, row in live.items():
            assert when(row["date_updated"]) == when(truth[key]["date_updated"]), (stream, key)


def run(emu: CloseEmulator, tmp: Path, catalog: dict, state: dict | None, name: str,
        **extra) -> tuple[str, dict, str]:
    proc = TapProcess(api_key_config(emu, **extra), tmp, state=state, catalog=catalog,
                      name=name)
    done = proc.finish()
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.state is not None
    return done.stdout, done.state, done.stderr


def full_sync(emu: CloseEmulator, tmp: Path, streams: set[str] = STREAMS,
              target: Any = None) -> tuple[dict, Any, dict]:
    """The streams' catalog, a target (this file's, or `target`: anything with `load`)
    loaded with a first full run, and its STATE."""
    catalog = selected_catalog(api_key_config(emu), tmp, streams)
    target = Target() if target is None else target
    out, state, _ = run(emu, tmp, catalog, None, "full")
    target.load(out)
    return catalog, target, state


def age_state(state: dict, by: dt.timedelta) -> dict:
    """The STATE as a run `by` earlier would have left it: every timestamp moved back."""
    def shift(match: re.Match) -> str:
        return (dt.datetime.fromisoformat(match.group(0)) - by).isoformat(timespec="microseconds")
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", shift, json.dumps(state))
    return json.loads(text)


def test_bulk_change_past_every_bound_is_exact_with_small_state(tmp_path: Path) -> None:
    with CloseEmulator(seed=71, n_leads=40) as emu:
        catalog, target, state = full_sync(emu, tmp_path)
        before = len(emu.events)
        activities = [a for s in ACTIVITIES for a in sorted(r["id"] for r in emu.records(s))]
        while len(emu.events) - before < 2 * SEEN_LIMIT:  # several edits per object
            for activity_id in activities:
                emu.update_activity(activity_id)
        for lead_id in sorted(emu.truth("leads")):
            emu.update_lead(lead_id)
        for activity_id in activities[::7]:
            emu.delete_activity(activity_id)
        for contact in emu.records("contacts")[::5]:
            emu.delete_contact(contact["id"])
        out, state, _ = run(emu, tmp_path, catalog, state, "bulk")
        target.load(out)
        assert_exact(target, emu)
        # The overlap the next run re-reads holds more than SEEN_LIMIT events: it is
        # replayed again (at least once), in date order, so the target stays exact.
        out, state, err = run(emu, tmp_path, catalog, state, "again")
        target.load(out)
        assert_exact(target, emu)
    seen = state.get("event_position", {}).get("seen")
    assert isinstance(seen, list) and len(seen) <= SEEN_LIMIT
    if "reading only the deletes" not in err:  # every event of the overlap read: > the bound
        assert seen == []
    # (else a targeted read, whose sample may stop either side of its page budget: `seen`
    # holds the keys of the events it read and replayed, up to the bound)
    sizes = [len(line) for line in target.states]
    assert max(sizes) <= STATE_LIMIT, max(sizes)


def test_small_change_is_replayed_exactly_once(tmp_path: Path) -> None:
    with CloseEmulator(seed=72, n_leads=15) as emu:
        catalog = selected_catalog(api_key_config(emu), tmp_path, STREAMS)
        _, state, _ = run(emu, tmp_path, catalog, None, "full")
        note = sorted(r["id"] for r in emu.records("note_activities"))[0]
        emu.update_activity(note)
        out, state, _ = run(emu, tmp_path, catalog, state, "edit")
        assert note in out
        assert state["event_position"]["seen"], "the overlap's keys are kept"
        out, state, _ = run(emu, tmp_path, catalog, state, "again")
        assert note not in out, "the overlap re-read emits nothing twice"


def gap_with_deletes(emu: CloseEmulator) -> set[str]:
    """Deletes 31 days ago (their events gone from Close's log since): the ids deleted."""
    emu.data.clock.offset = -GAP + dt.timedelta(hours=1)
    gone = set()
    for stream in ACTIVITIES:
        for activity in emu.records(stream)[:2]:
            emu.delete_activity(activity["id"])
            gone.add(activity["id"])
    for contact in emu.records("contacts")[:3]:
        emu.delete_contact(contact["id"])
        gone.add(contact["id"])
    for opp in emu.records("opportunities")[:2]:
        emu.delete_opportunity(opp["id"])
        gone.add(opp["id"])
    for task in emu.records("tasks")[:2]:
        emu.delete_task(task["id"])
        gone.add(task["id"])
    lead = sorted(emu.truth("leads"))[0]
    emu.delete_lead(lead)
    gone.add(lead)
    emu.data.clock.offset = dt.timedelta(0)
    return gone


def test_gap_longer_than_event_retention_heals_the_target(tmp_path: Path) -> None:
    with CloseEmulator(seed=73, n_leads=20) as emu:
        catalog, target, state = full_sync(emu, tmp_path)
        gone = gap_with_deletes(emu)
        assert gone <= {k for s in STREAMS for k in target.live(s)}
        out, state, stderr = run(emu, tmp_path, catalog, age_state(state, GAP), "healing")
        target.load(out)
        assert "re-reading it in full as table version" in stderr
        assert set(target.activated) == STREAMS
        assert_exact(target, emu)
        # The next run is incremental again: no re-read, no ACTIVATE_VERSION.
        out, state, stderr = run(emu, tmp_path, catalog, state, "after")
        assert "ACTIVATE_VERSION" not in out and "re-reading" not in stderr


@pytest.mark.parametrize("hard_delete", [False, True])
def test_gap_heals_in_meltanolabs_target_postgres(pg_server: PgServer, tmp_path: Path,
                                                  hard_delete: bool) -> None:
    """The same gap, loaded by MeltanoLabs target-postgres: the live rows of every table are
    the emulator's truth."""
    command = loader("target-postgres", "meltanolabs-target-postgres==0.8.1")
    with CloseEmulator(seed=77, n_leads=15) as emu:
        catalog = selected_catalog(api_key_config(emu), tmp_path, STREAMS)
        first, state, _ = run(emu, tmp_path, catalog, None, "full")
        gap_with_deletes(emu)
        healing, _, _ = run(emu, tmp_path, catalog, age_state(state, GAP), "healing")
        truth = {s: {r["id"]: when(r["date_updated"]) for r in emu.records(s)} for s in STREAMS}
    with pg_server.temporary_database() as db:
        config = tmp_path / "target.json"
        config.write_text(json.dumps({
            "host": pg_server.host, "port": pg_server.port, "user": pg_server.user,
            "password": pg_server.password or "", "database": db,
            "default_target_schema": "close", "load_method": "upsert",
            "add_record_metadata": True, "activate_version": True, "hard_delete": hard_delete}))
        for output in (first, healing):
            done = subprocess.run([str(command), "--config", str(config)], input=output,
                                  text=True, capture_output=True, timeout=600, check=False)
            assert done.returncode == 0, done.stderr[-3000:]
        for stream in sorted(STREAMS):
            query = sql.SQL("SELECT id, date_updated FROM {}.{} WHERE _sdc_deleted_at IS NULL"
                            ).format(sql.Identifier("close"), sql.Identifier(stream))
            live = {key: value if value.tzinfo else value.replace(tzinfo=UTC)
                    for key, value in pg_server.query(db, query)}
            assert live == truth[stream], stream


def test_kill_during_the_healing_run_and_resume_stay_exact(tmp_path: Path) -> None:
    with CloseEmulator(seed=74, n_leads=20, max_limit={"lead": 5, "activity": 10}) as emu:
        config = api_key_config(emu)
        catalog, target, state = full_sync(emu, tmp_path)
        gap_with_deletes(emu)
        aged = age_state(state, GAP)
        proc = TapProcess(config, tmp_path, state=aged, catalog=catalog, name="killed")
        seen = {"n": 0}

        def stop(line: str, _: list[str]) -> bool:  # well into the re-read of the leads
            seen["n"] += line.startswith('{"type":"RECORD"') and '"stream":"leads"' in line
            return seen["n"] >= 8
        assert proc.read_until(stop), "the run ended before the kill point"
        proc.send(signal.SIGKILL)
        killed = proc.finish()
        target.load(killed.stdout)
        resume_from = killed.state or aged
        emu.delete_contact(emu.records("contacts")[-1]["id"])  # while no run is going
        out, _, _ = run(emu, tmp_path, catalog, resume_from, "resumed")
        target.load(out)
        assert "ACTIVATE_VERSION" in out
        assert_exact(target, emu)


def test_reconcile_every_days(tmp_path: Path) -> None:
    with CloseEmulator(seed=75, n_leads=10) as emu:
        catalog = selected_catalog(api_key_config(emu), tmp_path, {"leads", "note_activities"})
        _, state, _ = run(emu, tmp_path, catalog, None, "full")
        out, state, _ = run(emu, tmp_path, catalog, state, "off")
        assert "ACTIVATE_VERSION" not in out  # off by default
        out, state, _ = run(emu, tmp_path, catalog, state, "recent", reconcile_every_days=7)
        assert "ACTIVATE_VERSION" not in out  # the first run was a full read just now
        state["bookmarks"]["note_activities"]["events"]["reconciled"] = (
            dt.datetime.now(UTC) - dt.timedelta(days=8)).isoformat()
        out, state, stderr = run(emu, tmp_path, catalog, state, "due", reconcile_every_days=7)
        activated = [json.loads(line)["stream"] for line in out.splitlines()
                     if '"ACTIVATE_VERSION"' in line]
        assert activated == ["note_activities"], activated
        assert "reconcile_every_days" in stderr
        notes = {json.loads(line)["record"]["id"] for line in out.splitlines()
                 if line.startswith('{"type":"RECORD"') and '"stream":"note_activities"' in line}
        assert notes == emu.truth("note_activities"), "re-read in full"


def test_many_edits_without_payloads_read_the_stream_in_full(tmp_path: Path) -> None:
    """Without event payloads each edit costs a GET: past rows / page size of them, the
    stream is listed in full instead (fewer requests, the same rows)."""
    with CloseEmulator(seed=76, n_leads=25, event_payloads=False) as emu:
        catalog, target, state = full_sync(emu, tmp_path)
        notes = sorted(emu.truth("note_activities"))
        calls = sorted(emu.truth("call_activities"))
        for note in notes:
            emu.update_activity(note)
        emu.update_activity(calls[0])  # one edit: one GET
        before = len(emu.request_log)
        out, state, stderr = run(emu, tmp_path, catalog, state, "bulk")
        target.load(out)
        assert_exact(target, emu)
        gets = [e["path"] for e in emu.request_log[before:] if re.search(r"/acti_\w+/$",
                                                                          e["path"])]
        assert not [p for p in gets if "/note/" in p], "no GET per note"
        assert [p for p in gets if "/call/" in p] == [f"/api/v1/activity/call/{calls[0]}/"]
        assert f"note_activities: {len(notes)} edits ({len(notes)} of them a GET each)" in stderr
