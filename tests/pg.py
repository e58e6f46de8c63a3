"""PostgreSQL for the end-to-end tests: the machine's server, or a private throwaway one.

`postgres_server()` yields a `PgServer`:

- `TAP_CLOSE_TEST_PG` unset or `auto`: the server at PGHOST/PGPORT/PGUSER/PGPASSWORD (default
  127.0.0.1:5432, user postgres, trust auth) when it answers; otherwise a private server started
  with `initdb` + `pg_ctl` in a temporary directory (as the `postgres` or `nobody` user when the
  tests run as root, because PostgreSQL refuses to run as root), stopped and removed afterwards.
- `TAP_CLOSE_TEST_PG=private`: always the private server; `=local`: never.

Each test run then creates its own database (`PgServer.temporary_database`) and drops it.
Raises `PgUnavailable` with the reason when neither works.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import psycopg
except ImportError:  # pragma: no cover - psycopg comes with the `test` extra
    psycopg = None  # type: ignore[assignment]


class PgUnavailable(RuntimeError):
    """No PostgreSQL server could be reached or started."""


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int
    user: str
    password: str
    private_dir: Path | None = None  # set when this session started the server

    @property
    def description(self) -> str:
        kind = f"private server in {self.private_dir}" if self.private_dir else "server"
        return f"PostgreSQL {kind} at {self.host}:{self.port} as {self.user}"

    def connect(self, dbname: str = "postgres", **kwargs: Any) -> psycopg.Connection:
        if psycopg is None:
            raise PgUnavailable("psycopg is not installed (pip install -e '.[test]')")
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password or None,
            dbname=dbname,
            connect_timeout=5,
            **kwargs,
        )

    def query(self, dbname: str, query: Any, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of one statement (`query`: a string or a `psycopg.sql` composition)."""
        with self.connect(dbname) as conn, conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall() if cur.description else []

    @contextlib.contextmanager
    def temporary_database(self, prefix: str = "tap_close_test") -> Iterator[str]:
        """A fresh, uniquely named database, dropped afterwards (even when connections linger)."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with self.connect(autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield name
        finally:
            with self.connect(autocommit=True) as conn:
                try:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                except psycopg.Error:  # before PostgreSQL 13
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def _answers(server: PgServer) -> str | None:
    """None when `server` accepts a connection, else why not."""
    if psycopg is None:
        return "psycopg is not installed (pip install -e '.[test]')"
    try:
        with server.connect() as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"{server.host}:{server.port}: {str(exc).strip().splitlines()[0]}"
    return None


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}")  # Debian, Ubuntu
        + glob.glob(f"/usr/pgsql-*/bin/{name}")  # RHEL
        + glob.glob(f"/usr/local/pgsql/bin/{name}")
        + glob.glob(f"/opt/homebrew/opt/postgresql*/bin/{name}"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in p.replace("-", "/").split("/")],
    )
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as() -> pwd.struct_passwd | None:
    """The unprivileged account to run PostgreSQL as, or None to run as ourselves."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PgUnavailable("running as root and no 'postgres' or 'nobody' account to run initdb as")


def _start_private() -> PgServer:
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise PgUnavailable("no initdb/pg_ctl found (install the PostgreSQL server package)")
    account = _run_as()
    root = Path(tempfile.mkdtemp(prefix="tap-close-pg-"))
    kwargs: dict[str, Any] = {}
    if account is not None:
        os.chown(root, account.pw_uid, account.pw_gid)
        kwargs = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(root),
        "LC_ALL": "C",
        "LANG": "C",
    }
    data, port = root / "data", _free_port()

    def run(*cmd: str) -> None:
        proc = subprocess.run(
            cmd, env=env, cwd=root, capture_output=True, text=True, timeout=120, check=False,
            **kwargs,
        )
        if proc.returncode:
            log = root / "server.log"
            tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
            shutil.rmtree(root, ignore_errors=True)
            raise PgUnavailable(
                f"{Path(cmd[0]).name} failed ({proc.returncode}): "
                f"{(proc.stderr or proc.stdout).strip()[-1500:]}\n{tail}"
            )

    run(initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
        "--no-locale", "--no-sync")
    options = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off"
    )
    run(pg_ctl, "-D", str(data), "-l", str(root / "server.log"), "-o", options, "-w", "-t", "60",
        "start")
    return PgServer("127.0.0.1", port, "postgres", "", private_dir=root)


def _stop_private(server: PgServer) -> None:
    root = server.private_dir
    if root is None:
        return
    pg_ctl = _pg_bin("pg_ctl")
    account = _run_as()
    kwargs: dict[str, Any] = {}
    if account is not None:
        kwargs = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    if pg_ctl:
        subprocess.run(
            [pg_ctl, "-D", str(root / "data"), "-m", "immediate", "-w", "stop"],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root)},
            cwd=root, capture_output=True, timeout=60, check=False, **kwargs,
        )
    shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def postgres_server() -> Iterator[PgServer]:
    mode = os.environ.get("TAP_CLOSE_TEST_PG", "auto").strip().lower() or "auto"
    if mode not in ("auto", "local", "private"):
        raise PgUnavailable(f"TAP_CLOSE_TEST_PG={mode!r}: use auto, local or private")
    reasons = []
    if mode in ("auto", "local"):
        local = PgServer(
            host=os.environ.get("PGHOST", "127.0.0.1"),
            port=int(os.environ.get("PGPORT", "5432")),
            user=os.environ.get("PGUSER", "postgres"),
            password=os.environ.get("PGPASSWORD", ""),
        )
        problem = _answers(local)
        if problem is None:
            yield local
            return
        reasons.append(f"no server answers ({problem})")
        if mode == "local":
            raise PgUnavailable("; ".join(reasons))
    try:
        server = _start_private()
    except PgUnavailable as exc:
        reasons.append(f"could not start a private server: {exc}")
        raise PgUnavailable("; ".join(reasons)) from None
    try:
        problem = _answers(server)
        if problem is not None:
            raise PgUnavailable(f"the private server does not answer: {problem}")
        yield server
    finally:
        _stop_private(server)
