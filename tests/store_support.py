"""Real token-store backends for the tests (no mocks): a PostgreSQL database on the machine's
server (see tests/pg.py) and a local S3-compatible server (moto in server mode); and running
the CLI from an empty working directory with its settings in TAP_CLOSE_* variables only."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from moto.s3.responses import S3Response
from moto.server import ThreadedMotoServer
from requests.structures import CaseInsensitiveDict

from tests.harness import TAP, TapRun, parse_run
from tests.pg import PgUnavailable, postgres_server
from tests.test_meltano import unavailable

AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing-key-id", "AWS_SECRET_ACCESS_KEY": "testing-secret",
           "AWS_DEFAULT_REGION": "us-east-1"}
BUCKET = "tap-close-tokens"
REPO = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def postgres_store(table: str = "tap_close_tokens") -> Iterator[tuple[str, Any]]:
    """(token_store URL, a function running one SQL query) on a fresh database."""
    try:
        with postgres_server() as server, server.temporary_database() as db:
            url = f"postgresql://{server.user}@{server.host}:{server.port}/{db}?table={table}"

            def query(sql: str, params: tuple = ()) -> list[tuple]:
                return server.query(db, sql, params)

            yield url, query
    except PgUnavailable as exc:
        unavailable(f"PostgreSQL: {exc}")


_put_lock = threading.Lock()
_put_object = S3Response.put_object


def _atomic_put_object(self: S3Response) -> Any:
    """moto checks If-Match / If-None-Match and then writes, in two steps: S3 does both at
    once, and so does this server (one PUT at a time)."""
    with _put_lock:
        return _put_object(self)


def _unconditional_put_object(self: S3Response) -> Any:
    """An S3-compatible server that ignores If-Match / If-None-Match (some do)."""
    self.headers = CaseInsensitiveDict({k: v for k, v in self.headers.items()
                                        if k.lower() not in ("if-match", "if-none-match")})
    return _atomic_put_object(self)


@contextlib.contextmanager
def s3_server(conditional_writes: bool = True) -> Iterator[str]:
    """A local S3-compatible server on an ephemeral port with one bucket: its endpoint URL."""
    put = _atomic_put_object if conditional_writes else _unconditional_put_object
    S3Response.put_object = put  # type: ignore[method-assign]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        s3_client(endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.stop()
        S3Response.put_object = _put_object  # type: ignore[method-assign]


def s3_client(endpoint: str) -> Any:
    return boto3.session.Session(
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        region_name=AWS_ENV["AWS_DEFAULT_REGION"],
    ).client("s3", endpoint_url=endpoint)


def s3_record(endpoint: str, key: str) -> dict[str, Any]:
    body = s3_client(endpoint).get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return json.loads(body)


@dataclass
class FreshRun:
    """`tap-close --config ENV` in a new, empty working directory that is also $HOME (no
    XDG_STATE_HOME): like a container or CI runner whose disk is gone after each run."""

    root: Path
    settings: dict[str, str]
    extra_env: dict[str, str] | None = None

    forks: subprocess.Popen | None = None  # see `forked`

    def _home_and_env(self, name: str) -> tuple[Path, dict[str, str]]:
        home = self.root / name
        home.mkdir(parents=True)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("TAP_CLOSE_", "XDG_", "AWS_"))}
        tmp = self.root / f"{name}-tmp"  # a runner of its own: no temp files shared (the
        tmp.mkdir()  # rate-limit budgets of one machine's processes live there)
        env.update({"HOME": str(home), "TMPDIR": str(tmp), **AWS_ENV, **(self.extra_env or {})})
        env.update({f"TAP_CLOSE_{k.upper()}": v for k, v in self.settings.items()})
        return home, env

    def start(self, name: str, *args: str) -> tuple[subprocess.Popen, Path]:
        home, env = self._home_and_env(name)
        proc = subprocess.Popen([TAP, "--config", "ENV", *args], cwd=home, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return proc, home

    @staticmethod
    def _checked(home: Path, returncode: int, out: str, err: str) -> TapRun:
        """The finished run; it must have left no file in its working directory."""
        left = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
        assert not left, f"the run left local files: {left}"
        return parse_run(returncode, out, err)

    def finish(self, proc: subprocess.Popen, home: Path) -> TapRun:
        out, err = proc.communicate(timeout=180)
        return self._checked(home, proc.returncode, out, err)

    def run(self, name: str, *args: str) -> TapRun:
        if self.forks is None:
            return self.finish(*self.start(name, *args))
        home, env = self._home_and_env(name)
        out, err = self.root / f"{name}.stdout", self.root / f"{name}.stderr"
        job = {"cwd": str(home), "env": env, "args": ["--config", "ENV", *args],
               "stdout": str(out), "stderr": str(err)}
        assert self.forks.stdin is not None and self.forks.stdout is not None
        self.forks.stdin.write(json.dumps(job) + "\n")
        self.forks.stdin.flush()
        returncode = json.loads(self.forks.stdout.readline())["returncode"]
        return self._checked(home, returncode, out.read_text(), err.read_text())

    @contextlib.contextmanager
    def forked(self) -> Iterator[FreshRun]:
        """`run` forks each run from one process that imported the tap once (tests/forkserver.py):
        the same entry point and a new process per run, without a second of imports each."""
        self.forks = subprocess.Popen(
            [sys.executable, "-m", "tests.forkserver"], cwd=REPO, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True)
        try:
            yield self
        finally:
            assert self.forks.stdin is not None
            self.forks.stdin.close()
            self.forks.wait(timeout=30)
            self.forks = None

