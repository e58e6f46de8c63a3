"""Rate-limit budgets shared through PostgreSQL (`rate_limit_store`): by processes on
different machines (here: each with a temp dir of its own), one row per endpoint family."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tap_close import budgetpg
from tap_close.budgetfile import BudgetFiles
from tap_close.budgetpg import PgBudgets
from tap_close.ratelimit import RateLimiter, Ticket
from tests.bench import JOBS
from tests.conftest import api_key_config
from tests.emulator import CloseEmulator
from tests.harness import run_tap
from tests.pg import PgServer
from tests.test_meltano import pg_server
from tests.test_ratelimit import _simulate, on_three_machines
from tests.test_reliability_oauth import assert_one_clear_error
from tests.test_reliability_support import assert_clean, emulator_secrets

__all__ = ["pg_server"]  # the session fixture, shared with tests/test_meltano.py

API = "https://api.close.com/api/v1"
FAMILY = "GET /activity/*"


@pytest.fixture
def store(pg_server: PgServer) -> Iterator[tuple[str, PgServer, str]]:
    """(rate_limit_store URL, server, database) on a fresh database."""
    with pg_server.temporary_database() as db:
        yield f"postgresql://{pg_server.user}@{pg_server.host}:{pg_server.port}/{db}", \
            pg_server, db


def test_concurrent_read_modify_writes_lose_nothing(store) -> None:
    """Four connections (as four processes) each add to a family's state 40 times at once:
    the row lock makes every read-modify-write see the one before (never an overspend)."""
    url, _, _ = store

    def add(_: int) -> None:
        budgets = PgBudgets(url, API, "key")
        for _ in range(40):
            with budgets.open(FAMILY) as state:
                seen = state.get("n", 0)
                time.sleep(0.0005)  # a slow writer: a lost update would show
                state["n"] = seen + 1

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(add, range(4)))
    with PgBudgets(url, API, "key").open(FAMILY) as state:
        assert state["n"] == 160


def test_three_limiters_on_one_table_keep_within_the_window(store) -> None:
    """Three processes' limiters (each its own connection and clock skew) and five threads
    each, against one fixed-window server limiter: as one (the bound of the one-process
    test in tests/test_ratelimit.py; without the table each paces alone)."""
    url, _, _ = store
    limiters = [RateLimiter(PgBudgets(url, API, "key")) for _ in range(3)]
    results: list[dict] = []
    threads = [threading.Thread(target=lambda n=n: results.append(_simulate(
        10, 0.25, 5, 3.0, 21 + n, client=limiters[n]))) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok, refused = sum(r["ok"] for r in results), sum(r["429"] for r in results)
    assert ok >= 0.5 * 10 * 3.0 / 0.25, results  # most of the budget used (loose: loaded CI)
    assert refused <= max(1, (ok + refused) // 100) * 3, results


def _write_inflight(url: str, member: str, age: float) -> None:
    """A process's whole budget in flight in the table, last written `age` seconds ago."""
    budgets = PgBudgets(url, API, "key")
    with budgets.open(FAMILY) as state:
        now = time.monotonic() + budgets.skew
        state["budgets"] = {FAMILY: {
            "limit": 5, "remaining": 5, "reset_at": None, "window": 60.0, "started": now - 1,
            "counted": 1, "open_until": now + 30, "next_at": 0, "paused_until": 0,
            "inflight": {member: [5, now - age]}}}


@pytest.mark.parametrize(("age", "blocked"), [(0.0, True), (11.0, False)])
def test_a_dead_processs_calls_in_flight_expire(store, age: float, blocked: bool) -> None:
    """Another machine's process with the whole budget in flight: it counts while its entry
    is fresh (a live process rewrites it every 2 s); 10 s old, it stops counting."""
    url, _, _ = store
    _write_inflight(url, "gone-host:4242", age)
    got = RateLimiter(PgBudgets(url, API, "key"))._try("GET /activity/call/")
    assert isinstance(got, Ticket) is not blocked, got


def test_a_live_process_keeps_its_calls_counted(store) -> None:
    """A call in flight for longer than the expiry keeps counting: its process rewrites it."""
    url, _, _ = store
    budgets = PgBudgets(url, API, "key")
    budgets.heartbeat = 0.2
    limiter = RateLimiter(budgets)
    ticket = limiter.acquire("GET /activity/call/")
    time.sleep(0.6)
    with PgBudgets(url, API, "key").open(FAMILY) as state:
        flying = state["budgets"][FAMILY]["inflight"]
    (at,) = [v[1] for k, v in flying.items() if k == budgets.member]
    assert budgets.member.startswith(f"{socket.gethostname()}:{os.getpid()}:")
    assert time.monotonic() + budgets.skew - at < 0.5, "rewritten by the heartbeat"
    limiter.release(ticket, "limit=5, remaining=4, reset=1")


def test_a_lost_database_falls_back_to_the_files_with_one_warning(store, tmp_path, caplog):
    url, server, db = store
    files = BudgetFiles(tmp_path / "budgets")
    budgets = PgBudgets(url, API, "key", fallback=lambda: files)
    with budgets.open(FAMILY) as state:
        state["n"] = 1
    server.query(db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                     "datname = current_database() AND application_name = 'tap-close budgets'")
    with caplog.at_level(logging.WARNING, "tap_close.ratelimit"):
        for n in range(3):
            with budgets.open(FAMILY) as state:
                state["n"] = n
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "only with this machine's tap processes" in warnings[0]
    assert list((tmp_path / "budgets").glob("*.json")), "the files took over"
    assert budgets.member == str(os.getpid())


