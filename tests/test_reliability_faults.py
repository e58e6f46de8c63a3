"""Reliability under every fault Close can produce, and under bad data from the API.

Real CLI against the emulator. The soak: 5 % of requests fail at random (500, 502, 503, 504,
connection reset, truncated JSON body, a response slower than `request_timeout`, 429) plus
bursts of 429 in both of Close's body shapes and with no `rate_reset` at all; a full and an
incremental sync still end with exactly the truth in every stream, and no secret leaks.
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
    )


def test_fault_soak_full_and_incremental_sync_equal_truth(tmp_path: Path) -> None:
    with soak_emulator() as emu:
        config = api_key_config(emu, request_timeout=0.6)
        emu.inject(BURST, path_prefix="/api/v1/lead/")
        emu.inject(BURST[:3], path_prefix="/api/v1/activity/")
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
        incremental = run_cli(config, tmp_path, state=full.state, name="incr").assert_ok()
        for stream in streams:
            expected = truth(emu, stream)
            if stream == "events":  # the events stream stops 5 minutes before the run start
                cutoff = (started - dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S")
                expected = {e["id"] for e in emu.events if e["date_updated"] < cutoff}
            assert merged([full, incremental], stream) == expected, stream
        assert new_lead in incremental.ids("leads")
        assert incremental.ids("leads") >= {leads[0], new_lead, leads[3]}
        assert len(incremental.ids("leads")) <= 4, "an incremental run re-reads only changes"
        figures_incr = http_summary(incremental)
        assert figures_incr["retries"] >= 1 and figures_incr["rate-limited"] >= 6
        assert emu.stats["faults_injected"] - faults_full >= 5
        assert_clean([full, incremental], emulator_secrets(emu))
        print(f"\nsoak: full {figures}, incremental {figures_incr}, "
              f"faults injected {emu.stats['faults_injected']}")
