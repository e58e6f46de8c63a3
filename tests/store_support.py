"""Real token-store backends for the tests (no mocks): a PostgreSQL database on the machine's
server (see tests/pg.py) and a local S3-compatible server (moto in server mode); and running
the CLI from an empty working directory with its settings in TAP_CLOSE_* variables only."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from moto.s3.responses import S3Response
from moto.server import ThreadedMotoServer

from tests.harness import TAP, TapRun, parse_run
from tests.pg import PgUnavailable, postgres_server
from tests.test_meltano import unavailable

AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing-key-id", "AWS_SECRET_ACCESS_KEY": "testing-secret",
           "AWS_DEFAULT_REGION": "us-east-1"}
BUCKET = "tap-close-tokens"


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


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """A local S3-compatible server on an ephemeral port with one bucket: its endpoint URL."""
    S3Response.put_object = _atomic_put_object  # type: ignore[method-assign]
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

    def start(self, name: str, *args: str) -> tuple[subprocess.Popen, Path]:
        home = self.root / name
        home.mkdir(parents=True)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("TAP_CLOSE_", "XDG_", "AWS_"))}
        env.update({"HOME": str(home), **AWS_ENV, **(self.extra_env or {})})
        env.update({f"TAP_CLOSE_{k.upper()}": v for k, v in self.settings.items()})
        proc = subprocess.Popen([TAP, "--config", "ENV", *args], cwd=home, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return proc, home

    @staticmethod
    def finish(proc: subprocess.Popen, home: Path) -> TapRun:
        """The finished run; it must have left no file in its working directory."""
        out, err = proc.communicate(timeout=180)
        run = parse_run(proc.returncode, out, err)
        left = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
        assert not left, f"the run left local files: {left}"
        return run

    def run(self, name: str, *args: str) -> TapRun:
        return self.finish(*self.start(name, *args))

