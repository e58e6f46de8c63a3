"""Reliability under every fault Close can produce, and under bad data from the API.

Real CLI against the emulator, replying gzip + chunked (as compressing front ends do). The soak:
5 % of requests fail at random (500, 502, 503, 504, connection reset, truncated body, a
response slower than `request_timeout`, 429) plus bursts of 429 in both of Close's body
shapes and with no `rate_reset` at all; a full and an incremental sync still end with
exactly the truth in every stream, and no secret leaks.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from tests.conftest import api_key_config
from tests.emulator import FAULT_KINDS, CloseEmulator
from tests.harness import TapRun
from tests.test_reliability_support import (
    assert_clean,
    assert_conforms,
    emulator_secrets,
    http_summary,
    run_cli,
)

UTC = dt.timezone.utc
BURST = ["429", "429", "429bare", "429", "429bare", "429bare"]


def truth(emu: CloseEmulator, stream: str) -> set[str]:
    if stream == "send_as":  # Close shows only associations involving the caller
        me = emu.data.user_ids[0]
        return {r["id"] for r in emu.records(stream)
                if me in (r["allowing_user_id"], r["allowed_user_id"])}
    return emu.truth(stream)


def later_truth(emu: CloseEmulator, stream: str, started: dt.datetime) -> set[str]:
    """The truth for a run that started at `started` (the events stream stops 5 minutes
    before the run start)."""
    if stream != "events":
        return truth(emu, stream)
    cutoff = (started - dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S")
    return {e["id"] for e in emu.events if e["date_updated"] < cutoff}


def key(stream: str) -> str:
    return "email" if stream == "unsubscribed_emails" else "id"


def merged(runs: list[TapRun], stream: str) -> set[str]:
    """Ids a target holds after loading the runs in order (tombstones delete)."""
    held: set[str] = set()
    for run in runs:
        for record in run.records.get(stream, []):
            if record.get("_sdc_deleted_at"):
                held.discard(record[key(stream)])
            else:
                held.add(record[key(stream)])
    return held


def soak_emulator() -> CloseEmulator:
    return CloseEmulator(
        seed=21, n_leads=50, fault_rate=0.05, fault_seed=5, fault_kinds=FAULT_KINDS,
        slow_seconds=1.2, max_limit={"lead": 10, "opportunity": 10, "activity": 20, "task": 25},
        compress=True,  # gzip + chunked replies: truncation hits chunked bodies too
    )


def test_fault_soak_full_and_incremental_sync_equal_truth(tmp_path: Path) -> None:
    with soak_emulator() as emu:
        config = api_key_config(emu, request_timeout=0.6)
        emu.inject(BURST, path_prefix="/api/v1/lead/")
        emu.inject(BURST[:3], path_prefix="/api/v1/activity/")
        retried = {"user": "500", "status": "reset", "pipeline": "502", "role": "503",
                   "webhook": "504"}  # retries whatever the random mix
        for where, kind in retried.items():
            emu.inject([kind], path_prefix=f"/api/v1/{where}/")
        full = run_cli(config, tmp_path, name="full").assert_ok()
        streams = sorted(full.schemas)
        assert len(streams) > 50
        for stream in streams:
            assert full.ids(stream, key(stream)) == truth(emu, stream), stream
        figures = http_summary(full)
        assert figures["retries"] >= 5 and figures["rate-limited"] >= 9, figures
        faults_full = emu.stats["faults_injected"]

        # Changes between the runs, then an incremental sync under the same faults.
        leads = sorted(emu.truth("leads"))
        emu.update_lead(leads[0])
        new_lead = emu.add_lead()
        emu.update_opportunity(sorted(emu.truth("opportunities"))[0])
        emu.update_activity(sorted(emu.truth("note_activities"))[0])
        emu.add_activity("call", leads[2])
        emu.delete_activity(sorted(emu.truth("email_activities"))[0])
        emu.delete_lead(leads[3])
        emu.update_task(sorted(emu.truth("tasks"))[0])
        emu.delete_object("roles", sorted(emu.truth("roles"))[0])
        started = dt.datetime.now(UTC)
        emu.inject(BURST, path_prefix="/api/v1/opportunity/")
        emu.inject(BURST[:3], path_prefix="/api/v1/event/")
        emu.inject(["500", "reset"], path_prefix="/api/v1/user/")  # retried whatever the mix
        incremental = run_cli(config, tmp_path, state=full.state, name="incr").assert_ok()
        for stream in streams:
            assert merged([full, incremental], stream) == later_truth(emu, stream, started), stream
        assert new_lead in incremental.ids("leads")
        assert incremental.ids("leads") >= {leads[0], new_lead, leads[3]}
        assert len(incremental.ids("leads")) <= 4, "an incremental run re-reads only changes"
        figures_incr = http_summary(incremental)
        assert figures_incr["retries"] >= 1 and figures_incr["rate-limited"] >= 6
        assert emu.stats["faults_injected"] - faults_full >= 5
        assert_clean([full, incremental], emulator_secrets(emu))
        print(f"\nsoak: full {figures}, incremental {figures_incr}, "
              f"faults injected {emu.stats['faults_injected']}")


def _event(when: dt.datetime, object_type: str, action: str, payload: dict) -> dict:
    stamp = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return {"id": f"ev_bad{object_type.replace('.', '')}{action}", "date_created": stamp,
            "date_updated": stamp, "object_type": object_type, "object_id": payload["id"],
            "action": action, "lead_id": None, "user_id": None, "request_id": None,
            "changed_fields": None, "meta": None, "data": payload, "previous_data": None,
            "zz_unknown_event_field": [1, {"a": None}]}


def _bookmarks(state: dict) -> dict[str, str]:
    return {name: value["replication_key_value"] for name, value in state["bookmarks"].items()
            if value.get("replication_key_value")}


def test_bad_data_keeps_the_sync_going_typed_and_bookmarks_sane(tmp_path: Path) -> None:
    """Nulls, missing keys, unknown fields and activity types, mixed timestamp forms and
    dates in the future: the sync goes on, records match the SCHEMA, bookmarks stay <= now."""
    with CloseEmulator(seed=31, n_leads=20) as emu:
        now = dt.datetime.now(UTC)
        future = (now + dt.timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
        leads = sorted(emu.records("leads"), key=lambda r: r["date_updated"])
        cf = next(k for k in leads[0] if k.startswith("custom."))
        emu.tamper("leads", leads[0]["id"], {
            "display_name": None, "status_id": None, "addresses": None, cf: None,
            "zz_unknown": {"nested": [1, None]},
            "date_created": leads[0]["date_created"][:26],  # naive
        }, drop=["description", "url", "created_by_name"])
        emu.tamper("leads", leads[1]["id"], {"date_updated": leads[1]["date_updated"][:26]})
        shifted = dt.datetime.fromisoformat(leads[2]["date_created"]).astimezone(
            dt.timezone(dt.timedelta(hours=5, minutes=30)))
        emu.tamper("leads", leads[2]["id"], {"date_created": shifted.isoformat()})
        emu.tamper("leads", leads[-1]["id"], {"date_updated": future})
        contact = emu.records("contacts")[0]
        emu.tamper("contacts", contact["id"], {"title": None, "emails": None,
                                               "date_created": contact["date_created"][:19]})
        opps = sorted(emu.records("opportunities"), key=lambda r: r["date_updated"])
        emu.tamper("opportunities", opps[0]["id"], {"value": None, "status_id": None,
                                                    "zz_new": 1}, drop=["lead_name"])
        emu.tamper("opportunities", opps[-1]["id"], {"date_updated": future})
        calls = sorted(emu.records("call_activities"), key=lambda r: r["date_created"])
        naive_call = {"duration": None, "user_id": None,
                      "date_created": calls[0]["date_created"][:26]}
        emu.tamper("call_activities", calls[0]["id"], naive_call, drop=["note_html"])
        emu.tamper("call_activities", calls[-1]["id"], {"date_created": future})
        task = emu.records("tasks")[0]
        emu.tamper("tasks", task["id"], {"text": None, "zz": True}, drop=["assigned_to_name"])
        role = emu.records("roles")[0]
        emu.tamper("roles", role["id"], {"name": None, "zz": "x"})
        with emu.data.lock:  # an event log entry for an activity type the tap does not know
            emu.data.events.insert(0, _event(now - dt.timedelta(hours=1), "activity.hologram",
                                             "updated", {"id": "acti_holo1", "_type": "Hologram"}))

        first = run_cli(api_key_config(emu), tmp_path, name="first").assert_ok()
        checked = assert_conforms(first)
        assert checked > 300
        for stream in ("leads", "contacts", "opportunities", "call_activities", "tasks", "roles",
                       "events"):
            assert first.ids(stream) == emu.truth(stream), stream
        emitted = {r["id"]: r for r in first.records["leads"]}
        assert "zz_unknown" not in emitted[leads[0]["id"]]  # not in the schema: dropped
        assert emitted[leads[2]["id"]]["date_created"] == leads[2]["date_created"]  # as UTC
        assert emitted[leads[0]["id"]]["date_created"] == leads[0]["date_created"]
        after = dt.datetime.now(UTC)
        for stream, value in _bookmarks(first.state).items():
            assert dt.datetime.fromisoformat(value) <= after, f"{stream} bookmark {value}"

        # the next run: nothing lost, the future-dated objects are simply read again
        emu.update_lead(leads[5]["id"])
        with emu.data.lock:
            emu.data.events.append(_event(dt.datetime.now(UTC), "activity.hologram", "deleted",
                                          {"id": "acti_holo2", "_type": "Hologram"}))
        second = run_cli(api_key_config(emu), tmp_path, state=first.state, name="second")
        second.assert_ok()
        assert_conforms(second)
        assert leads[5]["id"] in second.ids("leads")
        assert second.ids("leads") <= {leads[5]["id"], leads[-1]["id"]}
        after = dt.datetime.now(UTC)
        for stream, value in _bookmarks(second.state).items():
            assert dt.datetime.fromisoformat(value) <= after, f"{stream} bookmark {value}"
        assert_clean([first, second], emulator_secrets(emu))


def test_nested_timestamps_are_utc_date_times(tmp_path: Path) -> None:
    with CloseEmulator(seed=7, n_leads=20) as emu:
        run = run_cli(api_key_config(emu), tmp_path).assert_ok()
        assert_conforms(run, nested_datetimes=True)
