"""Run the real `tap-close` CLI as a subprocess and collect what it wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TAP = str(Path(sys.executable).with_name("tap-close"))


@dataclass
class TapRun:
    returncode: int
    stdout: str
    stderr: str
    records: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))
    schemas: dict[str, dict] = field(default_factory=dict)
    states: list[dict] = field(default_factory=list)

    def ids(self, stream: str, key: str = "id") -> set[str]:
        return {r[key] for r in self.records.get(stream, [])}

    def live_ids(self, stream: str) -> set[str]:
        """Ids of records that are not tombstones."""
        return {r["id"] for r in self.records.get(stream, []) if not r.get("_sdc_deleted_at")}

    @property
    def state(self) -> dict | None:
        return self.states[-1] if self.states else None

    def assert_ok(self) -> TapRun:
        assert self.returncode == 0, f"tap failed ({self.returncode}):\n{self.stderr[-4000:]}"
        return self


def run_tap(
    config: dict[str, Any] | None,
    *args: str,
    state: dict | None = None,
    catalog: dict | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> TapRun:
    """Run `tap-close --config FILE|ENV [args]` and parse its Singer messages."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [TAP, "--config", "ENV", *args]  # config None: settings from TAP_CLOSE_* vars
        if config is not None:
            cfg = Path(tmp, "config.json")
            cfg.write_text(json.dumps(config))
            cmd[2] = str(cfg)
        if state is not None:
            Path(tmp, "state.json").write_text(json.dumps(state))
            cmd += ["--state", str(Path(tmp, "state.json"))]
        if catalog is not None:
            Path(tmp, "catalog.json").write_text(json.dumps(catalog))
            cmd += ["--catalog", str(Path(tmp, "catalog.json"))]
        proc_env = {**os.environ, "XDG_STATE_HOME": str(Path(tmp, "xdg")), **(env or {})}
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=proc_env, check=False
        )
    return parse_run(proc.returncode, proc.stdout, proc.stderr)


def singer_messages(stdout: str) -> Iterator[dict]:
    """The Singer messages of a tap's stdout (a killed process's cut last line skipped)."""
    for line in stdout.splitlines():
        if not line.startswith('{"type"'):
            continue
        try:
            yield json.loads(line)
        except ValueError:
            continue


def parse_run(returncode: int, stdout: str, stderr: str) -> TapRun:
    """Collect the Singer messages of a finished (or killed) tap's stdout."""
    run = TapRun(returncode, stdout, stderr)
    for msg in singer_messages(stdout):
        kind = msg.get("type")
        if kind == "RECORD":
            run.records[msg["stream"]].append(msg["record"])
        elif kind == "SCHEMA":
            run.schemas[msg["stream"]] = msg["schema"]
        elif kind == "STATE":
            run.states.append(msg["value"])
    return run


def assert_no_secrets(text: str, secrets: list[str]) -> None:
    for secret in secrets:
        if secret:
            assert secret not in text, "a secret value appears in the tap's output"
