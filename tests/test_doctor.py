"""`tap-close-doctor` against the emulator, each open behaviour switched both ways."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import api_key_config
from tests.emulator import CloseEmulator
from tests.harness import assert_no_secrets

DOCTOR = str(Path(sys.executable).with_name("tap-close-doctor"))


def doctor(config: dict[str, Any], tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """`tap-close-doctor --config config.json [args]`, as the README shows it."""
    (tmp_path / "config.json").write_text(json.dumps(config))
    return subprocess.run([DOCTOR, "--config", "config.json", *args], capture_output=True,
                          text=True, timeout=60, check=False, cwd=tmp_path)


@pytest.mark.parametrize("switched", [False, True])
def test_doctor_reports_each_behaviour(switched: bool, tmp_path: Path) -> None:
    kwargs: dict[str, Any] = {}
    if switched:
        kwargs = {"quirks": ["event_cursor_unbounded", "activity_order_ignored",
                             "event_type_bare", "event_filters_refused"],
                  "event_payloads": False, "plan_limited": ["data"], "denied": ["webhook"]}
    with CloseEmulator(seed=3, n_leads=20, event_history=100, **kwargs) as emu:
        emu.add_activity("note")
        proc = doctor(api_key_config(emu), tmp_path, "--json")
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        assert report["auth"]["works"] and report["user"]["id"] == emu.data.user_ids[0]
        assert report["organization"]["id"] == emu.organization_id
        assert report["event_log"]["access"] is True
        assert report["event_payloads_after_1h"] is not switched
        assert report["event_cursor_keeps_bound"] is not switched
        assert report["activity_type_order_by_honoured"] is not switched
        assert ("activity.note" in report["activity_event_object_types"]) is not switched
        assert ("note" in report["activity_event_object_types"]) is switched
        assert report["event_object_types_not_asked"] == []  # a big gap's read asks them all
        assert report["event_filter_object_type_action"] == ("HTTP 400" if switched
                                                             else "works")
        assert report["search_status"] == ({"lead": 402, "custom_object": 402} if switched
                                           else {"lead": 200, "custom_object": 200})
        assert report["refused_endpoints"] == ({"/webhook/": 403} if switched else {})
        assert report["rate_limits"]["GET /lead/"]["limit"] > 0
        assert report["requests"] <= 30
        assert len(emu.request_log) == report["requests"]
        assert all(e["method"] in ("GET", "POST") for e in emu.request_log)
        table = doctor(api_key_config(emu), tmp_path)
        assert "event cursor keeps date_updated bound" in table.stdout
        assert "event log object_type+action filter" in table.stdout
        assert_no_secrets(proc.stdout + proc.stderr + table.stdout, [emu.api_key])


def test_doctor_without_event_log_and_with_a_bad_key(tmp_path: Path) -> None:
    with CloseEmulator(seed=3, n_leads=5, denied=["event"]) as emu:
        report = json.loads(doctor(api_key_config(emu), tmp_path, "--json").stdout)
        assert report["event_log"] == {"access": False, "status": 403}
        assert report["refused_endpoints"] == {"/event/": 403}
        bad = doctor(api_key_config(emu, api_key="api_wrong_0123456789"), tmp_path)
        lines = bad.stderr.splitlines()  # one ERROR; the loopback api_url is one WARNING
        assert bad.returncode == 1 and [line[:6] for line in lines] == ["WARNIN", "ERROR "]
        assert "Traceback" not in bad.stderr and "not a Close host" in lines[0]
        assert_no_secrets(bad.stdout + bad.stderr, ["api_wrong_0123456789"])


@pytest.mark.parametrize("switched", [False, True])
def test_doctor_reports_search_and_list_refusals(switched: bool, tmp_path: Path) -> None:
    """Issue 20 items 3-7 as observed: Close's answer to a date-bounded search, a refused
    `_order_by` on a per-type list, a refused long `_fields`, custom-object event spellings."""
    quirks = ["search_whole_seconds", "search_range_refused", "activity_order_by_refused",
              "custom_object_event_type_other"]
    with CloseEmulator(seed=3, n_leads=20, event_history=100, max_url_bytes=1200,
                       url_limit_status=400, quirks=quirks if switched else ()) as emu:
        emu.delete_object("custom_objects", sorted(emu.truth("custom_objects"))[0])
        report = json.loads(doctor(api_key_config(emu), tmp_path, "--json").stdout)
        answer = report["search_answer"]
        if switched:
            assert answer["lead"] == "HTTP 400: Invalid filter: unsupported moment_range value"
            assert report["activity_type_order_by_honoured"].startswith("refused: Unknown")
        else:
            assert answer == {"lead": "HTTP 200", "custom_object": "HTTP 200"}
        assert report["long_fields_refusal"].startswith("HTTP 400")
        assert report["custom_object_event_object_types"] == (
            ["custom_object_instance"] if switched else ["custom_object"])
        assert "/data/search/ leads (date range)" in doctor(api_key_config(emu), tmp_path).stdout
