"""OAuth soak and credential failures (real CLI against the emulator).

Access tokens expire every 2 s and every refresh rotates the single-use refresh token: the
chain must survive 20 consecutive runs, a crash right after a refresh, a SIGTERM during one,
and two tap processes sharing one token store. Wrong or revoked credentials end with one
actionable error line, a non-zero exit and no traceback; no secret ever reaches the output.
"""

from __future__ import annotations

import json
import signal
import stat
import time
from pathlib import Path

from tests.conftest import api_key_config, oauth_config
from tests.emulator import CloseEmulator
from tests.harness import TapRun
from tests.test_reliability_support import (
    TapProcess,
    assert_clean,
    emulator_secrets,
    http_summary,
    run_cli,
    selected_catalog,
    track_tokens,
)

STREAMS = {"leads", "contacts", "opportunities", "users", "note_activities"}


def _store(store: Path) -> dict:
    return json.loads(store.read_text())


def assert_chain_intact(emu: CloseEmulator, store: Path) -> None:
    """The store holds the newest refresh token, the only live one; nothing was reused."""
    assert emu.stats["invalid_grants"] == 0
    assert emu.current_refresh_tokens == {_store(store)["refresh_token"]}
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    leftovers = [p.name for p in store.parent.iterdir() if p.name.startswith(".tmp-")]
    assert not leftovers, leftovers


def token_request_in_flight(emu: CloseEmulator) -> None:
    """Wait until the token request (slowed by an injected `slow` fault) is being answered."""
    deadline = time.monotonic() + 30
    while emu.faults.pending() and time.monotonic() < deadline:
        time.sleep(0.01)


def tap_in_a_slow_refresh(emu: CloseEmulator, config: dict, tmp: Path, name: str) -> TapProcess:
    """A tap started with its first token request slowed, returned while that is answered."""
    emu.inject(["slow"], path_prefix="/oauth2/token/")
    proc = TapProcess(config, tmp, name=name)
    token_request_in_flight(emu)
    return proc


def assert_synced(run: TapRun, emu: CloseEmulator, streams=STREAMS) -> None:
    run.assert_ok()
    for stream in streams:
        assert run.ids(stream) == emu.truth(stream), stream


def test_twenty_runs_with_two_second_tokens_keep_the_chain(tmp_path: Path) -> None:
    store = tmp_path / "tokens" / "close.json"
    with CloseEmulator(seed=51, n_leads=15, access_token_ttl=2.0, latency=0.03,
                       max_limit={"lead": 5, "opportunity": 5}) as emu:
        track_tokens(emu)
        config = oauth_config(emu, str(store))
        catalog = selected_catalog(config, tmp_path, STREAMS)
        runs, refreshes, state = [], 0, None
        for i in range(20):
            run = run_cli(config, tmp_path, catalog=catalog, state=state, name=f"run{i}")
            assert_synced(run, emu, {"users"})
            refreshes += http_summary(run)["token refreshes"]
            assert_chain_intact(emu, store)
            runs.append(run)
            state = run.state
        assert emu.stats["token_refreshes"] >= 8, "tokens expired and were refreshed often"
        assert refreshes == emu.stats["token_refreshes"] - 1  # the first: during --discover
        assert_clean(runs, emulator_secrets(emu, config["refresh_token"]), store)
        print(f"\noauth soak: 20 runs, {emu.stats['token_refreshes']} refreshes, 0 invalid_grant")


def test_crash_right_after_a_refresh_keeps_the_chain(tmp_path: Path) -> None:
    store = tmp_path / "close.json"
    with CloseEmulator(seed=52, n_leads=30, access_token_ttl=0.5, latency=0.02,
                       max_limit={"lead": 5, "opportunity": 5}) as emu:
        track_tokens(emu)
        config = oauth_config(emu, str(store))
        proc = TapProcess(config, tmp_path, name="crashed")

        def refreshed_twice(_: str, __: list[str]) -> bool:
            return proc.stderr_path.read_text().count("OAuth access token refreshed") >= 2

        assert proc.read_until(refreshed_twice), "the run ended before a second refresh"
        proc.send(signal.SIGKILL)
        crashed = proc.finish()
        assert crashed.returncode == -9
        assert_chain_intact(emu, store)
        resumed = run_cli(config, tmp_path, state=crashed.state, name="resumed")
        assert_synced(resumed, emu)
        assert_chain_intact(emu, store)
        assert_clean([crashed, resumed], emulator_secrets(emu, config["refresh_token"]), store)


def test_sigterm_during_a_refresh_saves_the_rotated_token(tmp_path: Path) -> None:
    """Close revokes the old token as it answers: the answer must reach the store."""
    store = tmp_path / "close.json"
    with CloseEmulator(seed=53, n_leads=5, slow_seconds=1.0) as emu:
        track_tokens(emu)
        config = oauth_config(emu, str(store))
        proc = tap_in_a_slow_refresh(emu, config, tmp_path, "stopped")
        time.sleep(0.2)
        proc.send(signal.SIGTERM)
        stopped = proc.finish()
        assert stopped.returncode == 143, stopped.stderr[-2000:]
        assert "finishing the token refresh first" in stopped.stderr
        assert proc.exit_seconds is not None and proc.exit_seconds < 5
        assert_chain_intact(emu, store)
        after = run_cli(config, tmp_path, name="after")
        assert_synced(after, emu)
        assert_chain_intact(emu, store)
        assert_clean([stopped, after], emulator_secrets(emu, config["refresh_token"]), store)


