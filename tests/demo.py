"""`make demo`: a full run of tap-close against the local Close emulator, a few changes through
the emulator's control endpoint, then an incremental run, with what it sent beside each change.

Records go to demo-output/<stream>.jsonl (full run) and demo-output/incremental/ (second run).
"""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tap_close.streams import STREAM_TYPES
from tests.emulator import CloseEmulator
from tests.harness import TapRun, run_tap

OUT = Path("demo-output")
SAMPLE_COLUMNS = {
    "leads": ("id", "display_name", "status_label", "date_updated"),
    "contacts": ("id", "lead_id", "name", "title"),
    "opportunities": ("id", "lead_name", "status_label", "value", "date_updated"),
}
NOTES = {
    "send_as": "Close lists only associations involving the caller: {visible} of {total}",
    "events": "the event log up to 5 minutes before the run (Close's advice)",
}


@dataclass
class Change:
    """One change made through the control endpoint, and the rows it should bring."""

    method: str
    path: str
    body: dict[str, Any] | None
    label: str
    updated: dict[str, set[str]] = field(default_factory=dict)  # stream -> ids re-sent
    deleted: dict[str, set[str]] = field(default_factory=dict)  # stream -> ids tombstoned


def control(emu: CloseEmulator, change: Change) -> dict[str, Any]:
    """Send one change the way the README shows (curl), here with requests."""
    with requests.request(change.method, emu.url + change.path, json=change.body,
                          timeout=10) as response:
        response.raise_for_status()
        return dict(response.json())


def tap_run(emu: CloseEmulator, state: dict | None = None) -> tuple[TapRun, float]:
    started = time.monotonic()
    run = run_tap({"api_key": emu.api_key, "api_url": emu.api_url}, state=state)
    elapsed = time.monotonic() - started
    if run.returncode:
        raise SystemExit(f"tap-close failed ({run.returncode}):\n{run.stderr[-3000:]}")
    return run, elapsed


def write_files(run: TapRun, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.jsonl"):
        old.unlink()
    for stream, records in run.records.items():
        with (directory / f"{stream}.jsonl").open("w") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in records)


def http_summary(run: TapRun) -> str:
    return next((ln.split("| ")[-1] for ln in run.stderr.splitlines() if "HTTP summary" in ln), "")


def visible_send_as(emu: CloseEmulator) -> set[str]:
    me = emu.data.user_ids[0]
    return {r["id"] for r in emu.records("send_as")
            if me in (r["allowing_user_id"], r["allowed_user_id"])}


def full_run_table(emu: CloseEmulator, run: TapRun) -> None:
    names = sorted(s.name for s in STREAM_TYPES)  # every stream, even one with no records
    width = max(len(n) for n in names) + 2
    print(f"{'stream':<{width}}{'records':>8}{'truth':>8}  note")
    for name in names:
        try:
            truth: Any = len(emu.truth(name))
        except KeyError:
            truth = "-"
        note = NOTES.get(name, "")
        if name == "send_as":
            visible = visible_send_as(emu)
            note = note.format(visible=len(visible), total=truth)
            truth = len(visible)
        print(f"{name:<{width}}{len(run.records.get(name, [])):>8}{truth!s:>8}  {note}")


def lead_family(emu: CloseEmulator, lead_id: str) -> dict[str, set[str]]:
    """Rows a lead's delete also removes (Close logs a `deleted` event for each)."""
    family: dict[str, set[str]] = {"leads": {lead_id}}
    streams = ["contacts", "opportunities", "tasks"]
    streams += [s.name for s in STREAM_TYPES if s.name.endswith("activities")
                or s.name == "custom_activity_instances"]
    for stream in streams:
        try:
            rows = emu.records(stream)
        except KeyError:
            continue
        ids = {r["id"] for r in rows if r.get("lead_id") == lead_id}
        if ids:
            family[stream] = ids
    return family


