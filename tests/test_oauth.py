"""OAuth with expiring access tokens and rotating single-use refresh tokens (real CLI)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import oauth_config
from tests.emulator import CloseEmulator
from tests.harness import assert_no_secrets, run_tap

AUTH_CLI = str(Path(sys.executable).with_name("tap-close-auth"))


def _secrets(emu: CloseEmulator, config: dict, store: Path) -> list[str]:
    values = [emu.client_secret, config["refresh_token"]]
    if store.exists():
        data = json.loads(store.read_text())
        values += [data["refresh_token"], data["access_token"]]
    return values


def test_oauth_refreshes_mid_run_and_resumes_from_store(tmp_path: Path) -> None:
    store = tmp_path / "tokens" / "close.json"
    with CloseEmulator(seed=4, n_leads=40, access_token_ttl=0.5, latency=0.03,
                       max_limit={"lead": 4, "opportunity": 4}) as emu:
        config = oauth_config(emu, str(store))
        first = run_tap(config).assert_ok()
        assert first.ids("leads") == emu.truth("leads")
        assert emu.stats["token_refreshes"] >= 3, "several refreshes in one run"
        saved = json.loads(store.read_text())
        assert saved["refresh_token"] in emu.current_refresh_tokens
        assert config["refresh_token"] not in emu.current_refresh_tokens  # rotated away
        assert stat.S_IMODE(store.stat().st_mode) == 0o600
        assert_no_secrets(first.stdout + first.stderr, _secrets(emu, config, store))

        # Second run: same (now revoked) configured token; the store carries the chain.
        time.sleep(1.1)
        second = run_tap(config, state=first.state).assert_ok()
        assert emu.stats["invalid_grants"] == 0
        assert json.loads(store.read_text())["refresh_token"] in emu.current_refresh_tokens
        assert_no_secrets(second.stdout + second.stderr, _secrets(emu, config, store))


def test_newly_configured_refresh_token_replaces_the_chain(tmp_path: Path) -> None:
    store = tmp_path / "close.json"
    with CloseEmulator(seed=4, n_leads=5, access_token_ttl=0.5) as emu:
        run_tap(oauth_config(emu, str(store))).assert_ok()
        old_chain = json.loads(store.read_text())["refresh_token"]
        emu.revoke_refresh_token(old_chain)  # e.g. the user re-authorized
        time.sleep(0.6)
        fresh = oauth_config(emu, str(store))  # a new token from tap-close-auth
        run_tap(fresh).assert_ok()
        assert json.loads(store.read_text())["refresh_token"] in emu.current_refresh_tokens


def test_revoked_refresh_token_is_a_clear_error(tmp_path: Path) -> None:
    store = tmp_path / "close.json"
    with CloseEmulator(seed=4, n_leads=5) as emu:
        config = oauth_config(emu, str(store))
        emu.revoke_refresh_token(config["refresh_token"])
        run = run_tap(config)
        assert run.returncode != 0
        assert "invalid_grant" in run.stderr and "tap-close-auth" in run.stderr
        assert str(store) in run.stderr and "Traceback" not in run.stderr
        assert_no_secrets(run.stderr, _secrets(emu, config, store))


def test_wrong_client_secret_is_a_clear_error(tmp_path: Path) -> None:
    with CloseEmulator(seed=4, n_leads=5) as emu:
        config = oauth_config(emu, str(tmp_path / "s.json"), client_secret="not-the-secret-42")
        run = run_tap(config)
        assert run.returncode != 0 and "client_secret" in run.stderr
        assert "Traceback" not in run.stderr
        assert_no_secrets(run.stderr, ["not-the-secret-42", config["refresh_token"]])


def test_stale_access_token_gets_one_refresh_and_retry(tmp_path: Path) -> None:
    """A 401 on a token we believed valid: refresh once, retry, carry on."""
    store = tmp_path / "close.json"
    with CloseEmulator(seed=4, n_leads=5) as emu:
        config = oauth_config(emu, str(store))
        run_tap(config).assert_ok()
        data = json.loads(store.read_text())
        data["access_token"] = "bogus-but-unexpired"
        data["expires_at"] = time.time() + 3600
        store.write_text(json.dumps(data))
        run = run_tap(config).assert_ok()
        assert run.ids("leads") == emu.truth("leads")
        assert any(e["status"] == 401 for e in emu.request_log)


def test_tap_close_auth_seeds_the_store(tmp_path: Path) -> None:
    store = tmp_path / "store.json"
    with CloseEmulator(seed=4, n_leads=5) as emu:
        redirect = "https://example.com/callback/close"
        pasted = f"{redirect}?code={emu.issue_auth_code(redirect)}&state=x"
        out = subprocess.run(
            [AUTH_CLI, "--client-id", emu.client_id, "--redirect-uri", redirect,
             "--token-url", emu.token_url, "--token-store-path", str(store), "--code", pasted,
             "--state", "x"],
            capture_output=True, text=True, timeout=60, check=False,
            env={**os.environ, "TAP_CLOSE_CLIENT_SECRET": emu.client_secret},
        )
        assert out.returncode == 0, out.stderr
        printed = json.loads(out.stdout)
        assert printed["refresh_token"] in emu.current_refresh_tokens
        assert emu.client_secret not in out.stdout + out.stderr
        config = {**printed, "client_secret": emu.client_secret, "api_url": emu.api_url,
                  "oauth_token_url": emu.token_url}
        run = run_tap(config).assert_ok()
        assert run.ids("users") == emu.truth("users")


def test_tap_close_auth_rejects_http_redirect() -> None:
    out = subprocess.run(
        [AUTH_CLI, "--client-id", "x", "--client-secret", "y", "--redirect-uri",
         "http://localhost/cb", "--code", "abc"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert out.returncode == 1 and "https" in out.stderr and "Traceback" not in out.stderr
