"""SDK features for every stream, contacts included: BATCH, --test, selection, metrics,
settings, the input catalog, stream maps; the real CLI against the emulator."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from urllib.parse import urlparse

from tests.conftest import api_key_config
from tests.emulator import CloseEmulator
from tests.emulator.data import STREAMS
from tests.harness import run_tap
from tests.test_reliability_faults import truth

#: Streams the tap reads up to 5 minutes before the run (Close's advice): not compared.
NOT_COMPARED = {"events"}


def messages(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith('{"type"')]


def metric_counts(stderr: str) -> dict[str, int]:
    """record_count per stream from the SDK's METRIC log lines."""
    counts: dict[str, int] = {}
    for line in stderr.splitlines():
        if "METRIC:" in line and '"record_count"' in line:
            point = json.loads(line.split("METRIC:", 1)[1])
            stream = point["tags"]["stream"]
            counts[stream] = counts.get(stream, 0) + point["value"]
    return counts


def select_only(catalog: dict, *names: str) -> dict:
    for entry in catalog["streams"]:
        for md in entry["metadata"]:
            if md["breadcrumb"] == []:
                md["metadata"]["selected"] = entry["tap_stream_id"] in names
    return catalog


def discover(emu: CloseEmulator) -> dict:
    return json.loads(run_tap(api_key_config(emu), "--discover").assert_ok().stdout)


def test_batch_jsonl_for_every_stream(emulator: CloseEmulator, tmp_path: Path) -> None:
    batch = {"encoding": {"format": "jsonl", "compression": "gzip"},
             "storage": {"root": f"file://{tmp_path}", "prefix": "batch-"}}
    run = run_tap(api_key_config(emulator, batch_config=batch)).assert_ok()
    sent = messages(run.stdout)
    assert not [m for m in sent if m["type"] == "RECORD"]
    rows: dict[str, list[dict]] = {}
    for message in sent:
        if message["type"] == "BATCH":
            for url in message["manifest"]:
                with gzip.open(urlparse(url).path, "rt") as lines:
                    rows.setdefault(message["stream"], []).extend(map(json.loads, lines))
    keys = {m["stream"]: m["key_properties"][0] for m in sent if m["type"] == "SCHEMA"}
    assert len(keys) == 57 and "contacts" in rows
    for stream in set(keys) & set(STREAMS) - NOT_COMPARED:
        assert {r[keys[stream]] for r in rows.get(stream, [])} == truth(emulator, stream), stream


def test_test_mode_limits_every_stream_to_one_record(emulator: CloseEmulator) -> None:
    run = run_tap(api_key_config(emulator), "--test=all").assert_ok()
    counts = {s: len(r) for s, r in run.records.items()}
    assert counts["leads"] == 1 and set(counts.values()) == {1}, counts
    # contacts come from the one lead read: one of its contacts, if it has any
    lead = run.records["leads"][0]["id"]
    has_contacts = any(c["lead_id"] == lead for c in emulator.records("contacts"))
    assert counts.get("contacts", 0) == int(has_contacts)
    assert "contacts" in run.schemas


def test_contacts_alone_report_their_metrics(emulator: CloseEmulator) -> None:
    catalog = select_only(discover(emulator), "contacts")
    run = run_tap(api_key_config(emulator), catalog=catalog).assert_ok()
    assert set(run.records) == {"contacts"}
    assert run.ids("contacts") == emulator.truth("contacts")
    assert metric_counts(run.stderr)["contacts"] == len(emulator.truth("contacts"))
    assert list(run.schemas) == ["contacts"]


