"""Token stores shared between processes and machines, on real servers (no mocks): PostgreSQL
(the machine's server, a fresh database) and S3 (a local moto server).

Every run starts in an empty working directory with its settings in TAP_CLOSE_* variables
only, like an ephemeral runner: whatever survives between runs is in the shared store.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from tap_close.auth import CloseOAuth
from tap_close.stores import open_store
from tests.emulator import CloseEmulator
from tests.harness import TapRun, assert_no_secrets
from tests.store_support import (
    AWS_ENV,
    BUCKET,
    FreshRun,
    postgres_store,
    s3_record,
    s3_server,
)
from tests.test_reliability_oauth import assert_one_clear_error, token_request_in_flight
from tests.test_reliability_support import (
    assert_clean,
    emulator_secrets,
    selected_catalog,
    track_tokens,
)


def oauth_settings(emu: CloseEmulator, store: str) -> dict[str, str]:
    """Rate-limit budgets stay out of the token database (`rate_limit_store` ""): processes
    sharing them there would wait on each other's first call instead of the token lock."""
    return {"client_id": emu.client_id, "client_secret": emu.client_secret,
            "refresh_token": emu.issue_refresh_token(), "api_url": emu.api_url,
            "oauth_token_url": emu.token_url, "token_store": store, "rate_limit_store": ""}


def refreshes(runs: list[TapRun]) -> int:
    return sum(r.stderr.count("OAuth access token refreshed") for r in runs)


def assert_store_holds_the_chain(emu: CloseEmulator, record: dict[str, Any]) -> None:
    """No token was spent twice, and the store holds the one live refresh token."""
    assert emu.stats["invalid_grants"] == 0
    assert emu.current_refresh_tokens == {record["refresh_token"]}
    assert "lease" not in record


def two_at_once_then_a_third(
    emu: CloseEmulator, fresh: FreshRun, read_store: Callable[[], dict[str, Any]],
) -> None:
    """Two taps at once on one store with 0.4 s access tokens, then a third from scratch."""
    track_tokens(emu)
    started = [fresh.start(f"p{i}") for i in range(2)]
    runs = [fresh.finish(*proc) for proc in started]
    for run in runs:
        run.assert_ok()
        assert run.ids("leads") == emu.truth("leads")
    assert emu.stats["token_refreshes"] >= 3, "access tokens expired during the runs"
    assert refreshes(runs) == emu.stats["token_refreshes"], "every rotated token was saved"
    assert_store_holds_the_chain(emu, read_store())
    third = fresh.run("third").assert_ok()
    assert third.ids("users") == emu.truth("users")
    assert_store_holds_the_chain(emu, read_store())
    assert_clean([*runs, third], emulator_secrets(emu, fresh.settings["refresh_token"]))


BUSY = {"seed": 71, "n_leads": 30, "access_token_ttl": 0.4, "latency": 0.02,
        "max_limit": {"lead": 5, "opportunity": 5}}


def test_postgres_store_two_processes_and_a_fresh_runner(tmp_path) -> None:
    with postgres_store() as (url, query), CloseEmulator(**BUSY) as emu:
        fresh = FreshRun(tmp_path, oauth_settings(emu, url))

        def read_store() -> dict[str, Any]:
            rows = query("SELECT client_id, record FROM tap_close_tokens")
            assert len(rows) == 1 and rows[0][0] == emu.client_id, "one row per client, chain"
            return rows[0][1]

        two_at_once_then_a_third(emu, fresh, read_store)


def test_s3_store_two_processes_and_a_fresh_runner(tmp_path) -> None:
    with s3_server() as endpoint, CloseEmulator(**BUSY) as emu:
        url = f"s3://{BUCKET}/close/oauth.json?endpoint_url={endpoint}"
        fresh = FreshRun(tmp_path, oauth_settings(emu, url))
        two_at_once_then_a_third(emu, fresh, lambda: s3_record(endpoint, "close/oauth.json"))


