"""Shared pieces of the reliability tests (no tests here).

`start_tap` runs the real `tap-close` CLI as a child process whose stdout is read line by
line, so a test can send SIGKILL/SIGTERM at a chosen message; `parse` turns the output into
a `TapRun` like `tests.harness.run_tap`; `assert_clean` scans everything the tap wrote (and
every file beside the token store) for secrets; `assert_conforms` validates records against
the SCHEMA messages with jsonschema.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import jsonschema

from tests.emulator import CloseEmulator
from tests.harness import TAP, TapRun, parse_run

#: Run the CLI with a lower SDK STATE frequency (the SDK default is one STATE per 10k records).
STATE_EVERY = (
    "import sys; from singer_sdk.streams.core import Stream; "
    "Stream.STATE_MSG_FREQUENCY = int(sys.argv.pop(1)); "
    "from tap_close.tap import TapClose; sys.argv[0] = 'tap-close'; TapClose.cli()"
)
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$")


def parse(returncode: int, stdout: str, stderr: str) -> TapRun:
    """Singer messages of one run; a line cut short by a kill is ignored."""
    return parse_run(returncode, stdout, stderr)


class TapProcess:
    """One `tap-close` child process; stdout read incrementally, stderr to a file."""

    def __init__(
        self,
        config: dict[str, Any] | None,
        tmp: Path,
        *args: str,
        state: dict | None = None,
        catalog: dict | None = None,
        env: dict[str, str] | None = None,
        state_every: int | None = None,
        name: str = "run",
    ) -> None:
        xdg = tmp / "xdg"
        tmp = tmp / "cli"  # the CLI's own files, away from any token store under tmp
        tmp.mkdir(parents=True, exist_ok=True)
        cfg = tmp / f"{name}-config.json"  # config None: --config ENV (TAP_CLOSE_* vars)
        cfg.write_text(json.dumps(config))
        cmd = [TAP]
        if state_every:
            cmd = [sys.executable, "-c", STATE_EVERY, str(state_every)]
        cmd += ["--config", str(cfg) if config is not None else "ENV", *args]
        if state is not None:
            (tmp / f"{name}-state.json").write_text(json.dumps(state))
            cmd += ["--state", str(tmp / f"{name}-state.json")]
        if catalog is not None:
            (tmp / f"{name}-catalog.json").write_text(json.dumps(catalog))
            cmd += ["--catalog", str(tmp / f"{name}-catalog.json")]
        self.stderr_path = tmp / f"{name}-stderr.log"
        self._stderr = self.stderr_path.open("w")
        proc_env = {**os.environ, "XDG_STATE_HOME": str(xdg), **(env or {})}
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=proc_env
        )
        self.lines: list[str] = []
        self.signalled_at: float | None = None

    def read_until(self, stop: Callable[[str, list[str]], bool]) -> bool:
        """Read stdout until `stop(line, lines_so_far)` is true (True) or EOF (False)."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if stop(line, self.lines):
                return True
        return False

    def send(self, sig: int) -> None:
        self.signalled_at = time.monotonic()
        self.proc.send_signal(sig)

    def finish(self, timeout: float = 120) -> TapRun:
        assert self.proc.stdout is not None
        self.lines.extend(self.proc.stdout)  # until EOF
        rc = self.proc.wait(timeout=timeout)
        self.exit_seconds = (
            time.monotonic() - self.signalled_at if self.signalled_at is not None else None
        )
        self._stderr.close()
        return parse(rc, "".join(self.lines), self.stderr_path.read_text())

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.finish()


def run_cli(config: dict[str, Any] | None, tmp: Path, *args: str, **kwargs: Any) -> TapRun:
    """Run to completion (like harness.run_tap, with the process helpers above)."""
    return TapProcess(config, tmp, *args, **kwargs).finish()


# --- assertions --------------------------------------------------------------------------------


def store_files(store: Path | None) -> dict[str, str]:
    """Every file beside the token store (lock, temp files, logs), not the store itself."""
    if store is None or not store.parent.is_dir():
        return {}
    out = {}
    for path in store.parent.iterdir():
        if path.is_file() and path != store:
            out[str(path)] = path.read_text(errors="replace")
    return out


