"""Rate-limit budgets shared through PostgreSQL by tap processes on any machine.

The same interface as budgetfile.BudgetFiles: one row per organization-and-credential scope
(a hash, never the secret) and endpoint family, read and rewritten in a short transaction that
holds the row (`INSERT ... ON CONFLICT DO UPDATE` locks it, even the first time). Times are the
database's clock (`skew` maps this machine's monotonic clock onto it). A process's calls in
flight are keyed by host and pid and rewritten every `heartbeat` seconds; entries older than
`STALE` stop counting (their process died or lost the database). Sessions end a transaction
left idle by a dead client after a few seconds, so a lost machine never holds a row for long.
If the database fails, the process says so once (WARNING) and shares through the local files
from then on: never a failed run.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

from tap_close.budgetfile import STALE, BudgetFiles
from tap_close.credentials import fingerprint
from tap_close.stores.urls import postgres_url

try:
    import psycopg
    from psycopg import sql
    from psycopg.types.json import Jsonb
except ImportError:  # the `postgres` extra
    psycopg = None  # type: ignore[assignment]

logger = logging.getLogger("tap_close.ratelimit")

TABLE = "tap_close_budgets"
APPLICATION = "tap-close budgets"  # its sessions, as pg_stat_activity shows them
SETTING = "rate_limit_store"
SWEEP = 3600.0  # rows untouched this long are removed (on connecting)
#: Each call reads and writes its family's row (about three round trips, under the limiter's
#: lock): a token store's database farther away than this is not used for budgets unless
#: `rate_limit_store` names it (one INFO line); it would slow every call more than it saves.
FAR = 0.01
CREATE = """CREATE TABLE IF NOT EXISTS {table} (
    scope text NOT NULL,
    family text NOT NULL,
    state jsonb NOT NULL DEFAULT '{{}}',
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, family))"""
# Locks the row (created if missing) and returns its state and the database's clock.
HOLD = """INSERT INTO {table} (scope, family) VALUES (%s, %s)
    ON CONFLICT (scope, family) DO UPDATE SET scope = EXCLUDED.scope
    RETURNING state, extract(epoch FROM clock_timestamp())::float8"""
WRITE = "UPDATE {table} SET state = %s, updated_at = now() WHERE scope = %s AND family = %s"
SESSION = ("SET idle_in_transaction_session_timeout = 5000; SET lock_timeout = 8000; "
           "SET statement_timeout = 8000")


def table_for(url: str, setting: str) -> str:
    """The budget table: `rate_limit_store`'s `table` parameter (default tap_close_budgets);
    for a token store's database, tap_close_budgets beside the token table (same schema)."""
    table = postgres_url(url, setting, TABLE).table
    if setting == SETTING:
        return table
    return ".".join([*table.split(".")[:-1], TABLE])


