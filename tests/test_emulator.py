"""Tests for the local Close API emulator (tests/emulator)."""

from __future__ import annotations

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
    params: dict[str, Any] = {"_limit": 4, "object_type": "lead"}
    while True:
        body = s.get(fresh.api_url + "/event/", params=params).json()
        assert body["cursor_previous"] is None
        seen += [ev["id"] for ev in body["data"]]
        if not body["cursor_next"]:
            break
        params = {"_limit": 4, "object_type": "lead", "_cursor": body["cursor_next"]}
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