def plan_changes(emu: CloseEmulator) -> list[Change]:
    leads = sorted(emu.truth("leads"))
    contacts = {c["id"]: c for c in emu.records("contacts")}
    by_lead: dict[str, list[str]] = {}
    for cid, contact in sorted(contacts.items()):
        by_lead.setdefault(contact["lead_id"], []).append(cid)
    opps = sorted(o["id"] for o in emu.records("opportunities"))
    notes = sorted(emu.truth("note_activities"))
    doomed = next(lead for lead in leads if len(by_lead.get(lead, [])) >= 2)
    edited = next(lead for lead in leads if lead != doomed)
    contact_lead = next(lead for lead in leads if lead not in (doomed, edited)
                        and len(by_lead.get(lead, [])) >= 2)
    gone_contact = by_lead[contact_lead][0]
    family = lead_family(emu, doomed)
    opp = next(o for o in opps if o not in family.get("opportunities", set()))
    note = next(n for n in notes if n not in family.get("note_activities", set()))
    return [
        Change("PUT", f"/_emulator/leads/{edited}", None, "edit a lead",
               updated={"leads": {edited}}),
        Change("DELETE", f"/_emulator/leads/{doomed}", None,
               "delete a lead (with all it holds)",
               deleted=family),
        Change("DELETE", f"/_emulator/contacts/{gone_contact}", None,
               "delete a contact (its lead changes)",
               updated={"leads": {contact_lead}, "contacts": set(by_lead[contact_lead][1:])},
               deleted={"contacts": {gone_contact}}),
        Change("PUT", f"/_emulator/opportunities/{opp}", None, "edit an opportunity's value",
               updated={"opportunities": {opp}}),
        Change("PUT", f"/_emulator/activities/{note}", None, "rewrite a note",
               updated={"note_activities": {note}}),
        Change("POST", "/_emulator/leads", {}, "add a lead (with contacts)"),
        Change("POST", "/_emulator/activities", {"type": "call", "lead_id": edited},
               "log a call"),
    ]


def new_rows(emu: CloseEmulator, change: Change, created: str) -> None:
    """Fill in what an added object brings (known only once it exists)."""
    if change.path == "/_emulator/leads":
        change.updated = lead_family(emu, created)
    else:
        change.updated = {s: {created} for s, ids in lead_family(
            emu, str(change.body and change.body["lead_id"])).items() if created in ids}


def short(ids: Iterable[str]) -> str:
    ids = sorted(ids)
    text = ", ".join(i[:12] + "…" for i in ids[:2])
    return text + (f" +{len(ids) - 2}" if len(ids) > 2 else "")


def sent_for(change: Change, run: TapRun) -> list[str]:
    """What the incremental run sent for one change, stream by stream."""
    out = []
    for kind, wanted in (("", change.updated), ("tombstone", change.deleted)):
        for stream, ids in sorted(wanted.items()):
            rows = run.records.get(stream, [])
            dead = {r["id"] for r in rows if r.get("_sdc_deleted_at")}
            got = (dead if kind else {r["id"] for r in rows} - dead) & ids
            mark = "ok" if got == ids else f"MISSING {short(ids - got)}"
            out.append(f"{stream}: {len(got)} {kind or 'record'}{'s' * (len(got) != 1)} "
                       f"({mark})")
    return out


def side_by_side(emu: CloseEmulator, changes: list[Change], run: TapRun) -> None:
    lefts = [[f"{c.method} {short_path(c.path)}", f"  {c.label}"] for c in changes]
    width = max(len(line) for left in lefts for line in left) + 3
    print(f"{'change (control endpoint)':<{width}}what the incremental run sent")
    for change, left in zip(changes, lefts, strict=True):
        sent = sent_for(change, run) or ["-"]
        for i in range(max(len(left), len(sent))):
            text = left[i] if i < len(left) else ""
            print(f"{text:<{width}}{sent[i] if i < len(sent) else ''}".rstrip())
    counted = {(s, i) for c in changes for s, ids in (*c.updated.items(), *c.deleted.items())
               for i in ids}
    whole, extra = [], {}
    for stream, rows in sorted(run.records.items()):
        ids = [r[key_of(stream)] for r in rows if (stream, r[key_of(stream)]) not in counted]
        if ids and len(ids) == len(rows) and set(ids) == truth_of(emu, stream):
            whole.append(f"{stream} {len(ids)}")
        elif ids:
            extra[stream] = ids
    if whole:
        print("\n" + textwrap.fill(f"Full-table streams, re-sent whole as on every run "
                                   f"({len(whole)}): " + ", ".join(whole), 100))
    if extra:
        print("\nAlso sent (touched by a change too):")
        for stream, ids in extra.items():
            print(f"  {stream}: {len(ids)} ({short(ids)})")


