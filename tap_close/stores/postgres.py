"""The token store in PostgreSQL: one row per OAuth client and chain, a transaction-level
advisory lock held across the refresh, the rotated token committed before it is used."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from typing import Any

from tap_close.stores.base import TokenStore, missing_extra, valid_record
from tap_close.stores.urls import postgres_url

try:
    import psycopg
    from psycopg import sql
    from psycopg.types.json import Jsonb
except ImportError:  # the `postgres` extra
    psycopg = None  # type: ignore[assignment]

CREATE = """CREATE TABLE IF NOT EXISTS {table} (
    client_id text NOT NULL,
    chain text NOT NULL,
    record jsonb,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, chain))"""
UPSERT = """INSERT INTO {table} (client_id, chain, record) VALUES (%s, %s, %s)
    ON CONFLICT (client_id, chain) DO UPDATE SET record = EXCLUDED.record, updated_at = now()"""


def _lock_key(*parts: str) -> int:
    digest = hashlib.sha256("\x00".join(("tap-close", *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PostgresStore(TokenStore):
    def __init__(self, url: str, *, client_id: str, seed: str, setting: str) -> None:
        if psycopg is None:
            raise missing_extra(setting, "postgresql", "postgres")
        parsed = postgres_url(url, setting)
        self.conninfo = parsed.conninfo
        self.table = sql.Identifier(*parsed.table.split("."))
        self.table_name = parsed.table
        super().__init__(setting=setting, location=parsed.location, client_id=client_id,
                         seed=seed)
        self._conn: Any = None

    def _problem(self, exc: Exception) -> str:
        lines = str(exc).strip().splitlines()
        return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")

    def _connect(self) -> Any:
        """A connection in a transaction that holds this chain's advisory lock."""
        try:
            conn = psycopg.connect(self.conninfo, connect_timeout=10)
        except psycopg.Error as exc:
            raise self.error(f"cannot connect to {self.location} ({self._problem(exc)})") from None
        try:
            # The lock must outlive a slow token request: no server-side timeout may end this
            # session or transaction (and with it the lock) meanwhile.
            conn.execute("SELECT set_config(name, '0', false) FROM pg_settings WHERE name IN "
                         "('idle_in_transaction_session_timeout', 'idle_session_timeout', "
                         "'transaction_timeout')")
            quoted = self.table.as_string(conn)  # as created: "Tokens" keeps its capital
            exists = conn.execute("SELECT to_regclass(%s)", (quoted,)).fetchone()
            if exists is None or exists[0] is None:  # first use: create it, one process at once
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key("create"),))
                conn.execute(sql.SQL(CREATE).format(table=self.table))
                conn.commit()
            conn.execute("SELECT pg_advisory_xact_lock(%s)",
                         (_lock_key(self.table_name, self.client_id, self.seed),))
        except psycopg.Error as exc:
            conn.close()
            raise self.error(f"cannot use {self.location} ({self._problem(exc)})") from None
        return conn

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.rollback()
            with contextlib.suppress(psycopg.Error):
                conn.close()

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        self._conn = self._connect()
        try:
            yield
        finally:
            self._close()

    def load(self) -> dict[str, Any] | None:
        try:
            row = self._conn.execute(
                sql.SQL("SELECT record FROM {table} WHERE client_id = %s AND chain = %s"
                        ).format(table=self.table), (self.client_id, self.seed)).fetchone()
        except psycopg.Error as exc:
            raise self.error(f"cannot read {self.location} ({self._problem(exc)})") from None
        if row is None or row[0] is None:
            return None
        if not valid_record(row[0]):
            raise self.invalid(f"the row of this chain in {self.location}")
        return dict(row[0])

    def _upsert(self, record: dict[str, Any] | None) -> None:
        self._conn.execute(sql.SQL(UPSERT).format(table=self.table),
                           (self.client_id, self.seed, Jsonb(record) if record else None))

    def prepare(self) -> None:
        """Write this chain's row (unchanged) in the open transaction: proves the write and
        holds the row; rolled back unless the refresh succeeds."""
        try:
            self._upsert(self.load())
        except psycopg.Error as exc:
            raise self.error(f"cannot write {self.location} ({self._problem(exc)})") from None

    def save(self, record: dict[str, Any]) -> None:
        try:
            if self._conn is None or self._conn.closed:  # a retry: lock again on a new one
                self._close()
                self._conn = self._connect()
            self._upsert(record)
            self._conn.commit()
        except psycopg.Error as exc:
            self._close()
            raise self.error(f"cannot write {self.location} ({self._problem(exc)})") from None

