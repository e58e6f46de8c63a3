"""The emulator's control endpoint (/_emulator/): every change it offers reaches the emulator's
truth and event log, and an incremental tap run picks each one up (records and tombstones)."""

from __future__ import annotations

from typing import Any

import requests

from tests.conftest import api_key_config
from tests.emulator import CloseEmulator
from tests.harness import run_tap


def call(emu: CloseEmulator, method: str, path: str, body: dict | None = None,
         status: int = 200) -> dict[str, Any]:
    with requests.request(method, f"{emu.url}/_emulator/{path}", json=body,
                          timeout=10) as reply:
        assert reply.status_code == status, (method, path, reply.text)
        return dict(reply.json())


def test_errors_name_the_problem(emulator: CloseEmulator) -> None:
    assert "usage" in call(emulator, "GET", "nothing", status=404)
    assert "not a change" in call(emulator, "PATCH", "leads/x", status=405)["error"]
    assert "not found" in call(emulator, "DELETE", "leads/lead_nope", status=404)["error"]
    assert "not found" in call(emulator, "POST", "contacts", {"lead_id": "x"}, 404)["error"]
    assert "unknown activity kind" in call(emulator, "POST", "activities", {"type": "x"},
                                           400)["error"]
    assert "minutes" in call(emulator, "POST", "clock", {"minutes": "soon"}, 400)["error"]
    with requests.post(f"{emulator.url}/_emulator/leads", data="{", timeout=10) as reply:
        assert reply.status_code == 400
    assert not emulator.events, "a refused change logs nothing"


def test_clock_moves_ahead(emulator: CloseEmulator) -> None:
    before = call(emulator, "GET", "")["now"]
    after = call(emulator, "POST", "clock", {"minutes": 60})["now"]
    assert after[:13] > before[:13]  # an hour later (the hour field moved)
    lead = call(emulator, "POST", "leads")["id"]
    assert next(r for r in emulator.records("leads") if r["id"] == lead)["date_created"][:13] \
        == after[:13]


def test_changes_reach_an_incremental_run() -> None:
    with CloseEmulator(seed=5, n_leads=30) as emu:
        first = run_tap(api_key_config(emu)).assert_ok()
        counts = call(emu, "GET", "")["streams"]
        assert counts["leads"] == len(call(emu, "GET", "leads")["ids"]) == 30
        leads = sorted(emu.truth("leads"))
        contacts = sorted(emu.truth("contacts"))
        opps = sorted(emu.truth("opportunities"))
        notes = sorted(emu.truth("note_activities"))
        tasks = sorted(emu.truth("tasks"))
        new_lead = call(emu, "POST", "leads")["id"]
        new_contact = call(emu, "POST", "contacts", {"lead_id": new_lead})["id"]
        new_call = call(emu, "POST", "activities", {"type": "call", "lead_id": leads[0]})["id"]
        new_task = call(emu, "POST", "tasks", {"lead_id": leads[0]})["id"]
        call(emu, "PUT", f"leads/{leads[1]}")
        call(emu, "PUT", f"opportunities/{opps[0]}")
        call(emu, "PUT", f"activities/{notes[0]}")
        call(emu, "PUT", f"tasks/{tasks[0]}")
        completed = call(emu, "POST", f"tasks/{tasks[1]}/complete")["id"]
        call(emu, "DELETE", f"contacts/{contacts[0]}")
        call(emu, "DELETE", f"opportunities/{opps[1]}")
        call(emu, "DELETE", f"activities/{notes[1]}")
        call(emu, "DELETE", f"tasks/{tasks[2]}")
        call(emu, "POST", f"leads/{leads[2]}/merge", {"into": leads[3]})
        call(emu, "DELETE", f"leads/{leads[4]}")
        second = run_tap(api_key_config(emu), state=first.state).assert_ok()
        truth = {s: emu.truth(s) for s in ("leads", "contacts", "opportunities",
                                           "note_activities", "tasks")}

    dead = {s: {r["id"] for r in rows if r.get("_sdc_deleted_at")}
            for s, rows in second.records.items()}
    assert {new_lead, leads[1], leads[3]} <= second.live_ids("leads")
    assert {leads[2], leads[4]} <= dead["leads"]
    assert new_contact in second.live_ids("contacts") and contacts[0] in dead["contacts"]
    assert opps[0] in second.live_ids("opportunities") and opps[1] in dead["opportunities"]
    assert new_call in second.live_ids("call_activities")
    assert completed in second.live_ids("task_completed_activities")
    assert notes[0] in second.live_ids("note_activities") and notes[1] in dead["note_activities"]
    assert {new_task, tasks[0], tasks[1]} <= second.live_ids("tasks")
    assert tasks[2] in dead["tasks"]
    for stream, ids in truth.items():  # both runs together are the truth
        rows = {r["id"]: r for r in first.records[stream] + second.records[stream]}
        assert {i for i, r in rows.items() if not r.get("_sdc_deleted_at")} == ids, stream