@pytest.mark.parametrize("setting", ["token_store", "rate_limit_store"])
def test_a_far_token_store_database_is_not_used_for_budgets(store, tmp_path, caplog, monkeypatch,
                                                            setting: str) -> None:
    """A token store's database slower than FAR a round trip would slow every call: the
    budgets stay on this machine's files (one INFO line). Named by rate_limit_store: used."""
    url, server, db = store
    monkeypatch.setattr(budgetpg, "FAR", 0.0)  # every database is "far"
    files = BudgetFiles(tmp_path / "budgets")
    budgets = PgBudgets(url, API, "key", setting=setting, fallback=lambda: files)
    with caplog.at_level(logging.INFO, "tap_close.ratelimit"):
        for n in range(2):
            with budgets.open(FAMILY) as state:
                state["n"] = n
    lines = [r for r in caplog.records if "too slow to share" in r.getMessage()]
    far = setting == "token_store"
    assert [r.levelno for r in lines] == ([logging.INFO] if far else [])
    assert bool(list((tmp_path / "budgets").glob("*.json"))) is far
    if not far:
        assert server.query(db, "SELECT count(*) FROM tap_close_budgets") == [(1,)]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_database_warns_once_and_the_run_completes(tmp_path) -> None:
    password = "pg-password-never-printed"
    url = f"postgresql://etl:{password}@127.0.0.1:{_closed_port()}/budgets"
    with CloseEmulator(seed=81, n_leads=20, rate_limit=(20, 0.5)) as emu:
        config = {**api_key_config(emu), "rate_limit_store": url}
        run = run_tap(config, env={"TMPDIR": str(tmp_path)})
        run.assert_ok()
        for stream in ("leads", "contacts", "call_activities"):
            assert run.ids(stream) == emu.truth(stream), stream
        warned = [ln for ln in run.stderr.splitlines() if "Rate-limit budgets: cannot use" in ln]
        assert len(warned) == 1, run.stderr[-2000:]
        assert "postgresql://etl@127.0.0.1" in warned[0]
        assert_clean([run], emulator_secrets(emu, password))
    assert list(tmp_path.glob("tap-close-budgets/*/*.json")), "shared through the files instead"


@pytest.mark.parametrize(("url", "expected"), [
    ("mysql://etl:pw-never-printed@db.example.com/etl", "must be a postgresql:// URL"),
    ("postgresql://etl:Sup3r/S3cret@127.0.0.1:5432/etl", "Percent-encode"),
    ("postgresql://etl:pw-never-printed@db.example.com/etl?sslmode=disable", "sslmode=disable"),
    ("postgresql://etl:pw-never-printed@127.0.0.1/etl?table=a.b.c", "`table` parameter"),
])
def test_bad_url_is_one_clear_line_without_the_secret(url: str, expected: str) -> None:
    with CloseEmulator(seed=82, n_leads=1) as emu:
        run = run_tap({**api_key_config(emu), "rate_limit_store": url})
        assert_one_clear_error(run, "rate_limit_store", expected)
        for secret in ("pw-never-printed", "Sup3r", "S3cret"):
            assert secret not in run.stdout + run.stderr
        assert emu.stats["requests"] == 0, "refused with the other settings, at start-up"


def test_three_machines_share_one_budget_table(store, tmp_path: Path) -> None:
    """Three tap processes at once, each with a temp dir of its own (as on three machines:
    no budget file in common) and one `rate_limit_store`: every record arrives, every
    process kept its budgets in the table (the families of all three jobs are there, under
    one scope) and none fell back to files."""
    url, server, db = store
    with CloseEmulator(seed=48, n_leads=150, rate_limit=(10, 0.5), latency=0.01) as emu:
        config = {**api_key_config(emu), "rate_limit_store": url}
        runs, log, dirs = on_three_machines(emu, config, tmp_path)
        for run, job in zip(runs, JOBS, strict=True):
            run.assert_ok()
            assert "Rate-limit budgets" not in run.stderr
            assert "others spend the budget of GET /activity/*" not in run.stderr  # all seen
            for stream in job:
                assert run.ids(stream) == emu.truth(stream), stream
    rows = server.query(db, "SELECT scope, family FROM tap_close_budgets")
    assert len({scope for scope, _ in rows}) == 1, rows
    assert {"GET /activity/*", "GET /lead/*", "GET /opportunity/*", "GET /task/*"} <= {
        family for _, family in rows}, rows
    assert not [p for d in dirs for p in d.glob("tap-close-budgets/*/*.json")]
    refused = sum(1 for e in log if e["status"] == 429)
    print(f"\nthree machines, one budget table: {refused} 429s of {len(log)} requests")


def test_oauth_with_a_postgres_token_store_shares_budgets_there(store, tmp_path) -> None:
    """No setting needed: a postgresql:// token store's database holds the budgets too;
    `rate_limit_store` set empty keeps them out."""
    from tests.test_token_stores import oauth_settings

    url, server, db = store
    with CloseEmulator(seed=83, n_leads=5) as emu:
        config = oauth_settings(emu, f"{url}?table=tokens")
        del config["rate_limit_store"]  # unset: the token store's database
        run = run_tap(config, env={"TMPDIR": str(tmp_path)})
        run.assert_ok()
        assert run.ids("leads") == emu.truth("leads")
    families = {f for (f,) in server.query(db, "SELECT family FROM tap_close_budgets")}
    assert "GET /lead/*" in families, families
    with CloseEmulator(seed=84, n_leads=5) as emu:  # set empty: none there
        config = oauth_settings(emu, f"{url}?table=tokens2")
        run_tap(config, env={"TMPDIR": str(tmp_path)}).assert_ok()
    scopes = server.query(db, "SELECT count(DISTINCT scope) FROM tap_close_budgets")
    assert scopes == [(1,)], "the second run's OAuth client wrote no budget"