def test_twenty_runs_from_empty_runners_on_postgres(tmp_path) -> None:
    """Hourly runs on ephemeral runners, compressed: every run starts with no local file and
    its access token has expired, so each one spends the refresh token the last one saved."""
    with postgres_store("etl.close_tokens") as (url, query), CloseEmulator(
            seed=72, n_leads=2, access_token_ttl=0.3) as emu:
        query("CREATE SCHEMA etl")
        track_tokens(emu)
        fresh = FreshRun(tmp_path, oauth_settings(emu, url))
        catalog = tmp_path / "catalog.json"  # the job's definition, not a runner's file
        catalog.write_text(json.dumps(selected_catalog(fresh.settings, tmp_path, {"users"})))
        runs = []
        with fresh.forked():
            for i in range(20):
                # the stored access token has expired when the next runner starts (as an hour
                # later): each run must spend the refresh token the last one saved
                time.sleep(0.3)
                runs.append(fresh.run(f"run{i}", "--catalog", str(catalog)).assert_ok())
                assert runs[-1].ids("users") == emu.truth("users")
                assert refreshes(runs[-1:]) >= 1, f"run {i} did not refresh"
                (record,) = [r[0] for r in query("SELECT record FROM etl.close_tokens")]
                assert_store_holds_the_chain(emu, record)  # no invalid_grant, one live token
        assert refreshes(runs) == emu.stats["token_refreshes"] - 1  # 1: the discovery
        assert_clean(runs, emulator_secrets(emu, fresh.settings["refresh_token"]))
        print(f"\npostgres store soak: 20 fresh runners, {emu.stats['token_refreshes']} "
              "refreshes, 0 invalid_grant")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("kind", ["postgresql", "s3"])
def test_unreachable_store_stops_before_spending_the_token(kind: str, tmp_path) -> None:
    port = _closed_port()
    password = "pg-password-never-printed"
    url = {"postgresql": f"postgresql://postgres:{password}@127.0.0.1:{port}/tokens?table=t",
           "s3": f"s3://{BUCKET}/oauth.json?endpoint_url=http://127.0.0.1:{port}"}[kind]
    with CloseEmulator(seed=73, n_leads=2) as emu:
        track_tokens(emu)
        fresh = FreshRun(tmp_path, oauth_settings(emu, url))
        run = fresh.run("unreachable")
        assert_one_clear_error(run, "token_store", f"127.0.0.1:{port}")
        assert emu.stats["token_refreshes"] == 0
        assert fresh.settings["refresh_token"] in emu.current_refresh_tokens, "not spent"
        assert_clean([run], emulator_secrets(emu, fresh.settings["refresh_token"], password))


def test_s3_lost_race_adopts_the_winners_token(monkeypatch, caplog) -> None:
    """Two refreshes at once: both read the store before either claims it. The claim is a
    conditional write, so one wins; the other re-reads, waits and adopts the winner's token."""
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    with s3_server() as endpoint, CloseEmulator(seed=74, n_leads=2) as emu:
        url = f"s3://{BUCKET}/race.json?endpoint_url={endpoint}"
        token = emu.issue_refresh_token()
        both_read = threading.Barrier(2, timeout=20)
        auths = []
        for _ in range(2):
            store = open_store(client_id=emu.client_id, refresh_token=token, url=url)
            read, calls = store._get, []  # type: ignore[attr-defined]

            def read_then_meet(read=read, calls=calls) -> Any:
                found = read()
                calls.append(found)
                if len(calls) == 1:
                    both_read.wait()  # neither claims before both have read
                return found

            store._get = read_then_meet  # type: ignore[attr-defined]
            auths.append(CloseOAuth(client_id=emu.client_id, client_secret=emu.client_secret,
                                    refresh_token=token, store=store, token_url=emu.token_url))
        got: dict[int, str] = {}
        threads = [threading.Thread(target=lambda i=i: got.__setitem__(i, auths[i].access_token()))
                   for i in range(2)]
        with caplog.at_level(logging.INFO, logger="tap-close.auth"):
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
        assert len(got) == 2 and got[0] == got[1], "the loser uses the winner's access token"
        assert emu.stats["token_refreshes"] == 1 and emu.stats["invalid_grants"] == 0
        assert "claimed" in caplog.text and "first" in caplog.text
        assert_no_secrets(caplog.text, emulator_secrets(emu, token))
        assert sorted(a.refresh_count for a in auths) == [0, 1]
        record = s3_record(endpoint, "race.json")
        assert record["access_token"] == got[0]
        assert_store_holds_the_chain(emu, record)


def test_postgres_connection_lost_during_the_refresh_is_retried(tmp_path) -> None:
    """The connection holding the lock dies while Close rotates the token: the save reconnects,
    locks again and commits; the chain goes on."""
    with postgres_store() as (url, query), CloseEmulator(seed=75, n_leads=2,
                                                         slow_seconds=1.0) as emu:
        track_tokens(emu)
        fresh = FreshRun(tmp_path, oauth_settings(emu, url))
        emu.inject(["slow"], path_prefix="/oauth2/token/")
        proc = fresh.start("cut")
        token_request_in_flight(emu)
        killed = query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        assert killed, "the tap's connection was open during the refresh"
        run = fresh.finish(*proc).assert_ok()
        assert "retrying" in run.stderr, "the first save failed"
        assert emu.stats["token_refreshes"] == 1
        (record,) = [r[0] for r in query("SELECT record FROM tap_close_tokens")]
        assert_store_holds_the_chain(emu, record)
        assert_clean([run], emulator_secrets(emu, fresh.settings["refresh_token"]))
