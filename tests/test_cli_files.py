"""The CLI's edges: bad --config/--state/--catalog files and stream maps that read a missing
`stream_map_config` key give one ERROR line and exit 1; no socket is left open at exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import api_key_config, oauth_config
from tests.emulator import CloseEmulator
from tests.harness import TAP, run_tap

SALTED = ("json.dumps([sha256(config['email_salt'] + e['email'].strip().lower()) "
          "for e in record.get('emails') or []])")


def assert_one_error(proc: subprocess.CompletedProcess[str], *expected: str) -> str:
    errors = [ln for ln in proc.stderr.splitlines() if "ERROR" in ln]
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert len(errors) == 1, errors
    for text in expected:
        assert text in errors[0], errors[0]
    assert not proc.stdout.strip(), "nothing may be written to stdout"
    return errors[0]


def tap(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TAP, *args], capture_output=True, text=True, cwd=cwd, timeout=60,
                          check=False)


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "ok.json").write_text(json.dumps({"api_key": "api_x"}))
    (tmp_path / "bad.json").write_text('{"api_key": "api_x",')
    (tmp_path / "list.json").write_text("[]")
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00")
    (tmp_path / "folder.json").mkdir()
    return tmp_path


@pytest.mark.parametrize(("args", "expected"), [
    (["--config", "missing.json"], ("--config missing.json", "No such file")),
    (["--config", "bad.json"], ("--config bad.json", "not valid JSON", "line 1")),
    (["--config", "list.json"], ("--config list.json", "JSON object")),
    (["--config", "binary.json"], ("--config binary.json", "cannot be read")),
    (["--config", "folder.json"], ("--config folder.json", "cannot be read")),
    (["--config", "ok.json", "--config", "missing.json"], ("--config missing.json",)),
    (["--config", "missing.json", "--discover"], ("--config missing.json",)),
    (["--config", "bad.json", "--test"], ("--config bad.json", "not valid JSON")),
    (["--config", "ok.json", "--state", "missing.json"], ("--state missing.json", "No such")),
    (["--config", "ok.json", "--state", "bad.json"], ("--state bad.json", "not valid JSON")),
    (["--config", "ok.json", "--state", "list.json"], ("--state list.json", "JSON object")),
    (["--config", "ok.json", "--catalog", "missing.json"], ("--catalog missing.json",)),
    (["--config", "ok.json", "--catalog", "bad.json"], ("--catalog bad.json", "not valid")),
    (["--config", "-"], ("--config -", "cannot be read")),
])
def test_bad_files_give_one_error_line(files: Path, args: list[str],
                                       expected: tuple[str, ...]) -> None:
    assert_one_error(tap(*args, cwd=files), *expected)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_config(files: Path) -> None:
    secret = files / "secret.json"
    secret.write_text(json.dumps({"api_key": "api_x"}))
    secret.chmod(0)
    assert_one_error(tap("--config", "secret.json", cwd=files), "Permission denied")


def test_stream_map_reading_a_missing_key_fails_before_any_record(
        emulator: CloseEmulator) -> None:
    maps = {"contacts": {"email_hashes": SALTED, "emails": "__NULL__"}}
    for map_config in ({}, {"email_salt": None}, {"other": "x"}):
        run = run_tap(api_key_config(emulator, stream_maps=maps, stream_map_config=map_config))
        proc = subprocess.CompletedProcess([], run.returncode, run.stdout, run.stderr)
        assert_one_error(proc, "stream_maps.contacts.email_hashes", "email_salt",
                         "stream_map_config")
    assert not emulator.request_log, "the check must come before any request"
    salted = run_tap(api_key_config(emulator, stream_maps=maps,
                                    stream_map_config={"email_salt": "s"})).assert_ok()
    assert salted.records["contacts"] and all("email_hashes" in c
                                              for c in salted.records["contacts"])


def run_with_resource_errors(config: dict, tmp_path: Path, *args: str
                             ) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(config))
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "xdg")}
    return subprocess.run(
        [sys.executable, "-W", "error::ResourceWarning", "-m", "tap_close", "--config", str(cfg),
         *args], capture_output=True, text=True, timeout=120, env=env, check=False)


@pytest.mark.parametrize(("auth", "mode"), [
    ("api_key", []), ("api_key", ["--discover"]), ("api_key", ["--test"]), ("oauth", []),
    ("oauth", ["--discover"]), ("export", []),
])
def test_no_socket_left_open_at_exit(tmp_path: Path, mode: list[str], auth: str) -> None:
    """Under Meltano warnings are on: an unclosed socket would print a ResourceWarning."""
    with CloseEmulator(seed=3, n_leads=12) as emu:
        config = {
            "api_key": api_key_config(emu),
            "oauth": oauth_config(emu, str(tmp_path / "store.json")),
            "export": api_key_config(emu, use_export_for_backfill=True),
        }[auth]
        proc = run_with_resource_errors(config, tmp_path, *mode)
        requests = emu.stats["requests"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert requests > 1
    assert "ResourceWarning" not in proc.stderr and "unclosed" not in proc.stderr, (
        proc.stderr[-3000:])
