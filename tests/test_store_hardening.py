"""Token store URLs and servers (issue 22): a password with `/ ? #` in a PostgreSQL URL is
never printed (item 3); the PostgreSQL lock outlives server-side timeouts, and an
invalid_grant re-reads the store first (item 6); stores without transport security or
conditional writes are refused (item 9); a table named with capitals is found (item 13)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.emulator import CloseEmulator
from tests.store_support import BUCKET, FreshRun, postgres_store, s3_server
from tests.test_reliability_oauth import assert_one_clear_error, token_request_in_flight
from tests.test_reliability_support import assert_clean, emulator_secrets, track_tokens
from tests.test_token_stores import assert_store_holds_the_chain, oauth_settings


def pg_parts(url: str) -> tuple[str, str, str]:
    """(host:port, database, table) of a test store URL."""
    parts = urlsplit(url)
    return parts.netloc.split("@")[-1], parts.path.lstrip("/"), dict(parse_qsl(parts.query))[
        "table"]


@pytest.mark.parametrize("password", ["Sup3r/S3cret", "12345/S3cret", "Sup3r?S3cret",
                                      "Sup3r#S3cret", "Sup3r@S3cret"])
def test_unencoded_postgres_password_is_refused_without_echo(password: str,
                                                             tmp_path: Path) -> None:
    with CloseEmulator(seed=61, n_leads=1) as emu:
        url = f"postgresql://etl:{password}@127.0.0.1:5432/tokens?table=t"
        fresh = FreshRun(tmp_path, oauth_settings(emu, url))
        run = fresh.run("bad-url")
        error = assert_one_clear_error(run, "token_store", "Percent-encode")
        for part in password.replace("?", "/").replace("#", "/").replace("@", "/").split("/"):
            assert part not in run.stdout + run.stderr, f"{part!r} printed: {error}"
        assert emu.stats["requests"] == 0, "refused with the other settings, at start-up"
        assert_clean([run], emulator_secrets(emu, fresh.settings["refresh_token"]))


def test_percent_encoded_postgres_password_is_accepted(tmp_path: Path) -> None:
    with postgres_store() as (url, query), CloseEmulator(seed=62, n_leads=1) as emu:
        where, db, table = pg_parts(url)
        encoded = f"postgresql://postgres:Sup3r%2FS3cret%23x@{where}/{db}?table={table}"
        fresh = FreshRun(tmp_path, oauth_settings(emu, encoded))  # trust auth: any password
        run = fresh.run("encoded").assert_ok()
        assert "Sup3r" not in run.stdout + run.stderr and "S3cret" not in run.stderr
        (record,) = [r[0] for r in query("SELECT record FROM tap_close_tokens")]
        assert_store_holds_the_chain(emu, record)


def test_postgres_lock_outlives_a_server_side_idle_timeout(tmp_path: Path) -> None:
    """idle_in_transaction_session_timeout=1s on the server and a 2.5 s token request: the
    lock holder's session is not ended, so the second process waits and adopts its token."""
    with postgres_store() as (url, query), CloseEmulator(seed=63, n_leads=2,
                                                         slow_seconds=2.5) as emu:
        _, db, _ = pg_parts(url)
        query(f"ALTER DATABASE \"{db}\" SET idle_in_transaction_session_timeout = '1s'")
        track_tokens(emu)
        fresh = FreshRun(tmp_path, oauth_settings(emu, url))
        emu.inject(["slow"], path_prefix="/oauth2/token/")
        first = fresh.start("first")
        token_request_in_flight(emu)
        second = fresh.start("second")
        runs = [fresh.finish(*first), fresh.finish(*second)]
        for run in runs:
            run.assert_ok()
        assert emu.stats["invalid_grants"] == 0 and emu.stats["token_refreshes"] == 1
        (record,) = [r[0] for r in query("SELECT record FROM tap_close_tokens")]
        assert_store_holds_the_chain(emu, record)
        assert_clean(runs, emulator_secrets(emu, fresh.settings["refresh_token"]))


