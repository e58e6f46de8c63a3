"""End-to-end: the real CLI against the emulator, compared with the emulator's truth."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.conftest import api_key_config
from tests.emulator import CloseEmulator
from tests.harness import assert_no_secrets, run_tap

CORE_STREAMS = [
    "leads", "contacts", "opportunities", "users", "lead_statuses", "opportunity_statuses",
    "pipelines", "lead_custom_fields", "contact_custom_fields", "opportunity_custom_fields",
]


def assert_truth(run, emu: CloseEmulator, streams=CORE_STREAMS) -> None:
    for stream in streams:
        assert run.ids(stream) == emu.truth(stream), stream


def test_full_sync_equals_truth(emulator: CloseEmulator) -> None:
    run = run_tap(api_key_config(emulator)).assert_ok()
    assert_truth(run, emulator)
    for stream in CORE_STREAMS:  # primary keys are unique within a full sync
        dupes = [k for k, n in Counter(r["id"] for r in run.records[stream]).items() if n > 1]
        assert not dupes, f"{stream} repeats ids {dupes[:3]}"
    assert_no_secrets(run.stdout + run.stderr, [emulator.api_key])
    assert "Traceback" not in run.stderr


def test_records_are_typed_and_normalised(emulator: CloseEmulator) -> None:
    run = run_tap(api_key_config(emulator)).assert_ok()
    lead_schema = run.schemas["leads"]["properties"]
    fields = {f["id"]: f for f in emulator.custom_fields("lead")}
    for field_id, field in fields.items():
        prop = lead_schema[f"custom_{field_id}"]
        assert prop.get("title") == field["name"]
    number = next(f for f in fields.values() if f["type"] == "number")
    assert "number" in lead_schema[f"custom_{number['id']}"]["type"]
    multi = next(f for f in fields.values() if f.get("accepts_multiple_values"))
    assert "array" in lead_schema[f"custom_{multi['id']}"]["type"]
    for lead in run.records["leads"]:
        assert not any(k.startswith("custom.") for k in lead)
        assert lead["date_updated"].endswith("+00:00")
    truth_contacts = {c["id"]: c["lead_id"] for c in emulator.records("contacts")}
    assert {c["id"]: c["lead_id"] for c in run.records["contacts"]} == truth_contacts
    # pipelines come naive from Close; the tap emits them with an offset
    assert all(p["date_created"].endswith("+00:00") for p in run.records["pipelines"])


def test_incremental_second_run_emits_only_changes(emulator: CloseEmulator) -> None:
    first = run_tap(api_key_config(emulator)).assert_ok()
    leads = sorted(emulator.truth("leads"))
    opps = sorted(emulator.truth("opportunities"))
    contact = next(c for c in emulator.records("contacts") if c["lead_id"] != leads[0])
    emulator.update_lead(leads[0])
    emulator.update_contact(contact["id"])
    new_lead = emulator.add_lead()
    emulator.update_opportunity(opps[0])
    new_opp = emulator.add_opportunity(leads[1])

    second = run_tap(api_key_config(emulator), state=first.state).assert_ok()
    changed_leads = {leads[0], contact["lead_id"], new_lead}
    assert second.ids("leads") == changed_leads
    contacts_of_changed = {c["id"] for c in emulator.records("contacts")
                           if c["lead_id"] in changed_leads}
    assert second.ids("contacts") == contacts_of_changed
    new_lead_opps = {o["id"] for o in emulator.records("opportunities") if o["lead_id"] == new_lead}
    assert second.ids("opportunities") == {opps[0], new_opp} | new_lead_opps
    # a third run with nothing changed emits no leads, contacts or opportunities
    third = run_tap(api_key_config(emulator), state=second.state).assert_ok()
    assert not third.ids("leads") and not third.ids("contacts")
    assert not third.ids("opportunities")


def test_same_minute_updates_are_not_missed(emulator: CloseEmulator) -> None:
    """The lead filter has minute precision: a change in the bookmark's minute still shows."""
    first = run_tap(api_key_config(emulator)).assert_ok()
    leads = sorted(emulator.truth("leads"))
    emulator.update_lead(leads[3])
    second = run_tap(api_key_config(emulator), state=first.state).assert_ok()
    emulator.update_lead(leads[4])  # same minute as the bookmark, almost surely
    third = run_tap(api_key_config(emulator), state=second.state).assert_ok()
    assert second.ids("leads") == {leads[3]}
    assert third.ids("leads") == {leads[4]}


def test_start_date_limits_the_first_run(emulator: CloseEmulator) -> None:
    cutoff = "2025-01-01T00:00:00+00:00"
    run = run_tap(api_key_config(emulator, start_date=cutoff)).assert_ok()
    expected = {r["id"] for r in emulator.records("leads") if r["date_updated"] >= cutoff}
    assert run.ids("leads") == expected and expected
    assert run.ids("users") == emulator.truth("users")


def test_faults_and_rate_limits_do_not_lose_data() -> None:
    with CloseEmulator(seed=3, n_leads=30, max_limit={"lead": 7, "opportunity": 5},
                       rate_limit=(15, 0.5)) as emu:
        emu.inject(["500", "429", "502", "503", "reset", "504", "truncate", "429", "500"])
        run = run_tap(api_key_config(emu)).assert_ok()
        assert_truth(run, emu)
        assert emu.stats["faults_injected"] >= 9
        assert emu.stats["rate_limited"] >= 2
        statuses = Counter(entry["status"] for entry in emu.request_log)
        assert statuses[200] > 0


def test_small_max_skip_still_extracts_everything() -> None:
    """Keyset paging keeps `_skip` below max_skip; nothing is skipped."""
    with CloseEmulator(seed=5, n_leads=60, max_skip={"lead": 6, "opportunity": 6},
                       max_limit={"lead": 5, "opportunity": 4}) as emu:
        run = run_tap(api_key_config(emu)).assert_ok()
        assert_truth(run, emu)
        skips = [int(e["params"].get("_skip", 0)) for e in emu.request_log
                 if e["path"].startswith("/api/v1/lead/")]
        assert max(skips) <= 6
        assert len(skips) > 60 / 5


def test_leads_changed_while_paging_are_not_skipped() -> None:
    """Leads updated mid-sync move to the end of the sort; keyset paging still sees all."""
    with CloseEmulator(seed=9, n_leads=50, max_limit={"lead": 5}, latency=0.02) as emu:
        import threading

        leads = sorted(emu.truth("leads"))

        def mutate() -> None:
            for lead_id in leads[:10]:
                emu.update_lead(lead_id)

        timer = threading.Timer(0.8, mutate)
        timer.start()
        run = run_tap(api_key_config(emu)).assert_ok()
        timer.join()
        assert run.ids("leads") == emu.truth("leads")


@pytest.mark.parametrize("fault", ["500", "slow"])
def test_retries_on_server_errors_and_timeouts(fault: str) -> None:
    with CloseEmulator(seed=2, n_leads=10, slow_seconds=3) as emu:
        emu.inject([fault, fault], path_prefix="/api/v1/lead/")
        run = run_tap(api_key_config(emu, request_timeout=1)).assert_ok()
        assert run.ids("leads") == emu.truth("leads")
        assert "retry" in run.stderr


def test_wrong_api_key_is_one_clear_line(emulator: CloseEmulator) -> None:
    config = api_key_config(emulator)
    config["api_key"] = "api_wrong_key_0123456789"
    run = run_tap(config)
    assert run.returncode != 0
    assert "api_key" in run.stderr and "Traceback" not in run.stderr
    assert_no_secrets(run.stderr, [config["api_key"]])