def track_tokens(emu: CloseEmulator) -> CloseEmulator:
    """Remember every token the emulator's token endpoint hands out (spent ones included)."""
    issued: list[str] = emu.__dict__.setdefault("issued_tokens", [])
    grant = emu.oauth.grant

    def recording(form: dict[str, str]) -> dict[str, Any]:
        body = grant(form)
        issued.extend([body["access_token"], body["refresh_token"]])
        return body

    emu.oauth.grant = recording  # type: ignore[method-assign]
    return emu


def emulator_secrets(emu: CloseEmulator, *extra: str) -> list[str]:
    """The api key, the client secret and every token issued (see `track_tokens`)."""
    with emu.oauth._lock:
        tokens = [*emu.oauth._refresh, *emu.oauth._access]
    issued = emu.__dict__.get("issued_tokens", [])
    basic = base64.b64encode(f"{emu.api_key}:".encode()).decode()  # the Authorization value
    return [emu.api_key, basic, emu.client_secret, *tokens, *issued, *extra]


def assert_clean(
    runs: Iterable[TapRun], secrets: Iterable[str], store: Path | None = None,
    *, traceback: bool = False,
) -> None:
    """No secret in stdout, stderr or beside the token store; no traceback unless allowed."""
    texts = {f"run {i} stdout": r.stdout for i, r in enumerate(runs)}
    texts.update({f"run {i} stderr": r.stderr for i, r in enumerate(runs)})
    texts.update(store_files(store))
    values = [s for s in secrets if s and len(s) >= 6]
    for where, text in texts.items():
        for secret in values:
            assert secret not in text, f"a secret ({secret[:3]}...) appears in {where}"
        if not traceback and "stderr" in where:
            assert "Traceback" not in text, f"traceback in {where}:\n{text[-3000:]}"


def _datetime_paths(schema: dict, path: tuple = ()) -> Iterable[tuple]:
    if schema.get("format") == "date-time":
        yield path
    for name, sub in (schema.get("properties") or {}).items():
        yield from _datetime_paths(sub, (*path, name))
    items = schema.get("items")
    if isinstance(items, dict):
        yield from _datetime_paths(items, (*path, "[]"))


def _values(record: Any, path: tuple) -> Iterable[Any]:
    if not path:
        yield record
        return
    head, rest = path[0], path[1:]
    if head == "[]":
        for item in record if isinstance(record, list) else []:
            yield from _values(item, rest)
    elif isinstance(record, dict) and head in record:
        yield from _values(record[head], rest)


def assert_conforms(run: TapRun, *, nested_datetimes: bool = False) -> int:
    """Every record validates against its stream's SCHEMA; top-level date-times are UTC."""
    checked = 0
    for stream, records in run.records.items():
        schema = run.schemas[stream]
        validator = jsonschema.Draft7Validator(schema)
        paths = [p for p in _datetime_paths(schema) if nested_datetimes or len(p) == 1]
        for record in records:
            errors = sorted(validator.iter_errors(record), key=lambda e: list(e.path))
            assert not errors, f"{stream} {record.get('id')}: {errors[0].message}"
            for path in paths:
                for value in _values(record, path):
                    assert value is None or ISO_UTC.match(value), (stream, path, value)
            checked += 1
    return checked


def http_summary(run: TapRun) -> dict[str, int]:
    """Figures of the tap's closing `HTTP summary` log line."""
    line = next(ln for ln in run.stderr.splitlines() if "HTTP summary" in ln)
    found = re.findall(r"(\d+) (requests|retries|rate-limited|token refreshes)", line)
    return {name: int(n) for n, name in found}


def selected_catalog(config: dict[str, Any], tmp: Path, streams: set[str]) -> dict:
    """The discovered catalog with only `streams` selected."""
    run = TapProcess(config, tmp, "--discover", name="discover")
    run.finish()
    catalog = json.loads("".join(run.lines))
    for entry in catalog["streams"]:
        for md in entry["metadata"]:
            if md["breadcrumb"] == []:
                md["metadata"]["selected"] = entry["tap_stream_id"] in streams
    return catalog


SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGTERM": signal.SIGTERM}
