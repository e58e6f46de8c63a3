"""Long URLs (issue 12 item 5): an org with many custom fields makes `_fields` long. GET URLs
stay within 2,000 bytes through Close's `x-http-method-override: GET` form, and a 414 (or a
400 about the request line) at any length switches that request to the override form. Real CLI
against an emulator with a URL limit well below the tap's longest URL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.conftest import api_key_config
from tests.emulator import CloseEmulator
from tests.test_reliability_faults import key, later_truth, merged, truth
from tests.test_reliability_support import assert_clean, emulator_secrets, run_cli

UTC = dt.timezone.utc
EXTRA_FIELDS = 25  # per object type: the lead and opportunity URLs grow past 2,000 bytes


def _overrides(emu: CloseEmulator) -> dict[str, int]:
    """Override POSTs per path, all answered 200."""
    seen: dict[str, int] = {}
    for entry in emu.request_log:
        if entry["override"]:
            assert entry["status"] == 200, entry
            seen[entry["path"]] = seen.get(entry["path"], 0) + 1
    return seen


def test_url_limit_far_below_the_longest_url(tmp_path: Path) -> None:
    with CloseEmulator(seed=7, n_leads=40, extra_custom_fields=EXTRA_FIELDS,
                       max_url_bytes=900) as emu:
        config = api_key_config(emu)
        full = run_cli(config, tmp_path, name="full").assert_ok()
        streams = sorted(full.schemas)
        assert len(streams) > 50
        for stream in streams:
            assert full.ids(stream, key(stream)) == truth(emu, stream), stream
        refused = [e for e in emu.request_log if e["status"] == 414]
        assert 1 <= len(refused) <= 3, refused  # the limit is learnt: longer URLs go as POST
        overrides = _overrides(emu)
        assert {"/api/v1/opportunity/", "/api/v1/activity/meeting/"} <= overrides.keys()
        assert_lead_shorthand(emu)  # leads name `custom`, not each field: short URLs

        leads = sorted(emu.truth("leads"))
        emu.update_lead(leads[0])
        new_lead = emu.add_lead()
        emu.update_opportunity(sorted(emu.truth("opportunities"))[0])
        emu.add_activity("meeting", leads[2])
        emu.delete_lead(leads[3])
        started = dt.datetime.now(UTC)
        incremental = run_cli(config, tmp_path, state=full.state, name="incr").assert_ok()
        for stream in streams:
            assert merged([full, incremental], stream) == later_truth(emu, stream, started), stream
        assert {leads[0], new_lead} <= incremental.ids("leads")
        assert_clean([full, incremental], emulator_secrets(emu))


def test_urls_over_2000_bytes_are_never_sent(tmp_path: Path) -> None:
    """Close's stated limit: the tap sends the override form before any refusal (here a 400
    naming the request line, as some front ends answer)."""
    with CloseEmulator(seed=8, n_leads=20, extra_custom_fields=EXTRA_FIELDS,
                       max_url_bytes=2000, url_limit_status=400) as emu:
        run = run_cli(api_key_config(emu), tmp_path).assert_ok()
        for stream in ("leads", "contacts", "opportunities", "meeting_activities"):
            assert run.ids(stream) == emu.truth(stream), stream
        # no read refused (a search POST may meet a 400 for its `_limit`, and halve it)
        assert not [e for e in emu.request_log
                    if e["status"] == 400 and (e["method"] == "GET" or e["override"])]
        assert "/api/v1/opportunity/" in _overrides(emu)
        assert_lead_shorthand(emu)


def assert_lead_shorthand(emu: CloseEmulator) -> None:
    """Every lead custom field selected: `_fields` says `custom` (Close: all custom fields)."""
    lead_reads = [e for e in emu.request_log if e["path"] == "/api/v1/lead/"
                  and "," in e["params"].get("_fields", "")]
    assert lead_reads and all("custom" in e["params"]["_fields"].split(",")
                              and "custom." not in e["params"]["_fields"] for e in lead_reads)


@pytest.mark.parametrize("limit", [900, None])
def test_without_the_override_form_fields_are_dropped(tmp_path: Path, limit: int | None) -> None:
    """A server that ignores `x-http-method-override` (405 for the POST): the request is sent
    again as a GET without `_fields`, and every record still arrives."""
    with CloseEmulator(seed=9, n_leads=20, extra_custom_fields=EXTRA_FIELDS,
                       max_url_bytes=limit, method_override=False) as emu:
        run = run_cli(api_key_config(emu), tmp_path).assert_ok()
        for stream in ("leads", "contacts", "opportunities", "meeting_activities"):
            assert run.ids(stream) == emu.truth(stream), stream
        assert "asking again without _fields" in run.stderr
        reads = [e for e in emu.request_log if e["path"] == "/api/v1/opportunity/"]
        assert any(e["status"] == 200 and "_fields" not in e["params"] for e in reads)
        assert all(len(e["params"].get("_fields", "")) < 900 for e in reads
                   if e["status"] == 200)