class PgBudgets:
    """`with budgets.open(family) as state:` as BudgetFiles. Used under the rate limiter's
    lock: one call at a time."""

    heartbeat = 2.0
    poll = 0.02  # a transaction costs round trips: a waiting process re-reads at most this often

    def __init__(self, url: str, api_url: str, who: str, *, setting: str = SETTING,
                 fallback: Callable[[], BudgetFiles | None] = lambda: None) -> None:
        parsed = postgres_url(url, setting, TABLE)  # checked at start-up: no error here
        self.conninfo, self.location = parsed.conninfo, parsed.location
        self.table_name = table_for(url, setting)
        self.setting = setting
        self.scope = fingerprint(f"{api_url.rstrip('/')}\0{who}")[:16]
        # Host and pid, for whoever reads the table; the random part for containers that
        # share a host name and start at pid 1.
        self._me = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._conn: Any = None
        self._skew = 0.0
        self._fallback = fallback
        self._local: BudgetFiles | None = None
        self._failed = False

    # The interface, on the database or (once it failed) on the local files.
    @property
    def skew(self) -> float:
        return 0.0 if self._failed else self._skew

    @property
    def member(self) -> str:
        return str(os.getpid()) if self._failed else self._me

    def live(self, member: str, at: float, now: float) -> bool:
        if self._failed:
            return self._local is not None and self._local.live(member, at, now)
        return now - at < STALE

    @contextlib.contextmanager
    def open(self, family: str) -> Iterator[dict[str, Any]]:
        if not self._failed:
            try:
                state = self._hold(family)
            except Exception as exc:  # psycopg's errors, or no psycopg: never fail the run
                self._give_up(exc)
            else:
                try:
                    yield state
                except BaseException:
                    with contextlib.suppress(Exception):
                        self._conn.rollback()
                    raise
                try:
                    self._write(family, state)
                except psycopg.Error as exc:
                    self._give_up(exc)
                return
        if self._local is None:
            yield {}
            return
        with self._local.open(family) as state:
            yield state

    def _hold(self, family: str) -> dict[str, Any]:
        """The family's state, its row locked in an open transaction (times: database's)."""
        if self._conn is None:
            self._connect()
        table = sql.Identifier(*self.table_name.split("."))
        row = self._conn.execute(sql.SQL(HOLD).format(table=table),
                                 (self.scope, family)).fetchone()
        state, now = row[0], row[1]
        # Written on another machine's clock mapped onto the database's: a few ms either way.
        if not isinstance(state, dict) or not -STALE <= now - state.get("at", -math.inf) <= STALE:
            state = {}
        return state

    def _write(self, family: str, state: dict[str, Any]) -> None:
        state["at"] = time.monotonic() + self._skew
        table = sql.Identifier(*self.table_name.split("."))
        self._conn.execute(sql.SQL(WRITE).format(table=table),
                           (Jsonb(state), self.scope, family))
        self._conn.commit()

    def _connect(self) -> None:
        if psycopg is None:
            raise RuntimeError("the `postgres` extra (psycopg) is not installed")
        conn = psycopg.connect(self.conninfo, connect_timeout=5, application_name=APPLICATION,
                               keepalives=1, keepalives_idle=5, keepalives_interval=2,
                               keepalives_count=3, autocommit=True)
        try:
            table = sql.Identifier(*self.table_name.split("."))
            conn.execute(SESSION)
            quoted = table.as_string(conn)
            found = conn.execute("SELECT to_regclass(%s)", (quoted,)).fetchone()
            if found is None or found[0] is None:  # first use: create it, one process at once
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_CREATE_LOCK,))
                    conn.execute(sql.SQL(CREATE).format(table=table))
            conn.execute(sql.SQL("DELETE FROM {table} WHERE updated_at < now() - %s * "
                                 "interval '1 second'").format(table=table), (SWEEP,))
            rtt, self._skew = _skew(conn)
            if rtt > FAR and self.setting != SETTING:
                raise TooFar(rtt)
            conn.autocommit = False
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _give_up(self, exc: Exception) -> None:
        if isinstance(exc, TooFar):
            logger.info("Rate-limit budgets: %s answers in %.0f ms, too slow to share budgets "
                        "on every call; they are shared only with this machine's tap "
                        "processes (set rate_limit_store to share them there anyway)",
                        self.location, exc.args[0] * 1000)
            self._failed = True
            self._conn = None  # closed by _connect
            self._local = self._fallback()
            return
        lines = str(exc).strip().splitlines()
        problem = f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
        logger.warning("Rate-limit budgets: cannot use %s (%s); from now on they are shared "
                       "only with this machine's tap processes", self.location, problem)
        self._failed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
        self._local = self._fallback()


class TooFar(Exception):
    """The token store's database answers too slowly to share budgets through it."""


def _skew(conn: Any) -> tuple[float, float]:
    """(round trip, the database's clock minus time.monotonic()): of three reads, the
    quickest's."""
    best = (math.inf, 0.0)
    for _ in range(3):
        before = time.monotonic()
        (db_now,) = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8"
                                 ).fetchone() or (0.0,)
        after = time.monotonic()
        best = min(best, (after - before, db_now - (before + after) / 2))
    return best


_CREATE_LOCK = int(fingerprint("tap-close budgets create")[:15], 16)  # a bigint
