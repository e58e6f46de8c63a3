"""Advanced Filtering where Close's docs leave it open, each reading switched both ways.

Every case: a full sync, edits, an incremental run (leads go through `/data/search/`), and
every field of every stream equal to the emulator's truth (`test_field_values`).
"""

from __future__ import annotations

import pytest

from tests.conftest import api_key_config
from tests.emulator import CloseEmulator
from tests.harness import run_tap
from tests.test_field_values import full_and_incremental
from tests.test_real_api import bulk_update

SEARCH = "/api/v1/data/search/"


def name(quirks: tuple[str, ...]) -> str:
    return "+".join(quirks) or "default"


def searches(emu: CloseEmulator) -> list[int]:
    return [e["status"] for e in emu.request_log if e["path"] == SEARCH]


@pytest.mark.parametrize("quirks", [(), ("search_whole_seconds",)], ids=name)
def test_search_dates_in_whole_seconds(quirks: tuple[str, ...]) -> None:
    """Item 4: bounds go in whole seconds (lower rounded down, upper up, repeats dropped by
    id), so a Close that refuses fractions still answers the search."""
    with CloseEmulator(seed=22, n_leads=12, event_history=20, quirks=quirks,
                       max_limit={"custom_object": 200}) as emu:  # no _limit refusal
        found, runs = full_and_incremental(emu)
        assert found == [{}, {}]
        assert searches(emu) and set(searches(emu)) == {200}
        assert "/data/search/ refused" not in runs[0].stderr + runs[1].stderr


@pytest.mark.parametrize("refusal", ["range_400", "plan_402"])  # accepted: the test above
def test_refused_search_falls_back_and_says_why(refusal: str) -> None:
    """Item 5: a 400 (our query refused) falls back with one WARNING carrying Close's message;
    402/403 (no search on this plan or credential) falls back quietly (INFO)."""
    kwargs: dict = {"range_400": {"quirks": ["search_range_refused"]},
                    "plan_402": {"plan_limited": ["data"]}}[refusal]
    with CloseEmulator(seed=23, n_leads=12, event_history=20, **kwargs) as emu:
        found, runs = full_and_incremental(emu)
        assert found == [{}, {}]
        warned = [line for line in runs[1].stderr.splitlines()
                  if "/data/search/ refused" in line and "WARNING" in line]
        if refusal == "range_400":
            assert len(warned) == 2, "one per stream that searches a date range"
            assert all("unsupported moment_range value" in line for line in warned)
            assert any("leads: paging /lead/" in line for line in warned)
            assert any("custom_objects: created/updated events" in line for line in warned)
        else:
            assert not warned
        if refusal == "plan_402":
            assert "/data/search/ refused" in runs[1].stderr  # said, at INFO


@pytest.mark.parametrize(
    "quirks", [(), ("activity_order_by_refused",), ("activity_order_ignored",)], ids=name)
def test_activity_lists_without_order_by(quirks: tuple[str, ...]) -> None:
    """Item 6: `_order_by` is documented on `/activity/` only; per-type lists are read without
    it (in whatever order Close gives), so a Close that refuses it fails no stream."""
    with CloseEmulator(seed=24, n_leads=12, event_history=20, quirks=quirks,
                       max_limit={"activity": 3}) as emu:  # several pages per list
        found, _ = full_and_incremental(emu)
        assert found == [{}, {}]
        per_type = [e for e in emu.request_log if e["path"].startswith("/api/v1/activity/")
                    and e["path"].count("/") == 5]  # /api/v1/activity/<type>/ lists
        assert per_type and not any("_order_by" in e["params"] for e in per_type)


@pytest.mark.parametrize("quirks", [(), ("fields_list_limit",)], ids=name)
def test_long_fields_lists(quirks: tuple[str, ...]) -> None:
    """Item 7: an org with many custom fields. A refused `_fields` list (400 List is too
    long) is asked again with the `custom` shorthand (then without `_fields`), remembered per
    endpoint for the run; unselected keys are dropped locally. Every field still arrives."""
    with CloseEmulator(seed=25, n_leads=12, event_history=20, quirks=quirks,
                       extra_custom_fields=45, max_limit={"custom_object": 200}) as emu:
        found, runs = full_and_incremental(emu)
        assert found == [{}, {}]
        refused = [e for e in emu.request_log if e["status"] == 400]
        if quirks:
            assert refused and len(refused) <= 6, "one refusal per endpoint and level"
            assert "Close refused the _fields list" in runs[0].stderr
        else:
            assert not refused


@pytest.mark.parametrize("quirks", [(), ("custom_object_event_type_other",),
                                    ("custom_object_event_type_other", "search_range_refused")],
                         ids=name)
def test_custom_object_changes_whatever_their_event_spelling(quirks: tuple[str, ...]) -> None:
    """Item 3: later runs search custom objects by `date_updated`; deletes come from events
    routed by the `custobj_` prefix, so another `object_type` spelling misses nothing. With
    search refused, created/updated events are read by id (routed the same way)."""
    with CloseEmulator(seed=26, n_leads=12, event_history=20, quirks=quirks,
                       max_limit={"custom_object": 200}) as emu:
        found, runs = full_and_incremental(emu)
        assert found == [{}, {}]
        changed = [r for r in runs[1].records["custom_objects"]]
        assert changed and len(changed) < len(runs[0].records["custom_objects"])


@pytest.mark.parametrize("quirks", [(), ("search_whole_seconds",)], ids=name)
def test_a_whole_sequence_inside_one_second(quirks: tuple[str, ...]) -> None:
    """Item 4's edge: 40 leads updated within one second, 15 results per cursor sequence.
    Whole-second bounds cannot go past them; the tap then names the exact instant. Accepted:
    every lead arrives; refused: the run stops with one line saying why (nothing skipped)."""
    with CloseEmulator(seed=18, n_leads=30, max_limit={"lead": 5, "custom_object": 5},
                       search_cap=15, quirks=quirks) as emu:
        first = run_tap(api_key_config(emu)).assert_ok()
        bulk = bulk_update(emu, 40)
        second = run_tap(api_key_config(emu), state=first.state)
        if quirks:
            errors = [line for line in second.stderr.splitlines() if "ERROR" in line]
            assert second.returncode == 1 and "Traceback" not in second.stderr
            assert len(errors) == 1 and "stopping rather than skipping" in errors[0]
        else:
            assert second.assert_ok().ids("leads") == bulk
