"""Tests for the local Close API emulator (tests/emulator)."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.emulator import CloseEmulator

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def emu() -> Iterator[CloseEmulator]:
    with CloseEmulator(seed=1, n_leads=60, n_users=4) as e:
        yield e


@pytest.fixture
def fresh() -> Iterator[CloseEmulator]:
    with CloseEmulator(seed=7, n_leads=20) as e:
        yield e


def session(e: CloseEmulator) -> requests.Session:
    s = requests.Session()
    s.auth = (e.api_key, "")
    return s


def get(e: CloseEmulator, path: str, **params: Any) -> requests.Response:
    return session(e).get(e.api_url + path, params=params, timeout=5)


def refresh(e: CloseEmulator, token: str, **extra: str) -> requests.Response:
    form = {
        "grant_type": "refresh_token",
        "client_id": e.client_id,
        "client_secret": e.client_secret,
        "refresh_token": token,
        **extra,
    }
    return requests.post(e.token_url, data=form, timeout=5)


# --- paging ------------------------------------------------------------------------------------


def test_paging_has_more_and_caps(emu: CloseEmulator) -> None:
    s = session(emu)
    ids: list[str] = []
    skip = 0
    while True:
        body = s.get(emu.api_url + "/lead/", params={"_skip": skip, "_limit": 25}).json()
        assert body["total_results"] == 60
        ids += [r["id"] for r in body["data"]]
        skip += 25
        if not body["has_more"]:
            break
    assert len(ids) == 60 and set(ids) == emu.truth("leads")
    assert ids == sorted(ids)  # default order: by id, not by date

    assert get(emu, "/lead/", _limit=200).status_code == 200
    r = get(emu, "/lead/", _limit=201)
    assert r.status_code == 400 and r.json() == {"error": "_limit must be at most 200"}
    assert get(emu, "/contact/", _limit=101).json()["error"] == "_limit must be at most 100"
    assert get(emu, "/opportunity/", _limit=250).status_code == 200
    assert get(emu, "/event/", _limit=51).status_code == 400
    assert get(emu, "/custom_field/lead/", _limit=1000).status_code == 200

    contacts = get(emu, "/contact/", _limit=100).json()
    assert {c["id"] for c in contacts["data"]} == emu.truth("contacts")
    assert all("lead_id" in c for c in contacts["data"])
    assert "total_results" not in contacts
    lead = emu.records("leads")[0]
    assert all("lead_id" not in c for c in lead["contacts"])  # embedded contacts: no lead_id
    pipes = get(emu, "/pipeline/").json()
    assert "has_more" not in pipes and {p["id"] for p in pipes["data"]} == emu.truth("pipelines")
    assert get(emu, "/nope/").json() == {"error": "Not found"}


def test_max_skip() -> None:
    with CloseEmulator(n_leads=60, max_skip={"lead": 40}) as e:
        assert get(e, "/lead/", _skip=40).status_code == 200
        r = get(e, "/lead/", _skip=41)
        assert r.status_code == 400 and "max_skip = 40" in r.json()["error"]
        assert get(e, "/contact/", _skip=41).status_code == 200
    with CloseEmulator(n_leads=5, max_skip=10) as e:
        assert get(e, "/opportunity/", _skip=11).status_code == 400


# --- filters -----------------------------------------------------------------------------------


def test_lead_query_minute_precision(emu: CloseEmulator) -> None:
    leads = emu.records("leads")
    minutes = [ld["date_updated"][:16] for ld in leads]
    assert len(minutes) - len(set(minutes)) >= 5  # several leads share a minute
    lead = next(ld for ld in leads if int(ld["date_updated"][17:19]) < 59)
    stamp = lead["date_updated"]
    later_in_minute = f"{stamp[:17]}{int(stamp[17:19]) + 1:02d}"  # one second after the lead
    body = get(emu, "/lead/", query=f'date_updated >= "{later_in_minute}"', _limit=200).json()
    got = {r["id"] for r in body["data"]}
    # seconds are dropped: the lead is returned although it is older than the given value
    assert lead["id"] in got
    assert got == {ld["id"] for ld in leads if ld["date_updated"][:16] >= stamp[:16]}

    q = f"date_updated > {stamp[:16]} sort:date_updated"  # unquoted value works too
    data = get(emu, "/lead/", query=q, _limit=200).json()["data"]
    dates = [r["date_updated"] for r in data]
    assert dates == sorted(dates) and lead["id"] in {r["id"] for r in data}
    q = f'date_updated < "{stamp[:16]}" sort:-date_updated'
    dates = [r["date_updated"] for r in get(emu, "/lead/", query=q, _limit=200).json()["data"]]
    assert dates == sorted(dates, reverse=True) and all(d < stamp[:16] for d in dates)


def test_opportunity_filters_and_order(emu: CloseEmulator) -> None:
    opps = emu.records("opportunities")
    mid = sorted(o["date_updated"] for o in opps)[len(opps) // 2]
    body = get(emu, "/opportunity/", date_updated__gt=mid, _order_by="date_updated").json()
    dates = [o["date_updated"] for o in body["data"]]
    assert dates == sorted(dates) and all(d > mid for d in dates)
    assert body["total_results"] == sum(o["date_updated"] > mid for o in opps)
    naive = mid.replace("+00:00", "")  # naive = UTC
    body2 = get(emu, "/opportunity/", date_updated__gt=naive, _order_by="date_updated").json()
    assert body2["data"] == body["data"]
    gte = get(emu, "/opportunity/", date_updated__gte=mid).json()
    assert gte["total_results"] == body["total_results"] + 1
    created = get(emu, "/opportunity/", _order_by="-date_created", _limit=250).json()["data"]
    assert [o["date_created"] for o in created] == sorted(
        (o["date_created"] for o in opps), reverse=True
    )
    lead_id = opps[0]["lead_id"]
    by_lead = get(emu, "/opportunity/", lead_id=lead_id).json()["data"]
    assert {o["id"] for o in by_lead} == {o["id"] for o in opps if o["lead_id"] == lead_id}
    assert get(emu, "/opportunity/", date_updated__gt="garbage").status_code == 400


def test_fields(emu: CloseEmulator) -> None:
    data = get(emu, "/lead/", _fields="name,custom", _limit=5).json()["data"]
    for row in data:
        assert "id" in row and "name" in row and "contacts" not in row
        assert all(k in ("id", "name") or k.startswith("custom.") for k in row)
    cf = emu.custom_fields("lead")[1]["id"]
    rows = get(emu, "/lead/", _fields=f"custom.{cf}", _limit=60).json()["data"]
    assert all(set(r) <= {"id", f"custom.{cf}"} for r in rows)
    assert any(f"custom.{cf}" in r for r in rows)
    one = get(emu, f"/contact/{emu.records('contacts')[0]['id']}/", _fields="lead_id").json()
    assert set(one) == {"id", "lead_id"}


# --- auth and OAuth ----------------------------------------------------------------------------


def test_basic_and_bearer_auth(emu: CloseEmulator) -> None:
    r = requests.get(emu.api_url + "/me/", timeout=5)
    assert r.status_code == 401 and r.json()["error"].startswith("Unauthorized")
    r = requests.get(emu.api_url + "/me/", auth=("api_wrong_secret", ""), timeout=5)
    assert r.status_code == 401 and "api_wrong_secret" not in r.text
    assert requests.get(emu.api_url + "/me/", auth=(emu.api_key, "x"), timeout=5).status_code == 401
    me = get(emu, "/me/").json()
    assert me["organizations"][0]["id"] == emu.organization_id

    token = refresh(emu, emu.issue_refresh_token()).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert requests.get(emu.api_url + "/user/", headers=headers, timeout=5).status_code == 200
    bad = {"Authorization": "Bearer nope"}
    assert requests.get(emu.api_url + "/user/", headers=bad, timeout=5).status_code == 401
    kinds = {(e["path"], e["auth"], e["status"]) for e in emu.request_log}
    assert ("/api/v1/user/", "bearer", 200) in kinds and ("/api/v1/me/", "basic", 200) in kinds
    assert ("/api/v1/me/", None, 401) in kinds


def test_refresh_token_rotation(fresh: CloseEmulator) -> None:
    rt = fresh.issue_refresh_token()
    r = refresh(fresh, rt, scope="all.full_access offline_access")
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["organization_id"] == fresh.organization_id
    new_rt = body["refresh_token"]
    assert new_rt != rt and new_rt in fresh.current_refresh_tokens
    assert rt not in fresh.current_refresh_tokens
    reuse = refresh(fresh, rt)
    assert reuse.status_code == 400 and reuse.json() == {"error": "invalid_grant"}
    wrong = refresh(fresh, new_rt, client_secret="bad")
    assert wrong.status_code == 401 and wrong.json() == {"error": "invalid_client"}
    fresh.revoke_refresh_token(new_rt)
    assert refresh(fresh, new_rt).status_code == 400

    code = fresh.issue_auth_code("http://localhost/cb")
    form = {
        "grant_type": "authorization_code",
        "client_id": fresh.client_id,
        "client_secret": fresh.client_secret,
        "code": code,
    }
    assert requests.post(fresh.token_url, data=form, timeout=5).status_code == 200
    assert requests.post(fresh.token_url, data=form, timeout=5).status_code == 400

    # two concurrent refreshes with one token: exactly one wins
    shared = fresh.issue_refresh_token()
    codes: list[int] = []
    threads = [
        threading.Thread(target=lambda: codes.append(refresh(fresh, shared).status_code))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200, 400]
    stats = fresh.stats
    assert stats["invalid_grants"] == 4 and stats["token_refreshes"] == 2


def test_access_token_expiry() -> None:
    with CloseEmulator(n_leads=3, access_token_ttl=0.5) as e:
        body = refresh(e, e.issue_refresh_token()).json()
        assert body["expires_in"] == 0.5
        headers = {"Authorization": f"Bearer {body['access_token']}"}
        assert requests.get(e.api_url + "/me/", headers=headers, timeout=5).status_code == 200
        time.sleep(0.6)
        r = requests.get(e.api_url + "/me/", headers=headers, timeout=5)
        assert r.status_code == 401 and "expired" in r.json()["error"]


# --- rate limits and faults --------------------------------------------------------------------


def test_rate_limit_429_shapes() -> None:
    with CloseEmulator(n_leads=3, rate_limit=(3, 2.0)) as e:
        s = session(e)
        first = s.get(e.api_url + "/lead/")
        assert first.headers["RateLimit"].startswith("limit=3, remaining=2, reset=")
        s.get(e.api_url + "/lead/")
        s.get(e.api_url + "/lead/")
        r1, r2 = s.get(e.api_url + "/lead/"), s.get(e.api_url + "/lead/")
        assert r1.status_code == r2.status_code == 429
        assert r1.headers["Retry-After"] in ("1", "2") and "remaining=0" in r1.headers["RateLimit"]
        shapes = [r1.json(), r2.json()]
        assert isinstance(shapes[0]["error"], dict) and shapes[0]["error"]["rate_reset"] > 0
        assert isinstance(shapes[1]["error"], str) and shapes[1]["rate_reset"] > 0
        assert s.get(e.api_url + "/user/").status_code == 200  # other endpoint group
        assert e.stats["rate_limited"] == 2
    with CloseEmulator(n_leads=3) as e:
        assert get(e, "/me/").headers["RateLimit"] == "limit=1000, remaining=999, reset=1.0"


def test_injected_faults() -> None:
    with CloseEmulator(n_leads=5, slow_seconds=0.2) as e:
        s = session(e)
        url = e.api_url + "/lead/"
        e.inject(["500", "502", "503", "504"])
        assert [s.get(url).status_code for _ in range(4)] == [500, 502, 503, 504]
        e.inject(["reset"])
        with pytest.raises(requests.ConnectionError):
            s.get(url)
        e.inject(["truncate"])
        with pytest.raises(requests.RequestException):
            s.get(url).json()
        e.inject(["slow"])
        start = time.monotonic()
        assert s.get(url).status_code == 200 and time.monotonic() - start >= 0.2
        e.inject(["429", "429"])
        a, b = s.get(url), s.get(url)
        assert a.status_code == b.status_code == 429 and a.headers["Retry-After"] == "1"
        assert a.json()["error"]["rate_reset"] == 0.2 and b.json()["rate_reset"] == 0.2
        e.inject(["503"], path_prefix="/api/v1/user/")
        assert s.get(url).status_code == 200  # other paths unaffected
        assert s.get(e.api_url + "/user/").status_code == 503
        e.inject(["500"])
        assert refresh(e, e.issue_refresh_token()).status_code == 200  # /oauth2/ not targeted
        assert s.get(url).status_code == 500
        assert e.stats["faults_injected"] == 11
        assert e.stats["by_status"][500] == 2


def test_random_faults_are_seeded() -> None:
    def run() -> list[int]:
        with CloseEmulator(
            n_leads=3, fault_rate=0.5, fault_seed=3, fault_kinds=("500", "503")
        ) as e:
            return [get(e, "/me/").status_code for _ in range(20)]

    first = run()
    assert first == run() and {500, 503, 200} <= set(first)


# --- event log and mutations -------------------------------------------------------------------


def test_event_cursor_paging(fresh: CloseEmulator) -> None:
    leads = sorted(fresh.truth("leads"))
    for lead_id in leads[:6]:
        fresh.update_lead(lead_id)
    cutoff = fresh.events[-1]["date_updated"]
    for lead_id in leads[6:12]:
        fresh.update_lead(lead_id)
    all_ids = [ev["id"] for ev in reversed(fresh.events)]  # newest first

    s = session(fresh)
    seen: list[str] = []
    params: dict[str, Any] = {"_limit": 4, "object_type": "lead", "action": "updated"}
    while True:
        body = s.get(fresh.api_url + "/event/", params=params).json()
        assert body["cursor_previous"] is None
        seen += [ev["id"] for ev in body["data"]]
        if not body["cursor_next"]:
            break
        params = {"_limit": 4, "object_type": "lead", "action": "updated",
                  "_cursor": body["cursor_next"]}
    assert seen == all_ids and len(seen) == 12

    # date_updated filters live in the cursor and are not resent
    params = {"_limit": 2, "date_updated__gt": cutoff}
    seen = []
    while True:
        body = s.get(fresh.api_url + "/event/", params=params).json()
        seen += [ev["id"] for ev in body["data"]]
        if not body["cursor_next"]:
            break
        params = {"_limit": 2, "_cursor": body["cursor_next"]}
    assert seen == all_ids[:6]
    assert s.get(fresh.api_url + "/event/", params={"_skip": 1}).status_code == 400
    assert s.get(fresh.api_url + "/event/", params={"_cursor": "zz"}).status_code == 400


def test_mutations_truth_and_events(fresh: CloseEmulator) -> None:
    new_id = fresh.add_lead()
    assert new_id in fresh.truth("leads")
    lead = next(ld for ld in fresh.records("leads") if ld["id"] == new_id)
    assert 1 <= len(lead["contacts"]) <= 2
    created = [ev for ev in fresh.events if ev["action"] == "created"]
    assert created[0]["object_id"] == new_id and created[0]["data"]["id"] == new_id

    contact_id = lead["contacts"][0]["id"]
    before = lead["date_updated"]
    fresh.update_contact(contact_id)
    after = next(ld for ld in fresh.records("leads") if ld["id"] == new_id)
    assert after["date_updated"] > before
    ev = next(e for e in reversed(fresh.events) if e["object_type"] == "contact")
    assert ev["action"] == "updated" and "title" in ev["changed_fields"]
    assert ev["previous_data"]["title"] == lead["contacts"][0]["title"]
    api_lead = get(fresh, f"/lead/{new_id}/").json()
    assert api_lead["date_updated"] == after["date_updated"]

    other = sorted(fresh.truth("leads") - {new_id})[0]
    moved = {c["id"] for c in after["contacts"]}
    fresh.merge_leads(new_id, other)
    assert new_id not in fresh.truth("leads")
    contacts = get(fresh, "/contact/", lead_id=other).json()["data"]
    assert moved <= {c["id"] for c in contacts}
    merged = fresh.events[-1]
    assert merged["action"] == "merged" and merged["meta"]["merge_source_lead_id"] == new_id

    victim = next(ld for ld in fresh.records("leads") if ld["contacts"] and ld["id"] != other)
    fresh.delete_lead(victim["id"])
    assert victim["id"] not in fresh.truth("leads")
    assert not {c["id"] for c in victim["contacts"]} & fresh.truth("contacts")
    deleted = {(e["object_type"], e["object_id"]) for e in fresh.events if e["action"] == "deleted"}
    assert ("lead", victim["id"]) in deleted
    assert all(("contact", c["id"]) in deleted for c in victim["contacts"])
    last = fresh.events[-1]
    assert last["data"] is None and last["previous_data"]["id"] == victim["id"]
    stamps = [e["date_updated"] for e in fresh.events]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert get(fresh, f"/lead/{victim['id']}/").status_code == 404


def test_deterministic_data() -> None:
    a, b, c = CloseEmulator(seed=5), CloseEmulator(seed=5), CloseEmulator(seed=6)
    assert a.records("leads") == b.records("leads")
    assert a.truth("leads") != c.truth("leads")
    assert len(a.custom_fields("lead")) == 10 and len(a.truth("opportunity_statuses")) == 6


def test_cli_starts_and_stops() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.emulator", "--port", "0", "--leads", "5"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        url = line.split()[0].split("=", 1)[1]
        key = line.split()[1].split("=", 1)[1]
        r = requests.get(url + "/api/v1/lead/", auth=(key, ""), timeout=5)
        assert r.json()["total_results"] == 5
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0


# --- activities, tasks, custom activities ------------------------------------------------------

ACTIVITY_PATHS = {
    "call": "call_activities",
    "email": "email_activities",
    "emailthread": "email_thread_activities",
    "note": "note_activities",
    "meeting": "meeting_activities",
    "sms": "sms_activities",
    "whatsapp_message": "whatsapp_message_activities",
    "created": "created_activities",
    "status_change/lead": "lead_status_change_activities",
    "status_change/opportunity": "opportunity_status_change_activities",
    "task_completed": "task_completed_activities",
    "lead_merge": "lead_merge_activities",
    "form_submission": "form_submission_activities",
    "custom": "custom_activity_instances",
}


def page_all(e: CloseEmulator, path: str, limit: int = 100, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    skip = 0
    while True:
        body = get(e, path, _skip=skip, _limit=limit, **params).json()
        out += body["data"]
        skip += limit
        if not body["has_more"]:
            return out


def test_activity_endpoints_match_truth(emu: CloseEmulator) -> None:
    everything = page_all(emu, "/activity/")
    assert len(everything) == len({a["id"] for a in everything}) >= 3 * 60
    union: set[str] = set()
    for path, stream in ACTIVITY_PATHS.items():
        rows = page_all(emu, f"/activity/{path}/")
        ids = {a["id"] for a in rows}
        assert ids == emu.truth(stream) and ids, path
        assert len({a["_type"] for a in rows}) == 1
        one = get(emu, f"/activity/{path}/{rows[0]['id']}/").json()
        assert one == rows[0]
        union |= ids
    assert union == {a["id"] for a in everything}
    base = {"id", "_type", "lead_id", "user_id", "organization_id", "date_created", "date_updated"}
    assert all(base <= set(a) and a["id"].startswith("acti_") for a in everything)
    call = emu.records("call_activities")[0]
    assert {"direction", "disposition", "duration", "remote_phone", "note_html"} <= set(call)
    task_done = emu.records("task_completed_activities")[0]
    assert "contact_id" not in task_done and task_done["task_id"] in emu.truth("tasks")
    thread = emu.records("email_thread_activities")[0]
    assert thread["n_emails"] == len(thread["emails"]) and "body_text" not in thread["emails"][0]
    # wrong type for an id, unknown id, unknown type
    assert get(emu, f"/activity/note/{call['id']}/").status_code == 404
    assert get(emu, "/activity/call/acti_nope/").json()["error"].startswith("Empty query")
    assert get(emu, "/activity/bogus/").status_code == 404
    assert get(emu, "/activity/", _limit=101).status_code == 400


def test_activity_order_and_filters(emu: CloseEmulator) -> None:
    rows = page_all(emu, "/activity/")
    keys = [(a["date_created"], a["id"]) for a in rows]
    assert keys == sorted(keys, reverse=True)  # default: newest first, ties by id
    asc = page_all(emu, "/activity/", _order_by="date_created")
    assert [a["id"] for a in asc] == [a["id"] for a in reversed(rows)]
    mid = keys[len(keys) // 2][0]
    gt = page_all(emu, "/activity/", date_created__gt=mid)
    assert {a["id"] for a in gt} == {a["id"] for a in rows if a["date_created"] > mid}
    naive = page_all(emu, "/activity/", date_created__gte=mid.replace("+00:00", ""))
    assert len(naive) == len(gt) + sum(a["date_created"] == mid for a in rows)
    lte = page_all(emu, "/activity/call/", date_created__lte=mid)
    assert all(a["date_created"] <= mid for a in lte)
    lead_id = rows[0]["lead_id"]
    by_lead = page_all(emu, "/activity/", lead_id=lead_id)
    assert {a["id"] for a in by_lead} == {a["id"] for a in rows if a["lead_id"] == lead_id}
    assert any(a["_type"] == "Created" for a in by_lead)
    trimmed = get(emu, "/activity/note/", _fields="note,lead_id", _limit=3).json()["data"]
    assert all(set(r) <= {"id", "note", "lead_id"} for r in trimmed)
    assert get(emu, "/activity/", _order_by="date_updated").status_code == 400
    assert get(emu, "/activity/", date_created__gt="nope").status_code == 400


def test_activity_max_skip() -> None:
    with CloseEmulator(n_leads=20, max_skip={"activity": 10, "task": 5}) as e:
        assert get(e, "/activity/call/", _skip=10).status_code == 200
        assert "max_skip = 10" in get(e, "/activity/", _skip=11).json()["error"]
        assert get(e, "/task/", _skip=6).status_code == 400


def test_custom_activity_types_and_fields(emu: CloseEmulator) -> None:
    body = get(emu, "/custom_activity/").json()
    assert "has_more" not in body and len(body["data"]) == 2
    assert {t["id"] for t in body["data"]} == emu.truth("custom_activity_types")
    for t in body["data"]:
        assert t["id"].startswith("actitype_") and 2 <= len(t["fields"]) <= 3
        assert "+" not in t["date_created"]  # naive, like Close
        assert get(emu, f"/custom_activity/{t['id']}/").json() == t
        schema = get(emu, f"/custom_field_schema/activity/{t['id']}/").json()
        assert schema["object_type"] == "activity" and schema["name"] == t["name"]
        shared = [f["id"] for f in emu.records("shared_custom_fields") if any(
            a.get("custom_activity_type_id") == t["id"] for a in f["associations"])]
        assert [f["id"] for f in schema["fields"]] == [f["id"] for f in t["fields"]] + shared
    defs = get(emu, "/custom_field/activity/").json()
    assert defs["has_more"] is False
    assert {f["id"] for f in defs["data"]} == emu.truth("activity_custom_fields")
    assert all({"custom_activity_type_id", "required", "type"} <= set(f) for f in defs["data"])
    one = defs["data"][0]
    assert get(emu, f"/custom_field/activity/{one['id']}/").json() == one
    field_ids = {f["id"] for f in defs["data"]} | {f["id"] for f in emu.records(
        "shared_custom_fields")}  # a shared field associated with a custom activity type
    for inst in emu.records("custom_activity_instances"):
        assert inst["_type"] == "CustomActivity"
        assert inst["custom_activity_type_id"] in emu.truth("custom_activity_types")
        assert {k[7:] for k in inst if k.startswith("custom.")} <= field_ids
    assert get(emu, "/custom_field_schema/activity/actitype_nope/").status_code == 404


def test_tasks_type_quirk_filters_and_order(emu: CloseEmulator) -> None:
    truth = emu.records("tasks")
    assert len(truth) >= 60 and len({t["_type"] for t in truth}) >= 5
    default = page_all(emu, "/task/")
    assert {t["id"] for t in default} == {t["id"] for t in truth if t["_type"] == "lead"}
    everything = page_all(emu, "/task/", _type="all")
    assert {t["id"] for t in everything} == emu.truth("tasks")
    assert all(t["id"].startswith("task_" if t["_type"] == "lead" else "noti_") for t in truth)
    created = [(t["date_created"], t["id"]) for t in everything]
    assert created == sorted(created)  # default: date_created ascending
    missed = page_all(emu, "/task/", _type="missed_call")
    assert missed and all(
        t["_type"] == "missed_call" and t["object_type"] == "call" for t in missed
    )
    both = page_all(emu, "/task/", _type__in="voicemail,incoming_sms")
    assert {t["_type"] for t in both} == {"voicemail", "incoming_sms"}
    mid = sorted(t["date_updated"] for t in truth)[len(truth) // 2]
    upd = page_all(emu, "/task/", _type="all", date_updated__gte=mid)
    assert {t["id"] for t in upd} == {t["id"] for t in truth if t["date_updated"] >= mid}
    done = page_all(emu, "/task/", _type="all", is_complete="true")
    assert done and {t["id"] for t in done} == {t["id"] for t in truth if t["is_complete"]}
    by_date = page_all(emu, "/task/", _type="all", _order_by="-date")
    assert len(by_date) == len(truth)
    assert get(emu, "/task/", _limit=1000).status_code == 200
    assert get(emu, "/task/", _limit=1001).status_code == 400
    assert get(emu, "/task/", _order_by="date_updated").status_code == 400
    one = truth[0]
    assert get(emu, f"/task/{one['id']}/").json() == one


def test_activity_mutations_and_events(fresh: CloseEmulator) -> None:
    lead_id = sorted(fresh.truth("leads"))[0]
    note_id = fresh.add_activity("note", lead_id)
    assert note_id in fresh.truth("note_activities")
    ev = fresh.events[-1]
    assert (ev["object_type"], ev["action"], ev["object_id"]) == (
        "activity.note",
        "created",
        note_id,
    )
    assert ev["data"]["lead_id"] == lead_id and ev["lead_id"] == lead_id
    before = get(fresh, f"/activity/note/{note_id}/").json()
    fresh.update_activity(note_id)
    after = get(fresh, f"/activity/note/{note_id}/").json()
    assert after["date_updated"] > before["date_updated"]
    assert after["date_created"] == before["date_created"] and after["note"] != before["note"]
    ev = fresh.events[-1]
    assert ev["action"] == "updated" and "note" in ev["changed_fields"]
    assert ev["previous_data"]["note"] == before["note"] and ev["data"] == after
    fresh.delete_activity(note_id)
    ev = fresh.events[-1]
    assert ev["action"] == "deleted" and ev["data"] is None and ev["previous_data"] == after
    r = get(fresh, f"/activity/note/{note_id}/")
    assert r.status_code == 404 and r.json() == {"error": "Empty query: Document has been deleted."}

    kinds = {
        "call": "activity.call",
        "email": "activity.email",
        "emailthread": "activity.emailthread",
        "meeting": "activity.meeting",
        "sms": "activity.sms",
        "whatsapp_message": "activity.whatsapp_message",
        "created": "activity.created",
        "form_submission": "activity.form_submission",
        "lead_merge": "activity.lead_merge",
        "task_completed": "activity.task_completed",
        "lead_status_change": "activity.lead_status_change",
        "opportunity_status_change": "activity.opportunity_status_change",
        "custom": "activity.custom_activity",
    }
    for kind, object_type in kinds.items():
        act_id = fresh.add_activity(kind)
        fresh.update_activity(act_id)
        created, updated = fresh.events[-2:]
        assert created["object_type"] == updated["object_type"] == object_type, kind
        assert (created["action"], updated["action"]) == ("created", "updated")
        assert updated["changed_fields"] and updated["previous_data"], kind
    meeting = fresh.records("meeting_activities")[-1]
    assert meeting["id"] in fresh.truth("meeting_activities")


def test_task_mutations_and_events(fresh: CloseEmulator) -> None:
    lead_id = sorted(fresh.truth("leads"))[1]
    task_id = fresh.add_task(lead_id)
    assert task_id.startswith("task_") and fresh.events[-1]["object_type"] == "task.lead"
    fresh.update_task(task_id)
    ev = fresh.events[-1]
    assert ev["action"] == "updated" and "text" in ev["changed_fields"]
    act_id = fresh.complete_task(task_id)
    done, completed = fresh.events[-2:]
    assert done["object_type"] == "task.lead" and done["action"] == "completed"
    assert done["data"]["is_complete"] is True and done["previous_data"]["is_complete"] is False
    assert completed["object_type"] == "activity.task_completed"
    assert get(fresh, f"/activity/task_completed/{act_id}/").json()["task_id"] == task_id
    fresh.delete_task(task_id)
    assert fresh.events[-1]["action"] == "deleted" and task_id not in fresh.truth("tasks")
    assert get(fresh, f"/task/{task_id}/").status_code == 404
    noti = fresh.add_task(lead_id, _type="missed_call")
    assert noti.startswith("noti_") and fresh.events[-1]["object_type"] == "task.missed_call"
    assert noti not in {t["id"] for t in get(fresh, "/task/", lead_id=lead_id).json()["data"]}


def test_lead_delete_and_merge_cascade_to_activities(fresh: CloseEmulator) -> None:
    acts = fresh.records("activities")
    tasks = fresh.records("tasks")
    src, dest, victim = sorted(fresh.truth("leads"))[:3]
    src_acts = {a["id"] for a in acts if a["lead_id"] == src}
    src_tasks = {t["id"] for t in tasks if t["lead_id"] == src}
    fresh.merge_leads(src, dest)
    assert fresh.events[-1]["action"] == "merged"
    now = {a["id"]: a for a in fresh.records("activities")}
    assert all(now[i]["lead_id"] == dest for i in src_acts)
    assert all(t["lead_id"] == dest for t in fresh.records("tasks") if t["id"] in src_tasks)
    moved = {e["object_id"] for e in fresh.events if e["action"] == "updated"}
    assert src_acts | src_tasks <= moved
    merge_act = next(
        a for a in fresh.records("lead_merge_activities") if a["source_lead_id"] == src
    )
    assert merge_act["lead_id"] == dest and merge_act["destination_lead_id"] == dest

    v_acts = {a["id"] for a in acts if a["lead_id"] == victim}
    v_tasks = {t["id"] for t in tasks if t["lead_id"] == victim}
    fresh.delete_lead(victim)
    assert not v_acts & fresh.truth("activities") and not v_tasks & fresh.truth("tasks")
    deleted = {e["object_id"]: e for e in fresh.events if e["action"] == "deleted"}
    assert v_acts | v_tasks <= set(deleted)
    assert all(deleted[i]["object_type"].startswith("activity.") for i in v_acts)
    assert all(deleted[i]["object_type"].startswith("task.") for i in v_tasks)
    assert fresh.events[-1]["object_type"] == "lead"  # the lead's own event comes last
    assert fresh.truth("events") == {e["id"] for e in fresh.events}


def test_event_payloads_can_be_hidden() -> None:
    with CloseEmulator(n_leads=5, event_payloads=False) as e:
        note = e.add_activity("note")
        e.update_activity(note)
        rows = get(e, "/event/").json()["data"]
        assert len(rows) == 2 and all(r["data"] is None for r in rows)
        assert all(r["previous_data"] is None for r in rows)
        assert get(e, f"/event/{rows[0]['id']}/").json()["data"] is None
        assert e.events[-1]["data"]["id"] == note  # the truth keeps them


def test_activity_data_is_deterministic() -> None:
    a, b = CloseEmulator(seed=3, n_leads=10), CloseEmulator(seed=3, n_leads=10)
    assert a.records("activities") == b.records("activities")
    assert a.records("tasks") == b.records("tasks")
    assert CloseEmulator(seed=3, n_leads=10).records("leads") == a.records("leads")


# --- organization-level objects, exports, denied endpoints -------------------------------------

OBJECT_PATHS = {
    "/group/": "groups",
    "/role/": "roles",
    "/email_template/": "email_templates",
    "/sms_template/": "sms_templates",
    "/sequence/": "sequences",
    "/outcome/": "outcomes",
    "/phone_number/": "phone_numbers",
    "/blocked_phone_number/": "blocked_phone_numbers",
    "/connected_account/": "connected_accounts",
    "/dialer/": "dialers",
    "/scheduling_link/": "scheduling_links",
    "/custom_field/shared/": "shared_custom_fields",
    "/custom_object_type/": "custom_object_types",
    "/custom_field/custom_object_type/": "custom_object_custom_fields",
    "/comment_thread/": "comment_threads",
    "/integration_link/": "integration_links",
    "/webhook/": "webhooks",
    "/bulk_action/email/": "email_bulk_actions",
    "/bulk_action/edit/": "edit_bulk_actions",
    "/bulk_action/delete/": "delete_bulk_actions",
    "/bulk_action/sequence_subscription/": "sequence_subscription_bulk_actions",
}


def test_object_endpoints_match_truth(emu: CloseEmulator) -> None:
    for path, stream in OBJECT_PATHS.items():
        body = get(emu, path).json()
        ids = {o["id"] for o in body["data"]}
        if stream == "scheduling_links":  # the shared ones are a list of their own
            ids |= {o["id"] for o in get(emu, "/shared_scheduling_link/").json()["data"]}
        assert ids == emu.truth(stream) and ids, path
        one = get(emu, f"{path}{body['data'][0]['id']}/").json()
        assert one["id"] == body["data"][0]["id"], path
    assert "has_more" not in get(emu, "/custom_object_type/").json()
    org = get(emu, f"/organization/{emu.organization_id}/").json()
    members = {m["id"] for m in org["memberships"] + org["inactive_memberships"]}
    assert org["inactive_memberships"] and members == emu.truth("memberships")
    assert emu.truth("organizations") == {emu.organization_id}
    assert {r["id"] for r in emu.records("roles")} >= {m["role_id"] for m in org["memberships"]}
    hook = emu.records("webhooks")[0]
    assert len(hook["signature_key"]) == 64 and hook["id"].startswith("whsub_")
    seq = get(emu, f"/sequence/{emu.records('sequences')[0]['id']}/").json()
    assert seq["steps"] and "subscription_counts_by_status" in seq
    unsub = get(emu, "/unsubscribe/email/").json()["data"]
    assert {u["email"] for u in unsub} == emu.truth("unsubscribed_emails")
    assert all(set(u) == {"email"} for u in unsub)
    cobj_types = emu.truth("custom_object_types")
    assert all(
        f["custom_object_type_id"] in cobj_types for f in emu.records("custom_object_custom_fields")
    )


def test_object_quirks(emu: CloseEmulator) -> None:
    groups = get(emu, "/group/").json()["data"]
    assert all("members" not in g for g in groups)
    full = get(emu, f"/group/{groups[0]['id']}/", _fields="name,members").json()
    assert set(full) == {"id", "name", "members"} and full["members"][0]["user_id"]

    views = emu.records("smart_views")
    leads_only = get(emu, "/saved_search/").json()["data"]
    assert {v["id"] for v in leads_only} == {v["id"] for v in views if v["type"] == "lead"}
    both = get(emu, "/saved_search/", type__in="lead,contact").json()["data"]
    assert {v["id"] for v in both} == emu.truth("smart_views")

    r = get(emu, "/sequence_subscription/")
    assert r.status_code == 400 and "error" in r.json()
    subs = set()
    for seq_id in emu.truth("sequences"):
        subs |= {
            s["id"] for s in get(emu, "/sequence_subscription/", sequence_id=seq_id).json()["data"]
        }
    assert subs == emu.truth("sequence_subscriptions")

    assert get(emu, "/custom_object/").status_code == 400
    objs = emu.records("custom_objects")
    lead_id = objs[0]["lead_id"]
    got = get(emu, "/custom_object/", lead_id=lead_id).json()["data"]
    assert {o["id"] for o in got} == {o["id"] for o in objs if o["lead_id"] == lead_id}
    assert any(k.startswith("custom.cf_") for k in got[0])

    assert get(emu, "/comment/").status_code == 400
    thread = emu.records("comment_threads")[0]
    assert (
        get(emu, "/comment/", object_id=thread["object_id"], thread_id=thread["id"]).status_code
        == 400
    )
    by_thread = get(emu, "/comment/", thread_id=thread["id"]).json()["data"]
    by_object = get(emu, "/comment/", object_id=thread["object_id"]).json()["data"]
    assert len(by_thread) == thread["num_comments"] and by_thread == by_object
    assert "created_at" in by_thread[0] and "date_created" not in by_thread[0]
    picked = get(emu, "/comment_thread/", object_ids=thread["object_id"]).json()["data"]
    assert [t["id"] for t in picked] == [thread["id"]]

    me = get(emu, "/me/").json()["id"]
    mine = get(emu, "/send_as/").json()["data"]
    assert mine and all(s["allowing_user_id"] == me for s in mine)
    allowed = get(emu, "/send_as/", allowed_user_id=me).json()["data"]
    assert allowed and all(s["allowed_user_id"] == me for s in allowed)
    assert {s["id"] for s in mine + allowed} < emu.truth("send_as")  # others' are hidden
    other = next(u["id"] for u in emu.records("users") if u["id"] != me)
    assert get(emu, "/send_as/", allowing_user_id=other).status_code == 400


def test_denied_and_plan_limited() -> None:
    with CloseEmulator(n_leads=3, denied=("webhook", "export"), plan_limited=("dialer",)) as e:
        r = get(e, "/webhook/")
        assert r.status_code == 403 and r.json() == {"error": "Not allowed"}
        assert get(e, "/dialer/").status_code == 402
        assert (
            session(e).post(e.api_url + "/export/lead/", json={"format": "json"}).status_code == 403
        )
        assert get(e, "/group/").status_code == 200


def test_lead_export_lifecycle(fresh: CloseEmulator) -> None:
    s = session(fresh)
    r = s.post(fresh.api_url + "/export/lead/", json={"format": "json", "type": "leads"})
    assert r.status_code == 200
    export = r.json()
    assert export["id"].startswith("expo_") and export["status"] == "created"
    statuses = []
    for _ in range(3):
        export = get(fresh, f"/export/{export['id']}/").json()
        statuses.append(export["status"])
    assert statuses == ["in_progress", "done", "done"]
    assert export["download_url"].startswith(fresh.url + "/_download/")
    raw = requests.get(export["download_url"], timeout=5, stream=True)
    assert raw.headers["Content-Encoding"] == "gzip"
    leads = json.loads(gzip.decompress(raw.raw.read()))
    assert {ld["id"] for ld in leads} == fresh.truth("leads")
    assert any(ld["contacts"] for ld in leads) and any(ld["opportunities"] for ld in leads)
    assert any(k.startswith("custom.cf_") for ld in leads for k in ld)
    listed = get(fresh, "/export/").json()["data"]
    assert [x["id"] for x in listed] == [export["id"]]
    bad = s.post(fresh.api_url + "/export/lead/", json={"type": "leads"})
    assert bad.status_code == 400
    assert s.post(fresh.api_url + "/lead/", json={}).status_code == 405


def test_delete_object_logs_event(fresh: CloseEmulator) -> None:
    hook = sorted(fresh.truth("webhooks"))[0]
    fresh.delete_object("webhooks", hook)
    assert (
        hook not in fresh.truth("webhooks") and get(fresh, f"/webhook/{hook}/").status_code == 404
    )
    ev = fresh.events[-1]
    assert (ev["object_type"], ev["action"], ev["object_id"]) == ("webhook", "deleted", hook)
    assert ev["previous_data"]["id"] == hook and ev["data"] is None
    thread = fresh.records("comment_threads")[0]
    fresh.delete_object("comment_thread", thread["id"])
    assert not {c["id"] for c in fresh.records("comments") if c["thread_id"] == thread["id"]}
    assert fresh.events[-1]["object_type"] == "comment"


def test_event_history_option() -> None:
    with CloseEmulator(n_leads=5, event_history=20) as e:
        events = e.events
        assert len(events) == 20
        stamps = [ev["date_updated"] for ev in events]
        assert stamps == sorted(stamps)
        rows = get(e, "/event/", _limit=50).json()["data"]
        assert [r["id"] for r in rows] == [ev["id"] for ev in reversed(events)]
