"""Every field Close documents for an endpoint is a property of its stream, and arrives.

`fixtures/documented_fields.json` holds, per stream, the field names of its list endpoint's
entry in Close's OpenAPI description (the `_fields` parameter's default list and the 200
response's item properties), copied as data: tests never read files outside the repository.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tap_close.tap import STREAM_TYPES
from tests.conftest import api_key_config
from tests.emulator import CloseEmulator
from tests.fieldcheck import differences
from tests.harness import run_tap

DOCUMENTED = json.loads(Path(__file__).with_name("fixtures").joinpath(
    "documented_fields.json").read_text())["streams"]
SCHEMAS = {stream.name: stream.static_schema for stream in STREAM_TYPES}


@pytest.mark.parametrize("stream", sorted(DOCUMENTED))
def test_documented_fields_are_declared(stream: str) -> None:
    missing = [f for f in DOCUMENTED[stream]["fields"] if f not in SCHEMAS[stream]["properties"]]
    assert not missing, f"{stream} ({DOCUMENTED[stream]['path']}) lacks {missing}"


def test_connected_accounts_arrive_with_every_documented_field() -> None:
    fields = DOCUMENTED["connected_accounts"]["fields"]
    assert len(fields) == 26
    with CloseEmulator(seed=5, n_leads=3) as emu:
        run = run_tap(api_key_config(emu)).assert_ok()
        truth = {a["id"]: a for a in emu.records("connected_accounts")}
    got = {r["id"]: r for r in run.records["connected_accounts"]}
    assert set(got) == set(truth)
    for account_id, account in truth.items():
        assert set(fields) <= set(account), "the emulator serves the documented defaults"
        schema = run.schemas["connected_accounts"]
        assert not differences(schema, account, got[account_id])


@pytest.mark.parametrize("stream", sorted(DOCUMENTED))
def test_the_emulator_serves_the_documented_fields(stream: str) -> None:
    """So that `test_field_values` compares each of them with what the tap sends."""
    rows = CloseEmulator(seed=21, n_leads=12).records(stream)
    served = set().union(*(set(r) for r in rows))
    assert rows and not [f for f in DOCUMENTED[stream]["fields"] if f not in served]