def test_catalog_logs_and_readme_agree_on_replication(emulator: CloseEmulator) -> None:
    catalog = {e["tap_stream_id"]: e for e in discover(emulator)["streams"]}
    methods = {name: entry["replication_method"] for name, entry in catalog.items()}
    assert methods["contacts"] == methods["custom_objects"] == "INCREMENTAL"
    readme = Path(__file__).resolve().parents[1].joinpath("README.md").read_text()
    for name in ("contacts", "custom_objects"):
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{name}`"))
        assert "incremental" in row.split("|")[4], row
    run = run_tap(api_key_config(emulator)).assert_ok()
    started = re.findall(r"Starting incremental sync of '(\w+)'", run.stderr)
    incremental = {name for name, method in methods.items() if method == "INCREMENTAL"}
    assert sorted(started) == sorted(incremental), "each incremental stream logs it once"


def test_unknown_and_sdk_settings(emulator: CloseEmulator) -> None:
    """SDK settings are accepted silently; an unknown key is one WARNING naming it."""
    config = api_key_config(
        emulator, emit_activate_version_messages=False, faker_config={"seed": 1},
        flattening_enabled=False, stream_map_config={}, apikey="x", start_dat="2024-01-01")
    run = run_tap(config).assert_ok()
    warnings = [line for line in run.stderr.splitlines() if "Unknown setting" in line]
    assert len(warnings) == 2 and "'apikey'" in warnings[0] and "'start_dat'" in warnings[1]
    assert "WARNING" in warnings[0]
    assert not [m for m in messages(run.stdout) if m["type"] == "ACTIVATE_VERSION"]
    assert run.ids("leads") == emulator.truth("leads")


def test_activate_version_only_for_full_table_streams(emulator: CloseEmulator) -> None:
    run = run_tap(api_key_config(emulator)).assert_ok()
    activated = {m["stream"] for m in messages(run.stdout) if m["type"] == "ACTIVATE_VERSION"}
    assert "users" in activated
    assert not activated & {"leads", "contacts", "opportunities", "custom_objects"}


def test_input_catalog_schema_drops_properties(emulator: CloseEmulator) -> None:
    """A property removed from the catalog's schema is in no RECORD (nor asked for)."""
    catalog = select_only(discover(emulator), "leads", "contacts", "opportunities")
    entries = {e["tap_stream_id"]: e for e in catalog["streams"]}
    contact_field = next(name for name in entries["contacts"]["schema"]["properties"]
                         if name.startswith("custom_cf_"))
    dropped = {"leads": {"description", "contacts"}, "contacts": {contact_field, "title"},
               "opportunities": {"note"}}
    for stream, names in dropped.items():
        for name in names:
            del entries[stream]["schema"]["properties"][name]
    run = run_tap(api_key_config(emulator), catalog=catalog).assert_ok()
    for stream, names in dropped.items():
        assert run.ids(stream) == emulator.truth(stream), stream
        assert not names & set(run.schemas[stream]["properties"]), stream
        assert all(not names & set(r) for r in run.records[stream]), stream
    fields = [e["params"]["_fields"] for e in emulator.request_log if e["path"] == "/api/v1/lead/"]
    assert fields and all("description" not in f.split(",") for f in fields)


def test_stream_map_with_faker_and_flattening(emulator: CloseEmulator) -> None:
    maps = {"contacts": {"email_fake": "fake.email()", "emails": "__NULL__"}}
    config = api_key_config(emulator, stream_maps=maps, faker_config={"seed": 3},
                            flattening_enabled=True, flattening_max_depth=1)
    catalog = discover(emulator)  # leads.primary_email (an object) is opt-in: select it
    leads_entry = next(e for e in catalog["streams"] if e["tap_stream_id"] == "leads")
    for md in leads_entry["metadata"]:
        if md["breadcrumb"] == ["properties", "primary_email"]:
            md["metadata"]["selected"] = True
    run = run_tap(config, catalog=catalog).assert_ok()
    assert run.ids("contacts") == emulator.truth("contacts")
    for contact in run.records["contacts"]:
        assert "@" in contact["email_fake"] and "emails" not in contact
    assert "email_fake" in run.schemas["contacts"]["properties"]
    leads = run.records["leads"]
    assert any(lead.get("primary_email__email") for lead in leads)
    for stream, records in run.records.items():  # flattened records match flattened schemas
        columns = set(run.schemas[stream]["properties"])
        for record in records:  # (the SDK keeps a null object under its own name)
            assert all(record[k] is None for k in set(record) - columns), stream


def readme_deletes() -> dict[str, bool]:
    """stream -> the README's stream tables say it gets tombstones ("deletes" column)."""
    readme = Path(__file__).resolve().parents[1].joinpath("README.md").read_text()
    found: dict[str, bool] = {}
    column = None
    for line in readme.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| stream |"):
            column = cells.index("deletes")
        elif line.startswith("| `") and column is not None:
            for name in re.findall(r"`(\w+)`", cells[0]):
                found[name] = cells[column].startswith("yes")
        elif not line.startswith("|"):
            column = None
    return found


def test_tombstone_column_only_where_tombstones_come(emulator: CloseEmulator) -> None:
    """`_sdc_deleted_at` is declared exactly by the streams that send tombstones."""
    catalog = discover(emulator)
    declared = {e["tap_stream_id"]: "_sdc_deleted_at" in e["schema"]["properties"]
                for e in catalog["streams"]}
    assert declared == readme_deletes()
    assert not declared["custom_activity_types"] and not declared["unsubscribed_emails"]


def batch_rows(message: dict) -> list[dict]:
    rows: list[dict] = []
    for url in message["manifest"]:
        with gzip.open(urlparse(url).path, "rt") as lines:
            rows.extend(map(json.loads, lines))
    return rows


def test_batch_state_never_runs_ahead_of_contacts(emulator: CloseEmulator,
                                                  tmp_path: Path) -> None:
    """With BATCH output, every STATE follows the contacts of the leads batched before it."""
    batch = {"encoding": {"format": "jsonl", "compression": "gzip"}, "batch_size": 7,
             "storage": {"root": f"file://{tmp_path}", "prefix": "batch-"}}
    catalog = select_only(discover(emulator), "leads", "contacts")
    run = run_tap(api_key_config(emulator, batch_config=batch), catalog=catalog).assert_ok()
    lead_of = {c["id"]: c["lead_id"] for c in emulator.records("contacts")}
    sent: dict[str, set[str]] = {"leads": set(), "contacts": set()}
    states = 0
    for message in messages(run.stdout):
        if message["type"] == "BATCH":
            sent[message["stream"]] |= {r["id"] for r in batch_rows(message)}
        elif message["type"] == "STATE" and sent["leads"]:
            states += 1
            owed = {c for c, lead in lead_of.items() if lead in sent["leads"]}
            assert owed <= sent["contacts"], f"STATE {states} before contacts of its leads"
    assert states > 3 and sent["contacts"] == set(lead_of)
    assert sent["leads"] == emulator.truth("leads")
