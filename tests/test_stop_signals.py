"""Stop signals and process exits around a refresh token rotation (issue 22, item 2): SIGHUP
and SIGQUIT wait for the rotated token like SIGTERM; once a stop is accepted no rotation
starts; an exit waits (bounded) for a rotation a worker thread has under way."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import oauth_config
from tests.emulator import CloseEmulator
from tests.test_reliability_oauth import (
    assert_chain_intact,
    assert_synced,
    tap_in_a_slow_refresh,
)
from tests.test_reliability_support import assert_clean, emulator_secrets, run_cli, track_tokens


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGQUIT])
def test_hangup_or_quit_during_a_refresh_saves_the_rotated_token(sig: int, tmp_path: Path
                                                                 ) -> None:
    store = tmp_path / "close.json"
    with CloseEmulator(seed=53, n_leads=3, slow_seconds=1.0) as emu:
        track_tokens(emu)
        config = oauth_config(emu, str(store))
        proc = tap_in_a_slow_refresh(emu, config, tmp_path, "stopped")
        time.sleep(0.2)
        proc.send(sig)
        stopped = proc.finish()
        assert stopped.returncode == 128 + sig, stopped.stderr[-2000:]
        assert "finishing the token refresh first" in stopped.stderr
        assert_chain_intact(emu, store)  # the rotated token saved; no .tmp-* file left
        after = run_cli(config, tmp_path, name="after")
        assert_synced(after, emu, {"users"})
        assert_chain_intact(emu, store)
        assert_clean([stopped, after], emulator_secrets(emu, config["refresh_token"]), store)


# A process whose worker thread (a daemon, as the tap's) refreshes while the main thread ends.
SCRIPT = """
import json, os, signal, sys, threading, time
from tap_close.auth import AuthError, CloseOAuth
from tap_close.stores import open_store
mode, settings = sys.argv[1], json.loads(sys.argv[2])
store = open_store(client_id=settings["client_id"], refresh_token=settings["refresh_token"],
                   path=settings["token_store_path"])
auth = CloseOAuth(client_id=settings["client_id"], client_secret=settings["client_secret"],
                  refresh_token=settings["refresh_token"], store=store,
                  token_url=settings["oauth_token_url"])
go, outcome = threading.Event(), []

def refresh():
    go.wait()
    try:
        auth.access_token()
        outcome.append("refreshed")
    except AuthError as exc:
        outcome.append(str(exc))

worker = threading.Thread(target=refresh, daemon=True)
worker.start()
if mode == "exit":  # the main thread ends while the worker's token request is answered
    go.set()
    time.sleep(0.5)
    sys.exit(3)
from tap_close.auth import handle_stop_signals
handle_stop_signals()
try:
    os.kill(os.getpid(), signal.SIGTERM)  # accepted: no rotation is under way
    time.sleep(5)
finally:
    go.set()
    worker.join(10)
    print(json.dumps(outcome), flush=True)
"""


def run_script(mode: str, config: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT, mode, json.dumps(config)],
                          capture_output=True, text=True, timeout=60, check=False)


def test_exit_waits_for_a_rotation_under_way(tmp_path: Path) -> None:
    store = tmp_path / "close.json"
    with CloseEmulator(seed=54, n_leads=1, slow_seconds=1.5) as emu:
        track_tokens(emu)
        config = oauth_config(emu, str(store))
        emu.inject(["slow"], path_prefix="/oauth2/token/")
        done = run_script("exit", config)
        assert done.returncode == 3, done.stderr
        assert emu.stats["token_refreshes"] == 1
        assert_chain_intact(emu, store)
        assert_clean([], emulator_secrets(emu, config["refresh_token"]), store)


def test_no_rotation_starts_after_a_stop_was_accepted(tmp_path: Path) -> None:
    store = tmp_path / "close.json"
    with CloseEmulator(seed=55, n_leads=1) as emu:
        config = oauth_config(emu, str(store))
        done = run_script("signal", config)
        assert done.returncode == 128 + signal.SIGTERM, done.stderr
        (outcome,) = json.loads(done.stdout)
        assert "stopping" in outcome
        assert emu.stats["token_refreshes"] == 0
        assert config["refresh_token"] in emu.current_refresh_tokens, "not spent"
        assert not store.exists() or not [p for p in tmp_path.iterdir()
                                          if p.name.startswith(".tmp-")]