def test_invalid_grant_after_a_lost_lock_adopts_the_stored_token(tmp_path: Path) -> None:
    """The lock holder's connection is killed while its token request is slow: the waiting
    process takes the lock and spends the same token first. The first one's invalid_grant
    re-reads the store, finds the winner's token and goes on."""
    with postgres_store() as (url, query), CloseEmulator(seed=64, n_leads=2,
                                                         slow_seconds=2.5) as emu:
        track_tokens(emu)
        fresh = FreshRun(tmp_path, oauth_settings(emu, url))
        emu.inject(["slow"], path_prefix="/oauth2/token/")
        first = fresh.start("first")
        token_request_in_flight(emu)
        second = fresh.start("second")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not query(
                "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"):
            time.sleep(0.05)  # until the second process waits for the lock
        assert query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                     "current_database() AND state LIKE 'idle in transaction%%'")
        runs = [fresh.finish(*first), fresh.finish(*second)]
        for run in runs:
            run.assert_ok()
        assert emu.stats["invalid_grants"] == 1, "the first process spent a spent token"
        (record,) = [r[0] for r in query("SELECT record FROM tap_close_tokens")]
        assert emu.current_refresh_tokens == {record["refresh_token"]}
        assert_clean(runs, emulator_secrets(emu, fresh.settings["refresh_token"]))


def test_table_named_with_capitals_needs_no_create_privilege(tmp_path: Path) -> None:
    with postgres_store() as (url, query), CloseEmulator(seed=65, n_leads=1) as emu:
        where, db, _ = pg_parts(url)
        role = f"tap_close_{uuid.uuid4().hex[:8]}"
        query('CREATE TABLE "Tokens" (client_id text NOT NULL, chain text NOT NULL, '
              "record jsonb, updated_at timestamptz NOT NULL DEFAULT now(), "
              "PRIMARY KEY (client_id, chain))")
        query(f"CREATE ROLE {role} LOGIN")
        try:
            query(f"REVOKE CREATE ON SCHEMA public FROM PUBLIC, {role}")
            query(f'GRANT SELECT, INSERT, UPDATE ON "Tokens" TO {role}')
            store = f"postgresql://{role}@{where}/{db}?table=Tokens"
            fresh = FreshRun(tmp_path, oauth_settings(emu, store))
            run = fresh.run("limited").assert_ok()
            assert run.ids("users") == emu.truth("users")
            (record,) = [r[0] for r in query('SELECT record FROM "Tokens"')]
            assert_store_holds_the_chain(emu, record)
        finally:
            query(f"DROP OWNED BY {role}")
            query(f"DROP ROLE {role}")


@pytest.mark.parametrize(("store", "expected"), [
    ("s3://bucket/oauth.json?endpoint_url=http://10.1.2.3:9000", "must use https"),
    ("postgresql://etl@db.example.com/etl?sslmode=prefer", "sslmode=prefer"),
    ("postgresql://etl@db.example.com/etl?sslmode=disable", "sslmode=disable"),
])
def test_store_without_transport_security_is_refused(store: str, expected: str,
                                                     tmp_path: Path) -> None:
    with CloseEmulator(seed=66, n_leads=1) as emu:
        fresh = FreshRun(tmp_path, oauth_settings(emu, store))
        run = fresh.run("insecure")
        assert_one_clear_error(run, "token_store", expected)
        assert emu.stats["requests"] == 0


def test_remote_postgres_defaults_to_verified_tls() -> None:
    from tap_close.stores.urls import postgres_url

    for url, mode in [("postgresql://etl@db.example.com/etl", "verify-full"),
                      ("postgresql://etl@db.example.com/etl?sslmode=verify-ca", "verify-ca"),
                      ("postgresql://etl@127.0.0.1/etl", None),
                      ("postgresql:///etl?host=/var/run/postgresql", None)]:
        query = dict(parse_qsl(urlsplit(postgres_url(url, "token_store").conninfo).query))
        assert query.get("sslmode") == mode, url


def test_s3_endpoint_that_ignores_conditional_writes_is_refused(tmp_path: Path) -> None:
    with s3_server(conditional_writes=False) as endpoint, CloseEmulator(seed=67,
                                                                        n_leads=1) as emu:
        url = f"s3://{BUCKET}/unsafe.json?endpoint_url={endpoint}"
        fresh = FreshRun(tmp_path, oauth_settings(emu, url))
        run = fresh.run("unsafe")
        assert_one_clear_error(run, "token_store", "conditional writes")
        assert emu.stats["token_refreshes"] == 0
        assert fresh.settings["refresh_token"] in emu.current_refresh_tokens, "not spent"
