"""Concurrency, export backfill and lean payloads stay exact (speed itself: `make bench`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from requests.auth import HTTPBasicAuth

from tap_close import parallel
from tap_close.client import CloseClient
from tests.conftest import api_key_config
from tests.emulator import CloseEmulator
from tests.harness import run_tap

INCREMENTAL = ["leads", "contacts", "opportunities", "call_activities", "note_activities",
               "email_activities", "tasks"]


def test_concurrent_sync_with_latency_and_faults_is_exact() -> None:
    with CloseEmulator(seed=21, n_leads=80, latency=0.01, fault_rate=0.04, fault_seed=3,
                       fault_kinds=("500", "502", "503", "reset", "truncate", "429"),
                       max_limit={"lead": 7, "opportunity": 9, "activity": 11}) as emu:
        run = run_tap(api_key_config(emu, max_concurrency=6)).assert_ok()
        for stream in [*INCREMENTAL, "users", "groups", "comments", "sequence_subscriptions"]:
            assert run.ids(stream) == emu.truth(stream), stream
        assert emu.stats["faults_injected"] > 0
        # records of each sorted stream arrive in key order (resumable STATE); activity lists
        # are read without `_order_by` (documented on /activity/ only): Close's order, each
        # once, bookmarked per finished window
        keys = [r["date_updated"] for r in run.records["leads"]]
        assert keys == sorted(keys)
        calls = [r["id"] for r in run.records["call_activities"]]
        assert len(calls) == len(set(calls))


def test_sequential_and_concurrent_runs_agree() -> None:
    with CloseEmulator(seed=22, n_leads=50, max_limit={"lead": 6, "opportunity": 6}) as emu:
        one = run_tap(api_key_config(emu, max_concurrency=1)).assert_ok()
        many = run_tap(api_key_config(emu, max_concurrency=8)).assert_ok()
        for stream in INCREMENTAL:
            assert [r["id"] for r in one.records[stream]] == [
                r["id"] for r in many.records[stream]], stream
        for key in ("replication_key_value", "sent"):
            assert one.state["bookmarks"]["leads"][key] == many.state["bookmarks"]["leads"][key]


def test_export_backfill_equals_paging() -> None:
    with CloseEmulator(seed=23, n_leads=60) as emu:
        paged = run_tap(api_key_config(emu)).assert_ok()
        exported = run_tap(api_key_config(emu, use_export_for_backfill=True)).assert_ok()
        assert any(e["path"].startswith("/api/v1/export/") for e in emu.request_log)
        for stream in ("leads", "contacts"):
            assert exported.ids(stream) == paged.ids(stream) == emu.truth(stream), stream
        lead = sorted(emu.truth("leads"))[0]
        emu.update_lead(lead)
        after = run_tap(api_key_config(emu, use_export_for_backfill=True),
                        state=exported.state).assert_ok()
        assert after.ids("leads") == {lead}, "incremental from the export's start time"


def test_export_failure_falls_back_to_paging() -> None:
    with CloseEmulator(seed=24, n_leads=20, denied=("export",)) as emu:
        run = run_tap(api_key_config(emu, use_export_for_backfill=True)).assert_ok()
        assert "Export backfill failed" in run.stderr
        assert run.ids("leads") == emu.truth("leads")


def test_lean_payloads_ask_for_selected_fields_only(emulator: CloseEmulator) -> None:
    run_tap(api_key_config(emulator)).assert_ok()
    lead_calls = [e for e in emulator.request_log if e["path"] == "/api/v1/lead/"]
    assert lead_calls and all("_fields" in e["params"] for e in lead_calls)
    assert all("_all" not in e["params"]["_fields"] for e in lead_calls)
    activity_calls = [e for e in emulator.request_log if e["path"].startswith("/api/v1/activity/")]
    assert activity_calls and all("_fields" in e["params"] for e in activity_calls)


def _pages(n: int, size: int, seen: list[int]) -> Callable[[], Iterator[list[int]]]:
    """A task of `n` pages of `size` bytes each (reported as the client reports bodies)."""
    def produce() -> Iterator[list[int]]:
        for i in range(n):
            parallel.received(size)
            seen.append(i)
            yield [i] * 3
    return produce


def test_read_ahead_budget_bounds_waiting_tasks_and_is_returned() -> None:
    budget = parallel.read_ahead
    limit = budget.limit
    budget.limit = 1000
    try:
        seen: list[int] = []
        tasks = [_pages(5, 600, seen) for _ in range(6)]
        out = parallel.ordered(iter(tasks), workers=6)
        first = next(out)
        time.sleep(0.3)  # the waiting tasks read ahead what the budget allows, then stop
        # the task being consumed runs BUFFER_PAGES + 1 ahead of the page taken; the 5 others
        # share 1000 bytes, i.e. one page of 600
        assert len(seen) <= parallel.BUFFER_PAGES + 2 + 1
        rest = list(out)
        assert [first, *rest] == [[i] * 3 for _ in range(6) for i in range(5)]
        assert budget._used == 0
        partial_run = parallel.ordered(iter([_pages(50, 600, []) for _ in range(4)]), 4)
        next(partial_run)
        partial_run.close()  # an early stop gives back what the stopped tasks held
        deadline = time.monotonic() + 5
        while budget._used and time.monotonic() < deadline:
            time.sleep(0.05)
        assert budget._used == 0
    finally:
        budget.limit = limit


def test_skip_paging_reserves_budget_before_each_request() -> None:
    """`_skip` pages read ahead wait for the read-ahead budget before their request (a task
    that fetched before reserving once held every page of a 30k-row stream at once)."""
    with CloseEmulator(seed=25, n_leads=60) as emu:
        client = CloseClient(emu.api_url, HTTPBasicAuth(emu.api_key, ""), workers=8)
        budget = parallel.read_ahead
        limit, budget.limit = budget.limit, 1  # one reservation at a time
        try:
            pages = client.raw_pages("/task/", {"_type": "all"}, page_size=5)
            rows = [*next(pages), *next(pages)]  # the first page, then the head task's
            time.sleep(0.3)
            # 2 pages read, the next task's page (it may be reserved or already consumed
            # as head) and one waiting task that got the single reservation: not all 8.
            assert emu.stats["requests"] <= 4, emu.stats["requests"]
            rows += [row for page in pages for row in page]
            assert {row["id"] for row in rows} == emu.truth("tasks")
            assert budget._used == 0
        finally:
            budget.limit = limit