def key_of(stream: str) -> str:
    return "email" if stream == "unsubscribed_emails" else "id"


def truth_of(emu: CloseEmulator, stream: str) -> set[str] | None:
    try:
        return visible_send_as(emu) if stream == "send_as" else emu.truth(stream)
    except KeyError:
        return None


def short_path(path: str) -> str:
    kind, _, rest = path.removeprefix("/_emulator/").partition("/")
    return f"{kind}/{rest[:14]}…" if len(rest) > 14 else path.removeprefix("/_emulator/")


def main() -> None:
    demo_started = time.monotonic()
    with CloseEmulator(seed=1, n_leads=300, latency=0.005) as emu:
        print(f"Close emulator on {emu.url} (300 leads). 1. Full run: tap-close --config ...\n")
        first, elapsed = tap_run(emu)
        write_files(first, OUT)
        full_run_table(emu, first)
        total = sum(len(r) for r in first.records.values())
        print(f"\n{total} records in {len(STREAM_TYPES)} streams in {elapsed:.1f}s; "
              f"{http_summary(first)}; files in {OUT}/")
        for stream, columns in SAMPLE_COLUMNS.items():
            print(f"Sample {stream}: " + " | ".join(
                str(first.records[stream][0].get(c)) for c in columns))

        changes = plan_changes(emu)
        print(f"\n2. Changes, through the control endpoint (README: curl -X PUT "
              f"{emu.url}/_emulator/leads/<id>, ...)")
        for change in changes:
            reply = control(emu, change)
            if "id" in reply:
                new_rows(emu, change, reply["id"])
            body = f" -d '{json.dumps(change.body)}'" if change.body else ""
            print(f"  curl -X {change.method} {emu.url}{change.path}{body}")

        print("\n3. Incremental run: tap-close --config ... --state <last STATE of run 1>\n")
        second, elapsed = tap_run(emu, state=first.state)
        write_files(second, OUT / "incremental")
        side_by_side(emu, changes, second)
        records = sum(len(r) for r in second.records.values())
        dead = sum(bool(r.get("_sdc_deleted_at")) for rs in second.records.values() for r in rs)
        print(f"\n{records} records ({dead} tombstones) in {elapsed:.1f}s; {http_summary(second)}"
              f"; files in {OUT}/incremental/")
    print(f"Demo done in {time.monotonic() - demo_started:.1f}s.")
    print(rerun_commands())


#: `make emulator`'s address and key (the demo's own emulator is gone when it ends).
EMULATOR = "http://127.0.0.1:8765"
RERUN_HEADER = "Your turn: run `make emulator` in another terminal, then paste these here:"


def rerun_commands() -> str:
    """The demo's three steps as commands to copy, against `make emulator`, with the config
    they need written to demo-output/."""
    OUT.mkdir(exist_ok=True)
    config = OUT / "emulator-config.json"
    config.write_text(json.dumps({"api_key": "api_emulator_key", "api_url": f"{EMULATOR}/api/v1"}))
    lines = [
        f".venv/bin/tap-close --config {config} > {OUT}/run1.jsonl",
        f"jq -c 'select(.type == \"STATE\") | .value' {OUT}/run1.jsonl | tail -n 1 > "
        f"{OUT}/state.json",
        f"curl -s -X POST {EMULATOR}/_emulator/leads",
        f".venv/bin/tap-close --config {config} --state {OUT}/state.json > {OUT}/run2.jsonl",
    ]
    return "\n" + RERUN_HEADER + "\n" + "\n".join(f"  {line}" for line in lines)


if __name__ == "__main__":
    main()
