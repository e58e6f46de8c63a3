"""The tap's output loads into the loaders people use (MeltanoLabs target-postgres is run by
tests/test_meltano.py): pipelinewise-target-postgres and target-duckdb, each installed from
PyPI into its own virtualenv under `.loader-venvs/` (gitignored: a rerun reuses it; CI builds it
from scratch with uv). A full sync of every stream, then an incremental run after edits and
deletes; each table then holds one row per key the tap sent for its stream."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from psycopg import sql

from tests.conftest import api_key_config
from tests.emulator import CloseEmulator
from tests.harness import run_tap
from tests.pg import PgServer
from tests.test_meltano import key_of, mutate, pg_server, unavailable

__all__ = ["pg_server"]  # the session fixture, shared with tests/test_meltano.py

REPO = Path(__file__).resolve().parents[1]
VENVS = REPO / ".loader-venvs"
SCHEMA = "close"
PIPELINEWISE = ("pipelinewise-target-postgres==2.1.2",)
# target-duckdb 0.8.0 COPYs CSV files without `HEADER false`: DuckDB 2.0.1 (pip's pick today)
# then takes the first row of each batch for a header and drops it; 1.0.0 and 1.1.3 load them
# (a loader bug; README "Loaders").
DUCKDB = ("target-duckdb==0.8.0", "duckdb==1.0.0")


def loader(command: str, *requirements: str) -> Path:
    """The loader's executable, installed into its own venv on first use."""
    venv = VENVS / requirements[0].split("==", maxsplit=1)[0]
    if not (venv / ".installed").exists():
        shutil.rmtree(venv, ignore_errors=True)
        uv = str(Path(sys.executable).with_name("uv"))
        try:
            subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)],
                           check=True, timeout=300, capture_output=True)
            subprocess.run([uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"),
                            *requirements], check=True, timeout=900, capture_output=True)
        except (OSError, subprocess.SubprocessError) as exc:
            unavailable(f"could not install {requirements[0]}: {exc}")
        (venv / ".installed").touch()
    return venv / "bin" / command


@dataclass
class Runs:
    outputs: list[str]  # the tap's stdout: a full sync, then an incremental run
    keys: dict[str, set[str]]  # stream -> every key sent in either run


@pytest.fixture(scope="module")
def runs() -> Iterator[Runs]:
    with CloseEmulator(seed=5, n_leads=20) as emu:
        first = run_tap(api_key_config(emu)).assert_ok()
        mutate(emu)
        second = run_tap(api_key_config(emu), state=first.state).assert_ok()
    keys: dict[str, set[str]] = {}
    for run in (first, second):
        for stream, records in run.records.items():
            keys.setdefault(stream, set()).update(r[key_of(stream)] for r in records)
    assert len(first.schemas) == 57 and second.records
    yield Runs([first.stdout, second.stdout], keys)


def load(command: Path, config: dict, output: str, tmp_path: Path) -> None:
    path = tmp_path / "target.json"
    path.write_text(json.dumps(config))
    done = subprocess.run([str(command), "--config", str(path)], input=output, text=True,
                          capture_output=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


def assert_counts(counts: dict[str, tuple[int, int]], runs: Runs) -> None:
    """One row per key: every stream with records has its table, with exactly those keys."""
    assert set(counts) >= set(runs.keys), set(runs.keys) - set(counts)
    for stream, keys in runs.keys.items():
        assert counts[stream] == (len(keys), len(keys)), stream


def test_pipelinewise_target_postgres(runs: Runs, pg_server: PgServer, tmp_path: Path) -> None:
    command = loader("target-postgres", *PIPELINEWISE)
    with pg_server.temporary_database() as db:
        config = {"host": pg_server.host, "port": pg_server.port, "user": pg_server.user,
                  "password": pg_server.password or "unused", "dbname": db,
                  "default_target_schema": SCHEMA}
        for output in runs.outputs:
            load(command, config, output, tmp_path)
        counts = {}
        for stream in runs.keys:
            query = sql.SQL("SELECT count(*), count(DISTINCT {}) FROM {}.{}").format(
                sql.Identifier(key_of(stream)), sql.Identifier(SCHEMA), sql.Identifier(stream))
            ((rows, distinct),) = pg_server.query(db, query)
            counts[stream] = (rows, distinct)
    assert_counts(counts, runs)


def test_target_duckdb(runs: Runs, tmp_path: Path) -> None:
    command = loader("target-duckdb", *DUCKDB)
    database = tmp_path / "loaded.duckdb"
    for output in runs.outputs:
        # add_metadata_columns: its upsert fails on a table of key columns only
        # (unsubscribed_emails); the `_sdc_deleted_at` it adds is the tap's tombstone column.
        config = {"path": str(database), "default_target_schema": SCHEMA,
                  "add_metadata_columns": True}
        load(command, config, output, tmp_path)
    script = (
        "import duckdb, json, sys\n"
        "con = duckdb.connect(sys.argv[1], read_only=True)\n"
        "out = {t: con.execute(f'SELECT count(*), count(DISTINCT \"{k}\") FROM close.\"{t}\"')"
        ".fetchone() for t, k in json.loads(sys.argv[2]).items()}\n"
        "print(json.dumps(out))\n"
    )
    tables = {stream: key_of(stream) for stream in runs.keys}
    done = subprocess.run([str(command.with_name("python")), "-c", script, str(database),
                           json.dumps(tables)], capture_output=True, text=True,
                          timeout=120, check=True)
    counts = {t: tuple(v) for t, v in json.loads(done.stdout).items()}
    assert_counts(counts, runs)  # type: ignore[arg-type]
