"""Bad settings: one clear line naming the setting, non-zero exit, no secret, no traceback."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.emulator import CloseEmulator
from tests.harness import TAP, run_tap

SECRET = "sk_live_SHOULD_NEVER_APPEAR_123"

CASES = {
    "no auth": ({}, "No credentials"),
    "both methods": ({"api_key": SECRET, "client_id": "c", "client_secret": SECRET,
                      "refresh_token": SECRET}, "not both"),
    "partial oauth": ({"client_id": "c", "client_secret": SECRET}, "missing refresh_token"),
    "only refresh token": ({"refresh_token": SECRET}, "missing client_id, client_secret"),
    "empty api key": ({"api_key": "  "}, "No credentials"),
    "secret wrong type": ({"api_key": 12345678901234}, "api_key must be a string"),
    "bad start_date": ({"api_key": SECRET, "start_date": "yesterday"}, "start_date"),
    "future start_date": ({"api_key": SECRET, "start_date": "2999-01-01"}, "start_date"),
    "api_url not http": ({"api_key": SECRET, "api_url": "ftp://x"}, "api_url"),
    "token url not http": ({"client_id": "c", "client_secret": SECRET, "refresh_token": SECRET,
                            "oauth_token_url": "nope"}, "oauth_token_url"),
    "zero timeout": ({"api_key": SECRET, "request_timeout": 0}, "request_timeout"),
    "negative timeout": ({"api_key": SECRET, "request_timeout": -5}, "request_timeout"),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("mode", [[], ["--discover"], ["--test"]])
def test_bad_config(case: str, mode: list[str]) -> None:
    config, expected = CASES[case]
    run = run_tap(config, *mode, timeout=60)
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, run.stderr
    assert expected in errors[0]
    assert "Traceback" not in run.stderr
    assert SECRET not in run.stderr + run.stdout
    assert "12345678901234" not in run.stderr


def test_about_needs_no_config() -> None:
    for fmt in ([], ["--format=json"], ["--format=markdown"]):
        out = subprocess.run([TAP, "--about", *fmt], capture_output=True,
                             text=True, timeout=60, check=False)
        assert out.returncode == 0 and "api_key" in out.stdout
    about = json.loads(subprocess.run([TAP, "--about", "--format=json"], capture_output=True,
                                      text=True, timeout=60, check=True).stdout)
    assert about["settings"]["properties"]["api_key"]["secret"] is True


def test_discover_and_env_config(emulator: CloseEmulator) -> None:
    env = {"TAP_CLOSE_API_KEY": emulator.api_key, "TAP_CLOSE_API_URL": emulator.api_url}
    out = subprocess.run([TAP, "--config", "ENV", "--discover"], capture_output=True, text=True,
                         timeout=60, check=False, env={**env, "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    catalog = json.loads(out.stdout)
    names = {s["tap_stream_id"] for s in catalog["streams"]}
    assert {"leads", "contacts", "opportunities", "pipelines"} <= names
    # a catalog selecting only opportunities syncs only opportunities
    for entry in catalog["streams"]:
        selected = entry["tap_stream_id"] == "opportunities"
        for md in entry["metadata"]:
            if md["breadcrumb"] == []:
                md["metadata"]["selected"] = selected
    run = run_tap(None, catalog=catalog, env=env).assert_ok()
    assert set(run.records) == {"opportunities"}
    assert run.ids("opportunities") == emulator.truth("opportunities")


def test_contacts_alone_still_advance_the_leads_bookmark(emulator: CloseEmulator) -> None:
    env = {"TAP_CLOSE_API_KEY": emulator.api_key, "TAP_CLOSE_API_URL": emulator.api_url}
    catalog = json.loads(run_tap(None, "--discover", env=env).stdout)
    for entry in catalog["streams"]:
        for md in entry["metadata"]:
            if md["breadcrumb"] == []:
                md["metadata"]["selected"] = entry["tap_stream_id"] == "contacts"
    first = run_tap(None, catalog=catalog, env=env).assert_ok()
    assert set(first.records) == {"contacts"}
    assert first.ids("contacts") == emulator.truth("contacts")
    contact = emulator.records("contacts")[0]
    emulator.update_contact(contact["id"])
    second = run_tap(None, catalog=catalog, env=env, state=first.state).assert_ok()
    siblings = {c["id"] for c in emulator.records("contacts") if c["lead_id"] == contact["lead_id"]}
    assert second.ids("contacts") == siblings


def test_connection_test_mode(emulator: CloseEmulator) -> None:
    run = run_tap({"api_key": emulator.api_key, "api_url": emulator.api_url}, "--test")
    assert run.returncode == 0, run.stderr


def test_deselected_property_is_not_emitted_nor_requested(emulator: CloseEmulator) -> None:
    env = {"TAP_CLOSE_API_KEY": emulator.api_key, "TAP_CLOSE_API_URL": emulator.api_url}
    catalog = json.loads(run_tap(None, "--discover", env=env).stdout)
    for entry in catalog["streams"]:
        for md in entry["metadata"]:
            if md["breadcrumb"] == []:
                md["metadata"]["selected"] = entry["tap_stream_id"] == "leads"
            elif entry["tap_stream_id"] == "leads" and md["breadcrumb"][-1] == "description":
                md["metadata"]["selected"] = False
    run = run_tap(None, catalog=catalog, env=env).assert_ok()
    assert run.ids("leads") == emulator.truth("leads")
    assert all("description" not in r for r in run.records["leads"])
    fields = [e["params"]["_fields"] for e in emulator.request_log if e["path"] == "/api/v1/lead/"]
    assert fields and all("description" not in f.split(",") for f in fields)