def test_two_processes_on_one_store_never_spend_the_same_token(tmp_path: Path) -> None:
    store = tmp_path / "shared" / "close.json"
    with CloseEmulator(seed=54, n_leads=30, access_token_ttl=0.4, latency=0.02,
                       max_limit={"lead": 5, "opportunity": 5}) as emu:
        track_tokens(emu)
        config = oauth_config(emu, str(store))
        both = [TapProcess(config, tmp_path, name=f"p{i}") for i in range(2)]
        runs = [p.finish() for p in both]
        for run in runs:
            assert_synced(run, emu)
        assert emu.stats["token_refreshes"] >= 3
        assert_chain_intact(emu, store)
        assert_clean(runs, emulator_secrets(emu, config["refresh_token"]), store)


# --- wrong, revoked and expired credentials -----------------------------------------------------


def assert_one_clear_error(run: TapRun, *expected: str) -> str:
    assert run.returncode not in (0, None), run.stderr[-2000:]
    errors = [ln for ln in run.stderr.splitlines() if "| ERROR" in ln or ln.startswith("ERROR")]
    assert len(errors) == 1, "\n".join(errors) or run.stderr[-2000:]
    for text in expected:
        assert text in errors[0], errors[0]
    assert "Traceback" not in run.stderr
    return errors[0]


def test_revoked_refresh_token(tmp_path: Path) -> None:
    store = tmp_path / "close.json"
    with CloseEmulator(seed=55, n_leads=5) as emu:
        track_tokens(emu)
        config = oauth_config(emu, str(store))
        emu.revoke_refresh_token(config["refresh_token"])
        runs = [run_cli(config, tmp_path, *mode, name=f"m{i}")
                for i, mode in enumerate([(), ("--discover",), ("--test",)])]
        for run in runs:
            assert_one_clear_error(run, "invalid_grant", "tap-close-auth", str(store))
        assert_clean(runs, emulator_secrets(emu, config["refresh_token"]), store,
                     traceback=False)


def test_wrong_client_secret(tmp_path: Path) -> None:
    store = tmp_path / "close.json"
    with CloseEmulator(seed=55, n_leads=5) as emu:
        track_tokens(emu)
        config = oauth_config(emu, str(store), client_secret="wrong-secret-4242")
        run = run_cli(config, tmp_path)
        assert_one_clear_error(run, "client_id/client_secret")
        assert_clean([run], emulator_secrets(emu, "wrong-secret-4242",
                                             config["refresh_token"]), store)
        assert emu.current_refresh_tokens >= {config["refresh_token"]}, "the token is not spent"


def test_wrong_api_key(tmp_path: Path) -> None:
    with CloseEmulator(seed=55, n_leads=5) as emu:
        config = api_key_config(emu, api_key="api_wrong_0123456789abcdef")
        runs = [run_cli(config, tmp_path, *mode, name=f"m{i}")
                for i, mode in enumerate([(), ("--discover",), ("--test",)])]
        for run in runs:
            assert_one_clear_error(run, "api_key", "401")
        assert_clean(runs, emulator_secrets(emu, config["api_key"]))


def test_expired_token_store(tmp_path: Path) -> None:
    """A store whose refresh token Close no longer accepts (unused too long, app re-authorized
    elsewhere) and whose access token has expired: re-authorize, naming the store."""
    store = tmp_path / "close.json"
    with CloseEmulator(seed=56, n_leads=5) as emu:
        track_tokens(emu)
        config = oauth_config(emu, str(store))
        first = run_cli(config, tmp_path, name="first").assert_ok()
        saved = _store(store)
        emu.revoke_refresh_token(saved["refresh_token"])
        store.write_text(json.dumps({**saved, "expires_at": time.time() - 3600}))
        run = run_cli(config, tmp_path, name="expired")
        assert_one_clear_error(run, "invalid_grant", "tap-close-auth", str(store))
        assert_clean([first, run], emulator_secrets(emu, config["refresh_token"],
                                                    saved["refresh_token"]), store)


def test_credentials_echoed_in_an_http_error_are_not_printed(tmp_path: Path) -> None:
    """A proxy or API error that repeats the Authorization header must not leak it."""
    with CloseEmulator(seed=57, n_leads=5) as emu:
        track_tokens(emu)
        key_config = api_key_config(emu)
        emu.inject(["echo"], path_prefix="/api/v1/lead/")
        key_run = run_cli(key_config, tmp_path, name="key")
        assert_one_clear_error(key_run, "400", "/lead/")
        store = tmp_path / "close.json"
        oauth = oauth_config(emu, str(store))
        emu.inject(["echo"], path_prefix="/api/v1/lead/")
        oauth_run = run_cli(oauth, tmp_path, name="oauth")
        assert_one_clear_error(oauth_run, "400", "/lead/")
        assert "[redacted]" in key_run.stderr and "[redacted]" in oauth_run.stderr
        assert_clean([key_run, oauth_run], emulator_secrets(emu, oauth["refresh_token"]),
                     store)
